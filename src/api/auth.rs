//! Token endpoints: exchange a login link, refresh (rotating), logout.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::error::{ApiError, ApiResult, Code};
use crate::api::views::account::TokenResponse;
use crate::auth::session;
use crate::ratelimit::Budget;
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token": "q8W2mR5tYx0bN3vK7cJ1pL9sD4fG6hZaE2uI8oTrXyw"}))]
pub struct LinkRequest {
    pub token: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refresh_token": "Zk3pQ9wLr2Xc8Vn5Tb1Hy7Mg4Jd6Fs0Ae3Uo9Ki2Wq5"}))]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Counts a request against the client address's `budget` (`server::client` says who
/// the client is).
pub(super) fn limit(state: &AppState, req: &HttpRequest, budget: Budget) -> ApiResult<()> {
    state
        .limits
        .client(budget, state.trusted_proxies.key_of(req), state.clock.now())
        .map_err(ApiError::from)
}

/// A failed attempt on a token endpoint (a token or code that is malformed, unknown,
/// invalid or expired) counts against the client address; past that budget it is answered
/// 429 instead. Valid uses never count here, so junk from one address cannot refuse
/// anyone's good token, even from the same address (a proxy that is not trusted, a NAT).
pub(super) fn counting_failures<T>(
    state: &AppState,
    req: &HttpRequest,
    result: ApiResult<T>,
) -> ApiResult<T> {
    match result {
        Err(e)
            if matches!(
                e.code,
                Code::InvalidInput | Code::InvalidToken | Code::TokenExpired | Code::InvalidCode
            ) =>
        {
            limit(state, req, Budget::TokenFailures)?;
            Err(e)
        }
        other => other,
    }
}

/// A refresh token we know, in any state, is a use of its family (one sign-in) and counts
/// against that family; an unknown one is a failed attempt by the client address.
fn charge_refresh_token(state: &AppState, req: &HttpRequest, token: &str) -> ApiResult<()> {
    match state.store.refresh_family(token)? {
        Some(family) => state
            .limits
            .family(family, state.clock.now())
            .map_err(ApiError::from),
        None => limit(state, req, Budget::TokenFailures),
    }
}

fn non_empty(token: &str) -> ApiResult<&str> {
    let t = token.trim();
    if t.is_empty() || t.len() > 512 {
        return Err(ApiError::bad_request(
            Code::InvalidInput,
            "the token is missing or too long",
        ));
    }
    Ok(t)
}

/// Credentials must never sit in a cache.
pub(super) fn tokens(pair: session::TokenPair) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(TokenResponse::from(pair))
}

#[utoipa::path(
    post,
    operation_id = "redeemLoginLink",
    path = "/api/v1/auth/link",
    tag = "auth",
    summary = "Redeem a one-time login link for a token pair",
    request_body = LinkRequest,
    responses(
        (status = 200, description = "A token pair", body = TokenResponse),
        (status = 400, description = "`invalid_input` (empty or too long), `invalid_json`", body = crate::api::schemas::ErrorBody),
        (status = 401, description = "`invalid_token`, `token_expired`: unknown, used or expired link", body = crate::api::schemas::ErrorBody),
        (status = 403, description = "`account_disabled`", body = crate::api::schemas::ErrorBody),
        (status = 413, description = "`body_too_large`", body = crate::api::schemas::ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send `application/json`", body = crate::api::schemas::ErrorBody),
        (status = 429, description = "`rate_limited`: wait `retry_after` seconds", body = crate::api::schemas::ErrorBody),
    ),
)]
pub async fn link(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LinkRequest>,
) -> ApiResult<HttpResponse> {
    let redeemed = non_empty(&body.token).and_then(|token| {
        Ok(session::redeem_login_link(
            &state.store,
            &state.keys.access,
            &state.config.auth,
            token,
            state.clock.now(),
        )?)
    });
    // A login link is single-use: a valid one limits itself.
    counting_failures(&state, &req, redeemed).map(tokens)
}

#[utoipa::path(
    post,
    operation_id = "refreshTokens",
    path = "/api/v1/auth/refresh",
    tag = "auth",
    summary = "Rotate a refresh token",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair", body = TokenResponse),
        (status = 400, description = "`invalid_input`, `invalid_json`", body = crate::api::schemas::ErrorBody),
        (status = 401, description = "`invalid_token`, `token_expired`, `token_reused` (the whole sign-in ends)", body = crate::api::schemas::ErrorBody),
        (status = 403, description = "`account_disabled`", body = crate::api::schemas::ErrorBody),
        (status = 413, description = "`body_too_large`", body = crate::api::schemas::ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send `application/json`", body = crate::api::schemas::ErrorBody),
        (status = 429, description = "`rate_limited`: wait `retry_after` seconds", body = crate::api::schemas::ErrorBody),
    ),
)]
pub async fn refresh(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<RefreshRequest>,
) -> ApiResult<HttpResponse> {
    let token = counting_failures(&state, &req, non_empty(&body.refresh_token))?;
    charge_refresh_token(&state, &req, token)?;
    let pair = session::refresh(
        &state.store,
        &state.keys.access,
        &state.config.auth,
        token,
        state.clock.now(),
    )?;
    Ok(tokens(pair))
}

#[utoipa::path(
    post,
    operation_id = "logout",
    path = "/api/v1/auth/logout",
    tag = "auth",
    summary = "End the sign-in of a refresh token",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "Signed out"),
        (status = 400, description = "`invalid_input`, `invalid_json`", body = crate::api::schemas::ErrorBody),
        (status = 401, description = "`invalid_token`", body = crate::api::schemas::ErrorBody),
        (status = 413, description = "`body_too_large`", body = crate::api::schemas::ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send `application/json`", body = crate::api::schemas::ErrorBody),
        (status = 429, description = "`rate_limited`: wait `retry_after` seconds", body = crate::api::schemas::ErrorBody),
    ),
)]
pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<RefreshRequest>,
) -> ApiResult<HttpResponse> {
    let token = counting_failures(&state, &req, non_empty(&body.refresh_token))?;
    charge_refresh_token(&state, &req, token)?;
    session::logout(&state.store, token)?;
    Ok(HttpResponse::NoContent().finish())
}
