//! Watch progress per user and film: a coverage bitmap of delivered segments, the last
//! segment, and accumulated watch time (media seconds and wall-clock seconds). Written in
//! batches by the progress recorder.

use super::Transact;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{encode, get, pair, Result, Store, StoreError};

type TxResult = sled::transaction::ConflictableTransactionResult<(), StoreError>;

/// Marks the meta record saying `progress_by_film` was built.
const PROGRESS_INDEXED: &str = "progress_indexed";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgressRecord {
    /// Bit *i* set = segment *i* was delivered.
    pub covered: Vec<u8>,
    pub total: usize,
    pub last_segment: Option<u32>,
    /// Media seconds of segments received (a repeated index adds nothing).
    pub watch_seconds: f64,
    /// Wall-clock seconds spent receiving the film at a believable pace (silences longer
    /// than `playback.buffer_ahead` not counted). `None` in records written before it was
    /// measured; one that had reached `unlock_fraction` then keeps its unlock without it,
    /// any other starts measuring (from 0) at its next merge.
    #[serde(default)]
    pub active_seconds: Option<f64>,
    pub updated_at: i64,
}

impl ProgressRecord {
    pub fn new(total: usize) -> Self {
        Self {
            covered: vec![0; total.div_ceil(8)],
            total,
            active_seconds: Some(0.0),
            ..Self::default()
        }
    }

    /// Marks segment `index`; returns true when it was not covered before.
    pub fn mark(&mut self, index: u32) -> bool {
        let i = index as usize;
        if i >= self.total {
            return false;
        }
        if self.covered.len() < self.total.div_ceil(8) {
            self.covered.resize(self.total.div_ceil(8), 0);
        }
        let (byte, bit) = (i / 8, 1u8 << (i % 8));
        let fresh = self.covered[byte] & bit == 0;
        self.covered[byte] |= bit;
        fresh
    }

    pub fn covered_count(&self) -> usize {
        self.covered.iter().map(|b| b.count_ones() as usize).sum()
    }

    pub fn coverage(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.covered_count() as f64 / self.total as f64
        }
    }
}

impl Store {
    pub fn progress_record(&self, user: &Uuid, film: &Uuid) -> Result<Option<ProgressRecord>> {
        get(&self.progress, "progress", &pair(user, film))
    }

    /// Stores the record. A new record is written with its `progress_by_film` entry in one
    /// transaction; one that exists (nearly every flush) is replaced in place, its entry
    /// already there. A sled transaction stops every other store operation while it
    /// commits, which is too dear for each record of every flush: segment requests read
    /// the store.
    pub fn save_progress(&self, user: &Uuid, film: &Uuid, record: &ProgressRecord) -> Result<()> {
        let key = pair(user, film);
        let bytes = sled::IVec::from(encode(record));
        // Replaces only a record that is there (atomically: a deletion between a check
        // and a write would leave a record with no entry).
        let replaced = self
            .progress
            .fetch_and_update(key, |old| old.map(|_| bytes.clone()))?;
        if replaced.is_none() {
            (&self.progress, &self.progress_by_film).transaction(
                |(progress, by_film)| -> TxResult {
                    progress.insert(key.as_slice(), bytes.clone())?;
                    by_film.insert(pair(film, user).as_slice(), &[])?;
                    Ok(())
                },
            )?;
        }
        Ok(())
    }

    /// Removes every viewer's progress on `film`, through `progress_by_film`.
    pub(crate) fn delete_progress_of_film(&self, film: &Uuid) -> Result<()> {
        let keys: Vec<sled::IVec> = self
            .progress_by_film
            .scan_prefix(film.as_bytes())
            .keys()
            .collect::<std::result::Result<_, _>>()?;
        (&self.progress, &self.progress_by_film).transaction(
            |(progress, by_film)| -> TxResult {
                for k in &keys {
                    let mut key = [0u8; 32];
                    key[..16].copy_from_slice(&k[16..]);
                    key[16..].copy_from_slice(&k[..16]);
                    progress.remove(key.as_slice())?;
                    by_film.remove(k.clone())?;
                }
                Ok(())
            },
        )?;
        Ok(())
    }

    /// Removes all of `user`'s progress with its `progress_by_film` entries.
    pub(crate) fn delete_progress_of_user(&self, user: &Uuid) -> Result<()> {
        let keys: Vec<sled::IVec> = self
            .progress
            .scan_prefix(user.as_bytes())
            .keys()
            .collect::<std::result::Result<_, _>>()?;
        (&self.progress, &self.progress_by_film).transaction(
            |(progress, by_film)| -> TxResult {
                for k in &keys {
                    progress.remove(k.clone())?;
                    if k.len() == 32 {
                        let mut entry = [0u8; 32];
                        entry[..16].copy_from_slice(&k[16..]);
                        entry[16..].copy_from_slice(&k[..16]);
                        by_film.remove(entry.as_slice())?;
                    }
                }
                Ok(())
            },
        )?;
        Ok(())
    }

