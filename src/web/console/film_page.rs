//! One film at `/admin/films/{id}`: the edit form, delete, publish/unpublish, the poster,
//! the packaging box (live while a job is queued or running; cancel, retry, a failed
//! job's reason), the upload (`upload.js` over the console's tus endpoint) and the
//! preview player (`player.js`, the whole film: admins are entitled to everything).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::films::{go_to, refused, FilmForm};
use super::{render, view};
use crate::api::error::{ApiError, Code};
use crate::catalogue;
use crate::state::AppState;
use crate::store::films::Film;
use crate::store::jobs::{Job, JobState};
use crate::web::error::{PageError, PageResult};
use crate::web::session::ConsoleAdmin;

/// The newest packaging job of a film, as the packaging box shows it.
pub struct JobBox {
    pub film_id: String,
    pub job_id: String,
    pub state: &'static str,
    pub percent: u32,
    pub attempts: u32,
    pub active: bool,
    pub retryable: bool,
    pub error_code: String,
    pub error_message: String,
}

#[derive(Template)]
#[template(path = "console/films_packaging.html")]
pub struct PackagingBox {
    pub film_id: String,
    pub job: Option<JobBox>,
}

impl PackagingBox {
    fn of(film_id: &uuid::Uuid, newest: Option<&Job>) -> Self {
        Self {
            film_id: film_id.to_string(),
            job: newest.map(|j| JobBox {
                film_id: film_id.to_string(),
                job_id: j.id.to_string(),
                state: match j.state {
                    JobState::Queued => "queued",
                    JobState::Running => "running",
                    JobState::Ready => "succeeded",
                    JobState::Failed => "failed",
                    JobState::Cancelled => "cancelled",
                },
                percent: if j.state == JobState::Ready {
                    100
                } else {
                    (j.progress * 100.0).floor().clamp(0.0, 100.0) as u32
                },
                attempts: j.attempts,
                active: matches!(j.state, JobState::Queued | JobState::Running),
                retryable: matches!(j.state, JobState::Failed | JobState::Cancelled),
                error_code: j.error.as_ref().map(|e| e.code.clone()).unwrap_or_default(),
                error_message: j
                    .error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_default(),
            }),
        }
    }

    fn active(&self) -> bool {
        self.job.as_ref().is_some_and(|j| j.active)
    }
}

#[derive(Template)]
#[template(path = "console/film.html")]
struct FilmPage {
    me: String,
    section: &'static str,
    id: String,
    title: String,
    state: &'static str,
    published: bool,
    packaged: bool,
    source: Option<String>,
    package: Option<String>,
    form: FilmForm,
    /// Where the form posts, and its button.
    action: String,
    submit: &'static str,
    packaging: PackagingBox,
    /// The master playlist for the preview player (a playback token for this admin).
    master: Option<String>,
    max_bytes: u64,
    max_size: String,
}

async fn newest_job(state: &web::Data<AppState>, film: &Film) -> PageResult<Option<Job>> {
    let (store, id) = (state.store.clone(), film.id);
    let jobs = web::block(move || store.jobs_for_film(&id)).await??;
    Ok(jobs.into_iter().max_by_key(|j| j.id))
}

async fn page_of(
    admin: &ConsoleAdmin,
    state: &web::Data<AppState>,
    film: Film,
    form: FilmForm,
) -> PageResult<FilmPage> {
    let newest = newest_job(state, &film).await?;
    let film_state = crate::overview::film_state(&film, newest.as_ref());
    let master = match film.package {
        Some(_) => {
            let (_, path, _) = state
                .playback_access()
                .start(&admin.user, &film, state.clock.now());
            Some(path)
        }
        None => None,
    };
    Ok(FilmPage {
        me: admin.user.email.clone().unwrap_or_default(),
        section: "films",
        id: film.id.to_string(),
        title: film.title.clone(),
        state: film_state.as_str(),
        published: film.published,
        packaged: film.package.is_some(),
        source: film.source.as_ref().map(|s| {
            format!(
                "{} · {} · {}",
                s.file_name,
                view::size(s.bytes),
                view::duration(s.duration)
            )
        }),
        package: film.package.as_ref().map(|p| {
            format!(
                "{} · {} segments · {} · {} · packaged {}",
                view::duration(p.duration),
                p.segments,
                p.renditions.join(", "),
                view::size(p.bytes),
                view::time(p.packaged_at)
            )
        }),
        form,
        action: format!("/admin/films/{}", film.id),
        submit: "Save",
        packaging: PackagingBox::of(&film.id, newest.as_ref()),
        master,
        max_bytes: state.config.upload.max_bytes,
        max_size: view::size(state.config.upload.max_bytes),
    })
}

/// `GET /admin/films/{id}`.
pub async fn show(
    admin: ConsoleAdmin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let film = catalogue::film(&state.store, &path)?;
    let form = FilmForm::of(&film);
    render(&page_of(&admin, &state, film, form).await?)
}

