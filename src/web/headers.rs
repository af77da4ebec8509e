//! The response headers every page carries. The CSP allows scripts, styles, workers and
//! media only from this origin (hls.js makes its transmuxing worker and the video's
//! MediaSource from `blob:` URLs), so an injected `<script>` or inline handler never runs;
//! framing is refused and no page leaks its URL to another origin.
//!
//! `page_headers` wraps the console's and the viewer's routes; `html_answers` wraps the
//! whole application and adds whatever of the same set is missing to every other
//! `text/html` answer (the payer's return pages, the unsubscribe page, an error page from
//! any route), so no HTML leaves without them.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use actix_web::middleware::{DefaultHeaders, Next};

pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data: blob:; media-src 'self' blob:; worker-src 'self' blob:; \
connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; \
form-action 'self'";

/// The CSP this process serves: [`CSP`], or with `[storage]` on a bucket, the same with
/// the segments' origin (the CDN, or the S3 endpoint for presigned URLs) allowed for
/// `connect-src` (hls.js fetches them) and `media-src` (a native HLS player does). Set
/// once at start-up (`configure`), before any page is served.
static SERVED_CSP: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Fixes the served CSP from the configuration (`startup` calls it once).
pub fn configure(segment_origin: Option<&str>) {
    let csp = match segment_origin {
        Some(origin) => CSP
            .replace(
                "media-src 'self' blob:;",
                &format!("media-src 'self' blob: {origin};"),
            )
            .replace(
                "connect-src 'self';",
                &format!("connect-src 'self' {origin};"),
            ),
        None => CSP.to_string(),
    };
    let _ = SERVED_CSP.set(csp);
}

fn served_csp() -> &'static str {
    SERVED_CSP.get().map_or(CSP, String::as_str)
}

/// The headers of every page, each unless the answer sets its own.
fn page() -> [(&'static str, &'static str); 6] {
    [
        ("content-security-policy", served_csp()),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cache-control", "no-store"),
    ]
}

/// Added to every HTML surface response that does not set its own (assets set their own
/// `Cache-Control`).
pub fn page_headers() -> DefaultHeaders {
    page()
        .iter()
        .fold(DefaultHeaders::new(), |headers, pair| headers.add(*pair))
}

/// The page headers on any `text/html` answer that lacks them (`startup` wraps the app).
pub async fn html_answers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let html = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/html"));
    if html {
        let headers = res.headers_mut();
        for (name, value) in page() {
            let name = HeaderName::from_static(name);
            if !headers.contains_key(&name) {
                headers.insert(name, HeaderValue::from_static(value));
            }
        }
    }
    Ok(res)
}
