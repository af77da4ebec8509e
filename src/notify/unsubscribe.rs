//! The one-click unsubscribe link of "new film" mail: `{user}.{tag}`, the tag an
//! HMAC-SHA256 of the user id under the server's key (labelled, so it is no other token).
//! It never expires: a link in an old mail must still work; it only ever turns mail off.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

const LABEL: &[u8] = b"cinegate unsubscribe v1\0";

fn tag(key: &[u8], user: &Uuid) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(LABEL);
    mac.update(user.as_bytes());
    Some(mac)
}

/// The token for `user`.
pub fn token(key: &[u8], user: &Uuid) -> String {
    let t = tag(key, user)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default();
    format!("{}.{t}", user.simple())
}

/// The user a token was made for, if it is genuine.
pub fn verify(key: &[u8], token: &str) -> Option<Uuid> {
    let (user, t) = token.split_once('.')?;
    let user = Uuid::try_parse(user).ok()?;
    let t = hex::decode(t).ok()?;
    tag(key, &user)?.verify_slice(&t).ok()?;
    Some(user)
}

/// The link for `user` under `public_url`.
pub fn url(public_url: &str, key: &[u8], user: &Uuid) -> String {
    format!(
        "{}/unsubscribe?token={}",
        public_url.trim_end_matches('/'),
        token(key, user)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_only_for_its_user_and_key() {
        let user = Uuid::now_v7();
        let t = token(&[1; 32], &user);
        assert_eq!(verify(&[1; 32], &t), Some(user));
        assert_eq!(verify(&[2; 32], &t), None);
        let other = format!(
            "{}.{}",
            Uuid::now_v7().simple(),
            t.split_once('.').map_or("", |p| p.1)
        );
        assert_eq!(verify(&[1; 32], &other), None);
        assert_eq!(verify(&[1; 32], "garbage"), None);
    }
}
