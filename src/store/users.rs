//! Users, with a unique index by verified e-mail (lower-cased). Accounts made by the
//! operator CLI have an operator-asserted e-mail; accounts made by a sign-in provider have
//! the provider's e-mail, indexed only when the provider says it is verified.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{get, put, scan, Result, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Admin,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    #[serde(default)]
    pub email: Option<String>,
    /// Whether `email` is known to belong to the user (and so holds the e-mail index).
    #[serde(default = "yes")]
    pub email_verified: bool,
    #[serde(default)]
    pub name: Option<String>,
    pub role: Role,
    pub created_at: i64,
    /// A disabled (banned) account opens nothing, whatever tokens it holds.
    #[serde(default)]
    pub disabled: bool,
    /// Bumped by "sign out everywhere": credentials carry the epoch they were issued in and
    /// stop working when it moves on.
    #[serde(default)]
    pub session_epoch: u32,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

fn yes() -> bool {
    true
}

pub fn normalize_email(email: &str) -> Option<String> {
    let email = email.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let valid = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    valid.then_some(email)
}

impl Store {
    /// Creates a user, or returns `Conflict` when the e-mail is taken.
    pub fn create_user(&self, email: &str, role: Role, now: i64) -> Result<User> {
        let email = normalize_email(email)
            .ok_or_else(|| StoreError::Conflict(format!("{email:?} is not an e-mail address")))?;
        let user = User {
            id: super::new_id(),
            email: Some(email.clone()),
            email_verified: true,
            name: None,
            role,
            created_at: now,
            disabled: false,
            session_epoch: 0,
        };
        // The index entry is claimed first so two racing creates cannot both win.
        let claimed = self.users_by_email.compare_and_swap(
            email.as_bytes(),
            None as Option<&[u8]>,
            Some(user.id.as_bytes().as_slice()),
        )?;
        if claimed.is_err() {
            return Err(StoreError::Conflict(format!(
                "a user with e-mail {email} already exists"
            )));
        }
        put(&self.users, user.id.as_bytes(), &user)?;
        Ok(user)
    }

    pub fn user(&self, id: &Uuid) -> Result<Option<User>> {
        get(&self.users, "users", id.as_bytes())
    }

    pub fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let Some(email) = normalize_email(email) else {
            return Ok(None);
        };
        match self.users_by_email.get(email.as_bytes())? {
            Some(id) => match Uuid::from_slice(&id) {
                Ok(id) => self.user(&id),
                Err(_) => Ok(None),
            },
            None => Ok(None),
        }
    }

    pub fn save_user(&self, user: &User) -> Result<()> {
        put(&self.users, user.id.as_bytes(), user)
    }

    /// Applies `change` to the stored user with a compare-and-swap, retried on a concurrent
    /// write, so two changes to different fields (a sign-out everywhere and a promotion)
    /// both land. `None` when the user is gone.
    pub fn update_user(&self, id: &Uuid, change: impl Fn(&mut User)) -> Result<Option<User>> {
        super::update(&self.users, "users", id.as_bytes(), |user| {
            change(user);
            true
        })
    }

    pub fn users(&self) -> Result<Vec<User>> {
        scan(&self.users, "users", &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_unique_case_insensitively() -> Result<()> {
        let store = Store::temporary()?;
        let u = store.create_user("Ada@Example.com", Role::Admin, 1)?;
        assert_eq!(u.email.as_deref(), Some("ada@example.com"));
        assert!(matches!(
            store.create_user("ada@example.COM", Role::Viewer, 2),
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            store.user_by_email(" ADA@example.com ")?.map(|u| u.id),
            Some(u.id)
        );
        Ok(())
    }

    #[test]
    fn updates_change_only_what_they_change() -> Result<()> {
        let store = Store::temporary()?;
        let u = store.create_user("a@example.com", Role::Viewer, 1)?;
        // A stale copy saved elsewhere would undo this; an update keeps both changes.
        store.update_user(&u.id, |u| u.session_epoch += 1)?;
        let after = store.update_user(&u.id, |u| u.role = Role::Admin)?;
        assert_eq!(
            after.map(|u| (u.session_epoch, u.role)),
            Some((1, Role::Admin))
        );
        assert_eq!(store.update_user(&super::super::new_id(), |_| {})?, None);
        Ok(())
    }

    #[test]
    fn rejects_non_addresses() {
        assert!(normalize_email("nobody").is_none());
        assert!(normalize_email("a@b").is_none());
        assert!(normalize_email("a b@c.d").is_none());
        assert_eq!(normalize_email("x@y.z").as_deref(), Some("x@y.z"));
    }
}
