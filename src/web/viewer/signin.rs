//! Signing in to the viewer app: the configured providers' buttons (each starts the web
//! flow and comes back to the page the viewer came from) and the one-time login link,
//! redeemed for the session cookie. `/login?token=…`, the address older links used, goes
//! here too.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::Frame;
use crate::auth::signin::local_path;
use crate::state::AppState;
use crate::web::console::render;
use crate::web::error::PageResult;
use crate::web::session::{LinkForm, SignInForm, SignInQuery, Visitor};

#[derive(Template)]
#[template(path = "viewer/signin.html")]
struct SignInPage {
    f: Frame,
    form: SignInForm,
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
    render(&SignInPage {
        f: Frame::new(&req, visitor.user.as_ref()),
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

/// `POST …/sign-out`: ends the session (any role may) and goes to `/`.
pub async fn sign_out(state: web::Data<AppState>, req: HttpRequest) -> PageResult<HttpResponse> {
    crate::web::session::sign_out(&state, &req, "/")
}
