//! Sign-in with providers (docs/AUTH.md): the browser flow (start → provider → callback →
//! session cookie or app redirect), the app's code exchange, the browser session's access
//! tokens, the native SDK endpoint, and the provider list.

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::auth::{counting_failures, limit};
use super::error::{ApiError, ApiResult};
use super::extract;
use crate::auth::identity::{IdentityError, ProviderId, ProviderIdentity};
use crate::auth::providers::NativeToken;
use crate::auth::{accounts, flows, jwt, session};
use crate::ratelimit::Budget;
use crate::state::AppState;
use crate::store::now;
use crate::store::signin::{BrowserSession, Flow, FlowFinish};
use crate::store::users::User;

pub const SESSION_COOKIE: &str = "cinegate_session";
/// Binds a flow to the browser that started it (docs/AUTH.md, "The pre-auth cookie"): the
/// callback must carry it, so a callback URL handed to someone else finishes nothing.
pub const PREAUTH_COOKIE: &str = "cinegate_preauth";
/// Browser calls that use the session cookie must carry this header: a cross-site form
/// cannot set it, and a cross-site script needs a CORS preflight that is refused.
const CSRF_HEADER: &str = "x-requested-with";
const CSRF_VALUE: &str = "cinegate";

fn no_store(mut builder: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    builder.insert_header((header::CACHE_CONTROL, "no-store"));
    builder
}

