//! Sign-in identities: (provider, subject) → user, and the reverse index user → providers.
//! An account is found by its identity, never by e-mail alone; account creation, linking,
//! unlinking and deletion change the users, e-mail and identity trees in one transaction.

use super::Transact;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use uuid::Uuid;

use super::users::User;
use super::{decode, encode, Result, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub provider: String,
    pub subject: String,
    pub user_id: Uuid,
    /// The e-mail the provider gave when the identity was linked (for the account page).
    #[serde(default)]
    pub email: Option<String>,
    pub linked_at: i64,
}

/// Why a linking change was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkRefusal {
    /// The identity belongs to another account.
    InUse,
    /// The verified e-mail belongs to another account.
    EmailTaken,
}

fn identity_key(provider: &str, subject: &str) -> Vec<u8> {
    let mut k = provider.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(subject.as_bytes());
    k
}

fn by_user_key(user: &Uuid, provider: &str) -> Vec<u8> {
    let mut k = user.as_bytes().to_vec();
    k.extend_from_slice(provider.as_bytes());
    k
}

type TxResult<T> = std::result::Result<T, ConflictableTransactionError<StoreError>>;

fn tx_decode<T: serde::de::DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> TxResult<T> {
    decode(tree, bytes).map_err(ConflictableTransactionError::Abort)
}

/// Outcome of `create_user_with_identity` and `link_identity`.
pub type Linked = std::result::Result<User, LinkRefusal>;

impl Store {
    pub fn identity(&self, provider: &str, subject: &str) -> Result<Option<Identity>> {
        super::get(
            &self.identities,
            "identities",
            &identity_key(provider, subject),
        )
    }

    pub fn identities_of(&self, user: &Uuid) -> Result<Vec<Identity>> {
        let mut out = Vec::new();
        for entry in self.identities_by_user.scan_prefix(user.as_bytes()) {
            let (_, key) = entry?;
            if let Some(v) = self.identities.get(&key)? {
                out.push(decode("identities", &v)?);
            }
        }
        Ok(out)
    }

    /// Creates `user` with `identity`, claiming the e-mail index when `user.email_verified`.
    /// Refused when the identity or the e-mail is already taken (two racing first
    /// sign-ins: one wins, the other is told the identity is in use).
    pub fn create_user_with_identity(&self, user: &User, identity: &Identity) -> Result<Linked> {
        let id_key = identity_key(&identity.provider, &identity.subject);
        let email = user.email.clone().filter(|_| user.email_verified);
        let outcome = (
            &self.users,
            &self.users_by_email,
            &self.identities,
            &self.identities_by_user,
        )
            .transaction(|(users, by_email, identities, by_user)| {
                if identities.get(&id_key)?.is_some() {
                    return Ok(Err(LinkRefusal::InUse));
                }
                if let Some(email) = &email {
                    if by_email.get(email.as_bytes())?.is_some() {
                        return Ok(Err(LinkRefusal::EmailTaken));
                    }
                    by_email.insert(email.as_bytes(), user.id.as_bytes().as_slice())?;
                }
                users.insert(user.id.as_bytes().as_slice(), encode(user))?;
                identities.insert(id_key.as_slice(), encode(identity))?;
                by_user.insert(by_user_key(&user.id, &identity.provider), id_key.as_slice())?;
                Ok(Ok(user.clone()))
            })?;
        Ok(outcome)
    }

    /// Links `identity` to its `user_id`, replacing that user's earlier identity with the
    /// same provider. Refused when the identity belongs to someone else.
    pub fn link_identity(
        &self,
        identity: &Identity,
    ) -> Result<std::result::Result<(), LinkRefusal>> {
        let id_key = identity_key(&identity.provider, &identity.subject);
        let user_key = by_user_key(&identity.user_id, &identity.provider);
        let outcome =
            (&self.identities, &self.identities_by_user).transaction(|(identities, by_user)| {
                if let Some(existing) = identities.get(&id_key)? {
                    let existing: Identity = tx_decode("identities", &existing)?;
                    if existing.user_id != identity.user_id {
                        return Ok(Err(LinkRefusal::InUse));
                    }
                }
                if let Some(old) = by_user.get(&user_key)? {
                    if old.as_ref() != id_key.as_slice() {
                        identities.remove(old)?;
                    }
                }
                identities.insert(id_key.as_slice(), encode(identity))?;
                by_user.insert(user_key.as_slice(), id_key.as_slice())?;
                Ok(Ok(()))
            })?;
        Ok(outcome)
    }

    /// Removes `user`'s identity with `provider`. Returns whether there was one.
    pub fn unlink_identity(&self, user: &Uuid, provider: &str) -> Result<bool> {
        let user_key = by_user_key(user, provider);
        let removed =
            (&self.identities, &self.identities_by_user).transaction(|(identities, by_user)| {
                let Some(id_key) = by_user.remove(user_key.as_slice())? else {
                    return Ok(false);
                };
                identities.remove(id_key)?;
                Ok(true)
            })?;
        Ok(removed)
    }

