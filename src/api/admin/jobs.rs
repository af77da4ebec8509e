//! Admin view of packaging jobs: list, inspect, cancel, retry.

use actix_web::{web, HttpResponse};

use crate::api::error::{ApiError, ApiResult, Code};
use crate::api::extract::Admin;
use crate::api::views::admin::{JobList, JobView};
use crate::state::AppState;

fn job_id(id: &str) -> ApiResult<uuid::Uuid> {
    crate::store::parse_id(id).ok_or_else(|| ApiError::not_found("job"))
}

pub async fn list(state: web::Data<AppState>, _admin: Admin) -> ApiResult<HttpResponse> {
    // Reads every job: off the runtime's threads.
    let store = state.store.clone();
    let jobs = web::block(move || store.jobs()).await??;
    // Newest first.
    let jobs = jobs.iter().rev().map(JobView::from).collect();
    Ok(HttpResponse::Ok().json(JobList { jobs }))
}

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
