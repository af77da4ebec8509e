//! Admin film management: drafts, edits, publication, deletion, plain source upload.

use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::api::error::{ApiError, ApiResult, Code};
use crate::api::extract::Admin;
use crate::api::views::admin::{AdminFilmList, AdminFilmView, JobView};
use crate::catalogue;
use crate::ingest::{self, IngestError};
use crate::state::AppState;
use crate::store::films::{Film, Price};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceInput {
    /// Minor units (cents for USD, won for KRW).
    #[schema(minimum = 1, maximum = 100_000_000_000_i64)]
    pub amount: u64,
    /// An ISO 4217 code (`USD`, `KRW`, …), in any case.
    #[schema(example = "USD")]
    pub currency: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFilm {
    /// 1–200 characters once trimmed, no control characters.
    pub title: String,
    /// At most 10000 characters.
    #[serde(default)]
    pub description: String,
    /// Several currencies, one price each.
    #[serde(default)]
    pub prices: Vec<PriceInput>,
    /// Shorthand for a single price (minor units), with `currency`.
    #[schema(minimum = 1, maximum = 100_000_000_000_i64)]
    pub price: Option<u64>,
    pub currency: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateFilm {
    /// Absent fields stay as they are.
    pub title: Option<String>,
    pub description: Option<String>,
    pub prices: Option<Vec<PriceInput>>,
}

/// The film with its jobs, as admins see it.
fn admin_view(state: &AppState, film: Film) -> ApiResult<AdminFilmView> {
    let jobs = state.store.jobs_for_film(&film.id)?;
    Ok(AdminFilmView::new(film, &jobs))
}

fn prices(input: Vec<PriceInput>) -> ApiResult<Vec<Price>> {
    Ok(ingest::validate_prices(
        input.into_iter().map(|p| (p.amount, p.currency)),
    )?)
}

#[utoipa::path(
    get,
    operation_id = "adminListFilms",
    path = "/api/v1/admin/films",
    tag = "admin",
    summary = "Every film, drafts included, with its packaging jobs",
    responses(
        (status = 200, description = "The films", body = AdminFilmList),
        crate::api::schemas::AdminRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn list(state: web::Data<AppState>, _admin: Admin) -> ApiResult<HttpResponse> {
    // Reads every film and their jobs: off the runtime's threads.
    let st = state.clone();
    let films = web::block(move || {
        st.store
            .films()?
            .into_iter()
            .map(|f| admin_view(&st, f))
            .collect::<ApiResult<Vec<_>>>()
    })
    .await??;
    Ok(HttpResponse::Ok().json(AdminFilmList { films }))
}

#[utoipa::path(
    get,
    operation_id = "adminGetFilm",
    path = "/api/v1/admin/films/{id}",
    tag = "admin",
    summary = "A film with its packaging jobs",
    params(
        ("id" = String, Path, description = "The film id"),
    ),
    responses(
        (status = 200, description = "The film", body = AdminFilmView),
        crate::api::schemas::AdminRefusals,
        (status = 404, description = "`not_found`: no such film", body = crate::api::schemas::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn get(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let film = catalogue::film(&state.store, &path)?;
    Ok(HttpResponse::Ok().json(admin_view(&state, film)?))
}

#[utoipa::path(
    post,
    operation_id = "adminCreateFilm",
    path = "/api/v1/admin/films",
    tag = "admin",
    summary = "Create a draft film",
    request_body(
        content = CreateFilm,
        example = json!({"title": "Night Train", "description": "A short film.", "prices": [{"amount": 500, "currency": "USD"}]}),
    ),
    responses(
        (status = 201, description = "Created, unpublished and without a source", body = AdminFilmView,
            headers(("Location" = String, description = "`/api/v1/admin/films/{id}`"))),
        (status = 400, description = "`invalid_json`: not JSON, a wrong type or an unknown field", body = crate::api::schemas::ErrorBody),
        (status = 413, description = "`body_too_large`", body = crate::api::schemas::ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not `application/json`", body = crate::api::schemas::ErrorBody),
        (status = 422, description = "`invalid_input`: a title, description or price out of bounds, `price` without `currency`, two prices in one currency", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::AdminRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn create(
    state: web::Data<AppState>,
    _admin: Admin,
    body: web::Json<CreateFilm>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let title = ingest::validate_title(&body.title)?;
    let description = ingest::validate_description(&body.description)?;
    let mut input = body.prices;
    match (body.price, body.currency) {
        (Some(amount), Some(currency)) => input.push(PriceInput { amount, currency }),
        (None, None) => {}
        _ => return Err(ApiError::validation("`price` and `currency` go together")),
    }
    let film = ingest::new_film(title, description, prices(input)?, state.clock.now());
    state.store.save_film(&film)?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/admin/films/{}", film.id)))
        .json(admin_view(&state, film)?))
}

#[utoipa::path(
    patch,
    operation_id = "adminUpdateFilm",
    path = "/api/v1/admin/films/{id}",
    tag = "admin",
    summary = "Change a film's title, description or prices",
    params(
        ("id" = String, Path, description = "The film id"),
    ),
    request_body(
        content = UpdateFilm,
        example = json!({"title": "Night Train (director's cut)"}),
    ),
    responses(
        (status = 200, description = "The film as it is now", body = AdminFilmView),
        (status = 400, description = "`invalid_json`: not JSON, a wrong type or an unknown field", body = crate::api::schemas::ErrorBody),
        (status = 413, description = "`body_too_large`", body = crate::api::schemas::ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not `application/json`", body = crate::api::schemas::ErrorBody),
        (status = 422, description = "`invalid_input`: a title, description or price out of bounds, `price` without `currency`, two prices in one currency", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::AdminRefusals,
        (status = 404, description = "`not_found`: no such film", body = crate::api::schemas::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn update(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
    body: web::Json<UpdateFilm>,
) -> ApiResult<HttpResponse> {
    // No read before the update: `update_film` is the one read, so a film deleted
    // meanwhile is a 404 and an unreadable record is reported and left in place.
    let id = crate::store::parse_id(&path).ok_or_else(|| ApiError::not_found("film"))?;
    let body = body.into_inner();
    let title = body
        .title
        .as_deref()
        .map(ingest::validate_title)
        .transpose()?;
    let description = body
        .description
        .as_deref()
        .map(ingest::validate_description)
        .transpose()?;
    let new_prices = body.prices.map(prices).transpose()?;
    let updated = state
        .store
        .update_film(&id, |f| {
            if let Some(t) = &title {
                f.title = t.clone();
            }
            if let Some(d) = &description {
                f.description = d.clone();
            }
            if let Some(p) = &new_prices {
                f.prices = p.clone();
            }
            f.updated_at = state.clock.now();
        })?
        .ok_or_else(|| ApiError::not_found("film"))?;
    Ok(HttpResponse::Ok().json(admin_view(&state, updated)?))
}

#[utoipa::path(
    delete,
    operation_id = "adminDeleteFilm",
    path = "/api/v1/admin/films/{id}",
    tag = "admin",
    summary = "Delete a film, its jobs, source and package",
    params(
        ("id" = String, Path, description = "The film id"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        crate::api::schemas::AdminRefusals,
        (status = 404, description = "`not_found`: no such film", body = crate::api::schemas::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn delete(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let film = catalogue::film(&state.store, &path)?;
    let jobs = state.jobs.clone();
    web::block(move || jobs.delete_film(&film.id)).await??;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    operation_id = "adminPublishFilm",
    path = "/api/v1/admin/films/{id}/publish",
    tag = "admin",
    summary = "Show a packaged film in the catalogue",
    params(
        ("id" = String, Path, description = "The film id"),
    ),
    responses(
        (status = 200, description = "The film, published", body = AdminFilmView),
        crate::api::schemas::AdminRefusals,
        (status = 404, description = "`not_found`: no such film", body = crate::api::schemas::ErrorBody),
        (status = 409, description = "`not_ready`: the film has no package yet", body = crate::api::schemas::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn publish(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    set_published(state, path, true).await
}

#[utoipa::path(
    post,
    operation_id = "adminUnpublishFilm",
    path = "/api/v1/admin/films/{id}/unpublish",
    tag = "admin",
    summary = "Take a film out of the catalogue (buyers keep it)",
    params(
        ("id" = String, Path, description = "The film id"),
    ),
    responses(
        (status = 200, description = "The film, unpublished", body = AdminFilmView),
        crate::api::schemas::AdminRefusals,
        (status = 404, description = "`not_found`: no such film", body = crate::api::schemas::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn unpublish(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    set_published(state, path, false).await
}

async fn set_published(
    state: web::Data<AppState>,
    path: web::Path<String>,
    published: bool,
) -> ApiResult<HttpResponse> {
    let updated = catalogue::set_published(&state.store, &path, published, state.clock.now())?;
    Ok(HttpResponse::Ok().json(admin_view(&state, updated)?))
}

#[utoipa::path(
    put,
    operation_id = "adminPutFilmSource",
    path = "/api/v1/admin/films/{id}/source",
    tag = "admin",
    summary = "Upload a film's source in one request (tus is the resumable way)",
    params(
        ("id" = String, Path, description = "The film id"),
        ("X-File-Name" = Option<String>, Header, description = "The file's name, kept with the source"),
    ),
    request_body(
        description = "The whole file, at most `upload.max_bytes`",
        content(("application/octet-stream")),
    ),
    responses(
        (status = 202, description = "Accepted: a packaging job is queued", body = JobView),
        (status = 400, description = "`empty_upload`, `upload_interrupted`", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::AdminRefusals,
        (status = 404, description = "`not_found`: no such film", body = crate::api::schemas::ErrorBody),
        (status = 409, description = "`job_active`: a packaging job for this film is queued or running", body = crate::api::schemas::ErrorBody),
        (status = 413, description = "`upload_too_large` (with `max_bytes`)", body = crate::api::schemas::ErrorBody),
        (status = 422, description = "`not_media`, `no_video`, `zero_duration`, `truncated`: the file is not a film", body = crate::api::schemas::ErrorBody),
        (status = 507, description = "`insufficient_storage`: the media file system would fall below `disk.min_free_bytes` (with `free_bytes`, `min_free_bytes`, `needed_bytes`); nothing is kept", body = crate::api::schemas::ErrorBody),
    ),
    security(("bearer" = [])),
)]
/// `PUT /admin/films/{id}/source`: the body is the file, streamed to disk with constant
/// memory; refused with 413 past `upload.max_bytes`.
pub async fn put_source(
    state: web::Data<AppState>,
    _admin: Admin,
    req: HttpRequest,
    path: web::Path<String>,
    mut body: web::Payload,
) -> ApiResult<HttpResponse> {
    let film = catalogue::film(&state.store, &path)?;
    let max = state.config.upload.max_bytes;
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(declared) = declared {
        ingest::check_size(&state.config, declared)
            .map_err(|e| ApiError::from(e).close_connection())?;
    }
    // The declared length (or nothing, for a chunked body) must fit above the floor.
    ingest::check_space(&state.config, declared.unwrap_or(0))
        .map_err(|e| ApiError::from(e).close_connection())?;
    let path = ingest::scratch_path(&state.config);
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let mut file = tokio::fs::File::create(&path).await?;
    let mut written: u64 = 0;
    let mut unchecked: u64 = 0;
    let outcome: ApiResult<()> = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::bad_request(
                    Code::UploadInterrupted,
                    format!("the upload was interrupted: {e}"),
                )
                .close_connection()
            })?;
            written += chunk.len() as u64;
            if written > max {
                return Err(drain_then_refuse(&mut body, max).await);
            }
            unchecked += chunk.len() as u64;
            if unchecked >= ingest::SPACE_CHECK_BYTES {
                unchecked = 0;
                // Deleted below: a plain upload cannot resume.
                ingest::check_space(&state.config, chunk.len() as u64)
                    .map_err(|e| ApiError::from(e).close_connection())?;
            }
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        file.sync_all().await?;
        Ok(())
    }
    .await;
    drop(file);
    if let Err(e) = outcome {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(e);
    }
    if written == 0 {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(ApiError::bad_request(
            Code::EmptyUpload,
            "the request body is empty",
        ));
    }
    let name = req
        .headers()
        .get("X-File-Name")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("source")
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let job = ingest::accept(
        state.config.clone(),
        state.store.clone(),
        film.id,
        path,
        name,
        state.clock.now(),
    )
    .await?;
    state.jobs.notify();
    Ok(HttpResponse::Accepted().json(JobView::from(&job)))
}

/// Reads and discards what is left of an over-limit body, so the 413 leaves the
/// connection in a clean state for the client's next request (what nginx's lingering close
/// does). Past `DRAIN_BYTES` or `DRAIN_TIME` the connection is closed instead: a client
/// streaming without end is not worth reading.
async fn drain_then_refuse(body: &mut web::Payload, max: u64) -> ApiError {
    const DRAIN_BYTES: u64 = 64 * 1024 * 1024;
    const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);
    let mut drained = 0u64;
    let drain = async {
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => {
                    drained += chunk.len() as u64;
                    if drained > DRAIN_BYTES {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
        true
    };
    let refusal = ApiError::from(IngestError::TooLarge { max });
    match tokio::time::timeout(DRAIN_TIME, drain).await {
        Ok(true) => refusal,
        // The rest of the body is still on the wire: the connection cannot be reused.
        _ => refusal.close_connection(),
    }
}
