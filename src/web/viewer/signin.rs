//! Signing in to the viewer app: the configured providers' buttons (each starts the web
//! flow and comes back to the page the viewer came from) and the one-time login link,
//! redeemed for the session cookie. `/login?token=…`, the address older links used, goes
//! here too.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::Frame;
use crate::api::error::{ApiError, Code};
use crate::auth::signin::local_path;
use crate::ratelimit::Budget;
use crate::server::session::{
    ended_session_cookie, has_csrf_header, session_cookie, session_value,
};
use crate::state::AppState;
use crate::web::console::render;
use crate::web::error::{encode_query, PageError, PageResult};
use crate::web::session::Visitor;

pub struct ProviderButton {
    pub id: &'static str,
    pub name: &'static str,
}

#[derive(Template)]
#[template(path = "viewer/signin.html")]
struct SignInPage {
    f: Frame,
    providers: Vec<ProviderButton>,
    next: String,
    next_encoded: String,
    token: String,
    has_token: bool,
}

#[derive(Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
    token: Option<String>,
}

/// Where to go after signing in: a local path of the app, else the catalogue.
fn next_of(next: Option<&str>) -> String {
    match next {
        Some(n) if local_path(n) && !n.starts_with("/sign-in") => n.to_string(),
        _ => "/".into(),
    }
}

pub async fn page(
    state: web::Data<AppState>,
    req: HttpRequest,
    visitor: Visitor,
    query: web::Query<SignInQuery>,
) -> PageResult<HttpResponse> {
    let next = next_of(query.next.as_deref());
    let token = query.token.clone().unwrap_or_default();
    render(&SignInPage {
        f: Frame::new(&req, visitor.user.as_ref()),
        providers: state
            .providers
            .configured()
            .into_iter()
            .map(|p| ProviderButton {
                id: p.as_str(),
                name: p.display_name(),
            })
            .collect(),
        next_encoded: encode_query(&next),
        next,
        has_token: !token.is_empty(),
        token,
    })
}

#[derive(Deserialize)]
pub struct LinkForm {
    token: String,
    next: Option<String>,
}

/// `POST /sign-in/link`: the link's token for a session cookie, then htmx loads `next`.
pub async fn with_link(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<LinkForm>,
) -> PageResult<HttpResponse> {
    if !has_csrf_header(&req) {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            Code::Csrf,
            "this sign-in did not come from the sign-in page; open the link again",
        ));
    }
    let now = state.clock.now();
    match state.sign_in().login_link_session(form.token.trim(), now) {
        Ok((session, _)) => Ok(HttpResponse::NoContent()
            .cookie(session_cookie(
                session.id,
                session.ttl_secs,
                state.config.public_url.starts_with("https://"),
            ))
            .insert_header(("HX-Redirect", next_of(form.next.as_deref())))
            .finish()),
        Err(e) => {
            state.limits.client(
                Budget::TokenFailures,
                state.trusted_proxies.key_of(&req),
                now,
            )?;
            let mut e = ApiError::from(e);
            if e.code == Code::InvalidToken {
                e.message = "this sign-in link is not valid: it was used already, has expired, or was mistyped".into();
            }
            Err(PageError::Api(e))
        }
    }
}

/// `POST /sign-out`: ends this browser's session and goes to the catalogue.
pub async fn sign_out(state: web::Data<AppState>, req: HttpRequest) -> PageResult<HttpResponse> {
    if !has_csrf_header(&req) {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            Code::Csrf,
            "sign out from a cinegate page",
        ));
    }
    state
        .sign_in()
        .end_session(session_value(&req).as_deref())?;
    Ok(HttpResponse::NoContent()
        .cookie(ended_session_cookie())
        .insert_header(("HX-Redirect", "/"))
        .finish())
}
