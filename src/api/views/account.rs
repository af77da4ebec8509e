//! The signed-in viewer's own answers: the profile and token pairs.

use serde::Serialize;
use uuid::Uuid;

use crate::auth::session::TokenPair;
use crate::store::identities::Identity;
use crate::store::users::User;

use super::enums::{PlatformView, RoleView};

/// `GET /me`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MeView {
    #[schema(value_type = String)]
    pub id: Uuid,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub role: RoleView,
    pub created_at: i64,
    pub identities: Vec<IdentityView>,
}

impl MeView {
    pub fn new(user: User, identities: &[Identity]) -> Self {
        Self {
            id: user.id,
            email: user.email,
            email_verified: user.email_verified,
            name: user.name,
            role: user.role.into(),
            created_at: user.created_at,
            identities: identities.iter().map(IdentityView::from).collect(),
        }
    }
}

/// A linked provider as its owner sees it (not the provider's subject id).
#[derive(Serialize, utoipa::ToSchema)]
pub struct IdentityView {
    pub provider: String,
    pub email: Option<String>,
    pub linked_at: i64,
}

impl From<&Identity> for IdentityView {
    fn from(i: &Identity) -> Self {
        Self {
            provider: i.provider.clone(),
            email: i.email.clone(),
            linked_at: i.linked_at,
        }
    }
}

/// A new access token and its refresh token (link, refresh, exchange, native sign-in).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "access_token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl",
    "refresh_token": "Zk3pQ9wLr2Xc8Vn5Tb1Hy7Mg4Jd6Fs0Ae3Uo9Ki2Wq5",
    "token_type": "Bearer",
    "expires_in": 900
}))]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

impl From<TokenPair> for TokenResponse {
    fn from(p: TokenPair) -> Self {
        Self {
            access_token: p.access_token,
            refresh_token: p.refresh_token,
            token_type: p.token_type,
            expires_in: p.expires_in,
        }
    }
}

/// A device registered for push, as its owner sees it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeviceView {
    #[schema(value_type = String)]
    pub id: Uuid,
    pub platform: PlatformView,
    pub token: String,
    pub lang: String,
    pub created_at: i64,
    pub seen_at: i64,
}

impl From<&crate::store::devices::Device> for DeviceView {
    fn from(d: &crate::store::devices::Device) -> Self {
        Self {
            id: d.id,
            platform: d.platform.into(),
            token: d.token.clone(),
            lang: d.lang.clone(),
            created_at: d.created_at,
            seen_at: d.seen_at,
        }
    }
}

/// `GET /me/devices`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeviceList {
    pub devices: Vec<DeviceView>,
}

/// `POST /auth/session`: an access token for the browser's session (no refresh token: the
/// session cookie is what lasts).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "access_token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl",
    "token_type": "Bearer",
    "expires_in": 900
}))]
pub struct SessionToken {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

impl From<crate::auth::signin::AccessToken> for SessionToken {
    fn from(t: crate::auth::signin::AccessToken) -> Self {
        Self {
            access_token: t.access_token,
            token_type: t.token_type,
            expires_in: t.expires_in,
        }
    }
}
