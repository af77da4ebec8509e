//! Progress recording off the disk path.
//!
//! Segment and key requests call `record`, which only touches an in-memory delta in one of
//! 64 mutex-guarded shards (no I/O, no allocation after the first event of a viewer and
//! film). A flusher task merges the deltas into the store every
//! `playback.progress_flush_interval` and once more at shutdown, so a crash loses at most
//! one interval of progress (default 1 s) — plus sled's own background-flush window
//! (≤ 0.5 s) for what was merged but not yet on disk.
//!
//! Coverage counts distinct segments delivered (a segment request or a key request both
//! count), so jumping to the end unlocks nothing. Watch time grows by a segment's duration
//! when a *segment* request moves to a different index than the viewer's previous one
//! (key requests and rendition switches repeat indexes and add nothing).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use serde::Serialize;
use uuid::Uuid;

use crate::store::progress::ProgressRecord;
use crate::store::{Result, Store};

const SHARDS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Segment,
    Key,
}

/// One delivered segment or key.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    pub user: Uuid,
    pub film: Uuid,
    pub index: u32,
    /// Segments in the film.
    pub total: usize,
    /// This segment's duration in seconds.
    pub duration: f64,
    pub signal: Signal,
    pub now: i64,
}

#[derive(Debug, Default)]
struct Entry {
    bits: Vec<u8>,
    total: usize,
    watch_seconds: f64,
    last_segment: Option<u32>,
    /// Survives flushes: the index of the previous segment request, for watch time.
    previous_segment_request: Option<u32>,
    updated_at: i64,
    dirty: bool,
}

pub struct ProgressRecorder {
    shards: Vec<Mutex<HashMap<(Uuid, Uuid), Entry>>>,
    store: Store,
}

/// What the API reports for one viewer and film.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProgressView {
    pub coverage: f64,
    pub covered_segments: usize,
    pub total_segments: usize,
    pub last_segment: Option<u32>,
    pub watch_seconds: f64,
    pub resume_at_seconds: f64,
    pub unlocked: bool,
}

/// Players buffer about this far ahead of the playhead, so the last segment requested is
/// not where the viewer is; resuming this much earlier lands close to where they left.
pub const RESUME_BACKOFF_SECONDS: f64 = 30.0;

impl ProgressRecorder {
    pub fn new(store: Store) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            store,
        }
    }

    fn shard(&self, user: &Uuid, film: &Uuid) -> &Mutex<HashMap<(Uuid, Uuid), Entry>> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (user, film).hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// The hot path: marks a segment delivered. Never waits on the disk.
    pub fn record(&self, event: Event) {
        let Event {
            user,
            film,
            index,
            total,
            duration,
            signal,
            now,
        } = event;
        if index as usize >= total {
            return;
        }
        let mut shard = self
            .shard(&user, &film)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let e = shard.entry((user, film)).or_default();
        if e.total != total {
            e.total = total;
            e.bits.resize(total.div_ceil(8), 0);
        }
        e.bits[index as usize / 8] |= 1 << (index % 8);
        if signal == Signal::Segment {
            if e.previous_segment_request != Some(index) {
                e.watch_seconds += duration;
            }
            e.previous_segment_request = Some(index);
        }
        e.last_segment = Some(index);
        e.updated_at = now;
        e.dirty = true;
    }

    fn merged(stored: Option<ProgressRecord>, e: Option<&Entry>) -> Option<ProgressRecord> {
        let Some(e) = e.filter(|e| e.dirty) else {
            return stored;
        };
        let mut r = stored.unwrap_or_else(|| ProgressRecord::new(e.total));
        if r.total != e.total {
            r.total = e.total;
        }
        r.covered.resize(e.total.div_ceil(8), 0);
        for (dst, src) in r.covered.iter_mut().zip(&e.bits) {
            *dst |= *src;
        }
        r.watch_seconds += e.watch_seconds;
        if e.last_segment.is_some() {
            r.last_segment = e.last_segment;
        }
        r.updated_at = r.updated_at.max(e.updated_at);
        Some(r)
    }

    /// Stored progress with the unflushed delta applied.
    pub fn get(&self, user: &Uuid, film: &Uuid) -> Result<Option<ProgressRecord>> {
        let shard = self
            .shard(user, film)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let stored = self.store.progress_record(user, film)?;
        Ok(Self::merged(stored, shard.get(&(*user, *film))))
    }

    /// Films with unflushed progress for `user` (a scan of memory only).
    pub fn pending_films(&self, user: &Uuid) -> Vec<Uuid> {
        let mut films = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            films.extend(
                shard
                    .iter()
                    .filter(|((u, _), e)| u == user && e.dirty)
                    .map(|((_, f), _)| *f),
            );
        }
        films
    }

    /// Drops a deleted account's unflushed progress, so a flush does not bring it back.
    pub fn forget_user(&self, user: &Uuid) {
        for shard in &self.shards {
            shard
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|(u, _), _| u != user);
        }
    }

    /// Merges every dirty delta into the store. sled inserts are in-memory log appends, so
    /// holding a shard lock across them keeps readers consistent without waiting on disk.
    pub fn flush(&self) -> Result<usize> {
        let mut written = 0;
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            for ((user, film), e) in shard.iter_mut().filter(|(_, e)| e.dirty) {
                let stored = self.store.progress_record(user, film)?;
                if let Some(record) = Self::merged(stored, Some(e)) {
                    self.store.save_progress(user, film, &record)?;
                    written += 1;
                }
                e.bits.iter_mut().for_each(|b| *b = 0);
                e.watch_seconds = 0.0;
                e.last_segment = None;
                e.dirty = false;
            }
        }
        Ok(written)
    }
}

