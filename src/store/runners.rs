//! Remote packaging runners (`runners` domain): one record per runner token issued, and an
//! index from the token's SHA-256 to the runner. The token itself is never stored: it is
//! shown once when issued, and a request is matched by hashing what it presents.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Transact;
use super::{decode, get, scan, update, Result, Store};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runner {
    pub id: Uuid,
    /// The operator's name for the machine (`gpu-box-1`).
    pub name: String,
    /// SHA-256 of the runner token, hex.
    pub token_hash: String,
    pub created_at: i64,
    /// The last authenticated request (written at most every few seconds).
    #[serde(default)]
    pub last_seen_at: Option<i64>,
}

impl Store {
    /// Stores a new runner and its token index entry in one transaction.
    pub fn insert_runner(&self, runner: &Runner, token_hash: &[u8; 32]) -> Result<()> {
        let bytes = super::encode(runner);
        (&self.runners, &self.runner_tokens).transaction(|(runners, tokens)| {
            runners.insert(runner.id.as_bytes().as_slice(), bytes.as_slice())?;
            tokens.insert(token_hash.as_slice(), runner.id.as_bytes().as_slice())?;
            Ok(())
        })?;
        Ok(())
    }

    pub fn runner(&self, id: &Uuid) -> Result<Option<Runner>> {
        get(&self.runners, "runners", id.as_bytes())
    }

    /// The runner a token hash belongs to, if it is still issued.
    pub fn runner_by_token(&self, token_hash: &[u8; 32]) -> Result<Option<Runner>> {
        let Some(id) = self.runner_tokens.get(token_hash)? else {
            return Ok(None);
        };
        match self.runners.get(&id)? {
            Some(bytes) => Ok(Some(decode("runners", &bytes)?)),
            None => Ok(None),
        }
    }

    /// Every runner, oldest first.
    pub fn runners(&self) -> Result<Vec<Runner>> {
        scan(&self.runners, "runners", &[])
    }

    pub fn touch_runner(&self, id: &Uuid, now: i64) -> Result<()> {
        update(&self.runners, "runners", id.as_bytes(), |r: &mut Runner| {
            r.last_seen_at = Some(now);
            true
        })?;
        Ok(())
    }

    /// Removes a runner and its token: the token answers 401 from now on. `false`: no
    /// such runner.
    pub fn delete_runner(&self, id: &Uuid) -> Result<bool> {
        let Some(runner) = self.runner(id)? else {
            return Ok(false);
        };
        let hash = hex::decode(&runner.token_hash).unwrap_or_default();
        (&self.runners, &self.runner_tokens).transaction(|(runners, tokens)| {
            runners.remove(id.as_bytes().as_slice())?;
            if !hash.is_empty() {
                tokens.remove(hash.as_slice())?;
            }
            Ok(())
        })?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runner_is_found_by_its_token_hash_until_deleted() -> Result<()> {
        let store = Store::temporary()?;
        let hash = [7u8; 32];
        let runner = Runner {
            id: super::super::new_id(),
            name: "box".into(),
            token_hash: hex::encode(hash),
            created_at: 1,
            last_seen_at: None,
        };
        store.insert_runner(&runner, &hash)?;
        assert_eq!(store.runner_by_token(&hash)?, Some(runner.clone()));
        assert_eq!(store.runner_by_token(&[8u8; 32])?, None);
        store.touch_runner(&runner.id, 5)?;
        assert_eq!(
            store.runner(&runner.id)?.and_then(|r| r.last_seen_at),
            Some(5)
        );
        assert_eq!(store.runners()?.len(), 1);
        assert!(store.delete_runner(&runner.id)?);
        assert_eq!(store.runner_by_token(&hash)?, None);
        assert!(store.runners()?.is_empty());
        assert!(!store.delete_runner(&runner.id)?);
        Ok(())
    }
}
