//! Analytics rollups: counters per film and per day, kept up to date one event at a time
//! (`apply_analytics`, one sled transaction with the consumer's cursor), so that a report
//! reads a key range and never the history.
//!
//! Trees (days are days since 1970-01-01 in `analytics.timezone`, months `year × 12 +
//! month − 1`; both stored sign-flipped big-endian so keys sort in time order):
//! - `analytics_rollups`: `film ‖ day` → `DayRollup` (JSON). The nil film holds the
//!   site-wide counters (new users, and the sum of every film's).
//! - `analytics_seen`: `day ‖ film ‖ user` → nothing: who was active on a day (unique
//!   viewers per film and, under the nil film, site-wide).
//! - `analytics_viewers`: `film ‖ user` → one byte of milestone flags, so each milestone
//!   (first segment, preview start, preview end, checkout, purchase, completion) counts
//!   once per viewer and film, on the day it was first reached.
//! - `analytics_retention`: `film` → `FilmViewers` (JSON); `film ‖ segment` → u64: how
//!   many of the film's viewers have the segment in their coverage.
//! - `analytics_film_days` (`day ‖ film`) and `analytics_film_months` (`month ‖ film`) →
//!   `FilmTotals` (binary): each film's watch time and revenue per currency, so the top
//!   films of a range read whole months plus the days at its edges, not every film-day.

use std::collections::{BTreeMap, HashMap};

use super::Transact;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use uuid::Uuid;

use super::{decode, encode, pair, Result, Store, StoreError};

/// Marks the meta record saying the rollups were computed from the stored records.
const BACKFILLED: &str = "analytics_backfilled";

/// Milestones of one viewer on one film (`analytics_viewers`), each counted once.
pub mod milestone {
    /// Was delivered a segment of the film.
    pub const VIEWER: u8 = 1;
    /// Was issued a playback token without the whole film.
    pub const PREVIEW_START: u8 = 1 << 1;
    /// Reached the preview's last segment without the whole film.
    pub const PREVIEW_END: u8 = 1 << 2;
    /// Started a checkout for the film (tips are not).
    pub const CHECKOUT: u8 = 1 << 3;
    /// Bought the film (a captured purchase).
    pub const BOUGHT: u8 = 1 << 4;
    /// Has `playback.unlock_fraction` of the film's segments in their coverage.
    pub const COMPLETED: u8 = 1 << 5;
}

/// The counters of one film (or the site) on one day. Every field adds up over days and
/// over films except `active_viewers` (unique that day): summed over days it is
/// viewer-days.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DayRollup {
    /// Viewers delivered a first segment of the film that day (funnel: viewers).
    pub viewers: u64,
    /// Distinct viewers delivered anything that day.
    pub active_viewers: u64,
    /// Viewers issued a first preview token (once per viewer and film).
    pub preview_starts: u64,
    /// Viewers reaching the preview's end without the film (once per viewer and film).
    pub preview_completions: u64,
    /// Purchase checkouts started (every one).
    pub checkouts: u64,
    /// Viewers starting a first purchase checkout (funnel: checkouts).
    pub checkout_viewers: u64,
    /// Purchases captured (every one).
    pub purchases: u64,
    /// Viewers buying the film for the first time (funnel: purchases).
    pub buyers: u64,
    /// Of `buyers`, those who had started a preview before buying (conversion).
    pub converted: u64,
    /// Orders refunded (purchases and tips).
    pub refunds: u64,
    /// Provider → currency → minor units: captures (purchases and tips) minus refunds.
    pub revenue: BTreeMap<String, BTreeMap<String, i64>>,
    /// Media seconds of segments delivered.
    pub watch_seconds: f64,
    /// Viewers reaching `playback.unlock_fraction` coverage (once per viewer and film).
    pub completions: u64,
    /// Accounts created (site-wide only).
    pub new_users: u64,
    pub supports: u64,
    /// Tips captured (refunds of tips are in `refunds` and `revenue`, not here).
    pub tips: u64,
    /// Currency → minor units of tips captured.
    pub tip_amounts: BTreeMap<String, i64>,
}

