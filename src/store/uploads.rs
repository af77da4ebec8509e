//! Resumable uploads (tus 1.0): how many bytes of which film's source have arrived.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{get, put, scan, Result, Store};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upload {
    pub id: Uuid,
    pub film_id: Uuid,
    pub length: u64,
    pub offset: u64,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    pub created_by: Uuid,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Store {
    pub fn upload(&self, id: &Uuid) -> Result<Option<Upload>> {
        get(&self.uploads, "uploads", id.as_bytes())
    }

    pub fn save_upload(&self, upload: &Upload) -> Result<()> {
        put(&self.uploads, upload.id.as_bytes(), upload)
    }

    pub fn delete_upload(&self, id: &Uuid) -> Result<()> {
        self.uploads.remove(id.as_bytes())?;
        Ok(())
    }

    pub fn uploads(&self) -> Result<Vec<Upload>> {
        scan(&self.uploads, "uploads", &[])
    }
}
