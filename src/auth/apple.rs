//! Sign in with Apple's client secret: an ES256 JWT signed with the operator's `.p8` key,
//! made on demand and reused until it is close to expiry.

use std::path::Path;
use std::sync::Mutex;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde::Serialize;

/// Apple accepts up to six months; a day keeps a leaked secret short-lived.
const LIFETIME_SECS: i64 = 24 * 3600;
/// A secret is replaced when less than this is left.
const RENEW_BEFORE_SECS: i64 = 3600;
/// The audience Apple requires in client secrets.
const AUDIENCE: &str = "https://appleid.apple.com";

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: i64,
    exp: i64,
    aud: &'a str,
    sub: &'a str,
}

pub struct ClientSecret {
    key: EncodingKey,
    team_id: String,
    key_id: String,
    client_id: String,
    current: Mutex<Option<(String, i64)>>,
}

impl ClientSecret {
    /// Reads the `.p8` (PKCS#8 PEM) key; an unreadable key stops start-up.
    pub fn load(path: &Path, team_id: &str, key_id: &str, client_id: &str) -> Result<Self, String> {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let key = EncodingKey::from_ec_pem(&pem)
            .map_err(|e| format!("{} is not an EC private key in PEM: {e}", path.display()))?;
        let secret = Self {
            key,
            team_id: team_id.into(),
            key_id: key_id.into(),
            client_id: client_id.into(),
            current: Mutex::new(None),
        };
        // Sign once now, so a key of the wrong curve fails at start, not at first sign-in.
        secret.make(0)?;
        Ok(secret)
    }

    /// The client secret to send now.
    pub fn get(&self, now: i64) -> Result<String, String> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((secret, exp)) = current.as_ref() {
            if exp - now > RENEW_BEFORE_SECS {
                return Ok(secret.clone());
            }
        }
        let secret = self.make(now)?;
        *current = Some((secret.clone(), now + LIFETIME_SECS));
        Ok(secret)
    }

    fn make(&self, now: i64) -> Result<String, String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        let claims = Claims {
            iss: &self.team_id,
            iat: now,
            exp: now + LIFETIME_SECS,
            aud: AUDIENCE,
            sub: &self.client_id,
        };
        encode(&header, &claims, &self.key).map_err(|e| format!("signing the client secret: {e}"))
    }
}

/// Apple's `user` form field, sent once: the name as "First Last".
pub fn name_from_user_field(user: Option<&str>) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(user?).ok()?;
    let name = v.get("name")?;
    let part = |k: &str| {
        name.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or("")
            .trim()
            .to_string()
    };
    super::identity::clean_name(Some(&format!("{} {}", part("firstName"), part("lastName"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_comes_from_the_user_field() {
        assert_eq!(
            name_from_user_field(Some(
                r#"{"name":{"firstName":"Ada","lastName":"Lovelace"},"email":"a@b.c"}"#
            ))
            .as_deref(),
            Some("Ada Lovelace")
        );
        assert_eq!(name_from_user_field(Some("not json")), None);
        assert_eq!(name_from_user_field(None), None);
    }
}
