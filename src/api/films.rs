//! The viewer catalogue, posters, starting playback and reading progress.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use uuid::Uuid;

use super::error::{ApiError, ApiResult};
use crate::api::extract::Viewer;
use crate::state::AppState;
use crate::store::films::{Film, Price};
use crate::store::now;
use crate::stream::gate::{self, Entitlement};
use crate::stream::playlists::FilmPlayback;
use crate::stream::progress::ProgressView;
use crate::stream::token::PlaybackToken;

#[derive(Serialize)]
pub struct FilmView {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    pub prices: Vec<Price>,
    pub duration_seconds: f64,
    pub poster_url: String,
    pub total_segments: usize,
    pub preview_segments: usize,
    pub preview_seconds: f64,
}

pub fn film_view(state: &AppState, film: &Film) -> FilmView {
    let (duration, total) = film
        .package
        .as_ref()
        .map_or((0.0, 0), |p| (p.duration, p.segments));
    let preview = gate::preview_segments(total, state.config.playback.preview_fraction);
    let preview_seconds = if total == 0 {
        0.0
    } else {
        (duration * preview as f64 / total as f64 * 10.0).round() / 10.0
    };
    FilmView {
        id: film.id,
        title: film.title.clone(),
        description: film.description.clone(),
        prices: film.prices.clone(),
        duration_seconds: duration,
        poster_url: format!("/api/v1/films/{}/poster.jpg", film.id),
        total_segments: total,
        preview_segments: preview,
        preview_seconds,
    }
}

/// A published, packaged film, or 404 (drafts are invisible to viewers).
pub fn watchable_film(state: &AppState, id: &str) -> ApiResult<Film> {
    let id = crate::store::parse_id(id).ok_or_else(|| ApiError::not_found("film"))?;
    state
        .store
        .film(&id)?
        .filter(Film::is_watchable)
        .ok_or_else(|| ApiError::not_found("film"))
}

pub async fn list(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    // Reads every film: off the runtime's threads.
    let store = state.store.clone();
    let films: Vec<FilmView> = web::block(move || store.films())
        .await??
        .iter()
        .filter(|f| f.is_watchable())
        .map(|f| film_view(&state, f))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "films": films })))
}

pub async fn detail(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let film = watchable_film(&state, &path)?;
    Ok(HttpResponse::Ok().json(film_view(&state, &film)))
}

pub async fn poster(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let film = watchable_film(&state, &path)?;
    let playback = state.playback_access().playback_of(&film).await?;
    let file = actix_files::NamedFile::open_async(playback.dir.join(transcoder::POSTER_FILE))
        .await
        .map_err(|_| ApiError::not_found("poster"))?
        .set_content_type(mime::IMAGE_JPEG);
    let mut response = file.into_response(&req);
    response.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("public, max-age=3600"),
    );
    Ok(response)
}

#[derive(Serialize)]
pub struct PlaybackResponse {
    pub master_url: String,
    pub entitlement: Entitlement,
    pub preview_segments: usize,
    pub total_segments: usize,
    pub resume_at_seconds: f64,
    pub expires_at: i64,
    /// Names the token in support requests and logs; not a credential.
    pub token_id: String,
}

pub async fn playback(
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let film = watchable_film(&state, &path)?;
    let (playback, view) = film_progress(&state, &viewer, &film).await?;
    let entitlement = gate::entitlement(&state.store, &viewer.0.id, &film.id)?;
    let expires_at = now() + state.config.playback.token_ttl.as_secs() as i64;
    let token = PlaybackToken::new(viewer.0.id, film.id, viewer.0.session_epoch, expires_at);
    let base = state.config.public_url.trim_end_matches('/');
    tracing::info!(user = %viewer.0.id, film = %film.id, token = %token.id_hex(), ?entitlement, "playback started");
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(PlaybackResponse {
            master_url: format!(
                "{base}/hls/{}/master.m3u8",
                token.encode(&state.keys.playback)
            ),
            entitlement,
            preview_segments: playback.preview,
            total_segments: playback.segment_count(),
            resume_at_seconds: view.resume_at_seconds,
            expires_at,
            token_id: token.id_hex(),
        }))
}

pub async fn progress(
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let film = watchable_film(&state, &path)?;
    let (_, view) = film_progress(&state, &viewer, &film).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// The film's playback data and this viewer's progress in it (unflushed events included).
pub(crate) async fn film_progress(
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
