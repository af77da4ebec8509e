//! `/admin/uploads`: the tus protocol of `api::tus` under the console's session cookie
//! (`ConsoleAdmin`: `upload.js` sends the CSRF header through tus-js-client's `headers`).
//! Its answers are the JSON API's, byte for byte, so the page reads a refusal's code and
//! message (a 422 for a file that is not a film, a 413 over `upload.max_bytes`) as the API
//! gives them.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::api::error::ApiResult;
use crate::api::tus;
use crate::state::AppState;
use crate::web::session::ConsoleAdmin;

const BASE: &str = "/admin/uploads";

pub async fn options(_admin: ConsoleAdmin, state: web::Data<AppState>) -> HttpResponse {
    tus::options(&state)
}

pub async fn create(
    admin: ConsoleAdmin,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    tus::create(&state, admin.user.id, BASE, &req).await
}

pub async fn head(
    _admin: ConsoleAdmin,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    tus::head(&state, &req, &path)
}

pub async fn patch(
    _admin: ConsoleAdmin,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    tus::patch(&state, &req, &path, body).await
}

pub async fn terminate(
    _admin: ConsoleAdmin,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    tus::terminate(&state, &req, &path).await
}
