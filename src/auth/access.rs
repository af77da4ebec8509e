//! Who an access token belongs to, with no HTTP in sight: `api::extract` finds the token
//! in the request, calls [`signed_in`] (and [`admin`]), and `api::error` answers the
//! [`AccessError`]. The user is loaded from the store on every call, so a ban, a demotion
//! or a deletion takes effect at once whatever the token's age.

use super::jwt::{self, TokenError};
use crate::store::users::User;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// No access token came with the request.
    #[error("sign in: send an access token as `Authorization: Bearer …`")]
    Missing,
    #[error("the access token has expired; refresh it")]
    Expired,
    #[error("the access token is not valid")]
    Invalid,
    #[error("the account no longer exists")]
    NoAccount,
    /// "Sign out everywhere" moved the account's session epoch past the token's.
    #[error("this sign-in was ended (signed out everywhere); sign in again")]
    Ended,
    #[error("the account is disabled")]
    Disabled,
    #[error("this needs an administrator")]
    NotAdmin,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The signed-in, enabled user of access token `token` (signed with `key`) at `now`.
pub fn signed_in(
    store: &Store,
    key: &[u8; 32],
    token: &str,
    now: i64,
) -> Result<User, AccessError> {
    let claims = jwt::verify(key, token, now).map_err(|e| match e {
        TokenError::Expired => AccessError::Expired,
        TokenError::Invalid => AccessError::Invalid,
    })?;
    let user = store.user(&claims.sub)?.ok_or(AccessError::NoAccount)?;
    if claims.sep != user.session_epoch {
        return Err(AccessError::Ended);
    }
    if user.disabled {
        return Err(AccessError::Disabled);
    }
    Ok(user)
}

/// `user`, if an administrator. The role comes from the store, not the token: a demotion
/// takes effect at once.
pub fn admin(user: User) -> Result<User, AccessError> {
    if user.is_admin() {
        Ok(user)
    } else {
        Err(AccessError::NotAdmin)
    }
}