/// `POST /admin/films/{id}` (htmx): saves the form, or shows it again with the refusal.
pub async fn update(
    admin: ConsoleAdmin,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Form<Vec<(String, String)>>,
) -> PageResult<HttpResponse> {
    let film = catalogue::film(&state.store, &path)?;
    let form = FilmForm::posted(body.into_inner());
    let (title, description, prices) = match form.validate() {
        Ok(fields) => fields,
        Err(e) => {
            let page = page_of(&admin, &state, film, form.refused(e)).await?;
            return refused(&page);
        }
    };
    let publish_when_ready = form.publish_when_ready;
    state
        .store
        .update_film(&film.id, |f| {
            f.title = title.clone();
            f.description = description.clone();
            f.prices = prices.clone();
            f.publish_when_ready = publish_when_ready;
            f.updated_at = state.clock.now();
        })?
        .ok_or_else(|| PageError::from(ApiError::not_found("film")))?;
    Ok(go_to(&req, &format!("/admin/films/{}", film.id)))
}

/// `POST /admin/films/{id}/delete` (htmx, after `hx-confirm`): what the JSON `DELETE`
/// does — jobs cancelled, the film and its records removed, then its files.
pub async fn delete(
    _admin: ConsoleAdmin,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let film = catalogue::film(&state.store, &path)?;
    let jobs = state.jobs.clone();
    web::block(move || jobs.delete_film(&film.id)).await??;
    Ok(go_to(&req, "/admin/films"))
}

/// `POST /admin/films/{id}/publish`.
pub async fn publish(
    _admin: ConsoleAdmin,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    set_published(&state, &req, &path, true)
}

/// `POST /admin/films/{id}/unpublish`.
pub async fn unpublish(
    _admin: ConsoleAdmin,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    set_published(&state, &req, &path, false)
}

fn set_published(
    state: &AppState,
    req: &HttpRequest,
    id: &str,
    published: bool,
) -> PageResult<HttpResponse> {
    let film = catalogue::set_published(&state.store, id, published, state.clock.now())?;
    Ok(go_to(req, &format!("/admin/films/{}", film.id)))
}

/// `GET /admin/films/{id}/poster`: the package's poster, for admins (drafts included).
pub async fn poster(
    _admin: ConsoleAdmin,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let film = catalogue::film(&state.store, &path)?;
    if film.package.is_none() {
        return Err(ApiError::not_found("poster").into());
    }
    let playback = state
        .playback_access()
        .playback_of(&film)
        .await
        .map_err(ApiError::from)?;
    let poster = playback.dir.join(transcoder::POSTER_FILE);
    Ok(crate::server::files::jpeg(&req, &poster, None)
        .await
        .ok_or_else(|| ApiError::not_found("poster"))?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollQuery {
    poll: Option<u8>,
}

/// `GET /admin/films/{id}/packaging`: the packaging box alone, polled every second while
/// its job is active. The poll that finds the job finished reloads the page, which then
/// shows the package, the poster and the player.
pub async fn packaging(
    _admin: ConsoleAdmin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<PollQuery>,
) -> PageResult<HttpResponse> {
    let film = catalogue::film(&state.store, &path)?;
    let newest = newest_job(&state, &film).await?;
    let packaging = PackagingBox::of(&film.id, newest.as_ref());
    let mut answer = render(&packaging)?;
    if query.poll.is_some() && !packaging.active() {
        answer.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("hx-refresh"),
            actix_web::http::header::HeaderValue::from_static("true"),
        );
    }
    Ok(answer)
}

/// The job `job` of the film `film`, or not found (a job id from another film included).
fn job_of(state: &AppState, film: &str, job: &str) -> PageResult<Job> {
    let film = catalogue::film(&state.store, film)?;
    crate::store::parse_id(job)
        .and_then(|id| state.store.job(&id).ok().flatten())
        .filter(|j| j.film_id == film.id)
        .ok_or_else(|| ApiError::not_found("job").into())
}

/// `POST /admin/films/{id}/jobs/{job}/cancel`: answers the packaging box.
pub async fn cancel(
    _admin: ConsoleAdmin,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> PageResult<HttpResponse> {
    let job = job_of(&state, &path.0, &path.1)?;
    state
        .jobs
        .cancel(&job.id)?
        .ok_or_else(|| PageError::from(ApiError::not_found("job")))?;
    box_of(&state, &job.film_id).await
}

/// `POST /admin/films/{id}/jobs/{job}/retry`: answers the packaging box.
pub async fn retry(
    _admin: ConsoleAdmin,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> PageResult<HttpResponse> {
    let job = job_of(&state, &path.0, &path.1)?;
    if !matches!(job.state, JobState::Failed | JobState::Cancelled) {
        return Err(PageError::new(
            StatusCode::CONFLICT,
            Code::JobNotRetryable,
            "only failed or cancelled jobs can be retried",
        ));
    }
    state
        .jobs
        .retry(&job.id)?
        .ok_or_else(|| PageError::from(ApiError::not_found("job")))?;
    box_of(&state, &job.film_id).await
}

async fn box_of(state: &web::Data<AppState>, film: &uuid::Uuid) -> PageResult<HttpResponse> {
    let (store, id) = (state.store.clone(), *film);
    let jobs = web::block(move || store.jobs_for_film(&id)).await??;
    render(&PackagingBox::of(film, jobs.iter().max_by_key(|j| j.id)))
}
