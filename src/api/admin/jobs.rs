//! Admin view of packaging jobs: list, inspect, cancel, retry.

use actix_web::{web, HttpResponse};

use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::Admin;
use crate::state::AppState;

fn job_id(id: &str) -> ApiResult<uuid::Uuid> {
    crate::store::parse_id(id).ok_or_else(|| ApiError::not_found("job"))
}

pub async fn list(state: web::Data<AppState>, _admin: Admin) -> ApiResult<HttpResponse> {
    // Reads every job: off the runtime's threads.
    let store = state.store.clone();
    let mut jobs = web::block(move || store.jobs()).await??;
    jobs.reverse();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "jobs": jobs })))
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
    Ok(HttpResponse::Ok().json(job))
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
    Ok(HttpResponse::Accepted().json(job))
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
            "job_not_retryable",
            "only failed or cancelled jobs can be retried",
        ));
    }
    let job = state
        .jobs
        .retry(&id)?
        .ok_or_else(|| ApiError::not_found("job"))?;
    Ok(HttpResponse::Accepted().json(job))
}