    /// Builds `progress_by_film` from the keys of a store written before it existed (no
    /// record is decoded); once (a meta record says it ran). Inserts are idempotent, so a
    /// crash half-way just runs it again.
    pub(crate) fn index_progress_once(&self) -> Result<()> {
        if self.meta.get(PROGRESS_INDEXED)?.is_some() {
            return Ok(());
        }
        let mut indexed = 0usize;
        for k in self.progress.iter().keys() {
            let k = k?;
            if k.len() == 32 {
                let mut entry = [0u8; 32];
                entry[..16].copy_from_slice(&k[16..]);
                entry[16..].copy_from_slice(&k[..16]);
                self.progress_by_film.insert(entry.as_slice(), &[])?;
                indexed += 1;
            }
        }
        self.meta.insert(PROGRESS_INDEXED, &[1u8])?;
        if indexed > 0 {
            tracing::info!(
                records = indexed,
                "indexed the stored progress by film (once)"
            );
        }
        Ok(())
    }

    /// A user's films with progress.
    pub fn progress_of_user(&self, user: &Uuid) -> Result<Vec<(Uuid, ProgressRecord)>> {
        self.progress
            .scan_prefix(user.as_bytes())
            .map(|kv| {
                let (k, v) = kv?;
                let film = Uuid::from_slice(&k[16..]).unwrap_or_default();
                Ok((film, super::decode("progress", &v)?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_counts_distinct_segments() {
        let mut p = ProgressRecord::new(20);
        assert!(p.mark(0));
        assert!(!p.mark(0));
        assert!(p.mark(19));
        assert!(!p.mark(20));
        assert_eq!(p.covered_count(), 2);
        assert!((p.coverage() - 0.1).abs() < 1e-9);
    }

    fn by_film(store: &Store) -> Result<Vec<Vec<u8>>> {
        let keys = store.progress_by_film.iter().keys();
        Ok(keys
            .map(|k| k.map(|k| k.to_vec()))
            .collect::<std::result::Result<_, _>>()?)
    }

    #[test]
    fn progress_is_indexed_by_film_and_deleted_through_it() -> Result<()> {
        let store = Store::temporary()?;
        let (a, b, film, other) = (
            super::super::new_id(),
            super::super::new_id(),
            super::super::new_id(),
            super::super::new_id(),
        );
        let r = ProgressRecord::new(10);
        for (u, f) in [(a, film), (b, film), (a, other), (b, other)] {
            store.save_progress(&u, &f, &r)?;
        }
        // Saved again by a later flush: still one entry each.
        store.save_progress(&a, &film, &r)?;
        assert_eq!(by_film(&store)?.len(), 4);

        store.delete_progress_of_film(&film)?;
        assert!(store.progress_record(&a, &film)?.is_none());
        assert!(store.progress_record(&b, &film)?.is_none());
        assert!(store.progress_record(&a, &other)?.is_some());
        assert_eq!(by_film(&store)?.len(), 2);

        store.delete_progress_of_user(&a)?;
        assert!(store.progress_record(&a, &other)?.is_none());
        assert!(store.progress_record(&b, &other)?.is_some());
        assert_eq!(by_film(&store)?, [pair(&other, &b).to_vec()]);
        Ok(())
    }

    #[test]
    fn the_film_index_is_built_once_for_an_old_store() -> Result<()> {
        let store = Store::temporary()?;
        let (user, film) = (super::super::new_id(), super::super::new_id());
        store.save_progress(&user, &film, &ProgressRecord::new(4))?;
        // What an older cinegate left: records only (their bytes are never decoded).
        store.progress_by_film.clear()?;
        store.meta.remove(PROGRESS_INDEXED)?;
        store
            .progress
            .insert(pair(&film, &user), b"unreadable".as_slice())?;
        store.index_progress_once()?;
        assert_eq!(
            by_film(&store)?,
            {
                let mut both = vec![pair(&film, &user).to_vec(), pair(&user, &film).to_vec()];
                both.sort();
                both
            },
            "one entry per record, whatever the record holds"
        );
        store.progress_by_film.clear()?;
        store.index_progress_once()?;
        assert!(by_film(&store)?.is_empty(), "ran twice");
        Ok(())
    }
}
