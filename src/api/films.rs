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
use crate::stream::playlists::{FilmPlayback, PlaybackCache, Ticket};
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

/// The rendered playlists and secret of a packaged film, from the cache or disk.
pub async fn playback_of(state: &web::Data<AppState>, film: &Film) -> ApiResult<Arc<FilmPlayback>> {
    let package = film
        .package
        .as_ref()
        .ok_or_else(|| ApiError::not_found("film"))?;
    if let Some(p) = state.playback.get(&film.id, &package.dir) {
        return Ok(p);
    }
    let ticket = state.playback.ticket();
    let dir = crate::ingest::film_dir(&state.config, &film.id).join(&package.dir);
    let keys_dir = state.config.keys_dir.clone();
    let fraction = state.config.playback.preview_fraction;
    let film_id = film.id;
    let loaded = web::block(move || -> ApiResult<FilmPlayback> {
        let secret = crate::secrets::film_secret(&keys_dir, &film_id)?;
        Ok(FilmPlayback::load(&dir, secret, fraction)?)
    })
    .await??;
    let loaded = Arc::new(loaded);
    cache_if_current(
        &state.store,
        &state.playback,
        &film.id,
        &package.dir,
        loaded.clone(),
        ticket,
    );
    Ok(loaded)
}

/// Caches a load that began at `ticket` only if the film's record, read now, still names
/// the package it was loaded from. The ticket alone misses a delete or re-package that
/// landed after the caller read `film` but before it took the ticket: that load would be
/// cached — with the film's secret — for a film that is gone. The record is read after the
/// ticket, so whatever the ticket misses this read sees. Only on a miss, which reads the
/// disk anyway; a hit never reads the store here.
fn cache_if_current(
    store: &crate::store::Store,
    cache: &PlaybackCache,
    film: &Uuid,
    package: &str,
    loaded: Arc<FilmPlayback>,
    ticket: Ticket,
) -> bool {
    let current = match store.film(film) {
        Ok(current) => current,
        // Not cached; the request itself was already authorised on the earlier read.
        Err(e) => {
            tracing::warn!(film = %film, error = %e, "playback cache: could not re-read the film; not cached");
            return false;
        }
    };
    let same = current
        .as_ref()
        .and_then(|f| f.package.as_ref())
        .is_some_and(|p| p.dir == package);
    same && cache.insert(*film, package, loaded, ticket)
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
    let playback = playback_of(&state, &film).await?;
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
    let playback = playback_of(state, film).await?;
    let view = state.progress.view(
        &viewer.0.id,
        &film.id,
        &playback.manifest.segments,
        std::time::Instant::now(),
    )?;
    Ok((playback, view))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::films::PackageSummary;
    use crate::store::Store;

    fn packaged(id: Uuid, dir: &str) -> Film {
        let mut film = crate::ingest::new_film("A film".into(), String::new(), Vec::new(), 1);
        film.id = id;
        film.package = Some(PackageSummary {
            dir: dir.into(),
            duration: 6.0,
            segments: 1,
            renditions: Vec::new(),
            packaged_at: 1,
        });
        film
    }

    /// A request read the film, then the film was deleted and the cache invalidated, and
    /// only then did the request take its ticket and load: the ticket has seen no
    /// invalidation, but the load must not be cached (it holds the deleted film's secret).
    #[test]
    fn a_load_for_a_film_deleted_before_its_ticket_is_not_cached() -> crate::store::Result<()> {
        let store = Store::temporary()?;
        let cache = PlaybackCache::default();
        let id = crate::store::new_id();
        store.save_film(&packaged(id, "pkg-a"))?;
        let _read_by_the_request = store.film(&id)?;

        store.delete_film(&id)?;
        cache.invalidate(&id);

        let ticket = cache.ticket();
        let loaded = FilmPlayback::for_tests("pkg-a");
        assert!(!cache_if_current(
            &store, &cache, &id, "pkg-a", loaded, ticket
        ));
        assert!(
            cache.get(&id, "pkg-a").is_none(),
            "a deleted film stayed cached"
        );
        Ok(())
    }

    /// The same race with a re-package instead of a delete, and the ordinary miss.
    #[test]
    fn only_a_load_of_the_package_the_film_names_now_is_cached() -> crate::store::Result<()> {
        let store = Store::temporary()?;
        let cache = PlaybackCache::default();
        let id = crate::store::new_id();
        store.save_film(&packaged(id, "pkg-a"))?;

        store.save_film(&packaged(id, "pkg-b"))?;
        cache.invalidate(&id);
        let ticket = cache.ticket();
        let old = FilmPlayback::for_tests("pkg-a");
        assert!(!cache_if_current(&store, &cache, &id, "pkg-a", old, ticket));
        assert!(cache.get(&id, "pkg-a").is_none());

        let ticket = cache.ticket();
        let new = FilmPlayback::for_tests("pkg-b");
        assert!(cache_if_current(&store, &cache, &id, "pkg-b", new, ticket));
        assert!(cache.get(&id, "pkg-b").is_some());
        Ok(())
    }
}