impl DayRollup {
    /// Adds `o`'s counters to these.
    pub fn add(&mut self, o: &DayRollup) {
        self.viewers += o.viewers;
        self.active_viewers += o.active_viewers;
        self.preview_starts += o.preview_starts;
        self.preview_completions += o.preview_completions;
        self.checkouts += o.checkouts;
        self.checkout_viewers += o.checkout_viewers;
        self.purchases += o.purchases;
        self.buyers += o.buyers;
        self.converted += o.converted;
        self.refunds += o.refunds;
        for (provider, amounts) in &o.revenue {
            let mine = self.revenue.entry(provider.clone()).or_default();
            for (currency, amount) in amounts {
                *mine.entry(currency.clone()).or_default() += amount;
            }
        }
        self.watch_seconds += o.watch_seconds;
        self.completions += o.completions;
        self.new_users += o.new_users;
        self.supports += o.supports;
        self.tips += o.tips;
        for (currency, amount) in &o.tip_amounts {
            *self.tip_amounts.entry(currency.clone()).or_default() += amount;
        }
    }

    /// Revenue per currency, all providers together.
    pub fn revenue_by_currency(&self) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        for amounts in self.revenue.values() {
            for (currency, amount) in amounts {
                *out.entry(currency.clone()).or_default() += amount;
            }
        }
        out
    }
}

/// A film's viewers (the retention curve's denominator) and its segment count as last
/// reported by a flush.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FilmViewers {
    pub viewers: u64,
    pub segments: u32,
}

/// One film's watch time and revenue per currency over a day or a month: what ranks the
/// top films.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilmTotals {
    pub watch_seconds: f64,
    pub revenue: BTreeMap<String, i64>,
}

impl FilmTotals {
    pub fn add(&mut self, o: &FilmTotals) {
        self.watch_seconds += o.watch_seconds;
        for (currency, amount) in &o.revenue {
            *self.revenue.entry(currency.clone()).or_default() += amount;
        }
    }

    /// Takes `o`'s totals away (a month minus the days outside a range).
    pub fn subtract(&mut self, o: &FilmTotals) {
        self.watch_seconds -= o.watch_seconds;
        for (currency, amount) in &o.revenue {
            *self.revenue.entry(currency.clone()).or_default() -= amount;
        }
    }

    fn is_empty(&self) -> bool {
        self.watch_seconds == 0.0 && self.revenue.is_empty()
    }

    /// `f64` watch seconds, then per currency: length byte, code, `i64` amount (all
    /// big-endian). Read 12 times per film for a year's top films: no JSON.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.revenue.len() * 12);
        out.extend_from_slice(&self.watch_seconds.to_be_bytes());
        for (currency, amount) in &self.revenue {
            let code = currency.as_bytes();
            let len = code.len().min(u8::MAX as usize);
            out.push(len as u8);
            out.extend_from_slice(&code[..len]);
            out.extend_from_slice(&amount.to_be_bytes());
        }
        out
    }

    fn from_bytes(tree: &'static str, bytes: &[u8]) -> Result<Self> {
        let corrupt = || StoreError::Corrupt {
            tree,
            message: "film totals are truncated".into(),
        };
        let take8 = |b: &[u8], at: usize| -> Option<[u8; 8]> {
            b.get(at..at + 8).and_then(|s| s.try_into().ok())
        };
        let mut totals = FilmTotals {
            watch_seconds: f64::from_be_bytes(take8(bytes, 0).ok_or_else(corrupt)?),
            revenue: BTreeMap::new(),
        };
        let mut at = 8;
        while at < bytes.len() {
            let len = bytes[at] as usize;
            let code = bytes.get(at + 1..at + 1 + len).ok_or_else(corrupt)?;
            let amount = i64::from_be_bytes(take8(bytes, at + 1 + len).ok_or_else(corrupt)?);
            totals
                .revenue
                .insert(String::from_utf8_lossy(code).into_owned(), amount);
            at += 1 + len + 8;
        }
        Ok(totals)
    }
}

