//! The signed-in viewer: profile and progress across films.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use uuid::Uuid;

use super::error::ApiResult;
use super::AppState;
use crate::auth::Viewer;
use crate::stream::progress::{self, ProgressView};

pub async fn me(viewer: Viewer) -> ApiResult<HttpResponse> {
    let u = viewer.0;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "id": u.id,
        "email": u.email,
        "name": u.name,
        "role": u.role,
        "created_at": u.created_at,
    })))
}

#[derive(Serialize)]
struct FilmProgress {
    film_id: Uuid,
    title: String,
    #[serde(flatten)]
    progress: ProgressView,
}

pub async fn progress(state: web::Data<AppState>, viewer: Viewer) -> ApiResult<HttpResponse> {
    let user = viewer.0.id;
    // Films with stored progress, plus any whose first progress is not flushed yet; each
    // read merges the unflushed delta, so nothing here writes.
    let mut films: Vec<Uuid> = state
        .store
        .progress_of_user(&user)?
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    films.extend(state.progress.pending_films(&user));
    films.sort_unstable();
    films.dedup();
    let mut out = Vec::new();
    for film_id in films {
        let Some(film) = state.store.film(&film_id)?.filter(|f| f.is_watchable()) else {
            continue;
        };
        let Ok(playback) = super::films::playback_of(&state, &film).await else {
            continue;
        };
        let record = state.progress.get(&user, &film_id)?;
        out.push(FilmProgress {
            film_id,
            title: film.title.clone(),
            progress: progress::view(
                record.as_ref(),
                &playback.manifest.segments,
                state.config.playback.unlock_fraction,
            ),
        });
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "films": out })))
}
