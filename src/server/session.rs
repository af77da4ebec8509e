//! The browser session on the wire, shared by the JSON API's session endpoints and the
//! HTML pages: the cookie's name and attributes, and the CSRF header every state-changing
//! session request must carry. What a session *is* lives in `auth`; this is only how a
//! browser holds it.

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::HttpRequest;

pub const SESSION_COOKIE: &str = "cinegate_session";

/// Browser calls that use the session cookie must carry this header: a cross-site form
/// cannot set it, and a cross-site script needs a CORS preflight that is refused. The
/// pages send it from htmx (`hx-headers` on `<body>`) and from their ES modules.
pub const CSRF_HEADER: &str = "x-requested-with";
pub const CSRF_VALUE: &str = "cinegate";

/// The browser session's cookie: HttpOnly, `SameSite=Lax`, `Secure` on https.
pub fn session_cookie(id: String, ttl_secs: i64, secure: bool) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, id)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(CookieDuration::seconds(ttl_secs))
        .finish()
}

/// The cookie that makes the browser forget its session.
pub fn ended_session_cookie() -> Cookie<'static> {
    let mut gone = Cookie::build(SESSION_COOKIE, "")
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .finish();
    gone.make_removal();
    gone
}

/// The session cookie's value, if the request has one.
pub fn session_value(req: &HttpRequest) -> Option<String> {
    req.cookie(SESSION_COOKIE).map(|c| c.value().to_string())
}

/// Whether the request carries the CSRF header.
pub fn has_csrf_header(req: &HttpRequest) -> bool {
    req.headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == CSRF_VALUE)
}
