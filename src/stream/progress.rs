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
//!
//! Pace: a buyer can fetch every key of a film in seconds, so a delivery counts only once
//! the viewer has paid for it with *credit*, a bucket of media seconds per viewer and film.
//! It starts at `playback.buffer_ahead` (a player fills its buffer first), refills at
//! `playback.max_pace` media seconds per wall-clock second, and each index paid for spends
//! its duration (an index already paid for — its key after its segment, another rendition,
//! a seek back — is free). A delivery made with no credit left is served all the same (it
//! is playback) and is *owed*: a player never asks again for a segment it holds (hls.js
//! buffers up to 600 s ahead), so owed indexes are paid, lowest first, while the credit is
//! positive whenever it is refilled — at each later delivery and at each read of the
//! progress. Unspent credit is capped at `buffer_ahead` only once nothing is owed, so a
//! silence pays what was delivered before it but cannot be saved up for a later burst.
//! Either way by wall time `t` after the first delivery at most
//! `buffer_ahead + t × max_pace` (+ one segment) of media can have counted. Wall-clock time
//! between deliveries (a silence counts up to the larger of `buffer_ahead` and the film's
//! length, `Pace::silence`; longer is a pause) accumulates as `active_seconds`, and the unlock needs
//! `unlock_fraction × duration ÷ max_pace` of it, so a short film that fits in one buffer
//! still takes a believable time. The bucket, the paid and the owed indexes live in memory
//! only (flushes keep them): a restart gives each viewer one fresh `buffer_ahead` and
//! forgets what was owed.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::Instant;

use uuid::Uuid;

use crate::config::PlaybackConfig;
use crate::store::progress::ProgressRecord;
use crate::store::{Result, Store};
use crate::stream::gate;

const SHARDS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Segment,
    Key,
}

/// One delivered segment or key.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    pub user: Uuid,
    pub film: Uuid,
    pub index: u32,
    /// The duration of every segment of the film, in seconds: paying an owed index later
    /// needs its duration, and the film's segment count is the length.
    pub segments: &'a [f64],
    pub signal: Signal,
    /// Wall clock (seconds since the epoch), stored as `updated_at`.
    pub now: i64,
    /// Monotonic time of the delivery, for the pace.
    pub at: Instant,
}

/// The pace rules (`playback.max_pace`, `playback.buffer_ahead`).
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Media seconds earned per wall-clock second.
    pub max_pace: f64,
    /// Media seconds a burst may take; also the longest silence counted as watching.
    pub buffer_ahead: f64,
}

impl Pace {
    /// How much of a silence between deliveries (or since the last one) counts as watching:
    /// up to `buffer_ahead`, or up to the film's length when that is longer. A player may
    /// hold the whole film (hls.js buffers up to 600 s of a low rung at once) and play it
    /// with no request at all, and a silence adds nothing a client could not get by spacing
    /// its requests; longer than the film it cannot be playback. The film's length is only
    /// summed when the silence is longer than the buffer, which is rare on the request path.
    pub fn silence(&self, gap: f64, segments: &[f64]) -> f64 {
        if gap <= self.buffer_ahead {
            return gap;
        }
        gap.min(self.buffer_ahead.max(segments.iter().sum()))
    }

    pub fn of(c: &PlaybackConfig) -> Self {
        Self {
            max_pace: c.max_pace,
            buffer_ahead: c.buffer_ahead.as_secs_f64(),
        }
    }
}

#[derive(Debug, Default)]
struct Entry {
    // The unflushed delta.
    bits: Vec<u8>,
    total: usize,
    watch_seconds: f64,
    active_seconds: f64,
    last_segment: Option<u32>,
    updated_at: i64,
    dirty: bool,
    // Survive flushes (memory only).
    /// The index of the previous segment request, for watch time.
    previous_segment_request: Option<u32>,
    /// Media seconds this viewer may still have counted now (may dip below zero by one
    /// segment: an owed index is paid while the credit is positive).
    credit: f64,
    /// When the previous delivery arrived, for `active_seconds`; `None` before the first.
    last_at: Option<Instant>,
    /// When the credit was last refilled (a delivery or a read): reads refill the credit
    /// but are not watching, so they must not move `last_at`.
    refilled_at: Option<Instant>,
    /// Indexes already paid for with credit in this process.
    paid: Vec<u8>,
    /// Indexes delivered but not paid for yet.
    owed: Vec<u8>,
    owed_count: usize,
    /// Owed indexes whose delivery was a segment request that adds watch time once paid.
    owed_watch: Vec<u8>,
}

/// The unflushed part of an entry: what a flush merges into the stored record.
#[derive(Debug, Clone)]
struct Delta {
    bits: Vec<u8>,
    total: usize,
    watch_seconds: f64,
    active_seconds: f64,
    last_segment: Option<u32>,
    updated_at: i64,
}

impl Entry {
    /// A copy of the unflushed delta, `None` when there is none.
    fn delta(&self) -> Option<Delta> {
        self.dirty.then(|| Delta {
            bits: self.bits.clone(),
            total: self.total,
            watch_seconds: self.watch_seconds,
            active_seconds: self.active_seconds,
            last_segment: self.last_segment,
            updated_at: self.updated_at,
        })
    }

    /// Takes the unflushed delta out, leaving the entry clean (the pace state stays).
    fn take_delta(&mut self) -> Option<Delta> {
        let delta = self.delta()?;
        self.bits.iter_mut().for_each(|b| *b = 0);
        self.watch_seconds = 0.0;
        self.active_seconds = 0.0;
        self.last_segment = None;
        self.dirty = false;
        Some(delta)
    }

