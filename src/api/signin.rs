//! Sign-in with providers (docs/AUTH.md), the HTTP side: the browser flow (start →
//! provider → callback → session cookie or app redirect), the app's code exchange, the
//! browser session's access tokens, the native SDK endpoint, and the provider list. The
//! decisions are `auth::signin`'s; here the request is read, one of its functions called,
//! and the answer made HTTP (cookies, redirects, the CSRF header).

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::auth::{counting_failures, limit};
use super::error::{ApiError, ApiResult};
use super::extract;
use crate::api::views::account::{SessionToken, TokenResponse};
use crate::auth::flows;
use crate::auth::providers::NativeToken;
use crate::auth::session;
use crate::auth::signin::{CallbackParams, Finished, Native, NewSession, StartRequest};
use crate::ratelimit::Budget;
use crate::state::AppState;

pub use crate::server::session::SESSION_COOKIE;
/// Binds a flow to the browser that started it (docs/AUTH.md, "The pre-auth cookie"): the
/// callback must carry it, so a callback URL handed to someone else finishes nothing.
pub const PREAUTH_COOKIE: &str = "cinegate_preauth";

fn no_store(mut builder: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    builder.insert_header((header::CACHE_CONTROL, "no-store"));
    builder
}

/// `GET /api/v1/auth/providers`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProviderList {
    pub providers: Vec<ProviderEntry>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProviderEntry {
    pub id: &'static str,
    pub name: &'static str,
    pub start_url: String,
    /// Whether the native SDK endpoint takes this provider's tokens.
    pub native: bool,
}

/// `POST /auth/{provider}/link`: where the page sends the browser.
#[derive(Serialize)]
pub struct LinkStarted {
    pub authorize_url: String,
}

/// `POST /api/v1/auth/{provider}/native` with a Bearer token: the provider now linked.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"linked": "apple"}))]
pub struct Linked {
    pub linked: &'static str,
}

/// The native endpoint's two answers: a token pair (sign-in) or `Linked` (with a Bearer
/// token). Only a schema: the handler answers one of the two types.
pub struct NativeAnswer;

impl utoipa::PartialSchema for NativeAnswer {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        use utoipa::openapi::{OneOfBuilder, Ref};
        use utoipa::ToSchema;
        OneOfBuilder::new()
            .item(Ref::from_schema_name(TokenResponse::name()))
            .item(Ref::from_schema_name(Linked::name()))
            .into()
    }
}

impl utoipa::ToSchema for NativeAnswer {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push((TokenResponse::name().into_owned(), TokenResponse::schema()));
        schemas.push((Linked::name().into_owned(), Linked::schema()));
    }
}

#[utoipa::path(
    get,
    operation_id = "listSignInProviders",
    path = "/api/v1/auth/providers",
    tag = "auth",
    summary = "The configured sign-in providers",
    responses(
        (status = 200, description = "The providers", body = ProviderList),
    ),
)]
pub async fn providers(state: web::Data<AppState>) -> HttpResponse {
    let providers = state
        .providers
        .configured()
        .into_iter()
        .map(|p| ProviderEntry {
            id: p.as_str(),
            name: p.display_name(),
            start_url: format!("/auth/{}/start", p.as_str()),
            native: true,
        })
        .collect();
    HttpResponse::Ok().json(ProviderList { providers })
}