/// What one event changes, worked out by the analytics domain: applied by
/// `Store::apply_analytics` in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub day: i32,
    pub month: i32,
    /// The nil film: site-wide only (a sign-up).
    pub film: Uuid,
    pub user: Option<Uuid>,
    /// The viewer was active (delivered segments): counts in that day's unique viewers.
    pub active: bool,
    /// Milestones reached by this event; only those new to the viewer count.
    pub milestones: u8,
    /// Counters added whatever the viewer's history (purchases, revenue, watch time, …).
    pub counts: DayRollup,
    /// Segment indexes newly in the viewer's coverage (retention).
    pub added: Vec<u32>,
    /// The film's segment count, when the event knows it.
    pub segments: u32,
}

/// A day or month as a key part: sign-flipped so negative numbers sort first.
pub fn period_key(n: i32) -> [u8; 4] {
    ((n as u32) ^ 0x8000_0000).to_be_bytes()
}

fn period_from_key(k: &[u8]) -> Option<i32> {
    let b: [u8; 4] = k.try_into().ok()?;
    Some((u32::from_be_bytes(b) ^ 0x8000_0000) as i32)
}

fn rollup_key(film: &Uuid, day: i32) -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..16].copy_from_slice(film.as_bytes());
    k[16..].copy_from_slice(&period_key(day));
    k
}

fn period_film_key(period: i32, film: &Uuid) -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..4].copy_from_slice(&period_key(period));
    k[4..].copy_from_slice(film.as_bytes());
    k
}

fn seen_key(day: i32, film: &Uuid, user: &Uuid) -> [u8; 36] {
    let mut k = [0u8; 36];
    k[..4].copy_from_slice(&period_key(day));
    k[4..20].copy_from_slice(film.as_bytes());
    k[20..].copy_from_slice(user.as_bytes());
    k
}

fn segment_key(film: &Uuid, segment: u32) -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..16].copy_from_slice(film.as_bytes());
    k[16..].copy_from_slice(&segment.to_be_bytes());
    k
}

type TxError = ConflictableTransactionError<StoreError>;

fn abort(e: StoreError) -> TxError {
    ConflictableTransactionError::Abort(e)
}

fn bump_rollup(
    tree: &TransactionalTree,
    key: &[u8],
    delta: &DayRollup,
) -> std::result::Result<(), TxError> {
    let mut current: DayRollup = match tree.get(key)? {
        Some(v) => decode("analytics_rollups", &v).map_err(abort)?,
        None => DayRollup::default(),
    };
    current.add(delta);
    tree.insert(key, encode(&current))?;
    Ok(())
}

fn bump_totals(
    tree: &TransactionalTree,
    name: &'static str,
    key: &[u8],
    delta: &FilmTotals,
) -> std::result::Result<(), TxError> {
    let mut current = match tree.get(key)? {
        Some(v) => FilmTotals::from_bytes(name, &v).map_err(abort)?,
        None => FilmTotals::default(),
    };
    current.add(delta);
    tree.insert(key, current.to_bytes())?;
    Ok(())
}

/// The counters that milestones newly reached add.
fn milestone_counts(new: u8, old: u8) -> DayRollup {
    use milestone::*;
    let has = |m: u8| u64::from(new & m != 0);
    DayRollup {
        viewers: has(VIEWER),
        preview_starts: has(PREVIEW_START),
        preview_completions: has(PREVIEW_END),
        checkout_viewers: has(CHECKOUT),
        buyers: has(BOUGHT),
        converted: u64::from(new & BOUGHT != 0 && old & PREVIEW_START != 0),
        completions: has(COMPLETED),
        ..DayRollup::default()
    }
}

