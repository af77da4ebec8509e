//! How a page shows a refusal: the status and the stable code that `api::error` gives the
//! same domain error (one classification for both surfaces), in words, on a page — never a
//! blank page or a stack trace. A full page for a navigation; for an htmx request the same
//! page, of which htmx swaps only the `#error` box into the page's `#flash` region
//! (`HX-Retarget`, `HX-Reselect`), so the admin sees the reason where they acted.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use crate::api::error::{ApiError, Code};

#[derive(Debug)]
pub enum PageError {
    /// A domain refusal or a server fault, classified as the JSON API classifies it.
    Api(ApiError),
    /// Not signed in: go to the sign-in page `page` (the console's or the viewer app's),
    /// then back to `next`.
    SignIn { page: &'static str, next: String },
}

pub type PageResult<T> = Result<T, PageError>;

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Api(e) => e.fmt(f),
            Self::SignIn { .. } => f.write_str("sign in first"),
        }
    }
}

impl PageError {
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        Self::Api(ApiError::new(status, code, message))
    }
}

/// Every domain error a page can meet becomes a `PageError` through its `ApiError`.
macro_rules! through_api_error {
    ($($t:ty),+ $(,)?) => {
        $(impl From<$t> for PageError {
            fn from(e: $t) -> Self {
                Self::Api(ApiError::from(e))
            }
        })+
    };
}

through_api_error!(
    ApiError,
    crate::store::StoreError,
    crate::auth::session::SessionError,
    crate::auth::access::AccessError,
    crate::auth::identity::IdentityError,
    crate::auth::signin::SignInError,
    crate::payments::orders::OrderError,
    crate::social::comments::CommentError,
    crate::social::support::SupportError,
    crate::ingest::IngestError,
    crate::runners::RunnerError,
    crate::analytics::RangeError,
    crate::ingest::FieldError,
    crate::catalogue::CatalogueError,
    crate::ratelimit::Limited,
    actix_web::error::BlockingError,
);

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    status: u16,
    reason: &'a str,
    code: &'a str,
    message: &'a str,
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Api(e) => e.status,
            Self::SignIn { .. } => StatusCode::SEE_OTHER,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::SignIn { page, next } => {
                let to = format!("{page}?next={}", encode_query(next));
                HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, to.clone()))
                    // htmx follows a 3xx inside its XHR; this makes it load the page instead.
                    .insert_header(("HX-Redirect", to))
                    .finish()
            }
            Self::Api(e) => {
                let page = ErrorPage {
                    status: e.status.as_u16(),
                    reason: e.status.canonical_reason().unwrap_or("Error"),
                    code: e.code.as_str(),
                    message: &e.message,
                };
                let body = page.render().unwrap_or_else(|_| e.message.clone());
                let mut answer = HttpResponse::build(e.status);
                for (name, value) in &e.headers {
                    answer.insert_header((*name, value.as_str()));
                }
                answer
                    .insert_header(("HX-Retarget", "#flash"))
                    .insert_header(("HX-Reswap", "innerHTML"))
                    .insert_header(("HX-Reselect", "#error"))
                    .content_type("text/html; charset=utf-8")
                    .body(body)
            }
        }
    }
}

/// Percent-encodes a local path for a query value (only unreserved characters and `/`
/// stay as they are).
pub fn encode_query(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