pub async fn start(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<StartRequest>,
) -> ApiResult<HttpResponse> {
    limit(&state, &req, Budget::SignIn)?;
    let provider = state.providers.parse(&path)?;
    let browser = preauth_secret(&req);
    let url = state
        .sign_in()
        .start(provider, &query, &browser, state.clock.now())?;
    Ok(no_store(HttpResponse::Found())
        .cookie(preauth_cookie(&state.config.public_url, browser))
        .insert_header((header::LOCATION, url))
        .finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkQuery {
    return_to: Option<String>,
}

/// `POST /auth/{provider}/link`: the signed-in browser (session cookie and the CSRF
/// header) starts linking `provider` to its account. Answers `{"authorize_url"}` for the
/// page to navigate to, rather than a redirect: `fetch` cannot follow one to the provider.
pub async fn link(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<LinkQuery>,
) -> ApiResult<HttpResponse> {
    limit(&state, &req, Budget::SignIn)?;
    require_csrf_header(&req)?;
    let provider = state.providers.parse(&path)?;
    let browser = preauth_secret(&req);
    let session = req.cookie(SESSION_COOKIE);
    let authorize_url = state.sign_in().link(
        provider,
        session.as_ref().map(|c| c.value()),
        query.into_inner().return_to,
        &browser,
        state.clock.now(),
    )?;
    Ok(no_store(HttpResponse::Ok())
        .cookie(preauth_cookie(&state.config.public_url, browser))
        .json(LinkStarted { authorize_url }))
}

/// The browser's pre-auth secret: the one it already holds, so flows started in two tabs
/// both finish, or a new one.
fn preauth_secret(req: &HttpRequest) -> String {
    req.cookie(PREAUTH_COOKIE)
        .map(|c| c.value().to_string())
        .filter(|v| {
            v.len() == 43
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .unwrap_or_else(session::random_token)
}

/// Whether browsers keep a `Secure` cookie from `public_url`: https, or plain http on a
/// loopback host (browsers treat http://localhost and 127.0.0.1 as secure contexts).
fn secure_context(public_url: &str) -> bool {
    use oauth2::url::{Host, Url};
    let Ok(url) = Url::parse(public_url) else {
        return false;
    };
    match (url.scheme(), url.host()) {
        ("https", _) => true,
        ("http", Some(Host::Domain(d))) => {
            d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
        }
        ("http", Some(Host::Ipv4(ip))) => ip.is_loopback(),
        ("http", Some(Host::Ipv6(ip))) => ip.is_loopback(),
        _ => false,
    }
}

/// The pre-auth cookie. Apple comes back with a cross-site form POST, which carries only
/// `SameSite=None` cookies, and browsers take those only with `Secure`; on plain http
/// elsewhere (where Apple cannot be used anyway) it falls back to `SameSite=Lax`, which
/// the other providers' top-level GET redirects carry.
fn preauth_cookie(public_url: &str, secret: String) -> Cookie<'static> {
    let secure = secure_context(public_url);
    Cookie::build(PREAUTH_COOKIE, secret)
        .path("/auth")
        .http_only(true)
        .same_site(if secure {
            SameSite::None
        } else {
            SameSite::Lax
        })
        .secure(secure)
        .max_age(CookieDuration::seconds(flows::FLOW_TTL_SECS))
        .finish()
}

pub async fn callback_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    params: web::Query<CallbackParams>,
) -> ApiResult<HttpResponse> {
    callback(state, req, &path, params.into_inner()).await
}

pub async fn callback_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    params: web::Form<CallbackParams>,
) -> ApiResult<HttpResponse> {
    callback(state, req, &path, params.into_inner()).await
}

async fn callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    provider: &str,
    params: CallbackParams,
) -> ApiResult<HttpResponse> {
    limit(&state, &req, Budget::SignIn)?;
    let provider = state.providers.parse(provider)?;
    let browser = req.cookie(PREAUTH_COOKIE);
    let finished = state
        .sign_in()
        .callback(
            provider,
            params,
            browser.as_ref().map(|c| c.value()),
            state.clock.now(),
        )
        .await?;
    Ok(match finished {
        Finished::Web { session, return_to } => no_store(HttpResponse::SeeOther())
            .cookie(session_cookie(&state, session))
            .insert_header((header::LOCATION, return_to))
            .finish(),
        Finished::App { location, failure } => {
            if let Some(e) = failure {
                // Logged through the one error map, as a web flow's refusal is; the app
                // reads the same code in the redirect.
                let _logged = ApiError::from(e);
            }
            no_store(HttpResponse::SeeOther())
                .insert_header((header::LOCATION, location))
                .finish()
        }
    })
}

