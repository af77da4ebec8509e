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

/// The headers of every page, each unless the answer sets its own.
const PAGE: [(&str, &str); 6] = [
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cache-control", "no-store"),
];

/// Added to every HTML surface response that does not set its own (assets set their own
/// `Cache-Control`).
pub fn page_headers() -> DefaultHeaders {
    PAGE.iter()
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
        for (name, value) in PAGE {
            let name = HeaderName::from_static(name);
            if !headers.contains_key(&name) {
                headers.insert(name, HeaderValue::from_static(value));
            }
        }
    }
    Ok(res)
}
