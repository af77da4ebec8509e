//! The general request budgets of `/api/v1` (`ratelimit::ApiLimits`), as a middleware on
//! that scope: every request counts once against its client address (`trusted_proxies`
//! aware, IPv6 by its /64) and, when it carries a valid access token or a live session
//! cookie, against that account too; reads and writes apart. A request past a budget is
//! answered 429 `rate_limited` before any handler runs, with `Retry-After` and the
//! RateLimit headers of draft-ietf-httpapi-ratelimit-headers-09 (`RateLimit-Policy`,
//! `RateLimit`), which every answer within budget carries as well. `/hls/`, the pages and
//! the assets are outside the scope and never counted here.
//!
//! Who the account is, is read without a store lookup for a bearer (the token's signature
//! names its user; a revoked account's requests are refused by the handler anyway) and with
//! one session read for a cookie. An invalid or expired credential counts only against the
//! address.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::web;
use uuid::Uuid;

use super::codes::Code;
use super::error::ApiError;
use crate::ratelimit::{Access, Refused, Standing};
use crate::state::AppState;

const POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Wrapped around the `/api/v1` scope (`api::configure`).
pub async fn api_budgets(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let access = match *req.method() {
        Method::GET | Method::HEAD => Access::Read,
        _ => Access::Write,
    };
    let client = state.trusted_proxies.key_of(req.request());
    let account = account(&state, &req);
    match state.api_limits.check(access, client, account) {
        Ok(standing) => {
            let mut res = next.call(req).await?;
            // A handler's own budget (sign-in, token failures, …) refused it: its 429
            // speaks for that budget, not this one.
            if res.status() != StatusCode::TOO_MANY_REQUESTS {
                add_headers(res.headers_mut(), &standing);
            }
            Ok(res.map_into_left_body())
        }
        Err(refused) => {
            let res = req.error_response(refusal(&refused));
            Ok(res.map_into_right_body())
        }
    }
}

/// The signed-in account a request speaks for, if its credential is genuine.
fn account(state: &AppState, req: &ServiceRequest) -> Option<Uuid> {
    let now = state.clock.now();
    if let Some(token) = super::extract::bearer(req.request()) {
        return crate::auth::jwt::verify(&state.keys.access, token, now)
            .ok()
            .map(|claims| claims.sub);
    }
    let cookie = crate::server::session::session_value(req.request())?;
    state
        .store
        .session(&cookie)
        .ok()
        .flatten()
        .filter(|s| s.expires_at > now)
        .map(|s| s.user_id)
}

/// 429 `rate_limited`, in the shape of every refusal (`retry_after` in the body and in
/// `Retry-After`), with the budget's standing.
fn refusal(refused: &Refused) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        Code::RateLimited,
        "too many requests; try again shortly",
    )
    .with("retry_after", refused.retry_after)
    .header("Retry-After", refused.retry_after.to_string())
    .header("RateLimit-Policy", refused.standing.policy_header())
    .header("RateLimit", refused.standing.header())
}

fn add_headers(headers: &mut actix_web::http::header::HeaderMap, standing: &Standing) {
    if let Ok(v) = HeaderValue::from_str(&standing.policy_header()) {
        headers.insert(POLICY, v);
    }
    if let Ok(v) = HeaderValue::from_str(&standing.header()) {
        headers.insert(RATELIMIT, v);
    }
}
