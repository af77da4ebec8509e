//! What admins see of films, jobs, users and grants.

use serde::Serialize;
use uuid::Uuid;

use super::catalogue::{prices, PriceView};
use crate::store::films::{Film, PackageSummary, SourceSummary};
use crate::store::jobs::{Job, JobFailure, JobState};
use crate::store::users::{Role, User};
use crate::stream::gate::Entitlement;

/// A film with its packaging state (`/admin/films…`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct AdminFilmView {
    #[schema(value_type = String)]
    pub id: Uuid,
    pub title: String,
    pub description: String,
    pub prices: Vec<PriceView>,
    pub published: bool,
    /// Publish automatically when the current packaging job succeeds.
    pub publish_when_ready: bool,
    pub source: Option<SourceView>,
    pub package: Option<PackageView>,
    pub created_at: i64,
    pub updated_at: i64,
    /// `draft`, `queued`, `processing`, `failed`, `ready` or `published`.
    #[schema(value_type = FilmStatus)]
    pub status: &'static str,
    pub jobs: Vec<JobView>,
}

impl AdminFilmView {
    /// `jobs` are the film's packaging jobs, oldest first.
    pub fn new(film: Film, jobs: &[Job]) -> Self {
        Self {
            status: status(&film, jobs),
            id: film.id,
            title: film.title,
            description: film.description,
            prices: prices(&film.prices),
            published: film.published,
            publish_when_ready: film.publish_when_ready,
            source: film.source.as_ref().map(SourceView::from),
            package: film.package.as_ref().map(PackageView::from),
            created_at: film.created_at,
            updated_at: film.updated_at,
            jobs: jobs.iter().map(JobView::from).collect(),
        }
    }
}

/// Where the film is on its way to viewers: a running or queued job first, then whether
/// a package exists (and whether the last attempt failed), then publication.
fn status(film: &Film, jobs: &[Job]) -> &'static str {
    if jobs.iter().any(|j| j.state == JobState::Running) {
        "processing"
    } else if jobs.iter().any(|j| j.state == JobState::Queued) {
        "queued"
    } else if film.package.is_none() {
        if jobs.last().is_some_and(|j| j.state == JobState::Failed) {
            "failed"
        } else {
            "draft"
        }
    } else if film.published {
        "published"
    } else {
        "ready"
    }
}

/// A job's state, as the document names it (`store::jobs::JobState` stays free of the
/// schema derive; its serde names are these).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum JobStateName {
    Queued,
    Running,
    Ready,
    Failed,
    Cancelled,
}

/// The values of `AdminFilmView::status` (`status` above), for the document.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum FilmStatus {
    Draft,
    Queued,
    Processing,
    Failed,
    Ready,
    Published,
}

/// `GET /admin/films`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AdminFilmList {
    pub films: Vec<AdminFilmView>,
}

/// The accepted source of a film.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SourceView {
    pub file_name: String,
    pub bytes: u64,
    pub duration: f64,
}

impl From<&SourceSummary> for SourceView {
    fn from(s: &SourceSummary) -> Self {
        Self {
            file_name: s.file_name.clone(),
            bytes: s.bytes,
            duration: s.duration,
        }
    }
}

/// The package viewers are served.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PackageView {
    /// Directory name under the films root (`pkg-{job}`): which job made it.
    pub dir: String,
    pub duration: f64,
    pub segments: usize,
    pub renditions: Vec<String>,
    pub packaged_at: i64,
}

impl From<&PackageSummary> for PackageView {
    fn from(p: &PackageSummary) -> Self {
        Self {
            dir: p.dir.clone(),
            duration: p.duration,
            segments: p.segments,
            renditions: p.renditions.clone(),
            packaged_at: p.packaged_at,
        }
    }
}

/// A packaging job (`/admin/jobs…`, a film's `jobs`, the answer to a source upload). The
/// source's path on disk is the server's business and is left out.
#[derive(Serialize, utoipa::ToSchema)]
pub struct JobView {
    #[schema(value_type = String)]
    pub id: Uuid,
    #[schema(value_type = String)]
    pub film_id: Uuid,
    #[schema(value_type = JobStateName)]
    pub state: JobState,
    /// 0.0–1.0 of the source duration packaged.
    pub progress: f64,
    pub error: Option<JobFailureView>,
    pub attempts: u32,
    pub created_at: i64,
    pub updated_at: i64,
    /// Who packages it while it runs: this server or a remote runner.
    pub lease: Option<super::runners::JobLeaseView>,
}

impl From<&Job> for JobView {
    fn from(j: &Job) -> Self {
        Self {
            id: j.id,
            film_id: j.film_id,
            state: j.state,
            progress: j.progress,
            error: j.error.as_ref().map(JobFailureView::from),
            attempts: j.attempts,
            created_at: j.created_at,
            updated_at: j.updated_at,
            lease: j.lease.as_ref().map(super::runners::JobLeaseView::from),
        }
    }
}

/// Why a job failed: the packager's code (`not_media`, `truncated`, …) and its words.
#[derive(Serialize, utoipa::ToSchema)]
pub struct JobFailureView {
    pub code: String,
    pub message: String,
}

impl From<&JobFailure> for JobFailureView {
    fn from(f: &JobFailure) -> Self {
        Self {
            code: f.code.clone(),
            message: f.message.clone(),
        }
    }
}

/// `GET /admin/jobs`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
}

/// An account as admins see it (not its sign-in epoch).
#[derive(Serialize, utoipa::ToSchema)]
pub struct AdminUserView {
    #[schema(value_type = String)]
    pub id: Uuid,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    /// `viewer` or `admin`.
    #[schema(value_type = super::enums::RoleView)]
    pub role: Role,
    pub created_at: i64,
    pub disabled: bool,
}

impl From<&User> for AdminUserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            email: u.email.clone(),
            email_verified: u.email_verified,
            name: u.name.clone(),
            role: u.role,
            created_at: u.created_at,
            disabled: u.disabled,
        }
    }
}

/// `GET /admin/users`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserList {
    pub users: Vec<AdminUserView>,
}

/// `PUT /admin/films/{id}/grants/{user_id}`: the user now has the whole film.
#[derive(Serialize, utoipa::ToSchema)]
pub struct GrantView {
    #[schema(value_type = String)]
    pub film_id: Uuid,
    #[schema(value_type = String)]
    pub user_id: Uuid,
    #[schema(value_type = super::enums::EntitlementView)]
    pub entitlement: Entitlement,
}
