//! Refresh tokens and one-time login links, stored only as SHA-256 hashes.
//!
//! Refresh tokens rotate on every use. Each belongs to a family (one sign-in); presenting a
//! token that was already rotated means it leaked, so the whole family is revoked.
//!
//! Rotation and the successor's insertion are one sled transaction, and a revoked family
//! leaves a marker that every rotation reads: a concurrent reuse either sees the successor
//! (and revokes it with the family) or its marker is seen by whoever uses the successor.

use super::Transact;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sled::transaction::ConflictableTransactionError;
use uuid::Uuid;

use super::users::User;
use super::{decode, encode, get, put, Result, Store, StoreError};

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

/// What presenting a refresh token came to.
#[derive(Debug, PartialEq)]
pub enum Rotation {
    /// The token was valid: it is now rotated and the successor stored, for this user.
    Rotated(User),
    Unknown,
    Expired,
    /// The token had already been used or revoked, or its family was: the family is now
    /// revoked.
    Reused,
    /// The account is gone or signed out everywhere since the token was issued.
    Ended,
    Disabled,
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

/// Present once a family is revoked; read by every rotation in the family.
fn revoked_key(family: &Uuid) -> Vec<u8> {
    let mut k = b"revoked:".to_vec();
    k.extend_from_slice(family.as_bytes());
    k
}

fn tx_decode<T: serde::de::DeserializeOwned>(
    tree: &'static str,
    bytes: &[u8],
) -> std::result::Result<T, ConflictableTransactionError<StoreError>> {
    decode(tree, bytes).map_err(ConflictableTransactionError::Abort)
}

impl Store {
    pub fn add_refresh_token(&self, token: &str, record: &RefreshRecord) -> Result<()> {
        let h = hash(token);
        put(&self.refresh_tokens, &token_key(&h), record)?;
        self.refresh_tokens
            .insert(family_key(&record.family, &h), &[])?;
        Ok(())
    }

    /// Presents `token`: when it is valid, it is marked rotated and `successor` (expiring at
    /// `successor_expires_at`) joins its family in the same transaction, so there is never
    /// a rotated token whose successor a concurrent revocation could miss. Of two
    /// concurrent uses one rotates and the other is reuse.
    pub fn rotate_refresh_token(
        &self,
        token: &str,
        successor: &str,
        now: i64,
        successor_expires_at: i64,
    ) -> Result<Rotation> {
        let key = token_key(&hash(token));
        let next = hash(successor);
        let outcome = (&self.refresh_tokens, &self.users).transaction(|(tokens, users)| {
            let Some(current) = tokens.get(&key)? else {
                return Ok((Rotation::Unknown, None));
            };
            let mut record: RefreshRecord = tx_decode("refresh_tokens", &current)?;
            if record.rotated
                || record.revoked
                || tokens.get(revoked_key(&record.family))?.is_some()
            {
                return Ok((Rotation::Reused, Some(record.family)));
            }
            if record.expires_at <= now {
                return Ok((Rotation::Expired, None));
            }
            let user: User = match users.get(record.user_id.as_bytes())? {
                Some(bytes) => tx_decode("users", &bytes)?,
                None => return Ok((Rotation::Ended, None)),
            };
            if user.session_epoch != record.epoch {
                return Ok((Rotation::Ended, None));
            }
            if user.disabled {
                return Ok((Rotation::Disabled, None));
            }
            record.rotated = true;
            tokens.insert(key.as_slice(), encode(&record))?;
            let successor = RefreshRecord {
                user_id: user.id,
                family: record.family,
                expires_at: successor_expires_at,
                rotated: false,
                revoked: false,
                epoch: user.session_epoch,
            };
            tokens.insert(token_key(&next), encode(&successor))?;
            tokens.insert(family_key(&record.family, &next), &[])?;
            Ok((Rotation::Rotated(user), None))
        })?;
        let (rotation, reused_family) = outcome;
        if let Some(family) = reused_family {
            self.revoke_family(&family)?;
        }
        Ok(rotation)
    }