impl Store {
    /// Applies one event's `plan` and, when given, moves `cursor` (consumer name, event
    /// id) in the same transaction: an event counts exactly once, across crashes.
    pub fn apply_analytics(&self, plan: &Plan, cursor: Option<(&str, u64)>) -> Result<()> {
        let site = Uuid::nil();
        let per_film = !plan.film.is_nil();
        (
            &self.meta,
            &self.analytics_rollups,
            &self.analytics_seen,
            &self.analytics_viewers,
            &self.analytics_retention,
            &self.analytics_film_days,
            &self.analytics_film_months,
        )
            .transaction(
                |(meta, rollups, seen, viewers, retention, film_days, film_months)| {
                    let mut film_delta = plan.counts.clone();
                    let mut site_delta = plan.counts.clone();
                    let mut new_viewer = false;
                    if let (Some(user), true) = (plan.user, per_film) {
                        if plan.active {
                            if seen
                                .insert(seen_key(plan.day, &plan.film, &user).as_slice(), &[])?
                                .is_none()
                            {
                                film_delta.active_viewers += 1;
                            }
                            if seen
                                .insert(seen_key(plan.day, &site, &user).as_slice(), &[])?
                                .is_none()
                            {
                                site_delta.active_viewers += 1;
                            }
                        }
                        if plan.milestones != 0 {
                            let key = pair(&plan.film, &user);
                            let old = viewers
                                .get(key.as_slice())?
                                .and_then(|v| v.first().copied())
                                .unwrap_or(0);
                            let new = plan.milestones & !old;
                            if new != 0 {
                                viewers.insert(key.as_slice(), &[old | new])?;
                                let m = milestone_counts(new, old);
                                film_delta.add(&m);
                                site_delta.add(&m);
                                new_viewer = new & milestone::VIEWER != 0;
                            }
                        }
                    }
                    if per_film && (new_viewer || !plan.added.is_empty() || plan.segments > 0) {
                        let head: FilmViewers = match retention.get(plan.film.as_bytes())? {
                            Some(v) => decode("analytics_retention", &v).map_err(abort)?,
                            None => FilmViewers::default(),
                        };
                        let updated = FilmViewers {
                            viewers: head.viewers + u64::from(new_viewer),
                            segments: head.segments.max(plan.segments),
                        };
                        if updated != head {
                            retention.insert(plan.film.as_bytes().as_slice(), encode(&updated))?;
                        }
                        for &segment in &plan.added {
                            let key = segment_key(&plan.film, segment);
                            let n = retention
                                .get(key.as_slice())?
                                .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
                                .unwrap_or(0);
                            retention.insert(key.as_slice(), &(n + 1).to_be_bytes())?;
                        }
                    }
                    if film_delta != DayRollup::default() && per_film {
                        bump_rollup(rollups, &rollup_key(&plan.film, plan.day), &film_delta)?;
                        let totals = FilmTotals {
                            watch_seconds: film_delta.watch_seconds,
                            revenue: film_delta.revenue_by_currency(),
                        };
                        if !totals.is_empty() {
                            bump_totals(
                                film_days,
                                "analytics_film_days",
                                &period_film_key(plan.day, &plan.film),
                                &totals,
                            )?;
                            bump_totals(
                                film_months,
                                "analytics_film_months",
                                &period_film_key(plan.month, &plan.film),
                                &totals,
                            )?;
                        }
                    }
                    if site_delta != DayRollup::default() {
                        bump_rollup(rollups, &rollup_key(&site, plan.day), &site_delta)?;
                    }
                    if let Some((name, id)) = cursor {
                        super::events::advance_cursor(meta, name, id)?;
                    }
                    Ok(())
                },
            )?;
        Ok(())
    }

    /// The rollups of `film` (the nil film: the site) from day `from` to day `to`
    /// inclusive, oldest first; days without activity are absent.
    pub fn rollups(&self, film: &Uuid, from: i32, to: i32) -> Result<Vec<(i32, DayRollup)>> {
        if from > to {
            return Ok(Vec::new());
        }
        self.analytics_rollups
            .range(rollup_key(film, from)..=rollup_key(film, to))
            .map(|kv| {
                let (k, v) = kv?;
                let day = period_from_key(&k[16..]).unwrap_or_default();
                Ok((day, decode("analytics_rollups", &v)?))
            })
            .collect()
    }

    /// Adds every film's totals of days `from..=to` into `into`.
    pub fn film_totals_of_days(
        &self,
        from: i32,
        to: i32,
        into: &mut HashMap<Uuid, FilmTotals>,
    ) -> Result<()> {
        totals_in(
            &self.analytics_film_days,
            "analytics_film_days",
            from,
            to,
            into,
        )
    }

