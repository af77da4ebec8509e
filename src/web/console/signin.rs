//! Signing in to the console: the provider buttons (each starts the web flow of
//! `auth::signin`, which comes back with the session cookie) and the one-time login link
//! of `cinegate user login-link`, redeemed here for the same cookie. Signing out ends the
//! session in the store, not only in the browser.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::render;
use crate::api::error::Code;
use crate::auth::signin::local_path;
use crate::ratelimit::Budget;
use crate::server::session::{
    ended_session_cookie, has_csrf_header, session_cookie, session_value,
};
use crate::state::AppState;
use crate::web::error::{encode_query, PageError, PageResult};

struct ProviderButton {
    id: &'static str,
    name: &'static str,
}

#[derive(Template)]
#[template(path = "console/signin.html")]
struct SignInPage {
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

/// Where to go after signing in: a local console path, else the dashboard.
fn next_of(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/admin") && local_path(n) => n.to_string(),
        _ => "/admin".into(),
    }
}

pub async fn page(
    state: web::Data<AppState>,
    query: web::Query<SignInQuery>,
) -> PageResult<HttpResponse> {
    let next = next_of(query.next.as_deref());
    let token = query.token.clone().unwrap_or_default();
    render(&SignInPage {
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

/// `POST /admin/sign-in/link`: the link's token for a session cookie; htmx then loads
/// `next`. Failed tokens count against the client address like the JSON `auth/link`.
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
    let token = form.token.trim();
    let now = state.clock.now();
    match state.sign_in().login_link_session(token, now) {
        Ok((session, _user)) => {
            let next = next_of(form.next.as_deref());
            Ok(HttpResponse::NoContent()
                .cookie(session_cookie(
                    session.id,
                    session.ttl_secs,
                    state.config.public_url.starts_with("https://"),
                ))
                .insert_header(("HX-Redirect", next))
                .finish())
        }
        Err(e) => {
            state.limits.client(
                Budget::TokenFailures,
                state.trusted_proxies.key_of(&req),
                now,
            )?;
            let mut e = crate::api::error::ApiError::from(e);
            if e.code == Code::InvalidToken {
                e.message = "this sign-in link is not valid: it was used already, has expired, or was mistyped; run `cinegate user login-link` for a new one".into();
            }
            Err(PageError::Api(e))
        }
    }
}

/// `POST /admin/sign-out`: ends the session (any role may, so a viewer who reached the
/// sign-in page can leave too) and goes back to the sign-in page.
pub async fn sign_out(state: web::Data<AppState>, req: HttpRequest) -> PageResult<HttpResponse> {
    if !has_csrf_header(&req) {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            Code::Csrf,
            "sign out from a console page",
        ));
    }
    state
        .sign_in()
        .end_session(session_value(&req).as_deref())?;
    Ok(HttpResponse::NoContent()
        .cookie(ended_session_cookie())
        .insert_header(("HX-Redirect", "/admin/sign-in"))
        .finish())
}
