//! Admin user listing.

use actix_web::{web, HttpResponse};

use crate::api::error::ApiResult;
use crate::api::extract::Admin;
use crate::api::views::admin::{AdminUserView, UserList};
use crate::state::AppState;

#[utoipa::path(
    get,
    operation_id = "adminListUsers",
    path = "/api/v1/admin/users",
    tag = "admin",
    summary = "Every account",
    responses(
        (status = 200, description = "The accounts", body = UserList),
        crate::api::schemas::AdminRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn list(state: web::Data<AppState>, _admin: Admin) -> ApiResult<HttpResponse> {
    // Reads every user: off the runtime's threads.
    let store = state.store.clone();
    let users = web::block(move || store.users()).await??;
    let users = users.iter().map(AdminUserView::from).collect();
    Ok(HttpResponse::Ok().json(UserList { users }))
}
