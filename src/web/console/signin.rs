//! Signing in to the console: the provider buttons (each starts the web flow of
//! `auth::signin`, which comes back with the session cookie) and the one-time login link
//! of `cinegate user login-link`, redeemed here for the same cookie. Signing out ends the
//! session in the store, not only in the browser.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::render;
use crate::auth::signin::local_path;
use crate::state::AppState;
use crate::web::error::PageResult;
use crate::web::session::{LinkForm, SignInForm, SignInQuery};

#[derive(Template)]
#[template(path = "console/signin.html")]
struct SignInPage {
    form: SignInForm,
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
    render(&SignInPage {
        form: SignInForm::new(&state, &query, next),
    })
}

/// `POST …/sign-in/link`: the link's token for a session cookie, then `next`.
pub async fn with_link(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<LinkForm>,
) -> PageResult<HttpResponse> {
    let next = next_of(form.next.as_deref());
    crate::web::session::redeem_link(&state, &req, &form.token, next)
}

/// `POST …/sign-out`: ends the session (any role may) and goes to `/admin/sign-in`.
pub async fn sign_out(state: web::Data<AppState>, req: HttpRequest) -> PageResult<HttpResponse> {
    crate::web::session::sign_out(&state, &req, "/admin/sign-in")
}
