//! Films: the catalogue record (title, prices, publication) and, once packaged, a
//! summary of the package the playlists are rendered from.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{get, put, scan, update, Result, Store};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    /// Integer minor units (cents for USD, won for KRW).
    pub amount: u64,
    /// ISO 4217 code, upper case.
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageSummary {
    /// Directory name under the films root.
    pub dir: String,
    pub duration: f64,
    pub segments: usize,
    pub renditions: Vec<String>,
    pub packaged_at: i64,
    /// Bytes on disk (segments, playlists, poster, manifest), counted once when packaged;
    /// 0 for packages from before it was counted.
    #[serde(default)]
    pub bytes: u64,
    /// Set when the package's objects (segments, poster, manifest) are in the object store
    /// under `films/{film}/{dir}/` and the media playlists name them there (`[storage]`);
    /// `None`: the segments are served from the origin's disk, as every package from before
    /// object storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<StoredCopy>,
}

/// The confirmed copy of a package in the object store: written only after every object's
/// size and checksum were read back, so a record that has one names a whole package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredCopy {
    /// When the last object was confirmed (unix seconds): local segment files of a migrated
    /// package are kept until a playback token issued before this moment has expired.
    pub stored_at: i64,
    pub objects: usize,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceSummary {
    pub file_name: String,
    pub bytes: u64,
    pub duration: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Film {
    pub id: Uuid,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub prices: Vec<Price>,
    #[serde(default)]
    pub published: bool,
    /// Publish automatically when the current packaging job succeeds.
    #[serde(default)]
    pub publish_when_ready: bool,
    #[serde(default)]
    pub source: Option<SourceSummary>,
    #[serde(default)]
    pub package: Option<PackageSummary>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Film {
    /// Viewers see a film only when it is published and its package is ready.
    pub fn is_watchable(&self) -> bool {
        self.published && self.package.is_some()
    }
}

impl Store {
    pub fn film(&self, id: &Uuid) -> Result<Option<Film>> {
        get(&self.films, "films", id.as_bytes())
    }

    pub fn save_film(&self, film: &Film) -> Result<()> {
        put(&self.films, film.id.as_bytes(), film)
    }

    /// Applies `change` to the stored film atomically (retrying on concurrent writes).
    /// `Ok(None)`: no such film; an unreadable record is an error and is left as it is.
    pub fn update_film(
        &self,
        id: &Uuid,
        mut change: impl FnMut(&mut Film),
    ) -> Result<Option<Film>> {
        update(&self.films, "films", id.as_bytes(), |film| {
            change(film);
            true
        })
    }

    /// Every film, newest first.
    pub fn films(&self) -> Result<Vec<Film>> {
        let mut films: Vec<Film> = scan(&self.films, "films", &[])?;
        films.reverse();
        Ok(films)
    }

    /// Removes the film and every record that belongs to it (grants, progress, jobs).
    pub fn delete_film(&self, id: &Uuid) -> Result<()> {
        self.films.remove(id.as_bytes())?;
        for entry in self.grants.scan_prefix(id.as_bytes()) {
            let (k, _) = entry?;
            self.grants.remove(&k)?;
            let mut rev = k[16..].to_vec();
            rev.extend_from_slice(&k[..16]);
            self.grants_by_user.remove(rev)?;
        }
        self.delete_progress_of_film(id)?;
        self.delete_jobs_of_film(id)?;
        Ok(())
    }
}