/// The browser session's cookie: HttpOnly, `SameSite=Lax`, `Secure` on https.
fn session_cookie(state: &AppState, session: NewSession) -> Cookie<'static> {
    crate::server::session::session_cookie(
        session.id,
        session.ttl_secs,
        state.config.public_url.starts_with("https://"),
    )
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "c0dE5xY7wQ2pL9kM3nB8vR1tS6uH4jG0fD2aZ7eX9cW", "code_verifier": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"}))]
pub struct ExchangeRequest {
    code: String,
    #[serde(default)]
    code_verifier: Option<String>,
}

#[utoipa::path(
    post,
    operation_id = "exchangeSignInCode",
    path = "/api/v1/auth/exchange",
    tag = "auth",
    summary = "Exchange an app's sign-in code (PKCE S256) for a token pair",
    request_body = ExchangeRequest,
    responses(
        (status = 200, description = "A token pair", body = crate::api::views::account::TokenResponse),
        (status = 400, description = "`invalid_code`, `invalid_input`, `invalid_json`", body = crate::api::schemas::ErrorBody),
        (status = 403, description = "`account_disabled`", body = crate::api::schemas::ErrorBody),
        (status = 413, description = "`body_too_large`", body = crate::api::schemas::ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send `application/json`", body = crate::api::schemas::ErrorBody),
        (status = 429, description = "`rate_limited`: wait `retry_after` seconds", body = crate::api::schemas::ErrorBody),
    ),
)]
pub async fn exchange(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<ExchangeRequest>,
) -> ApiResult<HttpResponse> {
    let redeemed = state
        .sign_in()
        .exchange(&body.code, body.code_verifier.as_deref(), state.clock.now())
        .map(super::auth::tokens)
        .map_err(ApiError::from);
    // A code is single-use: a valid one limits itself; failures count per address.
    counting_failures(&state, &req, redeemed)
}

fn require_csrf_header(req: &HttpRequest) -> ApiResult<()> {
    if !crate::server::session::has_csrf_header(req) {
        return Err(ApiError::forbidden(
            super::error::Code::Csrf,
            "send the header `X-Requested-With: cinegate` with session requests",
        ));
    }
    Ok(())
}

/// An access token for the browser's session (the console and viewer page call this, then
/// use the API with `Authorization: Bearer`).
#[utoipa::path(
    post,
    operation_id = "getSessionAccessToken",
    path = "/api/v1/auth/session",
    tag = "auth",
    summary = "An access token for the browser's session cookie",
    responses(
        (status = 200, description = "An access token (no refresh token: the session is what lasts)", body = SessionToken),
        (status = 401, description = "`unauthenticated`: no session cookie, or an unknown, expired or ended session", body = crate::api::schemas::ErrorBody),
        (status = 403, description = "`csrf`: the `X-Requested-With: cinegate` header is missing; `account_disabled`", body = crate::api::schemas::ErrorBody),
    ),
    security(("session" = [], "csrf" = [])),
)]
pub async fn session_token(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    require_csrf_header(&req)?;
    let session = req.cookie(SESSION_COOKIE);
    let token = state
        .sign_in()
        .session_token(session.as_ref().map(|c| c.value()), state.clock.now())?;
    Ok(no_store(HttpResponse::Ok()).json(SessionToken::from(token)))
}

/// Ends the browser's session (a request without one ends nothing and answers the same).
#[utoipa::path(
    delete,
    operation_id = "endSession",
    path = "/api/v1/auth/session",
    tag = "auth",
    summary = "Sign the browser out: end its session and clear the cookie",
    responses(
        (status = 204, description = "The session, if any, is ended and its cookie cleared"),
    ),
    security(("session" = []), ()),
)]
pub async fn session_end(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let session = req.cookie(SESSION_COOKIE);
    state
        .sign_in()
        .end_session(session.as_ref().map(|c| c.value()))?;
    Ok(no_store(HttpResponse::NoContent())
        .cookie(crate::server::session::ended_session_cookie())
        .finish())
}

