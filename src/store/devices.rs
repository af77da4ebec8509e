//! Mobile devices registered for push (`POST /api/v1/me/devices`): `devices` keyed
//! user ‖ device id (a user's devices, oldest first), and `devices_by_token` keyed
//! platform ‖ token → user ‖ device, so one token belongs to at most one device of one
//! user. Both change in one transaction.

use super::Transact;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use uuid::Uuid;

use super::outbox::Platform;
use super::{decode, encode, pair, scan, Result, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub id: Uuid,
    pub user: Uuid,
    pub platform: Platform,
    /// The APNs device token (lower-case hex) or FCM registration token.
    pub token: String,
    /// The language its notifications are written in (`en`, `ko`).
    #[serde(default = "english")]
    pub lang: String,
    pub created_at: i64,
    /// The last time the app registered it.
    pub seen_at: i64,
}

fn english() -> String {
    "en".into()
}

fn token_key(platform: Platform, token: &str) -> Vec<u8> {
    let tag = match platform {
        Platform::Ios => b'i',
        Platform::Android => b'a',
    };
    let mut key = Vec::with_capacity(token.len() + 2);
    key.push(tag);
    key.push(0);
    key.extend_from_slice(token.as_bytes());
    key
}

type TxResult<T> = std::result::Result<T, ConflictableTransactionError<StoreError>>;

fn tx_decode(bytes: &[u8]) -> TxResult<Device> {
    decode("devices", bytes).map_err(ConflictableTransactionError::Abort)
}

/// Removes `device` and its token index entry (only if the entry still points at it).
fn remove_in(
    devices: &TransactionalTree,
    by_token: &TransactionalTree,
    d: &Device,
) -> TxResult<()> {
    let key = pair(&d.user, &d.id);
    devices.remove(key.as_slice())?;
    let tk = token_key(d.platform, &d.token);
    if by_token
        .get(&tk)?
        .is_some_and(|v| v.as_ref() == key.as_slice())
    {
        by_token.remove(tk)?;
    }
    Ok(())
}

impl Store {
    /// Registers `token` for `user`: the same token registered again by the same user is
    /// the same device (its language and `seen_at` refreshed); a token another user
    /// registered moves to `user` (the phone changed hands or accounts). When the user
    /// already has `max_per_user` devices, the oldest registrations are dropped. `true`
    /// with the device when it is new.
    pub fn register_device(
        &self,
        user: &Uuid,
        platform: Platform,
        token: &str,
        lang: &str,
        now: i64,
        max_per_user: usize,
    ) -> Result<(Device, bool)> {
        let tk = token_key(platform, token);
        // Chosen outside the transaction (sled transactions cannot scan); a device
        // removed meanwhile is simply not there to remove.
        let existing = self.devices_of(user)?;
        let same = existing
            .iter()
            .find(|d| d.platform == platform && d.token == token)
            .cloned();
        let surplus: Vec<Device> = if same.is_some() {
            Vec::new()
        } else {
            let keep = max_per_user.saturating_sub(1);
            let n = existing.len().saturating_sub(keep);
            existing.into_iter().take(n).collect()
        };
        let fresh = Device {
            id: super::new_id(),
            user: *user,
            platform,
            token: token.to_string(),
            lang: lang.to_string(),
            created_at: now,
            seen_at: now,
        };
        let device =
            (&self.devices, &self.devices_by_token).transaction(|(devices, by_token)| {
                if let Some(owner) = by_token.get(&tk)? {
                    if let Some(current) = devices.get(&owner)? {
                        let mut d = tx_decode(&current)?;
                        if d.user == *user {
                            d.lang = lang.to_string();
                            d.seen_at = now;
                            devices.insert(owner.as_ref(), encode(&d))?;
                            return Ok((d, false));
                        }
                        // Someone else's registration of this token: it moves.
                        remove_in(devices, by_token, &d)?;
                    }
                }
                for old in &surplus {
                    remove_in(devices, by_token, old)?;
                }
                let key = pair(user, &fresh.id);
                devices.insert(key.as_slice(), encode(&fresh))?;
                by_token.insert(tk.as_slice(), key.as_slice())?;
                Ok((fresh.clone(), true))
            })?;
        Ok(device)
    }

    /// `user`'s devices, oldest first.
    pub fn devices_of(&self, user: &Uuid) -> Result<Vec<Device>> {
        scan(&self.devices, "devices", user.as_bytes())
    }

    pub fn device(&self, user: &Uuid, id: &Uuid) -> Result<Option<Device>> {
        super::get(&self.devices, "devices", &pair(user, id))
    }