    /// Revokes every token of `family`, present and future: the marker goes first, so a
    /// successor stored after the scan below is refused when it is used.
    pub fn revoke_family(&self, family: &Uuid) -> Result<()> {
        self.refresh_tokens.insert(revoked_key(family), &[])?;
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

    /// Removes the families whose every token has expired at `now`: their tokens, index
    /// entries and revocation marker. A family with a live member is kept whole, expired
    /// rotated members included: presenting one of those is how a stolen token's reuse is
    /// detected (the real client wakes up with an old token while the thief rotates on). A
    /// family gains members only by rotating a live one, so an all-expired family can never
    /// be presented successfully again. Unreadable records are logged and left in place.
    pub fn sweep_refresh_tokens(&self, now: i64) -> Result<usize> {
        // family → (every member expired, the members' hashes)
        let mut families: std::collections::HashMap<Uuid, (bool, Vec<[u8; 32]>)> =
            std::collections::HashMap::new();
        for entry in self.refresh_tokens.scan_prefix(b"token:") {
            let (k, v) = entry?;
            let (Ok(h), Ok(record)) = (
                <[u8; 32]>::try_from(&k[b"token:".len()..]),
                decode::<RefreshRecord>("refresh_tokens", &v),
            ) else {
                tracing::warn!(key = %hex::encode(&k), "unreadable refresh token record left in place");
                continue;
            };
            let family = families.entry(record.family).or_insert((true, Vec::new()));
            family.0 &= record.expires_at <= now;
            family.1.push(h);
        }
        let mut removed = 0;
        for (family, (expired, members)) in &families {
            if !expired {
                continue;
            }
            for h in members {
                self.refresh_tokens.remove(token_key(h))?;
                self.refresh_tokens.remove(family_key(family, h))?;
                removed += 1;
            }
            self.refresh_tokens.remove(revoked_key(family))?;
        }
        // Markers of families that have no token at all (revoked, then swept before this
        // version kept families whole).
        for entry in self.refresh_tokens.scan_prefix(b"revoked:") {
            let (k, _) = entry?;
            let Ok(family) = Uuid::from_slice(&k[b"revoked:".len()..]) else {
                continue;
            };
            if !families.contains_key(&family) {
                self.refresh_tokens.remove(&k)?;
            }
        }
        Ok(removed)
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
    use crate::store::users::Role;

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
        let user = store.create_user("a@example.com", Role::Viewer, 1)?;
        let family = super::super::new_id();
        store.add_refresh_token("first", &record(user.id, family))?;
        assert_eq!(
            store.rotate_refresh_token("first", "second", 10, 100)?,
            Rotation::Rotated(user.clone())
        );
        // The stolen first token comes back: the live successor dies with it.
        assert_eq!(
            store.rotate_refresh_token("first", "x", 11, 100)?,
            Rotation::Reused
        );
        assert_eq!(
            store.rotate_refresh_token("second", "y", 12, 100)?,
            Rotation::Reused
        );
        assert_eq!(
            store.rotate_refresh_token("never", "z", 12, 100)?,
            Rotation::Unknown
        );
        Ok(())
    }

    #[test]
    fn a_revoked_family_refuses_members_stored_after_the_revocation() -> Result<()> {
        let store = Store::temporary()?;
        let user = store.create_user("a@example.com", Role::Viewer, 1)?;
        let family = super::super::new_id();
        store.add_refresh_token("first", &record(user.id, family))?;
        store.revoke_family(&family)?;
        // A member that was not there when the family was scanned.
        store.add_refresh_token("late", &record(user.id, family))?;
        assert_eq!(
            store.rotate_refresh_token("late", "next", 10, 100)?,
            Rotation::Reused
        );
        assert!(store
            .refresh_tokens
            .get(token_key(&hash("next")))?
            .is_none());
        Ok(())
    }

    #[test]
    fn the_sweep_drops_expired_tokens_and_markers_of_empty_families() -> Result<()> {
        let store = Store::temporary()?;
        let user = store.create_user("a@example.com", Role::Viewer, 1)?;
        let (gone, live) = (super::super::new_id(), super::super::new_id());
        store.add_refresh_token("old", &record(user.id, gone))?;
        store.add_refresh_token(
            "fresh",
            &RefreshRecord {
                expires_at: 500,
                ..record(user.id, live)
            },
        )?;
        store.revoke_family(&gone)?;
        store.revoke_family(&live)?;
        // "old" expires at 100: it and its family's marker go; the live family keeps its
        // marker while a member could still be presented.
        assert_eq!(store.sweep_refresh_tokens(100)?, 1);
        assert!(store.refresh_tokens.get(revoked_key(&gone))?.is_none());
        assert!(store.refresh_tokens.get(revoked_key(&live))?.is_some());
        assert_eq!(
            store.rotate_refresh_token("fresh", "next", 200, 900)?,
            Rotation::Reused
        );
        assert_eq!(
            store.rotate_refresh_token("old", "x", 200, 900)?,
            Rotation::Unknown
        );
        assert_eq!(store.sweep_refresh_tokens(500)?, 1);
        assert_eq!(store.refresh_tokens.len(), 0);
        Ok(())
    }

    /// A thief rotates a stolen token on; the real client comes back after its own token
    /// expired. While the family has a live member, the expired rotated token is kept, so
    /// presenting it is still a reuse and ends the thief's family.
    #[test]
    fn the_sweep_keeps_a_live_familys_rotated_tokens_for_reuse_detection() -> Result<()> {
        let store = Store::temporary()?;
        let user = store.create_user("a@example.com", Role::Viewer, 1)?;
        let family = super::super::new_id();
        store.add_refresh_token("stolen", &record(user.id, family))?;
        assert!(matches!(
            store.rotate_refresh_token("stolen", "thief", 50, 1_000)?,
            Rotation::Rotated(_)
        ));
        assert_eq!(store.sweep_refresh_tokens(200)?, 0);
        assert_eq!(
            store.rotate_refresh_token("stolen", "x", 200, 1_000)?,
            Rotation::Reused
        );
        assert_eq!(
            store.rotate_refresh_token("thief", "y", 201, 1_000)?,
            Rotation::Reused
        );
        Ok(())
    }

    #[test]
    fn an_ended_or_disabled_account_rotates_nothing() -> Result<()> {
        let store = Store::temporary()?;
        let mut user = store.create_user("a@example.com", Role::Viewer, 1)?;
        store.add_refresh_token("t", &record(user.id, super::super::new_id()))?;
        user.disabled = true;
        store.save_user(&user)?;
        assert_eq!(
            store.rotate_refresh_token("t", "n", 10, 100)?,
            Rotation::Disabled
        );
        user.disabled = false;
        user.session_epoch = 1;
        store.save_user(&user)?;
        assert_eq!(
            store.rotate_refresh_token("t", "n", 10, 100)?,
            Rotation::Ended
        );
        assert!(store.refresh_tokens.get(token_key(&hash("n")))?.is_none());
        Ok(())
    }

    #[test]
    fn expiry_and_one_time_links() -> Result<()> {
        let store = Store::temporary()?;
        store.add_refresh_token("t", &record(super::super::new_id(), super::super::new_id()))?;
        assert_eq!(
            store.rotate_refresh_token("t", "n", 100, 200)?,
            Rotation::Expired
        );
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
