//! Refresh tokens and one-time login links, stored only as SHA-256 hashes.
//!
//! Refresh tokens rotate on every use. Each belongs to a family (one sign-in); presenting a
//! token that was already rotated means it leaked, so the whole family is revoked.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{decode, encode, get, put, Result, Store};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRecord {
    pub user_id: Uuid,
    pub family: Uuid,
    pub expires_at: i64,
    /// Set when the token has been exchanged for a successor.
    #[serde(default)]
    pub rotated: bool,
    #[serde(default)]
    pub revoked: bool,
    /// The account's session epoch at issue (see `User::session_epoch`).
    #[serde(default)]
    pub epoch: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoginLink {
    pub user_id: Uuid,
    pub expires_at: i64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was valid and is now rotated; here is its record.
    Rotated(RefreshRecord),
    Unknown,
    Expired,
    /// The token had already been used or revoked: its family is now revoked.
    Reused,
}

pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn family_key(family: &Uuid, token_hash: &[u8; 32]) -> Vec<u8> {
    let mut k = b"family:".to_vec();
    k.extend_from_slice(family.as_bytes());
    k.extend_from_slice(token_hash);
    k
}

fn token_key(token_hash: &[u8; 32]) -> Vec<u8> {
    let mut k = b"token:".to_vec();
    k.extend_from_slice(token_hash);
    k
}

impl Store {
    pub fn add_refresh_token(&self, token: &str, record: &RefreshRecord) -> Result<()> {
        let h = hash(token);
        put(&self.refresh_tokens, &token_key(&h), record)?;
        self.refresh_tokens
            .insert(family_key(&record.family, &h), &[])?;
        Ok(())
    }

    /// Marks `token` used, atomically: of two concurrent uses, one rotates and the other is
    /// treated as reuse.
    pub fn use_refresh_token(&self, token: &str, now: i64) -> Result<RefreshOutcome> {
        let key = token_key(&hash(token));
        loop {
            let Some(current) = self.refresh_tokens.get(&key)? else {
                return Ok(RefreshOutcome::Unknown);
            };
            let mut record: RefreshRecord = decode("refresh_tokens", &current)?;
            if record.rotated || record.revoked {
                self.revoke_family(&record.family)?;
                return Ok(RefreshOutcome::Reused);
            }
            if record.expires_at <= now {
                return Ok(RefreshOutcome::Expired);
            }
            record.rotated = true;
            let swapped =
                self.refresh_tokens
                    .compare_and_swap(&key, Some(current), Some(encode(&record)))?;
            if swapped.is_ok() {
                return Ok(RefreshOutcome::Rotated(record));
            }
        }
    }

    pub fn revoke_family(&self, family: &Uuid) -> Result<()> {
        let mut prefix = b"family:".to_vec();
        prefix.extend_from_slice(family.as_bytes());
        for entry in self.refresh_tokens.scan_prefix(&prefix) {
            let (k, _) = entry?;
            let mut h = [0u8; 32];
            h.copy_from_slice(&k[prefix.len()..]);
            let key = token_key(&h);
            if let Some(mut record) =
                get::<RefreshRecord>(&self.refresh_tokens, "refresh_tokens", &key)?
            {
                record.revoked = true;
                put(&self.refresh_tokens, &key, &record)?;
            }
        }
        Ok(())
    }

    /// Revokes the family of `token` (logout). Unknown tokens are ignored.
    pub fn revoke_refresh_token(&self, token: &str) -> Result<bool> {
        match get::<RefreshRecord>(
            &self.refresh_tokens,
            "refresh_tokens",
            &token_key(&hash(token)),
        )? {
            Some(record) => {
                self.revoke_family(&record.family)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Revokes every refresh token of a user (ban, deletion).
    pub fn revoke_user_tokens(&self, user: &Uuid) -> Result<()> {
        let mut families = Vec::new();
        for entry in self.refresh_tokens.scan_prefix(b"token:") {
            let (_, v) = entry?;
            let record: RefreshRecord = decode("refresh_tokens", &v)?;
            if record.user_id == *user && !record.revoked {
                families.push(record.family);
            }
        }
        for f in families {
            self.revoke_family(&f)?;
        }
        Ok(())
    }

    pub fn add_login_link(&self, token: &str, link: &LoginLink) -> Result<()> {
        put(&self.login_links, &hash(token), link)
    }

    /// Consumes a login link: it works once, before it expires.
    pub fn take_login_link(&self, token: &str, now: i64) -> Result<Option<LoginLink>> {
        let Some(bytes) = self.login_links.remove(hash(token))? else {
            return Ok(None);
        };
        let link: LoginLink = decode("login_links", &bytes)?;
        Ok((link.expires_at > now).then_some(link))
    }
}

impl Store {
    /// The family of a refresh token this store knows, in any state; read-only (rate
    /// limits charge a known token's use to its sign-in before the rotation runs).
    pub fn refresh_family(&self, token: &str) -> Result<Option<Uuid>> {
        let record = get::<RefreshRecord>(
            &self.refresh_tokens,
            "refresh_tokens",
            &token_key(&hash(token)),
        )?;
        Ok(record.map(|r| r.family))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(user: Uuid, family: Uuid) -> RefreshRecord {
        RefreshRecord {
            user_id: user,
            family,
            expires_at: 100,
            rotated: false,
            revoked: false,
            epoch: 0,
        }
    }

    #[test]
    fn rotation_then_reuse_revokes_the_family() -> Result<()> {
        let store = Store::temporary()?;
        let (user, family) = (super::super::new_id(), super::super::new_id());
        store.add_refresh_token("first", &record(user, family))?;
        assert!(matches!(
            store.use_refresh_token("first", 10)?,
            RefreshOutcome::Rotated(_)
        ));
        store.add_refresh_token("second", &record(user, family))?;
        // The stolen first token comes back: the live successor dies with it.
        assert_eq!(
            store.use_refresh_token("first", 11)?,
            RefreshOutcome::Reused
        );
        assert_eq!(
            store.use_refresh_token("second", 12)?,
            RefreshOutcome::Reused
        );
        assert_eq!(
            store.use_refresh_token("never", 12)?,
            RefreshOutcome::Unknown
        );
        Ok(())
    }

    #[test]
    fn expiry_and_one_time_links() -> Result<()> {
        let store = Store::temporary()?;
        store.add_refresh_token("t", &record(super::super::new_id(), super::super::new_id()))?;
        assert_eq!(store.use_refresh_token("t", 100)?, RefreshOutcome::Expired);
        let link = LoginLink {
            user_id: super::super::new_id(),
            expires_at: 50,
        };
        store.add_login_link("L", &link)?;
        store.add_login_link("M", &link)?;
        assert_eq!(store.take_login_link("L", 10)?, Some(link.clone()));
        assert_eq!(store.take_login_link("L", 10)?, None);
        assert_eq!(store.take_login_link("M", 60)?, None);
        Ok(())
    }
}
