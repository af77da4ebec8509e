//! The viewer catalogue, posters, starting playback and reading progress.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};

use super::error::{ApiError, ApiResult};
use crate::api::extract::Viewer;
use crate::api::views::catalogue::{FilmList, FilmView, PlaybackResponse, ProgressResponse};
use crate::catalogue;
use crate::state::AppState;
use crate::store::films::Film;
use crate::stream::gate;
use crate::stream::playlists::FilmPlayback;
use crate::stream::progress::ProgressView;

#[utoipa::path(
    get,
    operation_id = "listFilms",
    path = "/api/v1/films",
    tag = "films",
    summary = "The watchable films",
    responses(
        (status = 200, description = "Published, packaged films", body = FilmList),
    ),
)]
pub async fn list(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    // Reads every film: off the runtime's threads.
    let store = state.store.clone();
    let preview_fraction = state.config.playback.preview_fraction;
    let films = web::block(move || store.films())
        .await??
        .iter()
        .filter(|f| f.is_watchable())
        .map(|f| FilmView::new(f, preview_fraction))
        .collect();
    Ok(HttpResponse::Ok().json(FilmList { films }))
}

#[utoipa::path(
    get,
    operation_id = "getFilm",
    path = "/api/v1/films/{id}",
    tag = "films",
    summary = "One watchable film",
    params(
        ("id" = String, Path, description = "The film id"),
    ),
    responses(
        (status = 200, description = "The film", body = FilmView),
        (status = 404, description = "`not_found`", body = crate::api::schemas::ErrorBody),
    ),
)]
pub async fn detail(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let film = catalogue::watchable(&state.store, &path)?;
    Ok(HttpResponse::Ok().json(FilmView::new(&film, state.config.playback.preview_fraction)))
}

/// The film's poster frame; a public, cacheable file (conditional and range requests are
/// served as for any static file).
#[utoipa::path(
    get,
    operation_id = "getFilmPoster",
    path = "/api/v1/films/{id}/poster.jpg",
    tag = "films",
    summary = "A film's poster (JPEG)",
    params(
        ("id" = String, Path, description = "The film id"),
    ),
    responses(
        (status = 200, description = "The poster", content_type = "image/jpeg", body = inline(crate::api::schemas::Jpeg)),
        (status = 404, description = "`not_found`: no such watchable film, or it has no poster", body = crate::api::schemas::ErrorBody),
    ),
)]
pub async fn poster(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let film = catalogue::watchable(&state.store, &path)?;
    let playback = state.playback_access().playback_of(&film).await?;
    let poster = playback.dir.join(transcoder::POSTER_FILE);
    crate::server::files::jpeg(&req, &poster, Some("public, max-age=3600"))
        .await
        .ok_or_else(|| ApiError::not_found("poster"))
}

#[utoipa::path(
    post,
    operation_id = "startPlayback",
    path = "/api/v1/films/{id}/playback",
    tag = "films",
    summary = "Start playback: a playback token in the master playlist's URL",
    params(
        ("id" = String, Path, description = "The film id"),
    ),
    responses(
        (status = 200, description = "Where to play from, and how much is allowed", body = PlaybackResponse),
        crate::api::schemas::SignedInRefusals,
        (status = 404, description = "`not_found`", body = crate::api::schemas::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn playback(
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let film = catalogue::watchable(&state.store, &path)?;
    let (playback, view) = film_progress(&state, &viewer, &film).await?;
    let entitlement = gate::playback_entitlement(&state.store, &viewer.0, &film.id)?;
    let (token, master_path, expires_at) =
        state
            .playback_access()
            .start(&viewer.0, &film, state.clock.now());
    let base = state.config.public_url.trim_end_matches('/');
    tracing::info!(user = %viewer.0.id, film = %film.id, token = %token.id_hex(), ?entitlement, "playback started");
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(PlaybackResponse {
            master_url: format!("{base}{master_path}"),
            entitlement: entitlement.into(),
            preview_segments: playback.preview,
            total_segments: playback.segment_count(),
            resume_at_seconds: view.resume_at_seconds,
            expires_at,
            token_id: token.id_hex(),
        }))
}

#[utoipa::path(
    get,
    operation_id = "getFilmProgress",
    path = "/api/v1/films/{id}/progress",
    tag = "films",
    summary = "The viewer's counted progress in a film",
    params(
        ("id" = String, Path, description = "The film id"),
    ),
    responses(
        (status = 200, description = "Coverage, watch time, unlock", body = ProgressResponse),
        crate::api::schemas::SignedInRefusals,
        (status = 404, description = "`not_found`", body = crate::api::schemas::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn progress(
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let film = catalogue::watchable(&state.store, &path)?;
    let (_, view) = film_progress(&state, &viewer, &film).await?;
    Ok(HttpResponse::Ok().json(ProgressResponse::from(view)))
}

/// The film's playback data and this viewer's progress in it (unflushed events included).
async fn film_progress(
    state: &web::Data<AppState>,
    viewer: &Viewer,
    film: &Film,
) -> ApiResult<(Arc<FilmPlayback>, ProgressView)> {
    let playback = state.playback_access().playback_of(film).await?;
    let view = state.progress.view(
        &viewer.0.id,
        &film.id,
        &playback.manifest.segments,
        std::time::Instant::now(),
    )?;
    Ok((playback, view))
}
