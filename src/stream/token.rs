//! Playback tokens, carried in the URL path (`/hls/{token}/…`) so every player resolves
//! relative playlist URIs under the same token with no headers or cookies.
//!
//! Format: base64url(tid[8] ‖ user[16] ‖ film[16] ‖ epoch[4, BE] ‖ exp[8, BE]) "."
//! base64url(HMAC-SHA256[..16]). The token only says who, which film, in which sign-in
//! epoch and until when; what it may open is decided on every request from the store
//! (entitlement, account state, and the account's session epoch, so "sign out everywhere"
//! ends it). `tid` names the token in logs so the token itself never is.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use uuid::Uuid;

const PAYLOAD_LEN: usize = 8 + 16 + 16 + 4 + 8;
const TAG_LEN: usize = 16;
// v2 added the epoch; a v1 token has another length and is refused.
const LABEL: &[u8] = b"cinegate-playback-v2";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaybackToken {
    pub id: [u8; 8],
    pub user: Uuid,
    pub film: Uuid,
    /// The account's session epoch at issue (`User::session_epoch`).
    pub epoch: u32,
    pub expires_at: i64,
}

/// Why a playback request was refused before its film was looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PlaybackTokenError {
    #[error("the playback token is not valid")]
    Invalid,
    #[error("the playback token has expired; start playback again")]
    Expired,
    #[error("the account no longer exists")]
    NoAccount,
    /// The account's session epoch moved on ("sign out everywhere").
    #[error("this sign-in was ended (signed out everywhere); start playback again")]
    Ended,
    #[error("the account is disabled")]
    Disabled,
}

impl PlaybackToken {
    pub fn new(user: Uuid, film: Uuid, epoch: u32, expires_at: i64) -> Self {
        let mut id = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut id);
        Self {
            id,
            user,
            film,
            epoch,
            expires_at,
        }
    }

    /// The token's id, safe to log.
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }

    pub fn encode(&self, key: &[u8; 32]) -> String {
        let mut payload = [0u8; PAYLOAD_LEN];
        payload[..8].copy_from_slice(&self.id);
        payload[8..24].copy_from_slice(self.user.as_bytes());
        payload[24..40].copy_from_slice(self.film.as_bytes());
        payload[40..44].copy_from_slice(&self.epoch.to_be_bytes());
        payload[44..].copy_from_slice(&self.expires_at.to_be_bytes());
        let tag = mac(key, &payload).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(&tag[..TAG_LEN])
        )
    }

    pub fn decode(key: &[u8; 32], text: &str, now: i64) -> Result<Self, PlaybackTokenError> {
        let (payload, tag) = text.split_once('.').ok_or(PlaybackTokenError::Invalid)?;
        if payload.len() > 128 || tag.len() > 64 {
            return Err(PlaybackTokenError::Invalid);
        }
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| PlaybackTokenError::Invalid)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| PlaybackTokenError::Invalid)?;
        if payload.len() != PAYLOAD_LEN || tag.len() != TAG_LEN {
            return Err(PlaybackTokenError::Invalid);
        }
        // Constant-time comparison of the truncated tag.
        mac(key, &payload)
            .verify_truncated_left(&tag)
            .map_err(|_| PlaybackTokenError::Invalid)?;
        let mut id = [0u8; 8];
        id.copy_from_slice(&payload[..8]);
        let user = Uuid::from_slice(&payload[8..24]).map_err(|_| PlaybackTokenError::Invalid)?;
        let film = Uuid::from_slice(&payload[24..40]).map_err(|_| PlaybackTokenError::Invalid)?;
        let mut epoch = [0u8; 4];
        epoch.copy_from_slice(&payload[40..44]);
        let epoch = u32::from_be_bytes(epoch);
        let mut exp = [0u8; 8];
        exp.copy_from_slice(&payload[44..]);
        let expires_at = i64::from_be_bytes(exp);
        if expires_at <= now {
            return Err(PlaybackTokenError::Expired);
        }
        Ok(Self {
            id,
            user,
            film,
            epoch,
            expires_at,
        })
    }
}

fn mac(key: &[u8; 32], payload: &[u8]) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(LABEL);
    m.update(payload);
    m
}

/// For access logs: `/hls/{token}/rest` → `/hls/~{tid}/rest` (or `~invalid`).
pub fn redact_path(path: &str) -> String {
    let Some(rest) = path.strip_prefix("/hls/") else {
        return path.to_string();
    };
    let (token, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let id = token
        .split_once('.')
        .and_then(|(p, _)| URL_SAFE_NO_PAD.decode(p).ok())
        .filter(|p| p.len() == PAYLOAD_LEN)
        .map_or_else(|| "invalid".to_string(), |p| hex::encode(&p[..8]));
    format!("/hls/~{id}/{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let key = [5u8; 32];
        let t = PlaybackToken::new(Uuid::now_v7(), Uuid::now_v7(), 7, 1000);
        let s = t.encode(&key);
        assert!(s.len() < 100);
        assert_eq!(PlaybackToken::decode(&key, &s, 999), Ok(t.clone()));
        assert_eq!(
            PlaybackToken::decode(&key, &s, 1000),
            Err(PlaybackTokenError::Expired)
        );
        assert_eq!(
            PlaybackToken::decode(&[6u8; 32], &s, 1),
            Err(PlaybackTokenError::Invalid)
        );
        // Flip one payload character: the tag no longer matches.
        let mut chars: Vec<char> = s.chars().collect();
        chars[20] = if chars[20] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        assert_eq!(
            PlaybackToken::decode(&key, &tampered, 1),
            Err(PlaybackTokenError::Invalid)
        );
        assert_eq!(
            PlaybackToken::decode(&key, "garbage", 1),
            Err(PlaybackTokenError::Invalid)
        );
    }

    #[test]
    fn logs_never_see_the_token() {
        let key = [5u8; 32];
        let t = PlaybackToken::new(Uuid::now_v7(), Uuid::now_v7(), 0, 1000);
        let s = t.encode(&key);
        let logged = redact_path(&format!("/hls/{s}/720/00001.ts"));
        assert_eq!(logged, format!("/hls/~{}/720/00001.ts", t.id_hex()));
        assert!(!logged.contains(&s));
        assert_eq!(
            redact_path("/hls/xyz/master.m3u8"),
            "/hls/~invalid/master.m3u8"
        );
        assert_eq!(redact_path("/api/v1/films"), "/api/v1/films");
    }
}
