//! The state of the shop at a glance, for the console's dashboard: films by state, the
//! packaging queue, the latest orders and revenue, the moderation queue's length and the
//! disk. Read from the store at the time given; every figure is an index lookup or a key
//! range (the latest orders, the orders of the last week), never a scan of history.

use std::collections::BTreeMap;
use std::path::Path;

use uuid::Uuid;

use crate::store::films::Film;
use crate::store::jobs::{Job, JobState};
use crate::store::orders::{Order, OrderState};
use crate::store::{Store, StoreError};

const DAY: i64 = 86_400;

/// Where a film stands in its life, as the console names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FilmState {
    /// No source yet.
    Draft,
    /// A packaging job is queued or running.
    Packaging,
    /// The last packaging job failed and there is no package.
    Failed,
    /// Packaged, not published.
    Ready,
    Published,
}

impl FilmState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Packaging => "packaging",
            Self::Failed => "failed",
            Self::Ready => "ready",
            Self::Published => "published",
        }
    }

    pub const ALL: [FilmState; 5] = [
        Self::Draft,
        Self::Packaging,
        Self::Failed,
        Self::Ready,
        Self::Published,
    ];
}

/// The state of `film` given its newest job (if any).
pub fn film_state(film: &Film, newest_job: Option<&Job>) -> FilmState {
    let active =
        newest_job.is_some_and(|j| matches!(j.state, JobState::Queued | JobState::Running));
    let failed = newest_job.is_some_and(|j| j.state == JobState::Failed);
    match (film.package.is_some(), film.published) {
        // A published film being packaged again stays on sale with its old package.
        (true, true) => FilmState::Published,
        _ if active => FilmState::Packaging,
        (true, false) => FilmState::Ready,
        (false, _) if failed => FilmState::Failed,
        (false, _) => FilmState::Draft,
    }
}

/// Money by currency (minor units), in currency order.
pub type Revenue = BTreeMap<String, i64>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disk {
    pub total_bytes: u64,
    pub free_bytes: u64,
}

#[derive(Debug)]
pub struct Overview {
    /// How many films are in each state, in `FilmState::ALL` order.
    pub films_by_state: Vec<(FilmState, usize)>,
    pub films_total: usize,
    /// Running jobs first, then queued ones in queue order.
    pub jobs: Vec<Job>,
    /// Titles of the films those jobs (and the latest orders) are for.
    pub titles: BTreeMap<Uuid, String>,
    pub latest_orders: Vec<Order>,
    /// Captured less refunded, purchases and tips, by the day the money moved (UTC).
    pub revenue_today: Revenue,
    pub revenue_week: Revenue,
    /// Comments awaiting a moderator (reported and shown, or held): the console's queue.
    pub comments_waiting: usize,
    /// What the packages take on disk (as counted when each was packaged).
    pub package_bytes: u64,
    /// The filesystem of the media directory, when it could be asked.
    pub disk: Option<Disk>,
}

/// The dashboard's figures at `now`, for the data root `media_dir`.
pub fn overview(store: &Store, media_dir: &Path, now: i64) -> Result<Overview, StoreError> {
    let films = store.films()?;
    let mut jobs: Vec<Job> = Vec::new();
    for state in [JobState::Running, JobState::Queued] {
        for id in store.job_ids_in(state)? {
            if let Some(job) = store.job(&id)? {
                jobs.push(job);
            }
        }
    }
    let mut counts: BTreeMap<FilmState, usize> = BTreeMap::new();
    let mut titles = BTreeMap::new();
    let mut package_bytes = 0;
    for film in &films {
        let newest = store
            .jobs_for_film(&film.id)?
            .into_iter()
            .max_by_key(|j| j.id);
        *counts.entry(film_state(film, newest.as_ref())).or_default() += 1;
        package_bytes += film.package.as_ref().map_or(0, |p| p.bytes);
        titles.insert(film.id, film.title.clone());
    }
    let today = now - now.rem_euclid(DAY);
    let week = today - 6 * DAY;
    let mut revenue_today = Revenue::new();
    let mut revenue_week = Revenue::new();
    // Checkouts are finished within hours; a week and a day of orders holds every capture
    // and refund of the last seven days.
    for order in store.orders_created_since(week - DAY)? {
        for (at, amount) in money_moved(&order) {
            if at >= week {
                *revenue_week.entry(order.currency.clone()).or_default() += amount;
            }
            if at >= today {
                *revenue_today.entry(order.currency.clone()).or_default() += amount;
            }
        }
    }
    let latest_orders = store.latest_orders(10)?;
    Ok(Overview {
        films_by_state: FilmState::ALL
            .iter()
            .map(|s| (*s, counts.get(s).copied().unwrap_or(0)))
            .collect(),
        films_total: films.len(),
        jobs,
        titles,
        latest_orders,
        revenue_today,
        revenue_week,
        comments_waiting: store
            .flagged_comments()?
            .iter()
            .filter(|c| c.awaits_moderation())
            .count(),
        package_bytes,
        disk: disk(media_dir),
    })
}

/// When money moved on `order` and how much: + at its capture, − at its refund.
fn money_moved(order: &Order) -> Vec<(i64, i64)> {
    let amount = order.amount as i64;
    order
        .events
        .iter()
        .filter_map(|e| match e.state {
            OrderState::Captured => Some((e.at, amount)),
            OrderState::Refunded => Some((e.at, -amount)),
            _ => None,
        })
        .collect()
}

fn disk(dir: &Path) -> Option<Disk> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(Disk {
        total_bytes: s.f_blocks.saturating_mul(s.f_frsize),
        free_bytes: s.f_bavail.saturating_mul(s.f_frsize),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn film() -> Film {
        Film {
            id: Uuid::nil(),
            title: "t".into(),
            description: String::new(),
            prices: vec![],
            published: false,
            publish_when_ready: false,
            source: None,
            package: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn a_film_without_source_or_job_is_a_draft_and_a_packaged_published_one_is_published() {
        let mut f = film();
        assert_eq!(film_state(&f, None), FilmState::Draft);
        f.package = Some(crate::store::films::PackageSummary {
            dir: "d".into(),
            duration: 1.0,
            segments: 1,
            renditions: vec![],
            packaged_at: 0,
            bytes: 0,
            stored: None,
        });
        assert_eq!(film_state(&f, None), FilmState::Ready);
        f.published = true;
        assert_eq!(film_state(&f, None), FilmState::Published);
    }
}
