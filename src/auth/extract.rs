//! `Viewer` and `Admin` extractors: a handler that takes one has a signed-in, enabled
//! user (and an admin) or never runs. The user is loaded from the store on every request,
//! so a ban or deletion takes effect at once whatever the token's age.

use std::future::{ready, Ready};

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};

use super::jwt::{self, TokenError};
use crate::api::error::ApiError;
use crate::api::AppState;
use crate::store::users::User;

#[derive(Debug, Clone)]
pub struct Viewer(pub User);

#[derive(Debug, Clone)]
pub struct Admin(pub User);

pub(crate) fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

pub(crate) fn signed_in(req: &HttpRequest) -> Result<User, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal(&"application state missing"))?;
    let token = bearer(req).ok_or_else(|| {
        ApiError::unauthorized(
            "unauthenticated",
            "sign in: send an access token as `Authorization: Bearer …`",
        )
    })?;
    let claims =
        jwt::verify(&state.keys.access, token, crate::store::now()).map_err(|e| match e {
            TokenError::Expired => {
                ApiError::unauthorized("token_expired", "the access token has expired; refresh it")
            }
            TokenError::Invalid => {
                ApiError::unauthorized("invalid_token", "the access token is not valid")
            }
        })?;
    let user = state
        .store
        .user(&claims.sub)?
        .ok_or_else(|| ApiError::unauthorized("invalid_token", "the account no longer exists"))?;
    if claims.sep != user.session_epoch {
        return Err(ApiError::unauthorized(
            "invalid_token",
            "this sign-in was ended (signed out everywhere); sign in again",
        ));
    }
    if user.disabled {
        return Err(ApiError::forbidden(
            "account_disabled",
            "the account is disabled",
        ));
    }
    Ok(user)
}

impl FromRequest for Viewer {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(signed_in(req).map(Viewer))
    }
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(signed_in(req).and_then(|user| {
            // The role comes from the store, not the token: a demotion takes effect at once.
            if user.is_admin() {
                Ok(Admin(user))
            } else {
                Err(ApiError::forbidden(
                    "admin_only",
                    "this needs an administrator",
                ))
            }
        }))
    }
}