pub async fn providers(state: web::Data<AppState>) -> HttpResponse {
    let list: Vec<_> = state
        .providers
        .configured()
        .into_iter()
        .map(|p| {
            serde_json::json!({
                "id": p.as_str(),
                "name": p.display_name(),
                "start_url": format!("/auth/{}/start", p.as_str()),
                "native": true,
            })
        })
        .collect();
    HttpResponse::Ok().json(serde_json::json!({ "providers": list }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartQuery {
    mode: Option<String>,
    return_to: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    intent: Option<String>,
}

/// A local path to return to: absolute, not scheme-relative, no backslashes (browsers
/// treat `/\evil.com` like `//evil.com`), no control characters.
fn local_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && path.len() <= 512
        && !path.chars().any(|c| c.is_control())
}

fn web_finish(return_to: Option<String>) -> Result<FlowFinish, IdentityError> {
    let return_to = return_to.unwrap_or_else(|| "/".into());
    if !local_path(&return_to) {
        return Err(IdentityError::InvalidRequest(
            "return_to must be a path on this server, such as /console".into(),
        ));
    }
    Ok(FlowFinish::Web { return_to })
}

fn finish_of(q: &StartQuery, state: &AppState) -> Result<FlowFinish, IdentityError> {
    let bad = |m: &str| IdentityError::InvalidRequest(m.to_string());
    match q.mode.as_deref().unwrap_or("web") {
        "web" => {
            if q.redirect_uri.is_some() || q.code_challenge.is_some() {
                return Err(bad("redirect_uri and code_challenge belong to mode=app"));
            }
            web_finish(q.return_to.clone())
        }
        "app" => {
            let uri = q
                .redirect_uri
                .clone()
                .ok_or_else(|| bad("mode=app needs redirect_uri"))?;
            if !state.config.auth.app_redirect_uris.contains(&uri) {
                return Err(IdentityError::InvalidRedirectUri);
            }
            if q.intent.is_some() {
                return Err(bad("apps link a provider through the native endpoint"));
            }
            let code_challenge = match (&q.code_challenge, q.code_challenge_method.as_deref()) {
                (None, None) => None,
                (Some(c), Some("S256"))
                    if c.len() == 43
                        && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
                {
                    Some(c.clone())
                }
                _ => {
                    return Err(bad(
                        "code_challenge must be a base64url SHA-256 (43 characters) with code_challenge_method=S256",
                    ))
                }
            };
            let app_state = q.state.clone();
            if app_state.as_ref().is_some_and(|s| s.len() > 512) {
                return Err(bad("state is longer than 512 characters"));
            }
            Ok(FlowFinish::App {
                redirect_uri: uri,
                app_state,
                code_challenge,
            })
        }
        _ => Err(bad("mode must be web or app")),
    }
}

pub async fn start(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<StartQuery>,
) -> ApiResult<HttpResponse> {
    limit(&state, &req, Budget::SignIn)?;
    let provider = state.providers.parse(&path)?;
    let finish = finish_of(&query, &state)?;
    match query.intent.as_deref() {
        None | Some("sign_in") => {}
        // A GET that links is a link any page can make the browser follow (link CSRF).
        Some("link") => {
            return Err(IdentityError::InvalidRequest(format!(
                "link a provider from a signed-in page with POST /auth/{}/link",
                provider.as_str()
            ))
            .into())
        }
        Some(_) => {
            return Err(
                IdentityError::InvalidRequest("intent must be sign_in or link".into()).into(),
            )
        }
    }
    let (url, cookie) = begin_flow(&state, &req, provider, finish, None)?;
    Ok(no_store(HttpResponse::Found())
        .cookie(cookie)
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
    let user = session_user(&state, &req)?;
    let finish = web_finish(query.into_inner().return_to)?;
    let (url, cookie) = begin_flow(&state, &req, provider, finish, Some(user.id))?;
    Ok(no_store(HttpResponse::Ok())
        .cookie(cookie)
        .json(serde_json::json!({ "authorize_url": url })))
}

/// Stores a new flow bound to this browser's pre-auth cookie; the provider URL to send
/// the browser to, and the cookie to set.
fn begin_flow(
    state: &AppState,
    req: &HttpRequest,
    provider: ProviderId,
    finish: FlowFinish,
    link_user: Option<uuid::Uuid>,
) -> Result<(String, Cookie<'static>), IdentityError> {
    let browser = preauth_secret(req);
    let url = flows::begin(
        &state.store,
        &state.providers,
        provider,
        finish,
        link_user,
        &browser,
        now(),
    )?;
    Ok((url, preauth_cookie(&state.config.public_url, browser)))
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

#[derive(Deserialize)]
pub struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    /// Apple, first sign-in only: `{"name":{"firstName":…,"lastName":…},"email":…}`.
    user: Option<String>,
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
    let flow = flows::take(
        &state.store,
        provider,
        params.state.as_deref(),
        browser.as_ref().map(|c| c.value()),
        now(),
    )?;
    match complete(&state, provider, &flow, params).await {
        Ok(finished) => Ok(finished),
        Err(e) => match &flow.finish {
            FlowFinish::App {
                redirect_uri,
                app_state,
                ..
            } => {
                let api: ApiError = e.into();
                let mut query = vec![("error", api.code.to_string())];
                if let Some(s) = app_state {
                    query.push(("state", s.clone()));
                }
                Ok(redirect_to_app(redirect_uri, &query))
            }
            FlowFinish::Web { .. } => Err(e.into()),
        },
    }
}

fn redirect_to_app(uri: &str, query: &[(&str, String)]) -> HttpResponse {
    let mut url = oauth2::url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in query {
        url.append_pair(k, v);
    }
    let location = format!("{uri}?{}", url.finish());
    no_store(HttpResponse::SeeOther())
        .insert_header((header::LOCATION, location))
        .finish()
}

/// The provider sent the browser back with `error` (RFC 6749 §4.1.2.1). The viewer
/// declining is theirs to know; a provider that is down, or that refuses this server's
/// client or request, is the operator's (the description goes to the log only).
fn error_return(provider: ProviderId, error: &str, description: Option<&str>) -> IdentityError {
    let code: String = error
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .take(64)
        .collect();
    let detail = || {
        let d: String = description.unwrap_or("").chars().take(200).collect();
        format!("{} returned {code} ({d})", provider.display_name())
    };
    match code.as_str() {
        "server_error" | "temporarily_unavailable" => IdentityError::ProviderUnavailable(detail()),
        "invalid_request"
        | "invalid_client"
        | "unauthorized_client"
        | "unsupported_response_type"
        | "invalid_scope" => IdentityError::Misconfigured(detail()),
        _ => IdentityError::Cancelled(code),
    }
}

async fn complete(
    state: &AppState,
    provider: ProviderId,
    flow: &Flow,
    params: CallbackParams,
) -> Result<HttpResponse, IdentityError> {
    if let Some(error) = &params.error {
        return Err(error_return(
            provider,
            error,
            params.error_description.as_deref(),
        ));
    }
    let code = params
        .code
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= 4096)
        .ok_or_else(|| IdentityError::InvalidRequest("the callback has no code".into()))?;
    let identity = state
        .providers
        .complete(
            provider,
            code,
            &flow.pkce_verifier,
            flow.nonce.as_deref(),
            params.user.as_deref(),
            now(),
        )
        .await?;
    let user = match flow.link_user {
        Some(id) => {
            let user = state
                .store
                .user(&id)?
                .ok_or(IdentityError::Unauthenticated)?;
            accounts::link(&state.store, &user, &identity, now())?;
            user
        }
        None => sign_in(state, &identity)?,
    };
    match &flow.finish {
        FlowFinish::Web { return_to } => {
            let cookie = new_session(state, &user)?;
            Ok(no_store(HttpResponse::SeeOther())
                .cookie(cookie)
                .insert_header((header::LOCATION, return_to.as_str()))
                .finish())
        }
        FlowFinish::App {
            redirect_uri,
            app_state,
            code_challenge,
        } => {
            let code =
                flows::issue_exchange_code(&state.store, &user.id, code_challenge.clone(), now())?;
            let mut query = vec![("code", code)];
            if let Some(s) = app_state {
                query.push(("state", s.clone()));
            }
            Ok(redirect_to_app(redirect_uri, &query))
        }
    }
}

fn sign_in(state: &AppState, identity: &ProviderIdentity) -> Result<User, IdentityError> {
    accounts::sign_in(&state.store, &state.config.auth, identity, now())
}

fn new_session(state: &AppState, user: &User) -> Result<Cookie<'static>, IdentityError> {
    if user.disabled {
        return Err(IdentityError::Disabled);
    }
    let id = session::random_token();
    let ttl = state.config.auth.session_ttl.as_secs() as i64;
    state.store.add_session(
        &id,
        &BrowserSession {
            user_id: user.id,
            epoch: user.session_epoch,
            created_at: now(),
            expires_at: now() + ttl,
        },
    )?;
    Ok(Cookie::build(SESSION_COOKIE, id)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.public_url.starts_with("https://"))
        .max_age(CookieDuration::seconds(ttl))
        .finish())
}