    /// Adds every film's totals of months `from..=to` into `into`.
    pub fn film_totals_of_months(
        &self,
        from: i32,
        to: i32,
        into: &mut HashMap<Uuid, FilmTotals>,
    ) -> Result<()> {
        totals_in(
            &self.analytics_film_months,
            "analytics_film_months",
            from,
            to,
            into,
        )
    }

    /// A film's viewers and, per segment index with any, how many of them have it.
    pub fn retention(&self, film: &Uuid) -> Result<(FilmViewers, Vec<(u32, u64)>)> {
        let mut head = FilmViewers::default();
        let mut segments = Vec::new();
        for kv in self.analytics_retention.scan_prefix(film.as_bytes()) {
            let (k, v) = kv?;
            if k.len() == 16 {
                head = decode("analytics_retention", &v)?;
            } else if let (Some(s), Some(n)) = (
                k.get(16..20).and_then(|s| s.try_into().ok()),
                v.as_ref().try_into().ok(),
            ) {
                segments.push((u32::from_be_bytes(s), u64::from_be_bytes(n)));
            }
        }
        Ok((head, segments))
    }

    /// Whether the rollups were computed from the stored records (the backfill ran).
    pub fn analytics_backfilled(&self) -> Result<bool> {
        Ok(self.meta.get(BACKFILLED)?.is_some())
    }

    /// Records that the backfill ran and moves `consumer`'s cursor to `last` (the log's
    /// newest event when it started), together.
    pub fn finish_analytics_backfill(&self, consumer: &str, last: Option<u64>) -> Result<()> {
        (&self.meta,).transaction(|(meta,)| {
            if let Some(id) = last {
                super::events::advance_cursor(meta, consumer, id)?;
            }
            meta.insert(BACKFILLED, &[1u8])?;
            Ok(())
        })?;
        Ok(())
    }

    /// Empties every analytics tree (a backfill interrupted by a crash starts over).
    pub fn clear_analytics(&self) -> Result<()> {
        for tree in [
            &self.analytics_rollups,
            &self.analytics_seen,
            &self.analytics_viewers,
            &self.analytics_retention,
            &self.analytics_film_days,
            &self.analytics_film_months,
        ] {
            tree.clear()?;
        }
        Ok(())
    }

