//! `Viewer` and `Admin` extractors: a handler that takes one has a signed-in, enabled
//! user (and an admin) or never runs. The rules are `auth::access`'s; this file only finds
//! the token in the request.

use std::future::{ready, Ready};

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};

use super::error::ApiError;
use crate::auth::access::{self, AccessError};
use crate::state::AppState;
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
    let token = bearer(req).ok_or(AccessError::Missing)?;
    access::signed_in(&state.store, &state.keys.access, token, state.clock.now())
        .map_err(ApiError::from)
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
        ready(
            signed_in(req).and_then(|user| access::admin(user).map(Admin).map_err(ApiError::from)),
        )
    }
}