/// The user of the request's session cookie.
fn session_user(state: &AppState, req: &HttpRequest) -> Result<User, IdentityError> {
    let cookie = req
        .cookie(SESSION_COOKIE)
        .ok_or(IdentityError::Unauthenticated)?;
    session::session_user(&state.store, cookie.value(), now())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeRequest {
    code: String,
    #[serde(default)]
    code_verifier: Option<String>,
}

pub async fn exchange(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<ExchangeRequest>,
) -> ApiResult<HttpResponse> {
    // A code is single-use: a valid one limits itself; failures count per address.
    counting_failures(&state, &req, redeem_code(&state, &body))
}

fn redeem_code(state: &AppState, body: &ExchangeRequest) -> ApiResult<HttpResponse> {
    let user = flows::redeem_exchange_code(
        &state.store,
        &body.code,
        body.code_verifier.as_deref(),
        now(),
    )?;
    token_pair(state, &user)
}

/// A new sign-in for `user`: access and refresh tokens, never cached.
fn token_pair(state: &AppState, user: &User) -> ApiResult<HttpResponse> {
    let pair = session::start(
        &state.store,
        &state.keys.access,
        &state.config.auth,
        user,
        now(),
    )?;
    Ok(super::auth::tokens(pair))
}

fn require_csrf_header(req: &HttpRequest) -> ApiResult<()> {
    let csrf_ok = req
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == CSRF_VALUE);
    if !csrf_ok {
        return Err(ApiError::forbidden(
            super::error::Code::Csrf,
            "send the header `X-Requested-With: cinegate` with session requests",
        ));
    }
    Ok(())
}

/// An access token for the browser's session (the console and viewer page call this, then
/// use the API with `Authorization: Bearer`).
pub async fn session_token(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    require_csrf_header(&req)?;
    let user = session_user(&state, &req)?;
    let ttl = state.config.auth.access_ttl.as_secs() as i64;
    Ok(no_store(HttpResponse::Ok()).json(serde_json::json!({
        "access_token": jwt::issue(&state.keys.access, &user, now(), ttl),
        "token_type": "Bearer",
        "expires_in": ttl,
    })))
}

pub async fn session_end(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    if let Some(cookie) = req.cookie(SESSION_COOKIE) {
        state.store.remove_session(cookie.value())?;
    }
    let mut gone = Cookie::build(SESSION_COOKIE, "")
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .finish();
    gone.make_removal();
    Ok(no_store(HttpResponse::NoContent()).cookie(gone).finish())
}

pub async fn native(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<NativeToken>,
) -> ApiResult<HttpResponse> {
    limit(&state, &req, Budget::Native)?;
    let provider = state.providers.parse(&path)?;
    // With a Bearer token this links; a bad Bearer token is an error, not a sign-in.
    let linking = if req.headers().contains_key(header::AUTHORIZATION) {
        Some(extract::signed_in(&req)?)
    } else {
        None
    };
    let identity = state.providers.native(provider, &body).await?;
    match linking {
        Some(user) => {
            accounts::link(&state.store, &user, &identity, now())?;
            Ok(HttpResponse::Ok().json(serde_json::json!({ "linked": provider.as_str() })))
        }
        None => {
            let user = sign_in(&state, &identity)?;
            token_pair(&state, &user)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_must_stay_on_this_server() {
        assert!(local_path("/"));
        assert!(local_path("/console?tab=films"));
        for bad in [
            "//evil.com",
            "/\\evil.com",
            "https://evil.com",
            "evil",
            "/a\nb",
            "",
        ] {
            assert!(!local_path(bad), "{bad:?}");
        }
    }

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