pub fn view(
    record: Option<&ProgressRecord>,
    segments: &[f64],
    unlock_fraction: f64,
) -> ProgressView {
    let total = segments.len();
    let covered = record.map_or(0, |r| {
        // Only indexes that exist in the current package count.
        r.covered_count().min(total)
    });
    let coverage = if total == 0 {
        0.0
    } else {
        covered as f64 / total as f64
    };
    let last = record
        .and_then(|r| r.last_segment)
        .filter(|&i| (i as usize) < total);
    let resume = match last {
        Some(i) if (i as usize) + 1 < total => {
            let start: f64 = segments[..i as usize].iter().sum();
            (start - RESUME_BACKOFF_SECONDS).max(0.0)
        }
        // Finished (or never started): start from the beginning.
        _ => 0.0,
    };
    ProgressView {
        coverage,
        covered_segments: covered,
        total_segments: total,
        last_segment: last,
        watch_seconds: record.map_or(0.0, |r| (r.watch_seconds * 10.0).round() / 10.0),
        resume_at_seconds: resume,
        unlocked: total > 0 && coverage + 1e-9 >= unlock_fraction,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_counts_distinct_segments_and_survives_flush() -> Result<()> {
        let store = Store::temporary()?;
        let rec = ProgressRecorder::new(store.clone());
        let (u, f) = (Uuid::now_v7(), Uuid::now_v7());
        for i in 0..5 {
            rec.record(Event {
                user: u,
                film: f,
                index: i,
                total: 10,
                duration: 6.0,
                signal: Signal::Key,
                now: 1,
            });
            rec.record(Event {
                user: u,
                film: f,
                index: i,
                total: 10,
                duration: 6.0,
                signal: Signal::Segment,
                now: 1,
            });
            rec.record(Event {
                user: u,
                film: f,
                index: i,
                total: 10,
                duration: 6.0,
                signal: Signal::Segment,
                now: 1,
            }); // a rendition switch repeats it
        }
        let before = rec.get(&u, &f)?;
        assert_eq!(before.as_ref().map(|r| r.covered_count()), Some(5));
        assert_eq!(before.as_ref().map(|r| r.watch_seconds), Some(30.0));
        assert_eq!(
            store.progress_record(&u, &f)?,
            None,
            "nothing written before the flush"
        );
        assert_eq!(rec.pending_films(&u), vec![f]);
        assert!(rec.pending_films(&Uuid::now_v7()).is_empty());
        assert_eq!(rec.flush()?, 1);
        assert!(
            rec.pending_films(&u).is_empty(),
            "flushed deltas are no longer pending"
        );
        assert_eq!(
            rec.get(&u, &f)?,
            before,
            "a flush changes nothing a reader sees"
        );
        rec.record(Event {
            user: u,
            film: f,
            index: 9,
            total: 10,
            duration: 4.0,
            signal: Signal::Segment,
            now: 2,
        });
        rec.flush()?;
        let after = store.progress_record(&u, &f)?;
        assert_eq!(after.as_ref().map(|r| r.covered_count()), Some(6));
        assert_eq!(after.as_ref().map(|r| r.watch_seconds), Some(34.0));
        assert_eq!(after.and_then(|r| r.last_segment), Some(9));
        Ok(())
    }

    #[test]
    fn jumping_to_the_end_unlocks_nothing() {
        let mut r = ProgressRecord::new(20);
        for i in 18..20 {
            r.mark(i);
        }
        r.last_segment = Some(19);
        let v = view(Some(&r), &[6.0; 20], 0.9);
        assert!((v.coverage - 0.1).abs() < 1e-9);
        assert!(!v.unlocked);
        assert_eq!(v.resume_at_seconds, 0.0);
        for i in 0..18 {
            r.mark(i);
        }
        assert!(view(Some(&r), &[6.0; 20], 0.9).unlocked);
    }

    #[test]
    fn eighty_nine_percent_is_locked_ninety_is_unlocked() {
        let mut r = ProgressRecord::new(100);
        for i in 0..89 {
            r.mark(i);
        }
        let v = view(Some(&r), &[6.0; 100], 0.9);
        assert!((v.coverage - 0.89).abs() < 1e-9 && !v.unlocked, "{v:?}");
        r.mark(89);
        assert!(view(Some(&r), &[6.0; 100], 0.9).unlocked);
    }

    #[test]
    fn resume_backs_off_from_the_last_segment() {
        let mut r = ProgressRecord::new(20);
        r.last_segment = Some(10);
        let v = view(Some(&r), &[6.0; 20], 0.9);
        assert_eq!(v.resume_at_seconds, 30.0);
    }
}