    /// Removes the unique-viewer marks (`analytics_seen`) of days before `day`; returns
    /// how many. A mark only stops a second count of the same viewer on its day.
    pub fn prune_analytics_seen(&self, day: i32) -> Result<usize> {
        let mut removed = 0;
        for key in self.analytics_seen.range(..period_key(day).to_vec()).keys() {
            self.analytics_seen.remove(key?)?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Empties the analytics and forgets that the backfill ran: the next start computes
    /// the rollups again from the stored records (a recovery tool, and the server test
    /// that compares the backfill with the incremental path). With the server stopped.
    pub fn forget_analytics(&self) -> Result<()> {
        self.clear_analytics()?;
        self.meta.remove(BACKFILLED)?;
        Ok(())
    }

    /// Every viewer's progress record: `(user, film, record)` (the backfill).
    pub fn all_progress(&self) -> Result<Vec<(Uuid, Uuid, super::progress::ProgressRecord)>> {
        pairs(&self.progress, "progress")
    }

    /// Every support: `(film, user, support)` (the backfill).
    pub fn all_supports(&self) -> Result<Vec<(Uuid, Uuid, super::comments::Support)>> {
        pairs(&self.supports, "supports")
    }
}

fn totals_in(
    tree: &super::Tree,
    name: &'static str,
    from: i32,
    to: i32,
    into: &mut HashMap<Uuid, FilmTotals>,
) -> Result<()> {
    if from > to {
        return Ok(());
    }
    let start = period_film_key(from, &Uuid::nil());
    let end = period_film_key(to, &Uuid::max());
    for kv in tree.range(start..=end) {
        let (k, v) = kv?;
        let Ok(film) = Uuid::from_slice(&k[4..]) else {
            continue;
        };
        into.entry(film)
            .or_default()
            .add(&FilmTotals::from_bytes(name, &v)?);
    }
    Ok(())
}

/// Every record of a tree keyed by two ids: `(first, second, record)`; a key of another
/// length is not one of its records and is passed over.
fn pairs<T: serde::de::DeserializeOwned>(
    tree: &super::Tree,
    name: &'static str,
) -> Result<Vec<(Uuid, Uuid, T)>> {
    let mut out = Vec::new();
    for kv in tree.iter() {
        let (k, v) = kv?;
        if k.len() != 32 {
            continue;
        }
        let (Ok(a), Ok(b)) = (Uuid::from_slice(&k[..16]), Uuid::from_slice(&k[16..])) else {
            continue;
        };
        out.push((a, b, decode(name, &v)?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched(film: Uuid, user: Uuid, day: i32, added: Vec<u32>) -> Plan {
        Plan {
            day,
            month: 0,
            film,
            user: Some(user),
            active: true,
            milestones: milestone::VIEWER,
            counts: DayRollup {
                watch_seconds: 6.0 * added.len() as f64,
                ..DayRollup::default()
            },
            added,
            segments: 10,
        }
    }

    #[test]
    fn milestones_and_unique_viewers_count_once() -> Result<()> {
        let store = Store::temporary()?;
        let (film, user) = (super::super::new_id(), super::super::new_id());
        store.apply_analytics(&watched(film, user, 5, vec![0, 1]), Some(("a", 1)))?;
        store.apply_analytics(&watched(film, user, 5, vec![2]), Some(("a", 2)))?;
        store.apply_analytics(&watched(film, user, 6, vec![3]), Some(("a", 3)))?;
        let days = store.rollups(&film, 0, 10)?;
        assert_eq!(days.len(), 2);
        assert_eq!((days[0].1.viewers, days[0].1.active_viewers), (1, 1));
        assert_eq!((days[1].1.viewers, days[1].1.active_viewers), (0, 1));
        assert_eq!(days[0].1.watch_seconds, 18.0);
        let site = store.rollups(&Uuid::nil(), 0, 10)?;
        assert_eq!(site[0].1.viewers, 1);
        let (head, segments) = store.retention(&film)?;
        assert_eq!(
            head,
            FilmViewers {
                viewers: 1,
                segments: 10
            }
        );
        assert_eq!(segments, vec![(0, 1), (1, 1), (2, 1), (3, 1)]);
        assert_eq!(store.event_cursor("a")?, Some(3));
        let mut tops = HashMap::new();
        store.film_totals_of_days(5, 6, &mut tops)?;
        assert_eq!(tops.get(&film).map(|t| t.watch_seconds), Some(24.0));
        Ok(())
    }

    #[test]
    fn old_unique_viewer_marks_are_pruned() -> Result<()> {
        let store = Store::temporary()?;
        let (film, user) = (super::super::new_id(), super::super::new_id());
        store.apply_analytics(&watched(film, user, 5, vec![0]), None)?;
        store.apply_analytics(&watched(film, user, 9, vec![1]), None)?;
        // Film and site marks of day 5 go; day 9's stay and still count once.
        assert_eq!(store.prune_analytics_seen(9)?, 2);
        store.apply_analytics(&watched(film, user, 9, vec![]), None)?;
        assert_eq!(store.rollups(&film, 9, 9)?[0].1.active_viewers, 1);
        Ok(())
    }

    #[test]
    fn film_totals_survive_their_encoding() -> Result<()> {
        let t = FilmTotals {
            watch_seconds: 12.5,
            revenue: [("KRW".to_string(), -300), ("USD".to_string(), 499)].into(),
        };
        assert_eq!(FilmTotals::from_bytes("t", &t.to_bytes())?, t);
        assert!(FilmTotals::from_bytes("t", &[1, 2]).is_err());
        Ok(())
    }

    #[test]
    fn periods_sort_in_time_order() {
        assert!(period_key(-1) < period_key(0));
        assert!(period_key(0) < period_key(20_000));
        assert_eq!(period_from_key(&period_key(-42)), Some(-42));
    }
}
