//! `/healthz` and Prometheus `/metrics` (behind a bearer token, optionally on a listener of
//! its own: `[metrics]`).

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
    // The gauges count index keys and tree entries (no job or entry is read), which is
    // still a walk of sled's pages, and the viewers a walk of the progress recorder's
    // shards (each locked in turn, briefly): off the runtime's threads.
    let store = state.store.clone();
    let progress = state.progress.clone();
    let scraped = web::block(move || -> crate::store::Result<Scraped> {
        Ok(Scraped {
            jobs: [
                store.count_jobs(JobState::Queued)?,
                store.count_jobs(JobState::Running)?,
                store.count_jobs(JobState::Failed)?,
            ],
            outbox: store.outbox_depth()?,
            viewers: std::time::Instant::now()
                .checked_sub(ACTIVE_WINDOW)
                .map_or(0, |since| progress.active_viewers(since)),
        })
    })
    .await??;
    render(&state, scraped)
}

/// What `/metrics` computes when scraped.
struct Scraped {
    /// Queued, running, failed.
    jobs: [usize; 3],
    /// Pending, dead.
    outbox: (usize, usize),
    viewers: usize,
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

/// The page: the gauges computed now (jobs by state, outbox depth, active viewers) set,
/// then every family rendered.
fn render(state: &AppState, scraped: Scraped) -> ApiResult<HttpResponse> {
    let Scraped {
        jobs: [queued, running, failed],
        outbox: (pending, dead),
        viewers,
    } = scraped;
    let t = &state.telemetry;
    t.set_scraped(
        [("queued", queued), ("running", running), ("failed", failed)],
        [("pending", pending), ("dead", dead)],
        viewers,
    );
    let text = t
        .render()
        .map_err(|e| ApiError::internal(&format!("rendering the metrics: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type(crate::telemetry::CONTENT_TYPE)
        .body(text))
}

/// A viewer counts as active while their player fetched a segment or key this recently.
const ACTIVE_WINDOW: std::time::Duration = std::time::Duration::from_secs(5 * 60);