/// What a provider's mobile SDK gave the app: Apple and Google an `id_token` (with the
/// `nonce` the app asked it for), Kakao and Naver an `access_token`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id_token": "eyJraWQiOiJBSURPUEsxIiwiYWxnIjoiUlMyNTYifQ.eyJzdWIiOiIwMDEyMzQifQ.c2ln", "nonce": "n-0S6_WzA2Mj", "name": "Min-jun Kim"}))]
pub struct NativeRequest {
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
    /// Apple gives the name to the app only at the first sign-in.
    #[serde(default)]
    name: Option<String>,
}

impl From<NativeRequest> for NativeToken {
    fn from(r: NativeRequest) -> Self {
        NativeToken {
            id_token: r.id_token,
            access_token: r.access_token,
            nonce: r.nonce,
            name: r.name,
        }
    }
}

/// Without `Authorization` a token pair for the provider's account (created on first
/// sign-in); with a Bearer token the provider is linked to that account instead.
#[utoipa::path(
    post,
    operation_id = "signInNative",
    path = "/api/v1/auth/{provider}/native",
    tag = "auth",
    summary = "Sign in (or link) with a token from a provider's mobile SDK",
    params(
        ("provider" = String, Path, description = "The provider id (`apple`, `google`, `kakao`, `naver`)"),
    ),
    request_body = NativeRequest,
    responses(
        (status = 200, description = "A token pair (sign-in), or `{\"linked\"}` (with a Bearer token)", body = NativeAnswer),
        (status = 400, description = "`invalid_json`, `invalid_request`", body = crate::api::schemas::ErrorBody),
        (status = 401, description = "`invalid_id_token`, `invalid_provider_token`, `provider_rejected`; with a Bearer token `unauthenticated`, `invalid_token`, `token_expired`", body = crate::api::schemas::ErrorBody),
        (status = 403, description = "`account_disabled`", body = crate::api::schemas::ErrorBody),
        (status = 404, description = "`unknown_provider`: not configured here", body = crate::api::schemas::ErrorBody),
        (status = 409, description = "`account_exists`, `identity_in_use`", body = crate::api::schemas::ErrorBody),
        (status = 413, description = "`body_too_large`", body = crate::api::schemas::ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send `application/json`", body = crate::api::schemas::ErrorBody),
        (status = 429, description = "`rate_limited`: wait `retry_after` seconds", body = crate::api::schemas::ErrorBody),
        (status = 502, description = "`provider_unavailable`", body = crate::api::schemas::ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn native(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<NativeRequest>,
) -> ApiResult<HttpResponse> {
    let body = NativeToken::from(body.into_inner());
    limit(&state, &req, Budget::Native)?;
    let provider = state.providers.parse(&path)?;
    // With a Bearer token this links; a bad Bearer token is an error, not a sign-in.
    let linking = if req.headers().contains_key(header::AUTHORIZATION) {
        Some(extract::signed_in(&req)?)
    } else {
        None
    };
    match state
        .sign_in()
        .native(provider, &body, linking, state.clock.now())
        .await?
    {
        Native::Linked(p) => Ok(HttpResponse::Ok().json(Linked { linked: p.as_str() })),
        Native::SignedIn(pair) => Ok(super::auth::tokens(pair)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preauth_cookie_is_secure_where_browsers_keep_it() {
        for url in [
            "https://films.example.com",
            "http://127.0.0.1:8080",
            "http://127.0.0.2",
            "http://localhost:8080/",
            "http://app.localhost",
            "http://[::1]:8080",
        ] {
            let c = preauth_cookie(url, "s".into());
            assert_eq!(c.secure(), Some(true), "{url}");
            assert_eq!(c.same_site(), Some(SameSite::None), "{url}");
        }
        for url in ["http://films.example.com", "http://10.0.0.1", "nonsense"] {
            let c = preauth_cookie(url, "s".into());
            assert_eq!(c.secure(), Some(false), "{url}");
            assert_eq!(c.same_site(), Some(SameSite::Lax), "{url}");
        }
        let c = preauth_cookie("https://x.example", "s".into());
        assert_eq!((c.path(), c.http_only()), (Some("/auth"), Some(true)));
    }
}