    /// Removes `user`'s device `id`; whether there was one.
    pub fn delete_device(&self, user: &Uuid, id: &Uuid) -> Result<bool> {
        let key = pair(user, id);
        let removed =
            (&self.devices, &self.devices_by_token).transaction(|(devices, by_token)| {
                let Some(current) = devices.get(key)? else {
                    return Ok(false);
                };
                remove_in(devices, by_token, &tx_decode(&current)?)?;
                Ok(true)
            })?;
        Ok(removed)
    }

    /// Removes the device a push provider said is gone, if it still has `token` (an app
    /// that registered a new token meanwhile keeps its device). Whether it was removed.
    pub fn remove_gone_device(&self, user: &Uuid, id: &Uuid, token: &str) -> Result<bool> {
        let key = pair(user, id);
        let removed =
            (&self.devices, &self.devices_by_token).transaction(|(devices, by_token)| {
                let Some(current) = devices.get(key)? else {
                    return Ok(false);
                };
                let d = tx_decode(&current)?;
                if d.token != token {
                    return Ok(false);
                }
                remove_in(devices, by_token, &d)?;
                Ok(true)
            })?;
        Ok(removed)
    }

    /// Removes every device of `user` (the account is deleted).
    pub fn delete_devices_of_user(&self, user: &Uuid) -> Result<usize> {
        let all = self.devices_of(user)?;
        (&self.devices, &self.devices_by_token).transaction(|(devices, by_token)| {
            for d in &all {
                remove_in(devices, by_token, d)?;
            }
            Ok(())
        })?;
        Ok(all.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IOS: &str = "aa00000000000000000000000000000000000000000000000000000000000001";

    #[test]
    fn register_again_moves_and_deletes() -> Result<()> {
        let store = Store::temporary()?;
        let (a, b) = (super::super::new_id(), super::super::new_id());
        let d1 = store
            .register_device(&a, Platform::Ios, IOS, "en", 10, 20)?
            .0;
        let again = store
            .register_device(&a, Platform::Ios, IOS, "ko", 20, 20)?
            .0;
        assert_eq!(
            again.id, d1.id,
            "the same token for the same user is the same device"
        );
        assert_eq!((again.lang.as_str(), again.seen_at), ("ko", 20));
        assert_eq!(store.devices_of(&a)?.len(), 1);

        // The same token as an Android token is another device.
        let other = store
            .register_device(&a, Platform::Android, IOS, "en", 20, 20)?
            .0;
        assert_ne!(other.id, d1.id);

        // Another user registers the iOS token: it moves.
        let moved = store
            .register_device(&b, Platform::Ios, IOS, "en", 30, 20)?
            .0;
        assert_ne!(moved.id, d1.id);
        assert!(store.device(&a, &d1.id)?.is_none());
        assert_eq!(store.devices_of(&b)?.len(), 1);

        // Gone only while it still has the token the provider refused.
        assert!(!store.remove_gone_device(&b, &moved.id, "other")?);
        assert!(store.remove_gone_device(&b, &moved.id, IOS)?);
        assert!(store.devices_of(&b)?.is_empty());
        assert!(store
            .devices_by_token
            .get(token_key(Platform::Ios, IOS))?
            .is_none());

        assert!(!store.delete_device(&b, &other.id)?, "not b's device");
        assert!(store.delete_device(&a, &other.id)?);
        assert!(store.devices_of(&a)?.is_empty());
        assert!(store.devices_by_token.is_empty());
        Ok(())
    }

    #[test]
    fn the_oldest_go_past_the_cap_and_an_account_takes_its_devices() -> Result<()> {
        let store = Store::temporary()?;
        let a = super::super::new_id();
        let mut ids = Vec::new();
        for i in 0..5 {
            let token = format!("fcm-token-{i:040}");
            ids.push(
                store
                    .register_device(&a, Platform::Android, &token, "en", i, 3)?
                    .0
                    .id,
            );
        }
        let left: Vec<Uuid> = store.devices_of(&a)?.into_iter().map(|d| d.id).collect();
        assert_eq!(left, ids[2..].to_vec());
        assert_eq!(store.devices_by_token.len(), 3);
        assert_eq!(store.delete_devices_of_user(&a)?, 3);
        assert!(store.devices.is_empty() && store.devices_by_token.is_empty());

        // Deleting the account takes its devices with it.
        let user = store.create_user("gone@x.io", crate::store::users::Role::Viewer, 1)?;
        store.register_device(&user.id, Platform::Ios, IOS, "en", 1, 3)?;
        assert!(store.delete_user(&user.id)?);
        assert!(store.devices.is_empty() && store.devices_by_token.is_empty());
        Ok(())
    }
}
