//! `/healthz` and Prometheus `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::{web, HttpResponse};

use super::error::ApiResult;
use super::AppState;
use crate::store::jobs::JobState;

/// Counters updated on the request path (atomics only).
#[derive(Default)]
pub struct Metrics {
    pub requests: AtomicU64,
    pub segments_served: AtomicU64,
    pub keys_served: AtomicU64,
    pub gate_refusals: AtomicU64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

pub async fn healthz(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    // A store read proves the database answers.
    state.store.films()?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ok" })))
}

pub async fn metrics(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let m = &state.metrics;
    let jobs = state.store.jobs()?;
    let count = |s: JobState| jobs.iter().filter(|j| j.state == s).count();
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
        count(JobState::Queued).to_string(),
    );
    line(
        "cinegate_jobs_running",
        "Packaging jobs running.",
        "gauge",
        count(JobState::Running).to_string(),
    );
    line(
        "cinegate_jobs_failed",
        "Packaging jobs failed.",
        "gauge",
        count(JobState::Failed).to_string(),
    );
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out))
}
