//! Complimentary access: an admin gives a user the whole film. Keyed film‖user, with the
//! inverse user‖film index for "what can this user watch".

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{get, pair, put, Result, Store};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    pub granted_by: Uuid,
    pub granted_at: i64,
}

impl Store {
    pub fn grant(&self, film: &Uuid, user: &Uuid, grant: &Grant) -> Result<()> {
        put(&self.grants, &pair(film, user), grant)?;
        self.grants_by_user.insert(pair(user, film), &[])?;
        Ok(())
    }

    pub fn revoke_grant(&self, film: &Uuid, user: &Uuid) -> Result<bool> {
        let existed = self.grants.remove(pair(film, user))?.is_some();
        self.grants_by_user.remove(pair(user, film))?;
        Ok(existed)
    }

    /// The films granted to `user`: (film, grant), through `grants_by_user`.
    pub fn grants_of(&self, user: &Uuid) -> Result<Vec<(Uuid, Grant)>> {
        let mut out = Vec::new();
        for key in self.grants_by_user.scan_prefix(user.as_bytes()).keys() {
            let key = key?;
            let Ok(film) = Uuid::from_slice(&key[16..]) else {
                continue;
            };
            if let Some(g) = get(&self.grants, "grants", &pair(&film, user))? {
                out.push((film, g));
            }
        }
        Ok(out)
    }

    pub fn has_grant(&self, film: &Uuid, user: &Uuid) -> Result<bool> {
        Ok(get::<Grant>(&self.grants, "grants", &pair(film, user))?.is_some())
    }
}
