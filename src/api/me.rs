//! The signed-in viewer: profile, linked providers, progress across films, signing out
//! everywhere, and deleting the account.

use actix_web::{web, HttpResponse};
use uuid::Uuid;

use super::error::{ApiError, ApiResult};
use crate::api::extract::Viewer;
use crate::api::views::account::MeView;
use crate::api::views::catalogue::{FilmProgress, ProgressList};
use crate::state::AppState;

#[utoipa::path(
    get,
    operation_id = "getMe",
    path = "/api/v1/me",
    tag = "account",
    summary = "The signed-in account",
    responses(
        (status = 200, description = "The account", body = MeView),
        crate::api::schemas::SignedInRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn me(state: web::Data<AppState>, viewer: Viewer) -> ApiResult<HttpResponse> {
    let identities = state.store.identities_of(&viewer.0.id)?;
    Ok(HttpResponse::Ok().json(MeView::new(viewer.0, &identities)))
}

/// Ends every sign-in of the account: access tokens, refresh tokens and browser sessions
/// carry the epoch they were issued in, and it moves on here.
#[utoipa::path(
    post,
    operation_id = "logoutEverywhere",
    path = "/api/v1/auth/logout-all",
    tag = "auth",
    summary = "End every sign-in of the account",
    responses(
        (status = 204, description = "Every token and session of the account ended"),
        crate::api::schemas::SignedInRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn logout_all(state: web::Data<AppState>, viewer: Viewer) -> ApiResult<HttpResponse> {
    // An update of the stored record, not a save of the copy read for this request: a
    // concurrent change (a promotion at sign-in) must neither undo nor be undone by it.
    let id = viewer.0.id;
    state
        .store
        .update_user(&id, |u| u.session_epoch = u.session_epoch.wrapping_add(1))?;
    tracing::info!(user = %id, "signed out everywhere");
    Ok(HttpResponse::NoContent().finish())
}

/// Deletes the account (docs/AUTH.md): grants stay for accounting, everything that
/// identifies or signs in the person goes.
#[utoipa::path(
    delete,
    operation_id = "deleteMe",
    path = "/api/v1/me",
    tag = "account",
    summary = "Delete the account",
    responses(
        (status = 204, description = "Deleted"),
        crate::api::schemas::SignedInRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn delete(state: web::Data<AppState>, viewer: Viewer) -> ApiResult<HttpResponse> {
    let id = viewer.0.id;
    state.progress.forget_user(&id);
    state.store.delete_user(&id)?;
    state.progress.forget_user(&id);
    tracing::info!(user = %id, "account deleted");
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    delete,
    operation_id = "unlinkProvider",
    path = "/api/v1/me/identities/{provider}",
    tag = "account",
    summary = "Unlink a sign-in provider",
    params(
        ("provider" = String, Path, description = "The provider id"),
    ),
    responses(
        (status = 204, description = "Unlinked"),
        crate::api::schemas::SignedInRefusals,
        (status = 404, description = "`not_found`: not linked", body = crate::api::schemas::ErrorBody),
        (status = 409, description = "`last_identity`: the account's only way to sign in", body = crate::api::schemas::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn unlink(
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let provider = crate::auth::identity::ProviderId::parse(&path)
        .ok_or_else(|| ApiError::not_found("provider"))?;
    if !crate::auth::accounts::unlink(&state.store, &viewer.0, provider.as_str())? {
        return Err(ApiError::not_found("linked provider"));
    }
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    operation_id = "listMyProgress",
    path = "/api/v1/me/progress",
    tag = "account",
    summary = "The viewer's progress in every film begun",
    responses(
        (status = 200, description = "Progress per film", body = ProgressList),
        crate::api::schemas::SignedInRefusals,
    ),
    security(("bearer" = [])),
)]
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
        let Ok(playback) = state.playback_access().playback_of(&film).await else {
            continue;
        };
        out.push(FilmProgress {
            film_id,
            title: film.title.clone(),
            progress: state
                .progress
                .view(
                    &user,
                    &film_id,
                    &playback.manifest.segments,
                    std::time::Instant::now(),
                )?
                .into(),
        });
    }
    Ok(HttpResponse::Ok().json(ProgressList { films: out }))
}
