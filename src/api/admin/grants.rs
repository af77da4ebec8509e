//! Complimentary access: `PUT`/`DELETE /admin/films/{id}/grants/{user_id}`.

use actix_web::{web, HttpResponse};

use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::Admin;
use crate::state::AppState;
use crate::store::grants::Grant;
use crate::store::now;

fn ids(state: &AppState, film: &str, user: &str) -> ApiResult<(uuid::Uuid, uuid::Uuid)> {
    let film = super::films::film_by_id(state, film)?;
    let user = crate::store::parse_id(user)
        .and_then(|id| state.store.user(&id).ok().flatten())
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok((film.id, user.id))
}

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
            granted_at: now(),
        },
    )?;
    tracing::info!(%film, %user, admin = %admin.0.id, "access granted");
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "film_id": film, "user_id": user, "entitlement": "full" })))
}

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
