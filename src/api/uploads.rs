//! `/api/v1/admin/uploads`: the tus protocol (`api::tus`) under bearer auth.

use actix_web::{web, HttpRequest, HttpResponse};

use super::error::ApiResult;
use super::tus;
use crate::api::extract::Admin;
use crate::state::AppState;

const BASE: &str = "/api/v1/admin/uploads";

pub async fn options(state: web::Data<AppState>) -> HttpResponse {
    tus::options(&state)
}

pub async fn create(
    state: web::Data<AppState>,
    admin: Admin,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    tus::create(&state, admin.0.id, BASE, &req).await
}

pub async fn head(
    state: web::Data<AppState>,
    _admin: Admin,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    tus::head(&state, &req, &path)
}

pub async fn patch(
    state: web::Data<AppState>,
    _admin: Admin,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    tus::patch(&state, &req, &path, body).await
}

pub async fn terminate(
    state: web::Data<AppState>,
    _admin: Admin,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    tus::terminate(&state, &req, &path).await
}
