//! Access tokens: HS256 JWTs with `sub`, `role`, `exp`, `iat`, `jti`. The algorithm is
//! pinned on verification, so a token signed any other way (or `none`) is refused.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::store::users::{Role, User};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub role: Role,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    /// The account's session epoch at issue; "sign out everywhere" moves it on.
    #[serde(default)]
    pub sep: u32,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid")]
    Invalid,
}

pub fn issue(key: &[u8; 32], user: &User, now: i64, ttl_secs: i64) -> String {
    let claims = Claims {
        sub: user.id,
        role: user.role,
        sep: user.session_epoch,
        iat: now,
        exp: now + ttl_secs,
        jti: crate::store::new_id().simple().to_string(),
    };
    // HMAC signing of a serialisable struct does not fail.
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key),
    )
    .unwrap_or_default()
}

pub fn verify(key: &[u8; 32], token: &str, now: i64) -> Result<Claims, TokenError> {
    let mut validation = Validation::new(Algorithm::HS256);
    // Expiry is checked below against the caller's clock, so tests can move time.
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["exp", "sub", "iat"]);
    let data = decode::<Claims>(token, &DecodingKey::from_secret(key), &validation)
        .map_err(|_| TokenError::Invalid)?;
    if data.claims.exp <= now {
        return Err(TokenError::Expired);
    }
    Ok(data.claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_expiry_and_tamper() {
        let key = [9u8; 32];
        let user = Uuid::now_v7();
        let account = User {
            id: user,
            email: None,
            email_verified: false,
            name: None,
            role: crate::store::users::Role::Viewer,
            created_at: 0,
            disabled: false,
            session_epoch: 3,
        };
        let t = issue(&key, &account, 1000, 900);
        assert_eq!(
            verify(&key, &t, 1001).map(|c| (c.sub, c.sep)),
            Ok((user, 3))
        );
        assert_eq!(verify(&key, &t, 1900), Err(TokenError::Expired));
        assert_eq!(verify(&[8u8; 32], &t, 1001), Err(TokenError::Invalid));
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged_payload = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            format!(r#"{{"sub":"{user}","role":"admin","exp":99999,"iat":1000,"jti":"x"}}"#),
        );
        parts[1] = &forged_payload;
        assert_eq!(
            verify(&key, &parts.join("."), 1001),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn alg_none_is_refused() {
        let user = Uuid::now_v7();
        let b64 =
            |s: &str| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s);
        let token = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&format!(
                r#"{{"sub":"{user}","role":"admin","exp":99999,"iat":1,"jti":"x"}}"#
            ))
        );
        assert_eq!(verify(&[9u8; 32], &token, 10), Err(TokenError::Invalid));
    }
}