    /// Puts back a delta a flush could not write, under what arrived since it was taken.
    fn restore(&mut self, d: Delta) {
        if d.total == self.total {
            for (dst, src) in self.bits.iter_mut().zip(&d.bits) {
                *dst |= *src;
            }
        }
        self.watch_seconds += d.watch_seconds;
        self.active_seconds += d.active_seconds;
        self.last_segment = self.last_segment.or(d.last_segment);
        self.updated_at = self.updated_at.max(d.updated_at);
        self.dirty = true;
    }

    /// Refills the credit for the wall time since the last refill, then pays owed indexes
    /// in ascending order while it is positive: each is covered and, if a segment request
    /// delivered it, adds its duration to the watch time, as a delivery within the credit
    /// would have. Leftover credit is capped at `buffer_ahead` only after the payments, so
    /// a silence pays what the player already holds (as refills spread over it would have)
    /// but is not saved up for a later burst.
    fn settle(&mut self, at: Instant, segments: &[f64], pace: Pace) {
        let Some(before) = self.refilled_at else {
            return;
        };
        let gap = at.saturating_duration_since(before).as_secs_f64();
        self.refilled_at = Some(before.max(at));
        let mut credit = self.credit + gap * pace.max_pace;
        // A read with another package than the deliveries' pays nothing: its indexes may
        // name other media (the next delivery starts the film's state afresh).
        if self.owed_count > 0 && credit > 0.0 && segments.len() == self.total {
            'bytes: for byte in 0..self.owed.len() {
                while self.owed[byte] != 0 {
                    if credit <= 0.0 {
                        break 'bytes;
                    }
                    let shift = self.owed[byte].trailing_zeros();
                    let bit = 1u8 << shift;
                    let Some(&duration) = segments.get(byte * 8 + shift as usize) else {
                        break 'bytes;
                    };
                    self.owed[byte] &= !bit;
                    self.owed_count -= 1;
                    self.paid[byte] |= bit;
                    self.bits[byte] |= bit;
                    credit -= duration;
                    if self.owed_watch[byte] & bit != 0 {
                        self.owed_watch[byte] &= !bit;
                        self.watch_seconds += duration;
                    }
                    self.dirty = true;
                }
            }
        }
        self.credit = credit.min(pace.buffer_ahead);
    }
}

pub struct ProgressRecorder {
    shards: Vec<Mutex<HashMap<(Uuid, Uuid), Entry>>>,
    /// One per shard: held by a flush of that shard from the moment it takes the shard's
    /// deltas out until they are in the store, and by whoever reads the store's side of a
    /// record of that shard, so no reader sees a delta in neither place (or in both). The
    /// hot path (`record`) never takes it, so it never waits on the store.
    flushing: Vec<Mutex<()>>,
    store: Store,
    /// `playback.*` as configured at start: the pace, and `unlock_fraction`, which the
    /// flusher needs to tell progress from before the pace was measured that had unlocked.
    rules: PlaybackConfig,
}

/// Where one viewer stands in one film (the surfaces render it; `api/views` as JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressView {
    pub coverage: f64,
    pub covered_segments: usize,
    pub total_segments: usize,
    pub last_segment: Option<u32>,
    pub watch_seconds: f64,
    /// Wall-clock seconds of watching at a believable pace (`None` for progress that had
    /// unlocked before it was measured).
    pub active_seconds: Option<f64>,
    /// What the unlock needs of it: `unlock_fraction × duration ÷ max_pace`.
    pub required_active_seconds: f64,
    pub resume_at_seconds: f64,
    pub unlocked: bool,
}

/// Players buffer about this far ahead of the playhead, so the last segment requested is
/// not where the viewer is; resuming this much earlier lands close to where they left.
pub const RESUME_BACKOFF_SECONDS: f64 = 30.0;

