//! The signed-in viewer's devices for push notifications: register (or refresh) a token,
//! list, remove.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::error::{ApiError, ApiResult};
use crate::api::extract::Viewer;
use crate::api::views::account::{DeviceList, DeviceView};
use crate::notify::push::devices;
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"platform": "android", "token": "fcm-d7Qk2Lr9:APA91bHx0Zy3mN8vB5cT1wE6uI4oP2aS7dF9gJ0kL3zX", "lang": "ko"}))]
pub struct RegisterRequest {
    platform: String,
    token: String,
    /// The device's language (`en`, `ko`, `ko-KR`…); English when absent.
    #[serde(default)]
    lang: Option<String>,
}

/// `POST /me/devices`: 201 with the new device, or 200 with the same device when this
/// user registered the token before.
#[utoipa::path(
    post,
    operation_id = "registerDevice",
    path = "/api/v1/me/devices",
    tag = "account",
    summary = "Register a push device",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "The new device", body = DeviceView),
        (status = 200, description = "The token was registered before", body = DeviceView),
        (status = 400, description = "`invalid_json`", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::SignedInRefusals,
        (status = 413, description = "`body_too_large`", body = crate::api::schemas::ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send `application/json`", body = crate::api::schemas::ErrorBody),
        (status = 422, description = "`invalid_platform`, `invalid_device_token`, `invalid_input`", body = crate::api::schemas::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn register(
    state: web::Data<AppState>,
    viewer: Viewer,
    body: web::Json<RegisterRequest>,
) -> ApiResult<HttpResponse> {
    let (device, created) = devices::register(
        &state.store,
        &viewer.0.id,
        &body.platform,
        &body.token,
        body.lang.as_deref(),
        state.clock.now(),
    )?;
    let view = DeviceView::from(&device);
    Ok(if created {
        HttpResponse::Created().json(view)
    } else {
        HttpResponse::Ok().json(view)
    })
}

#[utoipa::path(
    get,
    operation_id = "listDevices",
    path = "/api/v1/me/devices",
    tag = "account",
    summary = "The account's push devices",
    responses(
        (status = 200, description = "The devices", body = DeviceList),
        crate::api::schemas::SignedInRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn list(state: web::Data<AppState>, viewer: Viewer) -> ApiResult<HttpResponse> {
    let devices = state.store.devices_of(&viewer.0.id)?;
    Ok(HttpResponse::Ok().json(DeviceList {
        devices: devices.iter().map(DeviceView::from).collect(),
    }))
}

/// `DELETE /me/devices/{id}`: only the viewer's own; anyone else's is not found.
#[utoipa::path(
    delete,
    operation_id = "deleteDevice",
    path = "/api/v1/me/devices/{id}",
    tag = "account",
    summary = "Remove one of the account's push devices",
    params(
        ("id" = String, Path, description = "The device id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        crate::api::schemas::SignedInRefusals,
        (status = 404, description = "`not_found`", body = crate::api::schemas::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn delete(
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = crate::store::parse_id(&path).ok_or_else(|| ApiError::not_found("device"))?;
    if !state.store.delete_device(&viewer.0.id, &id)? {
        return Err(ApiError::not_found("device"));
    }
    Ok(HttpResponse::NoContent().finish())
}