    /// Deletes the account: its record, e-mail index entry and identities in one
    /// transaction, then its progress and push devices. Grants stay (accounting); refresh
    /// tokens and sessions die with the record (they are checked against it on every use);
    /// its notification preferences and the mail queued for it go too.
    pub fn delete_user(&self, user: &Uuid) -> Result<bool> {
        // Mail still queued for the account goes with it.
        let email = self.user(user)?.and_then(|u| u.email);
        let id_keys: Vec<sled::IVec> = self
            .identities_by_user
            .scan_prefix(user.as_bytes())
            .map(|kv| kv.map(|(_, v)| v))
            .collect::<std::result::Result<_, _>>()?;
        let by_user_keys: Vec<sled::IVec> = self
            .identities_by_user
            .scan_prefix(user.as_bytes())
            .keys()
            .collect::<std::result::Result<_, _>>()?;
        let deleted = (
            &self.users,
            &self.users_by_email,
            &self.identities,
            &self.identities_by_user,
        )
            .transaction(|(users, by_email, identities, by_user)| {
                let Some(record) = users.remove(user.as_bytes().as_slice())? else {
                    return Ok(false);
                };
                let record: User = tx_decode("users", &record)?;
                if let Some(email) = record.email.filter(|_| record.email_verified) {
                    release_email(by_email, &email, user)?;
                }
                for k in &id_keys {
                    identities.remove(k)?;
                }
                for k in &by_user_keys {
                    by_user.remove(k)?;
                }
                Ok(true)
            })?;
        if deleted {
            self.delete_progress_of_user(user)?;
            self.delete_notification_prefs(user)?;
            if let Some(email) = email {
                self.drop_mail_to(&email)?;
            }
            self.delete_devices_of_user(user)?;
        }
        Ok(deleted)
    }
}

/// Removes the index entry for `email` only if it points at `user`.
fn release_email(by_email: &TransactionalTree, email: &str, user: &Uuid) -> TxResult<()> {
    if let Some(owner) = by_email.get(email.as_bytes())? {
        if owner.as_ref() == user.as_bytes() {
            by_email.remove(email.as_bytes())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::users::Role;

    fn new_user(email: Option<&str>, verified: bool) -> User {
        User {
            id: crate::store::new_id(),
            email: email.map(str::to_string),
            email_verified: verified,
            name: None,
            role: Role::Viewer,
            created_at: 1,
            disabled: false,
            session_epoch: 0,
        }
    }

    fn identity(user: &User, provider: &str, subject: &str) -> Identity {
        Identity {
            provider: provider.into(),
            subject: subject.into(),
            user_id: user.id,
            email: user.email.clone(),
            linked_at: 1,
        }
    }

    #[test]
    fn create_link_unlink_delete() -> Result<()> {
        let store = Store::temporary()?;
        let a = new_user(Some("a@x.io"), true);
        assert!(store
            .create_user_with_identity(&a, &identity(&a, "google", "1"))?
            .is_ok());
        assert_eq!(store.user_by_email("a@x.io")?.map(|u| u.id), Some(a.id));
        // The same identity cannot make a second account, nor can the same verified e-mail.
        let b = new_user(Some("b@x.io"), true);
        assert_eq!(
            store.create_user_with_identity(&b, &identity(&b, "google", "1"))?,
            Err(LinkRefusal::InUse)
        );
        let c = new_user(Some("a@x.io"), true);
        assert_eq!(
            store.create_user_with_identity(&c, &identity(&c, "apple", "9"))?,
            Err(LinkRefusal::EmailTaken)
        );
        assert!(
            store.user(&c.id)?.is_none(),
            "nothing of a refused account is kept"
        );
        // An unverified e-mail is kept on the record but does not claim the index.
        let d = new_user(Some("a@x.io"), false);
        assert!(store
            .create_user_with_identity(&d, &identity(&d, "facebook", "7"))?
            .is_ok());
        assert_eq!(store.user_by_email("a@x.io")?.map(|u| u.id), Some(a.id));

        assert_eq!(
            store.link_identity(&identity(&d, "google", "1"))?,
            Err(LinkRefusal::InUse)
        );
        assert_eq!(store.link_identity(&identity(&a, "apple", "2"))?, Ok(()));
        let mut providers: Vec<String> = store
            .identities_of(&a.id)?
            .into_iter()
            .map(|i| i.provider)
            .collect();
        providers.sort();
        assert_eq!(providers, ["apple", "google"]);
        assert!(store.unlink_identity(&a.id, "apple")?);
        assert!(store.identity("apple", "2")?.is_none());

        assert!(store.delete_user(&a.id)?);
        assert!(store.user(&a.id)?.is_none());
        assert!(store.identity("google", "1")?.is_none());
        assert!(store.user_by_email("a@x.io")?.is_none());
        assert!(store.identities_of(&a.id)?.is_empty());
        // D's unverified copy of the address was never indexed and stays untouched.
        assert!(store.user(&d.id)?.is_some());
        Ok(())
    }
}