impl ProgressRecorder {
    pub fn new(store: Store, rules: &PlaybackConfig) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            flushing: (0..SHARDS).map(|_| Mutex::new(())).collect(),
            store,
            rules: rules.clone(),
        }
    }

    fn shard_index(user: &Uuid, film: &Uuid) -> usize {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (user, film).hash(&mut h);
        (h.finish() as usize) % SHARDS
    }

    fn shard(&self, user: &Uuid, film: &Uuid) -> &Mutex<HashMap<(Uuid, Uuid), Entry>> {
        &self.shards[Self::shard_index(user, film)]
    }

    /// The hot path: marks a segment delivered, counted now if the credit pays for it and
    /// owed otherwise (see the module comment); returns whether it counts now. Never waits
    /// on the disk.
    pub fn record(&self, event: Event<'_>) -> bool {
        let Event {
            user,
            film,
            index,
            segments,
            signal,
            now,
            at,
        } = event;
        let total = segments.len();
        let Some(&duration) = segments.get(index as usize) else {
            return false;
        };
        let pace = Pace::of(&self.rules);
        let mut shard = self
            .shard(&user, &film)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let e = shard.entry((user, film)).or_default();
        if e.total != total {
            // A re-packaged film: indexes paid for or owed may name other media now.
            e.total = total;
            e.bits.resize(total.div_ceil(8), 0);
            e.paid = vec![0; total.div_ceil(8)];
            e.owed = vec![0; total.div_ceil(8)];
            e.owed_watch = vec![0; total.div_ceil(8)];
            e.owed_count = 0;
        }
        match e.last_at {
            None => {
                e.credit = pace.buffer_ahead;
                e.refilled_at = Some(at);
            }
            Some(before) => {
                let gap = at.saturating_duration_since(before).as_secs_f64();
                e.active_seconds += pace.silence(gap, segments);
            }
        }
        e.last_at = Some(e.last_at.map_or(at, |before| before.max(at)));
        let (byte, bit) = (index as usize / 8, 1u8 << (index % 8));
        let adds_watch = signal == Signal::Segment && e.previous_segment_request != Some(index);
        if e.paid[byte] & bit != 0 {
            if adds_watch {
                e.watch_seconds += duration;
            }
        } else {
            if e.owed[byte] & bit == 0 {
                e.owed[byte] |= bit;
                e.owed_count += 1;
            }
            if adds_watch {
                e.owed_watch[byte] |= bit;
            }
        }
        e.settle(at, segments, pace);
        let counted = e.paid[byte] & bit != 0;
        if counted {
            e.bits[byte] |= bit;
        }
        if signal == Signal::Segment {
            e.previous_segment_request = Some(index);
        }
        // Where the player is, counted or not: it is where the viewer resumes.
        e.last_segment = Some(index);
        e.updated_at = now;
        e.dirty = true;
        counted
    }

    fn merged(
        stored: Option<ProgressRecord>,
        e: Option<&Delta>,
        unlock_fraction: f64,
    ) -> Option<ProgressRecord> {
        // A record from before pace was measured (`None`) skips the watch-time floor only if
        // it had already unlocked then; one below the unlock starts measuring now, or its
        // viewer could burst the rest and unlock at machine speed.
        let stored = stored.map(|mut r| {
            if r.active_seconds.is_none() && r.coverage() + 1e-9 < unlock_fraction {
                r.active_seconds = Some(0.0);
            }
            r
        });
        let Some(e) = e else {
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
        // Still `None` here only for a record that had unlocked (see above).
        if let Some(active) = &mut r.active_seconds {
            *active += e.active_seconds;
        }
        if e.last_segment.is_some() {
            r.last_segment = e.last_segment;
        }
        r.updated_at = r.updated_at.max(e.updated_at);
        Some(r)
    }

    /// Stored progress with the unflushed delta applied, after settling the credit at `at`
    /// (owed indexes it pays for join the delta, which the flusher writes); also the time
    /// of the last delivery.
    fn read(
        &self,
        user: &Uuid,
        film: &Uuid,
        segments: &[f64],
        at: Instant,
    ) -> Result<(Option<ProgressRecord>, Option<Instant>)> {
        let i = Self::shard_index(user, film);
        // Held across the store read: a flush of this shard has either not taken the delta
        // yet (it is in memory) or written it (it is in the store).
        let _flushing = self.flushing[i].lock().unwrap_or_else(|p| p.into_inner());
        let (delta, last_at) = {
            let mut shard = self.shards[i].lock().unwrap_or_else(|p| p.into_inner());
            match shard.get_mut(&(*user, *film)) {
                Some(e) => {
                    e.settle(at, segments, Pace::of(&self.rules));
                    (e.delta(), e.last_at)
                }
                None => (None, None),
            }
        };
        // Outside the shard lock: deliveries arriving meanwhile are not kept waiting.
        let stored = self.store.progress_record(user, film)?;
        Ok((
            Self::merged(stored, delta.as_ref(), self.rules.unlock_fraction),
            last_at,
        ))
    }

    /// Stored progress with the unflushed delta applied, as of `at`.
    pub fn get(
        &self,
        user: &Uuid,
        film: &Uuid,
        segments: &[f64],
        at: Instant,
    ) -> Result<Option<ProgressRecord>> {
        Ok(self.read(user, film, segments, at)?.0)
    }

    /// What the API reports at `at`: stored progress, the unflushed delta, and the silence
    /// since the last delivery (`Pace::silence`) as watching — the player may still be
    /// playing what it holds; a short film often fits in one buffer and arrives in a single
    /// burst. That adds nothing a client could not get by spacing its requests.
    pub fn view(
        &self,
        user: &Uuid,
        film: &Uuid,
        segments: &[f64],
        at: Instant,
    ) -> Result<ProgressView> {
        let (mut record, last_at) = self.read(user, film, segments, at)?;
        let since_last = last_at.map(|last| {
            Pace::of(&self.rules)
                .silence(at.saturating_duration_since(last).as_secs_f64(), segments)
        });
        if let (Some(active), Some(extra)) = (
            record.as_mut().and_then(|r| r.active_seconds.as_mut()),
            since_last,
        ) {
            *active += extra;
        }
        Ok(view(record.as_ref(), segments, &self.rules))
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

    /// How many distinct viewers had a segment or key delivered at or after `since` (the
    /// `active_viewers` gauge, computed when `/metrics` is scraped rather than on the
    /// request path). Each shard is locked only while its entries are walked.
    pub fn active_viewers(&self, since: Instant) -> usize {
        let mut users = std::collections::HashSet::new();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            users.extend(
                shard
                    .iter()
                    .filter(|(_, e)| e.last_at.is_some_and(|at| at >= since))
                    .map(|((user, _), _)| *user),
            );
        }
        users.len()
    }

    /// Drops a deleted account's unflushed progress, so a flush does not bring it back.
    /// Waits for a flush under way in each shard, which may be writing the user's delta.
    pub fn forget_user(&self, user: &Uuid) {
        for (shard, flushing) in self.shards.iter().zip(&self.flushing) {
            let _flushing = flushing.lock().unwrap_or_else(|p| p.into_inner());
            shard
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|(u, _), _| u != user);
        }
    }

    /// Merges every dirty delta into the store, shard by shard: the deltas are swapped
    /// out under the shard lock and written outside it, so deliveries to the shard go on
    /// while the store is read and written. The pace state (credit, paid and owed
    /// indexes) stays: an owed index paid after this flush joins the next delta. A delta
    /// that could not be written goes back into memory for the next flush.
    pub fn flush(&self) -> Result<usize> {
        let mut written = 0;
        for (shard, flushing) in self.shards.iter().zip(&self.flushing) {
            let _flushing = flushing.lock().unwrap_or_else(|p| p.into_inner());
            let deltas: Vec<((Uuid, Uuid), Delta)> = shard
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter_mut()
                .filter_map(|(key, e)| Some((*key, e.take_delta()?)))
                .collect();
            let mut deltas = deltas.into_iter();
            while let Some(((user, film), delta)) = deltas.next() {
                if let Err(e) = self.write(&user, &film, &delta) {
                    let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
                    for (key, delta) in std::iter::once(((user, film), delta)).chain(deltas) {
                        // Always there: entries leave only through `forget_user`, which
                        // waits for the gate held here.
                        if let Some(entry) = shard.get_mut(&key) {
                            entry.restore(delta);
                        }
                    }
                    return Err(e);
                }
                written += 1;
            }
        }
        Ok(written)
    }

    fn write(&self, user: &Uuid, film: &Uuid, delta: &Delta) -> Result<()> {
        let stored = self.store.progress_record(user, film)?;
        let before = stored.as_ref().filter(|r| r.total == delta.total).cloned();
        if let Some(record) = Self::merged(stored, Some(delta), self.rules.unlock_fraction) {
            self.store.save_progress(user, film, &record)?;
            self.record_watched(user, film, delta, before.as_ref(), &record);
        }
        Ok(())
    }

    /// The flush's domain events: what this delta added to the viewer's coverage and
    /// watch time (`Watched`, one per viewer and film per flush with something new, never
    /// one per segment), and `PreviewBoundaryReached` when it newly covers the last
    /// segment of the preview of a viewer without the whole film.
    fn record_watched(
        &self,
        user: &Uuid,
        film: &Uuid,
        delta: &Delta,
        before: Option<&ProgressRecord>,
        after: &ProgressRecord,
    ) {
        let was = |i: usize| {
            before.is_some_and(|b| {
                b.covered
                    .get(i / 8)
                    .is_some_and(|x| x & (1 << (i % 8)) != 0)
            })
        };
        let added: Vec<u32> = (0..after.total)
            .filter(|&i| {
                after
                    .covered
                    .get(i / 8)
                    .is_some_and(|x| x & (1 << (i % 8)) != 0)
                    && !was(i)
            })
            .map(|i| i as u32)
            .collect();
        if added.is_empty() && delta.watch_seconds <= 0.0 {
            return;
        }
        let at = delta.updated_at;
        let boundary = gate::preview_segments(after.total, self.rules.preview_fraction);
        let reached = boundary < after.total && added.contains(&(boundary as u32 - 1));
        crate::events::record(
            &self.store,
            at,
            crate::events::Event::Watched {
                user: *user,
                film: *film,
                added,
                watch_seconds: delta.watch_seconds,
                covered: after.covered_count() as u32,
                total: after.total as u32,
            },
        );
        // Read only when the boundary segment is new to this viewer: once per viewer and
        // film at most, off the delivery path (the flusher's thread).
        if reached
            && gate::entitlement(&self.store, user, film)
                .is_ok_and(|e| e == gate::Entitlement::Preview)
        {
            crate::events::record(
                &self.store,
                at,
                crate::events::Event::PreviewBoundaryReached {
                    user: *user,
                    film: *film,
                },
            );
        }
    }
}

