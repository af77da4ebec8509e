//! Who is at the console: the `ConsoleAdmin` extractor. Every console handler takes it, so
//! nothing reaches a handler without (1) the CSRF header on a state-changing request, (2)
//! a live browser session, and (3) an admin account — deny by default. The session is the
//! HttpOnly cookie (`server::session`); no token is ever handed to the page's scripts.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest};

use super::error::PageError;
use crate::api::error::Code;
use crate::auth::identity::IdentityError;
use crate::server::session::{has_csrf_header, session_value};
use crate::state::AppState;
use crate::store::users::User;

/// A signed-in administrator, read from the store on every request (a demotion, a ban or
/// "sign out everywhere" takes effect at once).
pub struct ConsoleAdmin {
    pub user: User,
}

impl FromRequest for ConsoleAdmin {
    type Error = PageError;
    type Future = Ready<Result<Self, PageError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(admin(req))
    }
}

fn admin(req: &HttpRequest) -> Result<ConsoleAdmin, PageError> {
    if !req.method().is_safe() && !has_csrf_header(req) {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            Code::Csrf,
            "this request did not come from a console page (the X-Requested-With header is missing); reload the page and try again",
        ));
    }
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| PageError::from(crate::api::error::ApiError::internal(&"no app state")))?;
    let cookie = session_value(req);
    match state
        .sign_in()
        .session_user(cookie.as_deref(), state.clock.now())
    {
        Ok(user) if user.is_admin() => Ok(ConsoleAdmin { user }),
        Ok(user) => Err(PageError::new(
            StatusCode::FORBIDDEN,
            Code::AdminOnly,
            format!(
                "the console is for administrators; {} is a viewer account",
                user.email.as_deref().unwrap_or("this")
            ),
        )),
        Err(IdentityError::Unauthenticated) => Err(PageError::SignIn {
            page: "/admin/sign-in",
            next: if req.method().is_safe() {
                req.uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "/admin".into())
            } else {
                "/admin".into()
            },
        }),
        Err(e) => Err(e.into()),
    }
}

/// The viewer app's visitor: signed in or not (pages that anyone may read take this; it
/// never refuses). A session that has ended reads as signed out.
pub struct Visitor {
    pub user: Option<User>,
}

impl FromRequest for Visitor {
    type Error = PageError;
    type Future = Ready<Result<Self, PageError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let user = req.app_data::<web::Data<AppState>>().and_then(|state| {
            state
                .sign_in()
                .session_user(session_value(req).as_deref(), state.clock.now())
                .ok()
        });
        ready(Ok(Visitor { user }))
    }
}

/// A signed-in viewer (any role) for the viewer app's actions: the CSRF header on every
/// non-GET request and a live session, else the sign-in page with the way back.
pub struct SignedIn {
    pub user: User,
}

impl FromRequest for SignedIn {
    type Error = PageError;
    type Future = Ready<Result<Self, PageError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(signed_in(req))
    }
}

fn signed_in(req: &HttpRequest) -> Result<SignedIn, PageError> {
    if !req.method().is_safe() && !has_csrf_header(req) {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            Code::Csrf,
            "this request did not come from a cinegate page; reload the page and try again",
        ));
    }
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| PageError::from(crate::api::error::ApiError::internal(&"no app state")))?;
    match state
        .sign_in()
        .session_user(session_value(req).as_deref(), state.clock.now())
    {
        Ok(user) => Ok(SignedIn { user }),
        Err(IdentityError::Unauthenticated) => Err(PageError::SignIn {
            page: "/sign-in",
            // An action's way back is the page it was taken on.
            next: back_to(req),
        }),
        Err(e) => Err(e.into()),
    }
}

/// The local page to come back to: the request's own path for a GET, else the page the
/// action was taken on (htmx's `HX-Current-URL`, reduced to its path), else `/`.
fn back_to(req: &HttpRequest) -> String {
    if req.method().is_safe() {
        return req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
    }
    req.headers()
        .get("HX-Current-URL")
        .and_then(|v| v.to_str().ok())
        .and_then(|u| u.split_once("://").map(|(_, rest)| rest))
        .and_then(|rest| rest.find('/').map(|i| rest[i..].to_string()))
        .unwrap_or_else(|| "/".into())
}

/// Redeems a one-time login link for the session cookie; htmx then loads `next`. A failed
/// token counts against the client address like the JSON `auth/link`. Shared by the
/// console's and the viewer app's sign-in pages.
pub fn redeem_link(
    state: &AppState,
    req: &HttpRequest,
    token: &str,
    next: String,
) -> Result<actix_web::HttpResponse, PageError> {
    if !has_csrf_header(req) {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            Code::Csrf,
            "this sign-in did not come from the sign-in page; open the link again",
        ));
    }
    let now = state.clock.now();
    match state.sign_in().login_link_session(token.trim(), now) {
        Ok((session, _user)) => Ok(actix_web::HttpResponse::NoContent()
            .cookie(crate::server::session::session_cookie(
                session.id,
                session.ttl_secs,
                state.config.public_url.starts_with("https://"),
            ))
            .insert_header(("HX-Redirect", next))
            .finish()),
        Err(e) => {
            state.limits.client(
                crate::ratelimit::Budget::TokenFailures,
                state.trusted_proxies.key_of(req),
                now,
            )?;
            let mut e = crate::api::error::ApiError::from(e);
            if e.code == Code::InvalidToken {
                e.message = "this sign-in link is not valid: it was used already, has expired, or was mistyped; ask for a new one (`cinegate user login-link`)".into();
            }
            Err(PageError::Api(e))
        }
    }
}

/// Ends this browser's session (in the store, not only the cookie); htmx then loads `then`.
pub fn sign_out(
    state: &AppState,
    req: &HttpRequest,
    then: &str,
) -> Result<actix_web::HttpResponse, PageError> {
    if !has_csrf_header(req) {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            Code::Csrf,
            "sign out from a cinegate page",
        ));
    }
    state.sign_in().end_session(session_value(req).as_deref())?;
    Ok(actix_web::HttpResponse::NoContent()
        .cookie(crate::server::session::ended_session_cookie())
        .insert_header(("HX-Redirect", then.to_string()))
        .finish())
}

/// A configured sign-in provider's button.
pub struct ProviderButton {
    pub id: &'static str,
    pub name: &'static str,
}

/// `GET …/sign-in`'s query: where to go afterwards, and a link's token (redeemed on load).
#[derive(serde::Deserialize)]
pub struct SignInQuery {
    pub next: Option<String>,
    pub token: Option<String>,
}

/// `POST …/sign-in/link`'s form.
#[derive(serde::Deserialize)]
pub struct LinkForm {
    pub token: String,
    pub next: Option<String>,
}

/// What both sign-in pages show besides their frame: the configured providers' buttons
/// (each starting the web flow back to `next`) and the link form.
pub struct SignInForm {
    pub providers: Vec<ProviderButton>,
    pub next: String,
    pub next_encoded: String,
    pub token: String,
    pub has_token: bool,
}

impl SignInForm {
    /// `next` is already checked by the page (each face has its own idea of where a
    /// signed-in browser may go).
    pub fn new(state: &AppState, query: &SignInQuery, next: String) -> SignInForm {
        let token = query.token.clone().unwrap_or_default();
        SignInForm {
            providers: state
                .providers
                .configured()
                .into_iter()
                .map(|p| ProviderButton {
                    id: p.as_str(),
                    name: p.display_name(),
                })
                .collect(),
            next_encoded: super::error::encode_query(&next),
            next,
            has_token: !token.is_empty(),
            token,
        }
    }
}
