//! Watch progress per user and film: a coverage bitmap of delivered segments, the last
//! segment, and accumulated watch time (media seconds and wall-clock seconds). Written in
//! batches by the progress recorder.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{get, pair, put, Result, Store};

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

    pub fn save_progress(&self, user: &Uuid, film: &Uuid, record: &ProgressRecord) -> Result<()> {
        put(&self.progress, &pair(user, film), record)
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
}