pub fn view(
    record: Option<&ProgressRecord>,
    segments: &[f64],
    rules: &PlaybackConfig,
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
    let tenths = |x: f64| (x * 10.0).round() / 10.0;
    let duration: f64 = segments.iter().sum();
    let required = rules.unlock_fraction * duration / rules.max_pace;
    let active = match record {
        Some(r) => r.active_seconds,
        None => Some(0.0),
    };
    let watched_long_enough = match active {
        Some(a) => a + 1e-9 >= required,
        None => true,
    };
    ProgressView {
        coverage,
        covered_segments: covered,
        total_segments: total,
        last_segment: last,
        watch_seconds: record.map_or(0.0, |r| tenths(r.watch_seconds)),
        active_seconds: active.map(tenths),
        // Rounded up, so an app that waits this long is never told "not yet".
        required_active_seconds: (required * 10.0).ceil() / 10.0,
        resume_at_seconds: resume,
        unlocked: total > 0 && coverage + 1e-9 >= rules.unlock_fraction && watched_long_enough,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Pace 4×, a 120 s buffer: the defaults.
    const PACE: Pace = Pace {
        max_pace: 4.0,
        buffer_ahead: 120.0,
    };

    /// A machine too fast to be a player: every delivery at the same instant.
    const UNLIMITED: Pace = Pace {
        max_pace: 1e9,
        buffer_ahead: 1e9,
    };

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    /// Films of up to 100 segments of 6 s.
    const SIXES: [f64; 100] = [6.0; 100];

    fn event(
        u: Uuid,
        f: Uuid,
        index: u32,
        total: usize,
        signal: Signal,
        at: Instant,
    ) -> Event<'static> {
        Event {
            user: u,
            film: f,
            index,
            segments: &SIXES[..total],
            signal,
            now: 1,
            at,
        }
    }

    fn rules() -> PlaybackConfig {
        PlaybackConfig::default()
    }

    fn recorder(store: Store, pace: Pace) -> ProgressRecorder {
        let rules = PlaybackConfig {
            max_pace: pace.max_pace,
            buffer_ahead: Duration::from_secs_f64(pace.buffer_ahead),
            ..rules()
        };
        ProgressRecorder::new(store, &rules)
    }

    /// Distinct viewers since a moment: one watching two films counts once, one whose
    /// last delivery is older does not, and a flush forgets nobody.
    #[test]
    fn active_viewers_are_distinct_users_with_a_delivery_since() -> Result<()> {
        let rec = recorder(Store::temporary()?, UNLIMITED);
        let now = Instant::now();
        let Some(long_ago) = now.checked_sub(Duration::from_secs(600)) else {
            return Ok(());
        };
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let (f, g) = (Uuid::now_v7(), Uuid::now_v7());
        rec.record(event(a, f, 0, 10, Signal::Segment, now));
        rec.record(event(a, g, 0, 10, Signal::Key, now));
        rec.record(event(b, f, 3, 10, Signal::Key, now));
        rec.record(event(c, f, 0, 10, Signal::Segment, long_ago));
        let since = now - Duration::from_secs(300);
        assert_eq!(rec.active_viewers(since), 2);
        rec.flush()?;
        assert_eq!(rec.active_viewers(since), 2);
        assert_eq!(rec.active_viewers(long_ago), 3);
        rec.forget_user(&a);
        assert_eq!(rec.active_viewers(since), 1);
        Ok(())
    }

    #[test]
    fn coverage_counts_distinct_segments_and_survives_flush() -> Result<()> {
        let store = Store::temporary()?;
        let rec = recorder(store.clone(), UNLIMITED);
        let (u, f) = (Uuid::now_v7(), Uuid::now_v7());
        let t = Instant::now();
        for i in 0..5 {
            rec.record(event(u, f, i, 10, Signal::Key, t));
            rec.record(event(u, f, i, 10, Signal::Segment, t));
            // A rendition switch repeats it.
            rec.record(event(u, f, i, 10, Signal::Segment, t));
        }
        let before = rec.get(&u, &f, &SIXES[..10], t)?;
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
            rec.get(&u, &f, &SIXES[..10], t)?,
            before,
            "a flush changes nothing a reader sees"
        );
        let mut segments = [6.0; 10];
        segments[9] = 4.0;
        let mut last = event(u, f, 9, 10, Signal::Segment, t + Duration::from_secs(3));
        last.segments = &segments;
        rec.record(last);
        rec.flush()?;
        let after = store.progress_record(&u, &f)?;
        assert_eq!(after.as_ref().map(|r| r.covered_count()), Some(6));
        assert_eq!(after.as_ref().map(|r| r.watch_seconds), Some(34.0));
        assert_eq!(after.as_ref().and_then(|r| r.active_seconds), Some(3.0));
        assert_eq!(after.and_then(|r| r.last_segment), Some(9));
        Ok(())
    }

    /// A delta the flush could not write (here: the stored record does not decode) goes
    /// back into memory, under what arrived since, and the next flush writes it all.
    #[test]
    fn a_delta_that_could_not_be_written_is_kept_for_the_next_flush() -> TestResult {
        let store = Store::temporary()?;
        let rec = recorder(store.clone(), UNLIMITED);
        let (u, f) = (Uuid::now_v7(), Uuid::now_v7());
        let t = Instant::now();
        let key = crate::store::pair(&u, &f);
        store.progress.insert(key, b"not a record".as_slice())?;
        for i in 0..3 {
            rec.record(event(u, f, i, 10, Signal::Segment, t));
        }
        assert!(rec.flush().is_err(), "an unreadable record was overwritten");
        assert_eq!(rec.pending_films(&u), vec![f], "the delta was dropped");
        rec.record(event(u, f, 3, 10, Signal::Segment, t));
        store.progress.remove(key)?;
        assert_eq!(rec.flush()?, 1);
        let stored = store.progress_record(&u, &f)?;
        assert_eq!(stored.as_ref().map(|r| r.covered_count()), Some(4));
        assert_eq!(stored.as_ref().map(|r| r.watch_seconds), Some(24.0));
        assert_eq!(stored.and_then(|r| r.last_segment), Some(3));
        assert!(rec.pending_films(&u).is_empty());
        Ok(())
    }

    /// While a flush waits on the store, deliveries to its shard go on: no shard lock is
    /// held across store I/O. The store is made to wait by a transaction whose body
    /// blocks (sled holds a process-wide lock for the whole body). A flush that has not
    /// reached the store yet when the delivery comes lets this pass, never fail.
    #[test]
    fn deliveries_do_not_wait_for_a_flush_blocked_on_the_store() -> TestResult {
        use std::sync::{mpsc, Arc};
        let store = Store::temporary()?;
        let rec = Arc::new(recorder(store.clone(), UNLIMITED));
        let (u, f) = (Uuid::now_v7(), Uuid::now_v7());
        let t = Instant::now();
        rec.record(event(u, f, 0, 10, Signal::Segment, t));

        let (held_tx, held_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let blocker = {
            let store = store.clone();
            std::thread::spawn(move || {
                store.meta.transaction(|_| {
                    let _ = held_tx.send(());
                    let _ = release_rx.recv();
                    Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
                })
            })
        };
        held_rx.recv()?;
        let flusher = {
            let rec = rec.clone();
            std::thread::spawn(move || rec.flush().map_err(|e| e.to_string()))
        };
        // Time for the flush to take the delta out and block on its store read.
        std::thread::sleep(Duration::from_millis(200));
        let (done_tx, done_rx) = mpsc::channel();
        let delivery = {
            let rec = rec.clone();
            std::thread::spawn(move || {
                rec.record(event(u, f, 1, 10, Signal::Segment, t));
                let _ = done_tx.send(());
            })
        };
        let delivered = done_rx.recv_timeout(Duration::from_secs(5)).is_ok();
        let _ = release_tx.send(());
        let held = blocker
            .join()
            .map_err(|_| "the blocking transaction panicked")?;
        assert!(held.is_ok(), "{held:?}");
        assert!(
            delivered,
            "a delivery waited for a flush blocked on the store"
        );
        assert_eq!(flusher.join().map_err(|_| "the flush panicked")??, 1);
        delivery.join().map_err(|_| "the delivery panicked")?;
        assert_eq!(rec.flush()?, 1);
        let stored = store.progress_record(&u, &f)?;
        assert_eq!(stored.map(|r| r.covered_count()), Some(2));
        Ok(())
    }

    /// Every key of a 100-segment (600 s) film in one instant: the buffer (120 s = 20
    /// segments) counts, nothing more; the last index is still where the player is.
    #[test]
    fn a_burst_counts_only_the_buffer_allowance() -> Result<()> {
        let rec = recorder(Store::temporary()?, PACE);
        let (u, f) = (Uuid::now_v7(), Uuid::now_v7());
        let t = Instant::now();
        let counted = (0..100)
            .filter(|&i| rec.record(event(u, f, i, 100, Signal::Key, t)))
            .count();
        assert_eq!(counted, 20);
        let r = rec.get(&u, &f, &SIXES, t)?;
        assert_eq!(r.as_ref().map(|r| r.covered_count()), Some(20));
        assert_eq!(r.and_then(|r| r.last_segment), Some(99));
        // Already paid for: the segment of a counted key is free, even with no credit left.
        assert!(rec.record(event(u, f, 3, 100, Signal::Segment, t)));
        // Ten seconds later, 40 media seconds more have been earned: about 7 segments.
        let later = t + Duration::from_secs(10);
        let counted = (20..100)
            .filter(|&i| rec.record(event(u, f, i, 100, Signal::Key, later)))
            .count();
        assert_eq!(counted, 7);
        Ok(())
    }

    /// A player: fills its buffer, then requests a 6 s segment when there is room for it:
    /// every 6 s at 1×, every 1.5 s at 4× (the ceiling). Everything counts; the film unlocks
    /// when the requests also span the floor (0.9 × 600 ÷ 4 = 135 s), which playing at 4× with
    /// a 120 s buffer does not ((600 − 120) ÷ 4 = 120 s), but at 2× does.
    #[test]
    fn a_player_within_the_pace_counts_everything() -> Result<()> {
        for speed in [1.0, 2.0, 4.0] {
            let rec = recorder(Store::temporary()?, PACE);
            let (u, f) = (Uuid::now_v7(), Uuid::now_v7());
            let t = Instant::now();
            let n = 100u32;
            for i in 0..n {
                // Segment i ends at 6 (i + 1) s of media; the player asks for it once that
                // is within its buffer of the playhead.
                let wall = ((6.0 * f64::from(i + 1) - PACE.buffer_ahead) / speed).max(0.0);
                let at = t + Duration::from_secs_f64(wall);
                assert!(
                    rec.record(event(u, f, i, n as usize, Signal::Key, at)),
                    "segment {i} at {speed}×"
                );
                rec.record(event(u, f, i, n as usize, Signal::Segment, at));
            }
            let r = rec.get(&u, &f, &SIXES, t)?;
            let v = view(r.as_ref(), &[6.0; 100], &rules());
            assert_eq!(v.covered_segments, 100, "{speed}×");
            assert_eq!(v.unlocked, speed < 4.0, "{speed}×: {v:?}");
        }
        Ok(())
    }

    /// A 60 s film fits in the buffer, so its coverage comes at once; the unlock still needs
    /// 0.9 × 60 ÷ 4 = 13.5 s of watching.
    #[test]
    fn a_short_film_needs_the_watch_time_floor() -> Result<()> {
        let rec = recorder(Store::temporary()?, PACE);
        let (u, f) = (Uuid::now_v7(), Uuid::now_v7());
        let t = Instant::now();
        for i in 0..10 {
            let at = t + Duration::from_millis(300 * u64::from(i));
            rec.record(event(u, f, i, 10, Signal::Key, at));
        }
        let at = |secs: f64| t + Duration::from_secs_f64(secs);
        let v = rec.view(&u, &f, &[6.0; 10], at(2.7))?;
        assert_eq!(v.covered_segments, 10);
        assert_eq!(v.active_seconds, Some(2.7));
        assert_eq!(v.required_active_seconds, 13.5);
        assert!(!v.unlocked, "{v:?}");
        // The player plays what it holds: 13.5 s after the first request the floor is met,
        // with or without another request (spacing the requests would get there as fast).
        assert!(!rec.view(&u, &f, &[6.0; 10], at(13.4))?.unlocked);
        assert!(rec.view(&u, &f, &[6.0; 10], at(13.5))?.unlocked);
        rec.flush()?;
        assert!(rec.view(&u, &f, &[6.0; 10], at(13.5))?.unlocked);
        rec.record(event(u, f, 9, 10, Signal::Segment, at(14.0)));
        let v = rec.view(&u, &f, &[6.0; 10], at(14.0))?;
        assert_eq!(
            v.active_seconds,
            Some(14.0),
            "the silence is not counted twice"
        );
        Ok(())
    }

    /// A player that fetched a whole 9.5-minute film at once (longer than `buffer_ahead`,
    /// shorter than hls.js's 600 s) plays it with no request: its silence counts up to the
    /// film's length, so it unlocks once the floor has passed (0.9 × 570 ÷ 4 = 128.25 s).
    #[test]
    fn a_film_held_whole_unlocks_after_the_floor_with_no_further_request() -> Result<()> {
        let rec = recorder(Store::temporary()?, PACE);
        let (u, f) = (Uuid::now_v7(), Uuid::now_v7());
        let t = Instant::now();
        for i in 0..95 {
            rec.record(event(u, f, i, 95, Signal::Key, t));
        }
        let secs = |s: f64| t + Duration::from_secs_f64(s);
        let early = rec.view(&u, &f, &SIXES[..95], secs(120.0))?;
        assert!(!early.unlocked, "{early:?}");
        let v = rec.view(&u, &f, &SIXES[..95], secs(130.0))?;
        assert_eq!(v.covered_segments, 95, "{v:?}");
        assert!(v.unlocked, "{v:?}");
        // A later request does not take back what the silence counted.
        rec.record(event(u, f, 0, 95, Signal::Key, secs(700.0)));
        let later = rec.view(&u, &f, &SIXES[..95], secs(700.0))?;
        assert_eq!(later.active_seconds, Some(570.0), "{later:?}");
        assert!(later.unlocked);
        Ok(())
    }

    /// A silence longer than the buffer and the film is a pause: it counts as the larger of
    /// the two at most (here the buffer: 120 s against a 60 s film).
    #[test]
    fn a_long_silence_counts_as_the_buffer_at_most() -> Result<()> {
        let rec = recorder(Store::temporary()?, PACE);
        let (u, f) = (Uuid::now_v7(), Uuid::now_v7());
        let t = Instant::now();
        rec.record(event(u, f, 0, 10, Signal::Key, t));
        rec.record(event(
            u,
            f,
            1,
            10,
            Signal::Key,
            t + Duration::from_secs(3600),
        ));
        assert_eq!(
            rec.get(&u, &f, &SIXES[..10], t)?
                .and_then(|r| r.active_seconds),
            Some(120.0)
        );
        Ok(())
    }

    #[test]
    fn progress_from_before_pace_was_measured_keeps_its_unlock() -> serde_json::Result<()> {
        let legacy: ProgressRecord = serde_json::from_str(
            r#"{"covered":[255,3],"total":10,"last_segment":9,"watch_seconds":60.0,"updated_at":1}"#,
        )?;
        assert_eq!(legacy.active_seconds, None);
        let v = view(Some(&legacy), &[6.0; 10], &rules());
        assert!(v.unlocked, "{v:?}");
        Ok(())
    }

    /// The viewer holds the whole film (far more than the buffer) after one burst and plays
    /// it without asking again: what was owed is paid, lowest index first, as the credit
    /// refills — at reads too, and across flushes — never above `buffer_ahead + t ×
    /// max_pace` (+ one segment).
    #[test]
    fn owed_deliveries_are_paid_as_the_credit_refills() -> Result<()> {
        let store = Store::temporary()?;
        let rec = recorder(store.clone(), PACE);
        let (u, f) = (Uuid::now_v7(), Uuid::now_v7());
        let t = Instant::now();
        for i in 0..100 {
            rec.record(event(u, f, i, 100, Signal::Key, t));
            rec.record(event(u, f, i, 100, Signal::Segment, t));
        }
        rec.flush()?;
        let at = |secs: u64| t + Duration::from_secs(secs);
        let mut last = 0;
        for secs in 0..=130 {
            let covered = rec
                .get(&u, &f, &SIXES, at(secs))?
                .map_or(0, |r| r.covered_count());
            // k paid segments need credit left before the last: 6 (k − 1) < 120 + 4 t.
            let allowed = ((120.0 + 4.0 * secs as f64) / 6.0).ceil() as usize;
            assert!(covered <= allowed, "{covered} > {allowed} at {secs} s");
            assert!(covered >= last, "coverage never shrinks");
            last = covered;
            if secs == 10 {
                assert_eq!(covered, 27, "40 s of credit pay 7 owed segments");
                rec.flush()?;
                let stored = store.progress_record(&u, &f)?;
                assert_eq!(
                    stored.map(|r| r.covered_count()),
                    Some(27),
                    "what a read paid reaches the store through the flusher"
                );
            }
        }
        let r = rec.get(&u, &f, &SIXES, at(130))?;
        assert_eq!(r.as_ref().map(|r| r.covered_count()), Some(100));
        assert_eq!(
            r.as_ref().map(|r| r.watch_seconds),
            Some(600.0),
            "each owed segment request adds its watch time once paid"
        );
        // Nothing was delivered after the burst: reads are not watching.
        assert_eq!(r.and_then(|r| r.active_seconds), Some(0.0));
        let v = rec.view(&u, &f, &SIXES, at(130))?;
        assert_eq!(v.covered_segments, 100);
        assert!(!v.unlocked, "the floor (135 s) still applies: {v:?}");
        Ok(())
    }

    /// A silence pays what was owed before it, but what is left over is capped at the
    /// buffer: it cannot be saved up for a later burst.
    #[test]
    fn a_silence_pays_what_is_owed_but_saves_no_more_than_the_buffer() -> Result<()> {
        let rec = recorder(Store::temporary()?, PACE);
        let (u, f) = (Uuid::now_v7(), Uuid::now_v7());
        let t = Instant::now();
        for i in 0..50 {
            rec.record(event(u, f, i, 100, Signal::Key, t));
        }
        let later = t + Duration::from_secs(3600);
        assert_eq!(
            rec.get(&u, &f, &SIXES, later)?.map(|r| r.covered_count()),
            Some(50)
        );
        let counted = (50..100)
            .filter(|&i| rec.record(event(u, f, i, 100, Signal::Key, later)))
            .count();
        assert_eq!(counted, 20, "one buffer (120 s) after an hour of silence");
        Ok(())
    }

    /// Progress saved before the pace was measured, below the unlock: the delta merged into
    /// it starts measuring watch time, so bursting the rest does not skip the floor.
    #[test]
    fn legacy_progress_below_the_unlock_must_meet_the_floor() -> TestResult {
        let store = Store::temporary()?;
        let rec = recorder(store.clone(), PACE);
        let (u, f) = (Uuid::now_v7(), Uuid::now_v7());
        let legacy: ProgressRecord = serde_json::from_str(
            r#"{"covered":[1,0],"total":10,"last_segment":0,"watch_seconds":6.0,"updated_at":1}"#,
        )?;
        assert_eq!(legacy.active_seconds, None);
        store.save_progress(&u, &f, &legacy)?;
        let v = rec.view(&u, &f, &[6.0; 10], Instant::now())?;
        assert_eq!(v.active_seconds, Some(0.0), "viewed: measured from now");
        let t = Instant::now();
        for i in 1..10 {
            rec.record(event(u, f, i, 10, Signal::Key, t));
        }
        let v = rec.view(&u, &f, &[6.0; 10], t)?;
        assert_eq!(v.covered_segments, 10);
        assert_eq!(v.active_seconds, Some(0.0));
        assert!(!v.unlocked, "the rest in a burst: {v:?}");
        rec.flush()?;
        assert_eq!(
            store
                .progress_record(&u, &f)?
                .and_then(|r| r.active_seconds),
            Some(0.0),
            "the flusher stores it measured"
        );
        let later = t + Duration::from_secs_f64(13.5);
        assert!(rec.view(&u, &f, &[6.0; 10], later)?.unlocked);
        Ok(())
    }

    /// Legacy progress that had unlocked keeps skipping the floor after new deliveries.
    #[test]
    fn legacy_progress_that_had_unlocked_keeps_its_unlock() -> TestResult {
        let store = Store::temporary()?;
        let rec = recorder(store.clone(), PACE);
        let (u, f) = (Uuid::now_v7(), Uuid::now_v7());
        let legacy: ProgressRecord = serde_json::from_str(
            r#"{"covered":[255,1],"total":10,"last_segment":8,"watch_seconds":54.0,"updated_at":1}"#,
        )?;
        store.save_progress(&u, &f, &legacy)?;
        let t = Instant::now();
        rec.record(event(u, f, 0, 10, Signal::Segment, t));
        assert!(rec.view(&u, &f, &[6.0; 10], t)?.unlocked);
        rec.flush()?;
        assert_eq!(
            store
                .progress_record(&u, &f)?
                .and_then(|r| r.active_seconds),
            None
        );
        assert!(rec.view(&u, &f, &[6.0; 10], t)?.unlocked);
        Ok(())
    }

    fn paced(mut r: ProgressRecord) -> ProgressRecord {
        r.active_seconds = Some(f64::MAX);
        r
    }

    #[test]
    fn jumping_to_the_end_unlocks_nothing() {
        let mut r = paced(ProgressRecord::new(20));
        for i in 18..20 {
            r.mark(i);
        }
        r.last_segment = Some(19);
        let v = view(Some(&r), &[6.0; 20], &rules());
        assert!((v.coverage - 0.1).abs() < 1e-9);
        assert!(!v.unlocked);
        assert_eq!(v.resume_at_seconds, 0.0);
        for i in 0..18 {
            r.mark(i);
        }
        assert!(view(Some(&r), &[6.0; 20], &rules()).unlocked);
    }

    #[test]
    fn eighty_nine_percent_is_locked_ninety_is_unlocked() {
        let mut r = paced(ProgressRecord::new(100));
        for i in 0..89 {
            r.mark(i);
        }
        let v = view(Some(&r), &[6.0; 100], &rules());
        assert!((v.coverage - 0.89).abs() < 1e-9 && !v.unlocked, "{v:?}");
        r.mark(89);
        assert!(view(Some(&r), &[6.0; 100], &rules()).unlocked);
    }

    #[test]
    fn resume_backs_off_from_the_last_segment() {
        let mut r = ProgressRecord::new(20);
        r.last_segment = Some(10);
        let v = view(Some(&r), &[6.0; 20], &rules());
        assert_eq!(v.resume_at_seconds, 30.0);
    }
}
