//! The one place errors become HTTP responses: status + `{"error": {"code", "message"}}`
//! plus optional fields that help the app. Server faults are logged with their cause and
//! answered with a generic message; nothing internal (paths, tokens) reaches the client.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{Map, Value};

pub use super::codes::Code;
use crate::auth::session::SessionError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Code,
    pub message: String,
    pub extra: Map<String, Value>,
    /// Extra response headers (e.g. `Cache-Control: no-store` on key refusals).
    pub headers: Vec<(&'static str, String)>,
    /// Close the connection after answering: the request body was not read to its end,
    /// so the connection cannot carry another request.
    pub close: bool,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ApiError {
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: Map::new(),
            headers: Vec::new(),
            close: false,
        }
    }

    pub fn close_connection(mut self) -> Self {
        self.close = true;
        self
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn bad_request(code: Code, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::InvalidInput,
            message,
        )
    }

    pub fn unauthorized(code: Code, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(code: Code, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            Code::NotFound,
            format!("{what} not found"),
        )
    }

    pub fn conflict(code: Code, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// A server fault: the cause goes to the log, the client gets a generic message.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Code::Internal,
            "something went wrong on the server",
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
                extra: &self.extra,
            },
        };
        let mut response = HttpResponse::build(self.status);
        for (name, value) in &self.headers {
            response.insert_header((*name, value.as_str()));
        }
        if self.close {
            response.force_close();
        }
        response.json(body)
    }
}

/// `{"error": {"code", "message", …}}`: the one shape of every refusal.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: Code,
    message: &'a str,
    /// Fields that help the app act on it (`coverage` on `watch_more`, `retry_after`, …).
    #[serde(flatten)]
    extra: &'a Map<String, Value>,
}

impl From<crate::runners::RunnerError> for ApiError {
    fn from(e: crate::runners::RunnerError) -> Self {
        use crate::runners::RunnerError as E;
        match e {
            E::Unauthorized => ApiError::unauthorized(Code::InvalidToken, e.to_string()),
            E::NotFound(what) => ApiError::not_found(what),
            E::LeaseLost => ApiError::conflict(Code::LeaseLost, e.to_string()),
            E::InvalidPath(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, Code::InvalidPath, m)
            }
            E::Incomplete(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, Code::PackageIncomplete, m)
            }
            E::InvalidInput(m) => ApiError::validation(m),
            E::Store(e) => e.into(),
            E::Secret(e) => e.into(),
            E::NoSpace(low) => low.into(),
            e @ (E::Io { .. } | E::Job(_)) => ApiError::internal(&e),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(message) => ApiError::conflict(Code::Conflict, message),
            // The tree and key are for the operator's log; the record is left untouched.
            corrupt @ StoreError::Corrupt { .. } => {
                tracing::error!(error = %corrupt, "stored record unreadable");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Code::RecordUnreadable,
                    "a stored record could not be read; the server log has the details",
                )
            }
            other => ApiError::internal(&other),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Invalid => {
                ApiError::unauthorized(Code::InvalidToken, "the token is not valid")
            }
            SessionError::Expired => {
                ApiError::unauthorized(Code::TokenExpired, "the token has expired")
            }
            SessionError::Reused => ApiError::unauthorized(Code::TokenReused, e.to_string()),
            SessionError::Disabled => {
                ApiError::forbidden(Code::AccountDisabled, "the account is disabled")
            }
            SessionError::Store(e) => e.into(),
        }
    }
}

impl From<crate::auth::access::AccessError> for ApiError {
    fn from(e: crate::auth::access::AccessError) -> Self {
        use crate::auth::access::AccessError as E;
        let message = e.to_string();
        match e {
            E::Store(e) => e.into(),
            E::Missing => ApiError::unauthorized(Code::Unauthenticated, message),
            E::Expired => ApiError::unauthorized(Code::TokenExpired, message),
            E::Invalid | E::NoAccount | E::Ended => {
                ApiError::unauthorized(Code::InvalidToken, message)
            }
            E::Disabled => ApiError::forbidden(Code::AccountDisabled, message),
            E::NotAdmin => ApiError::forbidden(Code::AdminOnly, message),
        }
    }
}

impl From<crate::ratelimit::Limited> for ApiError {
    fn from(e: crate::ratelimit::Limited) -> Self {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            Code::RateLimited,
            e.to_string(),
        )
        .with("retry_after", e.retry_after)
        .header("Retry-After", e.retry_after.to_string())
    }
}

