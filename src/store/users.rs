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

    /// One page of users, newest first (ids are time-ordered), older than the cursor
    /// `before`; the next page's cursor when more follow.
    pub fn users_page(
        &self,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<(Vec<User>, Option<String>)> {
        let high = before.unwrap_or(Uuid::max());
        let mut out: Vec<User> = Vec::new();
        for kv in self.users.range(..high.as_bytes().as_slice()).rev() {
            let (_, v) = kv?;
            if out.len() == limit {
                let next = out.last().map(|u| u.id.to_string());
                return Ok((out, next));
            }
            out.push(super::decode("users", &v)?);
        }
        Ok((out, None))
    }

    /// Users whose (indexed, lower-cased) e-mail contains `text`, in e-mail order after
    /// the cursor `after` (an e-mail), at most `limit`; the next page's cursor when more
    /// follow. Reads the e-mail index's keys and only the matching users' records.
    pub fn search_users(
        &self,
        text: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<User>, Option<String>)> {
        let needle = text.trim().to_lowercase();
        let start = after.map(|a| {
            let mut k = a.as_bytes().to_vec();
            // Just past `after`: the cursor itself was on the previous page.
            k.push(0);
            k
        });
        let range = match &start {
            Some(k) => self.users_by_email.range(k.as_slice()..),
            None => self.users_by_email.iter(),
        };
        let mut out: Vec<User> = Vec::new();
        let mut last = None;
        for kv in range {
            let (k, id) = kv?;
            let Ok(email) = std::str::from_utf8(&k) else {
                continue;
            };
            if !email.contains(needle.as_str()) {
                continue;
            }
            if out.len() == limit {
                return Ok((out, last));
            }
            let Ok(id) = Uuid::from_slice(&id) else {
                continue;
            };
            if let Some(u) = self.user(&id)? {
                last = Some(email.to_string());
                out.push(u);
            }
        }
        Ok((out, None))
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
    fn users_page_newest_first_and_search_the_email_index() -> Result<()> {
        let store = Store::temporary()?;
        let mut made = Vec::new();
        for name in ["ann@a.example", "bob@b.example", "cat@a.example"] {
            made.push(store.create_user(name, Role::Viewer, 1)?.id);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let (page, next) = store.users_page(None, 2)?;
        assert_eq!(
            page.iter().map(|u| u.id).collect::<Vec<_>>(),
            [made[2], made[1]]
        );
        let before = next.as_deref().and_then(super::super::parse_id);
        let (rest, next) = store.users_page(before, 2)?;
        assert_eq!((rest.len(), next), (1, None));
        let emails = |us: &[User]| {
            us.iter()
                .filter_map(|u| u.email.clone())
                .collect::<Vec<_>>()
        };
        let (found, next) = store.search_users("A.EXAMPLE", None, 1)?;
        assert_eq!(emails(&found), ["ann@a.example"]);
        let (more, next) = store.search_users("a.example", next.as_deref(), 1)?;
        assert_eq!(
            (emails(&more), next),
            (vec!["cat@a.example".to_string()], None)
        );
        assert!(store.search_users("nobody", None, 5)?.0.is_empty());
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
