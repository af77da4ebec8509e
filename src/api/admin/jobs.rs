//! Admin view of packaging jobs: list, inspect, cancel, retry.

use actix_web::{web, HttpResponse};

use crate::api::error::{ApiError, ApiResult, Code};
use crate::api::extract::Admin;
use crate::api::views::admin::{JobList, JobView};
use crate::state::AppState;

fn job_id(id: &str) -> ApiResult<uuid::Uuid> {
    crate::store::parse_id(id).ok_or_else(|| ApiError::not_found("job"))
}

#[utoipa::path(
    get,
    operation_id = "adminListJobs",
    path = "/api/v1/admin/jobs",
    tag = "admin",
    summary = "Every packaging job, newest first",
    responses(
        (status = 200, description = "The jobs", body = JobList),
        crate::api::schemas::AdminRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn list(state: web::Data<AppState>, _admin: Admin) -> ApiResult<HttpResponse> {
    // Reads every job: off the runtime's threads.
    let store = state.store.clone();
    let jobs = web::block(move || store.jobs()).await??;
    // Newest first.
    let jobs = jobs.iter().rev().map(JobView::from).collect();
    Ok(HttpResponse::Ok().json(JobList { jobs }))
}

#[utoipa::path(
    get,
    operation_id = "adminGetJob",
    path = "/api/v1/admin/jobs/{id}",
    tag = "admin",
    summary = "A packaging job",
    params(
        ("id" = String, Path, description = "The job id"),
    ),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 404, description = "`not_found`: no such job", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::AdminRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn get(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let job = state
        .store
        .job(&job_id(&path)?)?
        .ok_or_else(|| ApiError::not_found("job"))?;
    Ok(HttpResponse::Ok().json(JobView::from(&job)))
}

#[utoipa::path(
    post,
    operation_id = "adminCancelJob",
    path = "/api/v1/admin/jobs/{id}/cancel",
    tag = "admin",
    summary = "Cancel a queued job or stop a running one (a finished one is answered as it is)",
    params(
        ("id" = String, Path, description = "The job id"),
    ),
    responses(
        (status = 202, description = "The job, cancelled or on its way to it", body = JobView),
        (status = 404, description = "`not_found`: no such job", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::AdminRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn cancel(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let job = state
        .jobs
        .cancel(&job_id(&path)?)?
        .ok_or_else(|| ApiError::not_found("job"))?;
    Ok(HttpResponse::Accepted().json(JobView::from(&job)))
}

#[utoipa::path(
    post,
    operation_id = "adminRetryJob",
    path = "/api/v1/admin/jobs/{id}/retry",
    tag = "admin",
    summary = "Queue a failed or cancelled job again",
    params(
        ("id" = String, Path, description = "The job id"),
    ),
    responses(
        (status = 202, description = "The job, queued again", body = JobView),
        (status = 404, description = "`not_found`: no such job", body = crate::api::schemas::ErrorBody),
        (status = 409, description = "`job_not_retryable`: only failed or cancelled jobs can be retried", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::AdminRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn retry(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = job_id(&path)?;
    let job = state
        .store
        .job(&id)?
        .ok_or_else(|| ApiError::not_found("job"))?;
    if !matches!(
        job.state,
        crate::store::jobs::JobState::Failed | crate::store::jobs::JobState::Cancelled
    ) {
        return Err(ApiError::conflict(
            Code::JobNotRetryable,
            "only failed or cancelled jobs can be retried",
        ));
    }
    let job = state
        .jobs
        .retry(&id)?
        .ok_or_else(|| ApiError::not_found("job"))?;
    Ok(HttpResponse::Accepted().json(JobView::from(&job)))
}