impl From<crate::auth::identity::IdentityError> for ApiError {
    fn from(e: crate::auth::identity::IdentityError) -> Self {
        use crate::auth::identity::IdentityError as E;
        let (status, code) = match &e {
            E::Store(_) => return ApiError::internal(&e),
            E::UnknownProvider(_) => (StatusCode::NOT_FOUND, Code::UnknownProvider),
            E::InvalidRequest(_) => (StatusCode::BAD_REQUEST, Code::InvalidRequest),
            E::InvalidRedirectUri => (StatusCode::BAD_REQUEST, Code::InvalidRedirectUri),
            E::InvalidState | E::OtherBrowser => (StatusCode::BAD_REQUEST, Code::InvalidState),
            E::FlowExpired => (StatusCode::BAD_REQUEST, Code::FlowExpired),
            E::InvalidCode => (StatusCode::BAD_REQUEST, Code::InvalidCode),
            E::Cancelled(_) => (StatusCode::UNAUTHORIZED, Code::SignInCancelled),
            E::InvalidIdToken(_) => (StatusCode::UNAUTHORIZED, Code::InvalidIdToken),
            E::InvalidProviderToken(_) => (StatusCode::UNAUTHORIZED, Code::InvalidProviderToken),
            E::Unauthenticated => (StatusCode::UNAUTHORIZED, Code::Unauthenticated),
            E::Disabled => (StatusCode::FORBIDDEN, Code::AccountDisabled),
            E::AccountExists(_) => (StatusCode::CONFLICT, Code::AccountExists),
            E::IdentityInUse(_) => (StatusCode::CONFLICT, Code::IdentityInUse),
            E::LastIdentity => (StatusCode::CONFLICT, Code::LastIdentity),
            // What went wrong with the provider (its words, a URL, a configuration key) is
            // for the operator's log; the viewer can only try again later.
            E::ProviderUnavailable(_) => {
                tracing::warn!(error = %e, "sign-in provider failed");
                return ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    Code::ProviderUnavailable,
                    SIGN_IN_PROVIDER_UNAVAILABLE,
                );
            }
            E::Misconfigured(_) => {
                tracing::error!(error = %e, "sign-in provider refused this server's configuration");
                return ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    Code::ProviderUnavailable,
                    SIGN_IN_PROVIDER_UNAVAILABLE,
                );
            }
            // The provider's own words stay in the log; the viewer learns what to do.
            E::ProviderRejected(_) => {
                tracing::info!(error = %e, "sign-in provider refused the code");
                return ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    Code::ProviderRejected,
                    "the provider refused this sign-in (the code was used, expired or did not match); start again",
                );
            }
        };
        ApiError::new(status, code, e.to_string())
    }
}

/// What a viewer reads when a sign-in provider failed or refused this server.
const SIGN_IN_PROVIDER_UNAVAILABLE: &str =
    "the sign-in provider is not available right now; try again in a few minutes";

/// What a viewer reads when a payment provider failed or refused us: the detail (which
/// may name configuration keys, URLs or the provider's own words) goes to the log.
const PROVIDER_UNAVAILABLE: &str =
    "the payment provider is not available right now; try again in a few minutes";

impl ApiError {
    /// An order error for an admin endpoint: the same status and code as a viewer gets,
    /// but a provider failure keeps its detail (and a refusal its own code,
    /// `provider_refused`), since the admin is the one who can act on it.
    pub fn for_admin(e: crate::payments::orders::OrderError) -> Self {
        use crate::payments::orders::OrderError as E;
        use crate::payments::PaymentError as P;
        let detail = match &e {
            E::Payment(P::Unavailable(_)) => Some((e.to_string(), Code::ProviderUnavailable)),
            E::Payment(P::Refused(_)) => Some((e.to_string(), Code::ProviderRefused)),
            _ => None,
        };
        let mut api = ApiError::from(e);
        if let Some((message, code)) = detail {
            api.message = message;
            api.code = code;
        }
        api
    }
}

