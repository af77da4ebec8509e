//! Notifications: the viewer's preferences (`/me/notifications`), the one-click
//! unsubscribe link of "new film" mail (`/unsubscribe?token=…`, RFC 8058), and the
//! admins' dead letters (`/admin/notifications/dead`).

use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::error::{ApiError, ApiResult};
use super::extract::{Admin, Viewer};
use super::views::notifications::{DeadLetterList, DeadLetterView, PrefsView};
use crate::notify::{unsubscribe, Language};
use crate::state::AppState;

#[utoipa::path(
    get,
    operation_id = "getNotificationPrefs",
    path = "/api/v1/me/notifications",
    tag = "account",
    summary = "The account's notification preferences",
    responses(
        (status = 200, description = "The preferences", body = PrefsView),
        crate::api::schemas::SignedInRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn prefs(state: web::Data<AppState>, viewer: Viewer) -> ApiResult<HttpResponse> {
    let prefs = state.store.notification_prefs(&viewer.0.id)?;
    Ok(HttpResponse::Ok().json(PrefsView::from(&prefs)))
}

/// A change of preferences; absent fields stay as they are.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrefsChange {
    pub new_films_email: Option<bool>,
    pub new_films_push: Option<bool>,
    pub language: Option<String>,
}

impl PrefsChange {
    /// The language asked for, checked (`None`: unchanged).
    pub fn language(&self) -> Result<Option<Language>, ApiError> {
        self.language
            .as_deref()
            .map(|l| {
                Language::parse(l)
                    .ok_or_else(|| ApiError::validation("language must be \"en\" or \"ko\""))
            })
            .transpose()
    }
}

#[utoipa::path(
    put,
    operation_id = "setNotificationPrefs",
    path = "/api/v1/me/notifications",
    tag = "account",
    summary = "Change notification preferences; absent fields stay",
    request_body = PrefsChange,
    responses(
        (status = 200, description = "The preferences now", body = PrefsView),
        (status = 400, description = "`invalid_json`", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::SignedInRefusals,
        (status = 413, description = "`body_too_large`", body = crate::api::schemas::ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send `application/json`", body = crate::api::schemas::ErrorBody),
        (status = 422, description = "`invalid_input`: an unknown language", body = crate::api::schemas::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn set_prefs(
    state: web::Data<AppState>,
    viewer: Viewer,
    body: web::Json<PrefsChange>,
) -> ApiResult<HttpResponse> {
    let language = body.language()?;
    let prefs = state.store.update_notification_prefs(&viewer.0.id, |p| {
        if let Some(v) = body.new_films_email {
            p.new_films_email = v;
        }
        if let Some(v) = body.new_films_push {
            p.new_films_push = v;
        }
        if let Some(l) = language {
            p.language = l;
        }
    })?;
    Ok(HttpResponse::Ok().json(PrefsView::from(&prefs)))
}

#[utoipa::path(
    get,
    operation_id = "adminListDeadLetters",
    path = "/api/v1/admin/notifications/dead",
    tag = "admin",
    summary = "Notifications that gave up after their retries",
    responses(
        (status = 200, description = "The dead letters", body = DeadLetterList),
        crate::api::schemas::AdminRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn dead(state: web::Data<AppState>, _admin: Admin) -> ApiResult<HttpResponse> {
    let st = state.clone();
    let dead = web::block(move || st.store.dead_letters())
        .await
        .map_err(|e| ApiError::internal(&e))??;
    Ok(HttpResponse::Ok().json(DeadLetterList {
        dead: dead.iter().map(DeadLetterView::from).collect(),
    }))
}

#[utoipa::path(
    post,
    operation_id = "adminRetryDeadLetter",
    path = "/api/v1/admin/notifications/dead/{id}/retry",
    tag = "admin",
    summary = "Send a dead letter again",
    params(
        ("id" = String, Path, description = "The dead letter id"),
    ),
    responses(
        (status = 200, description = "The entry, queued again", body = DeadLetterView),
        (status = 404, description = "`not_found`: no such dead letter (or not an id)", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::AdminRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn retry_dead(
    state: web::Data<AppState>,
    admin: Admin,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let entry = state
        .notify
        .retry_dead(&state.store, &id)?
        .ok_or_else(|| ApiError::not_found("dead letter"))?;
    tracing::info!(admin = %admin.0.id, id = %id, "dead letter retried");
    Ok(HttpResponse::Ok().json(DeadLetterView::from(&entry)))
}

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    pub token: String,
}

#[derive(Template)]
#[template(path = "unsubscribe.html")]
struct UnsubscribePage<'a> {
    token: &'a str,
    done: bool,
}

fn page(token: &str, done: bool) -> ApiResult<HttpResponse> {
    let html = UnsubscribePage { token, done }
        .render()
        .map_err(|e| ApiError::internal(&e))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(html))
}

fn user_of(state: &AppState, token: &str) -> Result<Uuid, ApiError> {
    unsubscribe::verify(&state.keys.access, token)
        .ok_or_else(|| ApiError::not_found("unsubscribe link"))
}

/// `GET /unsubscribe?token=…`: a page with one button (a GET changes nothing: mail
/// scanners open links).
pub async fn unsubscribe_page(
    state: web::Data<AppState>,
    q: web::Query<TokenQuery>,
) -> ApiResult<HttpResponse> {
    user_of(&state, &q.token)?;
    page(&q.token, false)
}

/// `POST /unsubscribe?token=…`: the one-click unsubscribe (RFC 8058: a mail client posts
/// `List-Unsubscribe=One-Click`; the page's button posts the same). "New film" mail stops.
pub async fn unsubscribe(
    state: web::Data<AppState>,
    q: web::Query<TokenQuery>,
) -> ApiResult<HttpResponse> {
    let user = user_of(&state, &q.token)?;
    // A deleted account has nothing to turn off (and gets no preferences back).
    if state.store.user(&user)?.is_some() {
        state
            .store
            .update_notification_prefs(&user, |p| p.new_films_email = false)?;
        tracing::info!(user = %user, "unsubscribed from new-film mail");
    }
    page(&q.token, true)
}
