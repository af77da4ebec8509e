//! Remote runners' tokens: issue (the token shown once), list (last contact and the job
//! each holds), revoke (its token refused at once, its job back in the queue).

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::Admin;
use crate::api::views::runners::{RunnerIssued, RunnerList, RunnerView};
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRunner {
    /// What the operator calls the machine: 1–100 characters, no control characters.
    pub name: String,
}

#[utoipa::path(
    post,
    operation_id = "adminCreateRunner",
    path = "/api/v1/admin/runners",
    tag = "admin",
    summary = "Issue a runner token (shown once: only its hash is kept)",
    request_body(content = CreateRunner, example = json!({"name": "encoder-1"})),
    responses(
        (status = 201, description = "The runner and its token", body = RunnerIssued),
        (status = 400, description = "`invalid_json`: not JSON, a wrong type or an unknown field", body = crate::api::schemas::ErrorBody),
        (status = 413, description = "`body_too_large`", body = crate::api::schemas::ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not `application/json`", body = crate::api::schemas::ErrorBody),
        (status = 422, description = "`invalid_input`: the name is empty, too long or has control characters", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::AdminRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn create(
    state: web::Data<AppState>,
    _admin: Admin,
    body: web::Json<CreateRunner>,
) -> ApiResult<HttpResponse> {
    let (runner, token) = state.runners().issue(&body.name)?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(RunnerIssued::new(&runner, token)))
}

#[utoipa::path(
    get,
    operation_id = "adminListRunners",
    path = "/api/v1/admin/runners",
    tag = "admin",
    summary = "Every runner, oldest first, with its last contact and the job it holds",
    responses(
        (status = 200, description = "The runners", body = RunnerList),
        crate::api::schemas::AdminRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn list(state: web::Data<AppState>, _admin: Admin) -> ApiResult<HttpResponse> {
    let st = state.clone();
    let runners = web::block(move || st.runners().list()).await??;
    Ok(HttpResponse::Ok().json(RunnerList {
        runners: runners.iter().map(RunnerView::from).collect(),
    }))
}

#[utoipa::path(
    delete,
    operation_id = "adminRevokeRunner",
    path = "/api/v1/admin/runners/{id}",
    tag = "admin",
    summary = "Revoke a runner: its token is refused from now on and its job goes back to the queue",
    params(("id" = String, Path, description = "The runner id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "`not_found`: no such runner", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::AdminRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn revoke(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = crate::store::parse_id(&path).ok_or_else(|| ApiError::not_found("runner"))?;
    let st = state.clone();
    web::block(move || st.runners().revoke(&id)).await??;
    Ok(HttpResponse::NoContent().finish())
}