impl From<crate::payments::orders::OrderError> for ApiError {
    fn from(e: crate::payments::orders::OrderError) -> Self {
        use crate::payments::orders::OrderError as E;
        use crate::payments::PaymentError as P;
        let (status, code) = match &e {
            E::Store(_) => return ApiError::internal(&e),
            E::TooManyOpenOrders { retry_after } => {
                return ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    Code::TooManyOpenOrders,
                    e.to_string(),
                )
                .header("Retry-After", retry_after.to_string())
                .with("retry_after", *retry_after)
            }
            E::UnknownProvider(_) => (StatusCode::NOT_FOUND, Code::UnknownProvider),
            E::WebhookUnverified(_) => (StatusCode::UNAUTHORIZED, Code::InvalidSignature),
            E::NotForSale => (StatusCode::CONFLICT, Code::NotForSale),
            E::CurrencyUnsupported { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, Code::CurrencyUnsupported)
            }
            E::AlreadyOwned => (StatusCode::CONFLICT, Code::AlreadyOwned),
            E::NotFound => (StatusCode::NOT_FOUND, Code::NotFound),
            E::WrongState(_) => (StatusCode::CONFLICT, Code::OrderState),
            E::Payment(P::Declined(_)) => (StatusCode::PAYMENT_REQUIRED, Code::PaymentDeclined),
            E::Payment(P::Cancelled(_)) => (StatusCode::CONFLICT, Code::PaymentCancelled),
            E::Payment(P::Unavailable(_) | P::Refused(_)) => {
                tracing::warn!(error = %e, "payment provider failed");
                return ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    Code::ProviderUnavailable,
                    PROVIDER_UNAVAILABLE,
                );
            }
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<crate::social::support::SupportError> for ApiError {
    fn from(e: crate::social::support::SupportError) -> Self {
        use crate::social::support::SupportError as E;
        match e {
            E::Comment(e) => e.into(),
            E::Order(e) => e.into(),
            E::Store(e) => e.into(),
        }
    }
}

impl From<crate::social::comments::CommentError> for ApiError {
    fn from(e: crate::social::comments::CommentError) -> Self {
        use crate::social::comments::CommentError as E;
        use crate::store::comments::DeletedBy;
        match e {
            E::Store(e) => e.into(),
            E::Invalid(..) | E::TipCurrency(_) => ApiError::validation(e.to_string()),
            E::TipAmount(ref b) => ApiError::validation(e.to_string())
                .with("min", b.min)
                .with("max", b.max),
            E::NotFound => ApiError::not_found("comment"),
            E::NotYours => ApiError::forbidden(Code::NotYours, e.to_string()),
            E::Deleted(by) => {
                let (who, field) = match by {
                    Some(DeletedBy::Author) => ("its author", "author"),
                    Some(DeletedBy::Moderator) => ("a moderator", "moderator"),
                    None => ("someone", "unknown"),
                };
                let message = format!(
                    "{who} deleted this comment; its text is gone and it cannot be restored"
                );
                ApiError::conflict(Code::CommentDeleted, message).with("deleted_by", field)
            }
        }
    }
}

impl From<crate::stream::token::PlaybackTokenError> for ApiError {
    fn from(e: crate::stream::token::PlaybackTokenError) -> Self {
        use crate::stream::token::PlaybackTokenError as E;
        let message = e.to_string();
        match e {
            E::Expired => ApiError::unauthorized(Code::PlaybackExpired, message),
            E::Invalid | E::NoAccount | E::Ended => {
                ApiError::unauthorized(Code::InvalidToken, message)
            }
            E::Disabled => ApiError::forbidden(Code::AccountDisabled, message),
        }
    }
}

impl From<crate::ingest::IngestError> for ApiError {
    fn from(e: crate::ingest::IngestError) -> Self {
        use crate::ingest::IngestError as E;
        match e {
            E::NoFilm => ApiError::not_found("film"),
            E::Rejected(t) => t.into(),
            E::Busy => ApiError::conflict(Code::JobActive, e.to_string()),
            E::TooLarge { max } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                Code::UploadTooLarge,
                e.to_string(),
            )
            .with("max_bytes", max),
            E::NoSpace(low) => low.into(),
            E::Interrupted(_) => ApiError::internal(&e),
            E::Io(e) => ApiError::internal(&e),
            E::Store(e) => e.into(),
            E::Fault(e) => ApiError::internal(&e),
        }
    }
}

/// 507: the disk-space guard refused a write (`free_bytes`, `min_free_bytes`,
/// `needed_bytes` say why).
impl From<crate::disk::LowSpace> for ApiError {
    fn from(low: crate::disk::LowSpace) -> Self {
        ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            Code::InsufficientStorage,
            low.to_string(),
        )
        .with("free_bytes", low.free)
        .with("min_free_bytes", low.floor)
        .with("needed_bytes", low.needed)
    }
}

