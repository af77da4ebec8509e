//! The response headers every page carries. The CSP allows scripts, styles, workers and
//! media only from this origin (hls.js makes its transmuxing worker and the video's
//! MediaSource from `blob:` URLs), so an injected `<script>` or inline handler never runs;
//! framing is refused and no page leaks its URL to another origin.

use actix_web::middleware::DefaultHeaders;

pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data: blob:; media-src 'self' blob:; worker-src 'self' blob:; \
connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; \
form-action 'self'";

/// Added to every HTML surface response that does not set its own (assets set their own
/// `Cache-Control`).
pub fn page_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("Content-Security-Policy", CSP))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "same-origin"))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
        .add(("Cache-Control", "no-store"))
}
