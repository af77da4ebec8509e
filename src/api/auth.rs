//! Token endpoints: exchange a login link, refresh (rotating), logout.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::auth::session;
use crate::store::now;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    pub token: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Counts a sign-in request against `limits.auth_per_minute` for the client address.
pub(super) fn limit(state: &AppState, req: &HttpRequest) -> ApiResult<()> {
    state.auth_limiter.check(
        req.peer_addr().map(|a| a.ip()),
        state.config.limits.auth_per_minute,
        now(),
    )
}

fn non_empty(token: &str) -> ApiResult<&str> {
    let t = token.trim();
    if t.is_empty() || t.len() > 512 {
        return Err(ApiError::bad_request(
            "invalid_input",
            "the token is missing or too long",
        ));
    }
    Ok(t)
}

/// Credentials must never sit in a cache.
pub(super) fn tokens(pair: session::TokenPair) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(pair)
}

pub async fn link(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LinkRequest>,
) -> ApiResult<HttpResponse> {
    limit(&state, &req)?;
    let token = non_empty(&body.token)?;
    let pair = session::redeem_login_link(
        &state.store,
        &state.keys.access,
        &state.config.auth,
        token,
        now(),
    )?;
    Ok(tokens(pair))
}

pub async fn refresh(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<RefreshRequest>,
) -> ApiResult<HttpResponse> {
    limit(&state, &req)?;
    let token = non_empty(&body.refresh_token)?;
    let pair = session::refresh(
        &state.store,
        &state.keys.access,
        &state.config.auth,
        token,
        now(),
    )?;
    Ok(tokens(pair))
}

pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<RefreshRequest>,
) -> ApiResult<HttpResponse> {
    limit(&state, &req)?;
    let token = non_empty(&body.refresh_token)?;
    session::logout(&state.store, token)?;
    Ok(HttpResponse::NoContent().finish())
}