impl From<crate::catalogue::CatalogueError> for ApiError {
    fn from(e: crate::catalogue::CatalogueError) -> Self {
        use crate::catalogue::CatalogueError as E;
        match e {
            E::NotFound => ApiError::not_found("film"),
            E::NotReady => ApiError::conflict(Code::NotReady, e.to_string()),
            E::Store(e) => e.into(),
        }
    }
}

impl From<crate::stream::playlists::PlaybackError> for ApiError {
    fn from(e: crate::stream::playlists::PlaybackError) -> Self {
        use crate::stream::playlists::PlaybackError as E;
        match e {
            E::NoPackage => ApiError::not_found("film"),
            E::Secret(e) => e.into(),
            E::Load(e) => e.into(),
            E::Interrupted(_) => ApiError::internal(&e),
        }
    }
}

impl From<crate::ingest::FieldError> for ApiError {
    fn from(e: crate::ingest::FieldError) -> Self {
        ApiError::validation(e.to_string())
    }
}

impl From<transcoder::TranscodeError> for ApiError {
    fn from(e: transcoder::TranscodeError) -> Self {
        match input_code(&e) {
            Some(code) if e.is_input_error() => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string())
            }
            _ => ApiError::internal(&e),
        }
    }
}

/// The code of a source the transcoder refused for what it is (the admin's to fix);
/// `None` for the server's own faults.
fn input_code(e: &transcoder::TranscodeError) -> Option<Code> {
    use transcoder::TranscodeError as E;
    match e {
        E::NotMedia { .. } => Some(Code::NotMedia),
        E::NoVideo => Some(Code::NoVideo),
        E::ZeroDuration => Some(Code::ZeroDuration),
        E::Truncated { .. } => Some(Code::Truncated),
        E::InvalidOptions(_) => Some(Code::InvalidOptions),
        E::Cancelled
        | E::OutputExists(_)
        | E::Unsupported(_)
        | E::Internal(_)
        | E::Io { .. }
        | E::Ffmpeg { .. } => None,
    }
}

impl From<crate::secrets::SecretsError> for ApiError {
    fn from(e: crate::secrets::SecretsError) -> Self {
        ApiError::internal(&e)
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        ApiError::internal(&e)
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::internal(&e)
    }
}

/// Malformed JSON bodies get a 400 with the parser's explanation.
pub fn json_error(
    err: actix_web::error::JsonPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    let api = match &err {
        E::OverflowKnownLength { .. } | E::Overflow { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::BodyTooLarge,
            "the request body is too large",
        ),
        E::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::UnsupportedMediaType,
            "send the body as application/json",
        ),
        E::Deserialize(e) => ApiError::bad_request(
            Code::InvalidJson,
            format!("the JSON body is not valid: {e}"),
        ),
        other => ApiError::bad_request(
            Code::InvalidJson,
            format!("the JSON body could not be read: {other}"),
        ),
    };
    api.into()
}

pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::bad_request(
        Code::InvalidQuery,
        format!("the query string is not valid: {err}"),
    )
    .into()
}

pub fn form_error(
    err: actix_web::error::UrlencodedError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::bad_request(
        Code::InvalidRequest,
        format!("the form body is not valid: {err}"),
    )
    .into()
}

pub fn path_error(
    _err: actix_web::error::PathError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::not_found("resource").into()
}

pub type ApiResult<T> = Result<T, ApiError>;

// The playback and sign-in services' errors (issue 14): together at the end of the file.

impl From<crate::stream::access::AuthorizeError> for ApiError {
    fn from(e: crate::stream::access::AuthorizeError) -> Self {
        use crate::stream::access::AuthorizeError as E;
        match e {
            E::Token(e) => e.into(),
            E::NoFilm => ApiError::not_found("film"),
            E::Playback(e) => e.into(),
            E::Store(e) => e.into(),
        }
    }
}

impl From<crate::auth::signin::SignInError> for ApiError {
    fn from(e: crate::auth::signin::SignInError) -> Self {
        use crate::auth::signin::SignInError as E;
        match e {
            E::Identity(e) => e.into(),
            E::Session(e) => e.into(),
        }
    }
}

