//! Sign-in sessions: a token pair per sign-in, refresh with rotation and reuse detection,
//! logout, and one-time login links for operators bootstrapping the first admin.

use base64::Engine;
use rand::RngCore;
use serde::Serialize;
use uuid::Uuid;

use super::identity::IdentityError;
use crate::config::AuthConfig;
use crate::store::tokens::{LoginLink, RefreshRecord, Rotation};
use crate::store::users::User;
use crate::store::{Store, StoreError};

#[derive(Debug, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the token is not valid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
    #[error("the refresh token was already used; every session of that sign-in has been ended")]
    Reused,
    #[error("the account is disabled")]
    Disabled,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The user of the browser session whose cookie value is `cookie`, at `now`: the session
/// must be live, the account's session epoch unchanged since it began, and the account
/// enabled.
pub fn session_user(store: &Store, cookie: &str, now: i64) -> Result<User, IdentityError> {
    let session = store
        .session(cookie)?
        .filter(|s| s.expires_at > now)
        .ok_or(IdentityError::Unauthenticated)?;
    let user = store
        .user(&session.user_id)?
        .filter(|u| u.session_epoch == session.epoch)
        .ok_or(IdentityError::Unauthenticated)?;
    if user.disabled {
        return Err(IdentityError::Disabled);
    }
    Ok(user)
}

/// 32 random bytes, URL-safe base64: unguessable opaque tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn start(
    store: &Store,
    key: &[u8; 32],
    cfg: &AuthConfig,
    user: &User,
    now: i64,
) -> Result<TokenPair, SessionError> {
    issue_pair(store, key, cfg, user, crate::store::new_id(), now)
}

fn issue_pair(
    store: &Store,
    key: &[u8; 32],
    cfg: &AuthConfig,
    user: &User,
    family: Uuid,
    now: i64,
) -> Result<TokenPair, SessionError> {
    if user.disabled {
        return Err(SessionError::Disabled);
    }
    let refresh_token = random_token();
    store.add_refresh_token(
        &refresh_token,
        &RefreshRecord {
            user_id: user.id,
            family,
            expires_at: now + cfg.refresh_ttl.as_secs() as i64,
            rotated: false,
            revoked: false,
            epoch: user.session_epoch,
        },
    )?;
    Ok(pair(key, cfg, user, refresh_token, now))
}

fn pair(key: &[u8; 32], cfg: &AuthConfig, user: &User, refresh: String, now: i64) -> TokenPair {
    let ttl = cfg.access_ttl.as_secs() as i64;
    TokenPair {
        access_token: super::jwt::issue(key, user, now, ttl),
        refresh_token: refresh,
        token_type: "Bearer",
        expires_in: ttl,
    }
}

/// Rotates `token`: the successor is stored in the same transaction that marks `token`
/// used (see `Store::rotate_refresh_token`).
pub fn refresh(
    store: &Store,
    key: &[u8; 32],
    cfg: &AuthConfig,
    token: &str,
    now: i64,
) -> Result<TokenPair, SessionError> {
    let successor = random_token();
    let expires_at = now + cfg.refresh_ttl.as_secs() as i64;
    match store.rotate_refresh_token(token, &successor, now, expires_at)? {
        Rotation::Rotated(user) => Ok(pair(key, cfg, &user, successor, now)),
        Rotation::Unknown | Rotation::Ended => Err(SessionError::Invalid),
        Rotation::Expired => Err(SessionError::Expired),
        Rotation::Reused => Err(SessionError::Reused),
        Rotation::Disabled => Err(SessionError::Disabled),
    }
}

pub fn logout(store: &Store, refresh_token: &str) -> Result<(), SessionError> {
    store.revoke_refresh_token(refresh_token)?;
    Ok(())
}

/// Creates a one-time link token for `user`; the caller turns it into a URL.
pub fn create_login_link(
    store: &Store,
    cfg: &AuthConfig,
    user: &User,
    now: i64,
) -> Result<String, SessionError> {
    let token = random_token();
    store.add_login_link(
        &token,
        &LoginLink {
            user_id: user.id,
            expires_at: now + cfg.login_link_ttl.as_secs() as i64,
        },
    )?;
    Ok(token)
}

pub fn redeem_login_link(
    store: &Store,
    key: &[u8; 32],
    cfg: &AuthConfig,
    token: &str,
    now: i64,
) -> Result<TokenPair, SessionError> {
    let link = store
        .take_login_link(token, now)?
        .ok_or(SessionError::Invalid)?;
    let user = store.user(&link.user_id)?.ok_or(SessionError::Invalid)?;
    start(store, key, cfg, &user, now)
}
