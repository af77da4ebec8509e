//! Complimentary access: `PUT`/`DELETE /admin/films/{id}/grants/{user_id}`.

use actix_web::{web, HttpResponse};

use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::Admin;
use crate::api::views::admin::GrantView;
use crate::catalogue;
use crate::state::AppState;
use crate::store::grants::Grant;
use crate::stream::gate::Entitlement;

fn ids(state: &AppState, film: &str, user: &str) -> ApiResult<(uuid::Uuid, uuid::Uuid)> {
    let film = catalogue::film(&state.store, film)?;
    let user = crate::store::parse_id(user)
        .and_then(|id| state.store.user(&id).ok().flatten())
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok((film.id, user.id))
}

#[utoipa::path(
    put,
    operation_id = "adminGrantFilm",
    path = "/api/v1/admin/films/{id}/grants/{user_id}",
    tag = "admin",
    summary = "Give an account the whole film, free",
    params(
        ("id" = String, Path, description = "The film id"),
        ("user_id" = String, Path, description = "The account id"),
    ),
    responses(
        (status = 200, description = "Granted (again: idempotent)", body = GrantView),
        (status = 404, description = "`not_found`: no such film or account", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::AdminRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn grant(
    state: web::Data<AppState>,
    admin: Admin,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (film, user) = ids(&state, &path.0, &path.1)?;
    state.store.grant(
        &film,
        &user,
        &Grant {
            granted_by: admin.0.id,
            granted_at: state.clock.now(),
        },
    )?;
    tracing::info!(%film, %user, admin = %admin.0.id, "access granted");
    Ok(HttpResponse::Ok().json(GrantView {
        film_id: film,
        user_id: user,
        entitlement: Entitlement::Full,
    }))
}

#[utoipa::path(
    delete,
    operation_id = "adminRevokeGrant",
    path = "/api/v1/admin/films/{id}/grants/{user_id}",
    tag = "admin",
    summary = "Take a complimentary grant back (purchases stay)",
    params(
        ("id" = String, Path, description = "The film id"),
        ("user_id" = String, Path, description = "The account id"),
    ),
    responses(
        (status = 204, description = "Revoked (or there was none)"),
        (status = 404, description = "`not_found`: no such film or account", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::AdminRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn revoke(
    state: web::Data<AppState>,
    admin: Admin,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (film, user) = ids(&state, &path.0, &path.1)?;
    state.store.revoke_grant(&film, &user)?;
    tracing::info!(%film, %user, admin = %admin.0.id, "access revoked");
    Ok(HttpResponse::NoContent().finish())
}