impl From<crate::notify::push::devices::DeviceError> for ApiError {
    fn from(e: crate::notify::push::devices::DeviceError) -> Self {
        use crate::notify::push::devices::DeviceError as E;
        let message = e.to_string();
        match e {
            E::Store(e) => e.into(),
            E::Platform => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                Code::InvalidPlatform,
                message,
            ),
            E::Token(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                Code::InvalidDeviceToken,
                message,
            ),
        }
    }
}

impl From<crate::analytics::RangeError> for ApiError {
    fn from(e: crate::analytics::RangeError) -> Self {
        let too_long = matches!(e, crate::analytics::RangeError::TooLong { .. });
        let api = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::InvalidRange,
            e.to_string(),
        );
        if too_long {
            api.with("max_days", crate::analytics::report::MAX_DAYS)
        } else {
            api
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refused budget (`ratelimit::Limited`) is answered 429 `rate_limited`, with the
    /// seconds to wait in the body and in `Retry-After`.
    #[test]
    fn a_refused_budget_is_429_with_retry_after() {
        let e = ApiError::from(crate::ratelimit::Limited { retry_after: 59 });
        assert_eq!((e.status.as_u16(), e.code.as_str()), (429, "rate_limited"));
        assert_eq!(e.extra.get("retry_after"), Some(&59.into()));
        assert_eq!(e.headers, vec![("Retry-After", "59".to_string())]);
    }

    /// The sign-in refusals answer the codes `IdentityError::code` names (docs/AUTH.md).
    #[test]
    fn identity_errors_answer_their_own_codes() {
        use crate::auth::identity::IdentityError as E;
        let cases = [
            E::UnknownProvider("x".into()),
            E::InvalidRequest("x".into()),
            E::InvalidRedirectUri,
            E::InvalidState,
            E::OtherBrowser,
            E::FlowExpired,
            E::Cancelled("x".into()),
            E::ProviderRejected("x".into()),
            E::ProviderUnavailable("x".into()),
            E::Misconfigured("x".into()),
            E::InvalidIdToken("x".into()),
            E::InvalidProviderToken("x".into()),
            E::InvalidCode,
            E::Unauthenticated,
            E::AccountExists("Google"),
            E::IdentityInUse("Google"),
            E::LastIdentity,
            E::Disabled,
        ];
        for e in cases {
            let code = e.code();
            assert_eq!(ApiError::from(e).code.as_str(), code);
        }
    }

    /// A refused source answers 422 with the transcoder's own code; its faults are 500.
    #[test]
    fn refused_sources_answer_the_transcoders_codes() {
        use transcoder::TranscodeError as E;
        let refused = [
            E::NotMedia { reason: "x".into() },
            E::NoVideo,
            E::ZeroDuration,
            E::Truncated {
                declared: 2.0,
                found: 1.0,
            },
            E::InvalidOptions("x".into()),
        ];
        for e in refused {
            let code = e.code();
            let api = ApiError::from(e);
            assert_eq!((api.status.as_u16(), api.code.as_str()), (422, code));
        }
        let fault = ApiError::from(E::Internal("x".into()));
        assert_eq!((fault.status.as_u16(), fault.code), (500, Code::Internal));
    }

    /// The body is `{"error": {code, message, …extra}}`.
    #[tokio::test]
    async fn the_body_carries_code_message_and_extra() -> Result<(), Box<dyn std::error::Error>> {
        let e = ApiError::forbidden(Code::WatchMore, "keep watching").with("coverage", 0.5);
        let body = actix_web::body::to_bytes(e.error_response().into_body())
            .await
            .map_err(|e| e.to_string())?;
        let json: Value = serde_json::from_slice(&body)?;
        assert_eq!(
            json,
            serde_json::json!({"error": {"code": "watch_more", "message": "keep watching", "coverage": 0.5}})
        );
        Ok(())
    }

    /// The extractors' refusals keep their codes and statuses.
    #[test]
    fn access_errors_keep_their_codes() {
        use crate::auth::access::AccessError as E;
        let cases = [
            (E::Missing, 401, "unauthenticated"),
            (E::Expired, 401, "token_expired"),
            (E::Invalid, 401, "invalid_token"),
            (E::NoAccount, 401, "invalid_token"),
            (E::Ended, 401, "invalid_token"),
            (E::Disabled, 403, "account_disabled"),
            (E::NotAdmin, 403, "admin_only"),
        ];
        for (e, status, code) in cases {
            let api = ApiError::from(e);
            assert_eq!(
                (api.status.as_u16(), api.code.as_str()),
                (status, code),
                "{api}"
            );
        }
    }
}
