//! `/healthz` and Prometheus `/metrics` (behind a bearer token, optionally on a listener of
//! its own: `[metrics]`).

use std::sync::atomic::Ordering;

use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use super::error::{ApiError, ApiResult, Code};
use crate::api::views::health::Health;
use crate::state::AppState;
use crate::store::jobs::JobState;

pub async fn healthz(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    // One small read proves the database answers; its cost does not grow with the store.
    state.store.health()?;
    Ok(HttpResponse::Ok().json(Health {
        status: "ok",
        tls: (state.config.tls.mode != crate::config::TlsMode::Off).then(|| state.tls.status()),
    }))
}

/// `GET /metrics` on the main listener: 404 when `metrics.listen` gives it a listener of
/// its own, so the public port does not even show that it exists.
pub async fn metrics(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    if state.config.metrics.listen.is_some() {
        return Err(ApiError::not_found("route"));
    }
    metrics_listener(state, req).await
}

/// `GET /metrics` on the `metrics.listen` listener (and, through `metrics`, on the main one).
pub async fn metrics_listener(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    authorize(&state, &req)?;
    // The gauges count index keys (no job is read), which is still a walk of sled's
    // pages: off the runtime's threads.
    let store = state.store.clone();
    let jobs = web::block(move || -> crate::store::Result<[usize; 3]> {
        Ok([
            store.count_jobs(JobState::Queued)?,
            store.count_jobs(JobState::Running)?,
            store.count_jobs(JobState::Failed)?,
        ])
    })
    .await??;
    Ok(render(&state, jobs))
}

/// The bearer token from `keys/metrics.token`, whichever listener serves `/metrics`:
/// counters and job gauges are the operator's business (and the job gauges read the store).
fn authorize(state: &AppState, req: &HttpRequest) -> ApiResult<()> {
    let challenge = |e: ApiError| e.header("WWW-Authenticate", "Bearer realm=\"metrics\"");
    let token = super::extract::bearer(req).ok_or_else(|| {
        challenge(ApiError::unauthorized(
            Code::Unauthenticated,
            "send the token in keys_dir/metrics.token as `Authorization: Bearer …`",
        ))
    })?;
    // Compared as SHA-256 digests: equal-length values, and how long the comparison takes
    // says nothing useful about the token itself.
    let expected = Sha256::digest(hex::encode(state.keys.metrics));
    if Sha256::digest(token.as_bytes()) != expected {
        return Err(challenge(ApiError::unauthorized(
            Code::InvalidToken,
            "the metrics token is not valid",
        )));
    }
    Ok(())
}

/// The page, given the queued, running and failed job counts.
fn render(state: &AppState, [queued, running, failed]: [usize; 3]) -> HttpResponse {
    let m = &state.metrics;
    let mut out = String::new();
    let mut line = |name: &str, help: &str, kind: &str, value: String| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    };
    line(
        "cinegate_http_requests_total",
        "HTTP requests handled.",
        "counter",
        m.requests.load(Ordering::Relaxed).to_string(),
    );
    line(
        "cinegate_segments_served_total",
        "HLS segments served.",
        "counter",
        m.segments_served.load(Ordering::Relaxed).to_string(),
    );
    line(
        "cinegate_keys_served_total",
        "HLS keys served.",
        "counter",
        m.keys_served.load(Ordering::Relaxed).to_string(),
    );
    line(
        "cinegate_gate_refusals_total",
        "Segment or key requests refused by the preview gate.",
        "counter",
        m.gate_refusals.load(Ordering::Relaxed).to_string(),
    );
    line(
        "cinegate_jobs_queued",
        "Packaging jobs waiting.",
        "gauge",
        queued.to_string(),
    );
    line(
        "cinegate_jobs_running",
        "Packaging jobs running.",
        "gauge",
        running.to_string(),
    );
    line(
        "cinegate_jobs_failed",
        "Packaging jobs failed.",
        "gauge",
        failed.to_string(),
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out)
}
