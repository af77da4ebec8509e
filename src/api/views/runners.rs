//! Runners as admins see them, and the runner protocol's answers (docs/RUNNERS.md).

use serde::Serialize;
use uuid::Uuid;

use crate::runners::{Grant, RunnerStatus, UploadTarget};
use crate::store::jobs::{Lease, LeaseOwner};
use crate::store::runners::Runner;

/// A runner (`GET /api/v1/admin/runners`): never its token.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RunnerView {
    #[schema(value_type = String)]
    pub id: Uuid,
    pub name: String,
    pub created_at: i64,
    /// Its last lease, heartbeat or completion (Unix seconds); `null` before its first.
    pub last_seen_at: Option<i64>,
    /// The job it packages now, if any.
    pub job: Option<RunnerJobView>,
}

/// The job a runner holds.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RunnerJobView {
    #[schema(value_type = String)]
    pub id: Uuid,
    #[schema(value_type = String)]
    pub film_id: Uuid,
    /// 0.0–1.0, as the runner last reported it.
    pub progress: f64,
    pub attempt: u32,
    /// When the lease lapses unless heartbeated (Unix seconds).
    pub lease_expires_at: i64,
}

impl From<&RunnerStatus> for RunnerView {
    fn from(s: &RunnerStatus) -> Self {
        Self {
            id: s.runner.id,
            name: s.runner.name.clone(),
            created_at: s.runner.created_at,
            last_seen_at: s.runner.last_seen_at,
            job: s.job.as_ref().map(|j| RunnerJobView {
                id: j.id,
                film_id: j.film_id,
                progress: j.progress,
                attempt: j.lease.as_ref().map(|l| l.attempt).unwrap_or(j.attempts),
                lease_expires_at: j.lease.as_ref().map(|l| l.expires_at).unwrap_or(0),
            }),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RunnerList {
    pub runners: Vec<RunnerView>,
}

/// A runner just issued: its token, shown this once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RunnerIssued {
    #[schema(value_type = String)]
    pub id: Uuid,
    pub name: String,
    pub created_at: i64,
    /// The runner's bearer token (`cgr_…`). Only its hash is kept: it cannot be shown again.
    pub token: String,
}

impl RunnerIssued {
    pub fn new(runner: &Runner, token: String) -> Self {
        Self {
            id: runner.id,
            name: runner.name.clone(),
            created_at: runner.created_at,
            token,
        }
    }
}

/// Who holds a running job (`JobView::lease`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct JobLeaseView {
    /// `local` (this server's worker) or `runner`.
    pub owner: &'static str,
    /// The runner's id when `owner` is `runner`.
    #[schema(value_type = Option<String>)]
    pub runner_id: Option<Uuid>,
    pub attempt: u32,
    /// A runner's lease lapses then unless heartbeated (Unix seconds); 0 for `local`.
    pub expires_at: i64,
}

impl From<&Lease> for JobLeaseView {
    fn from(l: &Lease) -> Self {
        let (owner, runner_id) = match l.owner {
            LeaseOwner::Local => ("local", None),
            LeaseOwner::Runner(id) => ("runner", Some(id)),
        };
        Self {
            owner,
            runner_id,
            attempt: l.attempt,
            expires_at: l.expires_at,
        }
    }
}

// --- the runner protocol (not in the published contract: docs/RUNNERS.md) ---

/// `POST /api/v1/runner/lease`: a job to package.
#[derive(Serialize)]
pub struct LeaseAnswer {
    pub job_id: Uuid,
    pub film_id: Uuid,
    pub attempt: u32,
    /// The fencing token: send it as `Cinegate-Lease` on every call about this job.
    pub lease_token: String,
    pub lease_expires_at: i64,
    pub lease_ttl_seconds: u64,
    /// Heartbeat at least this often (a third of the lease).
    pub heartbeat_seconds: u64,
    pub source: SourceAnswer,
    /// The film secret the packager encrypts with (hex). Keep it in memory only.
    pub film_secret: String,
    /// The origin's `[transcode]` section: package with exactly these options.
    pub transcode: crate::config::TranscodeConfig,
}

#[derive(Serialize)]
pub struct SourceAnswer {
    /// Relative to the origin; supports `Range` and `If-Range`.
    pub url: String,
    pub length: u64,
    pub sha256: String,
}

impl From<Grant> for LeaseAnswer {
    fn from(g: Grant) -> Self {
        Self {
            job_id: g.job.id,
            film_id: g.job.film_id,
            attempt: g.attempt,
            lease_token: g.lease_token,
            lease_expires_at: g.lease_expires_at,
            lease_ttl_seconds: g.lease_ttl_seconds,
            heartbeat_seconds: (g.lease_ttl_seconds / 3).max(1),
            source: SourceAnswer {
                url: format!("/api/v1/runner/jobs/{}/source", g.job.id),
                length: g.source.length,
                sha256: g.source.sha256,
            },
            film_secret: g.secret_hex,
            transcode: g.transcode,
        }
    }
}

#[derive(Serialize)]
pub struct HeartbeatAnswer {
    pub lease_expires_at: i64,
}

#[derive(Serialize)]
pub struct TargetsAnswer {
    pub targets: Vec<UploadTarget>,
}

#[derive(Serialize)]
pub struct FilesAnswer {
    pub files: Vec<crate::runners::DeclaredFile>,
}

#[derive(Serialize)]
pub struct JobStateAnswer {
    pub job_id: Uuid,
    #[serde(rename = "state")]
    pub state: crate::store::jobs::JobState,
}
