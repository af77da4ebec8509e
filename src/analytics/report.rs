//! The questions the console and the admin API ask: a range's series, totals, funnel,
//! conversion and top films (`report`), and a film's retention curve (`retention`). Each
//! reads rollup keys in its range only: a film's (or the site's) days, and for the top
//! films the whole months of the range plus the days at its edges.

use std::collections::HashMap;

use uuid::Uuid;

use super::calendar::{first_of_month, month_of, week_start};
use crate::store::analytics::{DayRollup, FilmTotals};
use crate::store::{Store, StoreError};

/// The longest range a report covers, in days (two years and a leap day).
pub const MAX_DAYS: i32 = 731;
/// How many films each top list names.
pub const TOP: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Day,
    /// ISO weeks, from Monday.
    Week,
    Month,
}

impl Granularity {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "day" => Some(Self::Day),
            "week" => Some(Self::Week),
            "month" => Some(Self::Month),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }

    /// The first day of the bucket `day` is in.
    fn bucket(self, day: i32) -> i32 {
        match self {
            Self::Day => day,
            Self::Week => week_start(day),
            Self::Month => first_of_month(month_of(day)),
        }
    }

    /// The first day of the bucket after the one starting at `start`.
    fn next(self, start: i32) -> i32 {
        match self {
            Self::Day => start + 1,
            Self::Week => start + 7,
            Self::Month => first_of_month(month_of(start) + 1),
        }
    }
}

/// A report's range: days `from..=to` in the analytics zone, one film or the site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    pub from: i32,
    pub to: i32,
    pub film: Option<Uuid>,
    pub granularity: Granularity,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RangeError {
    #[error("`from` ({from}) is after `to` ({to})")]
    Reversed { from: String, to: String },
    #[error("the range is {days} days long; at most {MAX_DAYS} are reported at once")]
    TooLong { days: i32 },
    #[error("{name} {text:?} is not a date (YYYY-MM-DD)")]
    NotADate { name: &'static str, text: String },
    #[error("granularity {0:?} is not day, week or month")]
    Granularity(String),
}

/// The range a report covers without `from`: the 30 days ending with `to`.
pub const DEFAULT_DAYS: i32 = 30;

impl Query {
    /// A report's query as a request gives it (the JSON API's parameters and the console's
    /// form alike): `to` defaults to `today`, `from` to the 30 days ending with `to`,
    /// granularity to days; checked with `check`.
    pub fn from_request(
        from: Option<&str>,
        to: Option<&str>,
        granularity: Option<&str>,
        film: Option<Uuid>,
        today: i32,
    ) -> Result<Self, RangeError> {
        let date = |name: &'static str, text: Option<&str>| match text {
            None | Some("") => Ok(None),
            Some(t) => {
                super::calendar::parse_date(t)
                    .map(Some)
                    .ok_or_else(|| RangeError::NotADate {
                        name,
                        text: t.to_string(),
                    })
            }
        };
        let to = date("to", to)?.unwrap_or(today);
        let from = date("from", from)?.unwrap_or(to - (DEFAULT_DAYS - 1));
        let granularity = match granularity {
            None | Some("") => Granularity::Day,
            Some(g) => Granularity::parse(g).ok_or_else(|| RangeError::Granularity(g.into()))?,
        };
        let query = Query {
            from,
            to,
            film,
            granularity,
        };
        query.check()?;
        Ok(query)
    }
}

impl Query {
    pub fn check(&self) -> Result<(), RangeError> {
        if self.from > self.to {
            return Err(RangeError::Reversed {
                from: super::calendar::format_day(self.from),
                to: super::calendar::format_day(self.to),
            });
        }
        let days = self.to - self.from + 1;
        if days > MAX_DAYS {
            return Err(RangeError::TooLong { days });
        }
        Ok(())
    }
}

/// One bucket of the series: its first and last day (clipped to the range) and counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub start: i32,
    pub end: i32,
    pub counts: DayRollup,
}

/// The funnel: viewers → preview completions → checkouts → purchases → completions, each
/// a number of distinct viewers (per film; for the site, summed over films).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Funnel {
    pub viewers: u64,
    pub preview_completions: u64,
    pub checkouts: u64,
    pub purchases: u64,
    pub completions: u64,
}

/// Preview viewer → buyer: of the viewers who started a preview, those who then bought.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Conversion {
    pub preview_viewers: u64,
    pub buyers: u64,
    /// `buyers ÷ preview_viewers`, `None` without preview viewers.
    pub rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ranked<T> {
    pub film: Uuid,
    pub title: Option<String>,
    pub value: T,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub query: Query,
    pub series: Vec<Bucket>,
    pub totals: DayRollup,
    pub funnel: Funnel,
    pub conversion: Conversion,
    /// `completions ÷ viewers`, `None` without viewers.
    pub completion_rate: Option<f64>,
    /// Per currency, the films with the most revenue (net of refunds), best first. Empty
    /// for a one-film report.
    pub top_by_revenue: Vec<(String, Vec<Ranked<i64>>)>,
    /// The films with the most watch hours, best first. Empty for a one-film report.
    pub top_by_watch_hours: Vec<Ranked<f64>>,
}

fn ratio(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

/// The report of `query` (checked with `Query::check` first).
pub fn report(store: &Store, query: Query) -> Result<Report, StoreError> {
    build(store, query, true)
}

/// The report without the top films (empty lists), which cost the most to read: for the
/// CSV export, which holds only the series.
pub fn series(store: &Store, query: Query) -> Result<Report, StoreError> {
    build(store, query, false)
}

fn build(store: &Store, query: Query, tops: bool) -> Result<Report, StoreError> {
    let film = query.film.unwrap_or_else(Uuid::nil);
    let days = store.rollups(&film, query.from, query.to)?;
    let g = query.granularity;
    let mut series = Vec::new();
    let mut start = g.bucket(query.from);
    let mut days = days.into_iter().peekable();
    let mut totals = DayRollup::default();
    while start <= query.to {
        let next = g.next(start);
        let mut counts = DayRollup::default();
        while let Some((_, c)) = days.next_if(|(d, _)| *d < next) {
            counts.add(&c);
        }
        totals.add(&counts);
        series.push(Bucket {
            start: start.max(query.from),
            end: (next - 1).min(query.to),
            counts,
        });
        start = next;
    }
    let funnel = Funnel {
        viewers: totals.viewers,
        preview_completions: totals.preview_completions,
        checkouts: totals.checkout_viewers,
        purchases: totals.buyers,
        completions: totals.completions,
    };
    let conversion = Conversion {
        preview_viewers: totals.preview_starts,
        buyers: totals.converted,
        rate: ratio(totals.converted, totals.preview_starts),
    };
    let (top_by_revenue, top_by_watch_hours) = if tops && query.film.is_none() {
        top_films(store, query.from, query.to)?
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(Report {
        query,
        series,
        completion_rate: ratio(totals.completions, totals.viewers),
        totals,
        funnel,
        conversion,
        top_by_revenue,
        top_by_watch_hours,
    })
}

type Tops = (Vec<(String, Vec<Ranked<i64>>)>, Vec<Ranked<f64>>);

/// Every film's totals over `from..=to`, from the month index wherever it saves reads:
/// a whole month is one record per film; a partial month is its days, or when it holds
/// more than half the month, the month minus the days outside the range.
pub(crate) fn film_totals(
    store: &Store,
    from: i32,
    to: i32,
) -> Result<HashMap<Uuid, FilmTotals>, StoreError> {
    let mut totals = HashMap::new();
    let mut outside = HashMap::new();
    let mut whole: Option<(i32, i32)> = None;
    let mut month = month_of(from);
    while first_of_month(month) <= to {
        let (first, last) = (first_of_month(month), first_of_month(month + 1) - 1);
        let (a, b) = (from.max(first), to.min(last));
        if (a, b) == (first, last) {
            whole = Some(whole.map_or((month, month), |(w, _)| (w, month)));
        } else if (b - a + 1) * 2 <= last - first + 1 {
            store.film_totals_of_days(a, b, &mut totals)?;
        } else {
            store.film_totals_of_months(month, month, &mut totals)?;
            store.film_totals_of_days(first, a - 1, &mut outside)?;
            store.film_totals_of_days(b + 1, last, &mut outside)?;
        }
        month += 1;
    }
    if let Some((w0, w1)) = whole {
        store.film_totals_of_months(w0, w1, &mut totals)?;
    }
    for (film, t) in &outside {
        if let Some(mine) = totals.get_mut(film) {
            mine.subtract(t);
        }
    }
    Ok(totals)
}

fn top_films(store: &Store, from: i32, to: i32) -> Result<Tops, StoreError> {
    let totals = film_totals(store, from, to)?;
    let mut by_currency: HashMap<String, Vec<(Uuid, i64)>> = HashMap::new();
    let mut hours: Vec<(Uuid, f64)> = Vec::new();
    for (film, t) in &totals {
        for (currency, amount) in &t.revenue {
            if *amount != 0 {
                by_currency
                    .entry(currency.clone())
                    .or_default()
                    .push((*film, *amount));
            }
        }
        // A month minus its days outside the range may leave rounding dust.
        if t.watch_seconds > 1e-6 {
            hours.push((*film, t.watch_seconds / 3600.0));
        }
    }
    let mut revenue = Vec::new();
    for (currency, films) in by_currency {
        revenue.push((currency, ranked(store, films, |a, b| a.cmp(b))?));
    }
    revenue.sort_by(|a, b| a.0.cmp(&b.0));
    let hours = ranked(store, hours, |a, b| a.total_cmp(b))?;
    Ok((revenue, hours))
}

/// The first `TOP` of `films` by value, largest first (ties in film id order, so the answer
/// does not depend on hashing), each with its title.
fn ranked<T>(
    store: &Store,
    mut films: Vec<(Uuid, T)>,
    order: impl Fn(&T, &T) -> std::cmp::Ordering,
) -> Result<Vec<Ranked<T>>, StoreError> {
    films.sort_by(|a, b| order(&b.1, &a.1).then(a.0.cmp(&b.0)));
    films.truncate(TOP);
    films
        .into_iter()
        .map(|(film, value)| {
            Ok(Ranked {
                title: store.film(&film)?.map(|f| f.title),
                film,
                value,
            })
        })
        .collect()
}

/// One point of a retention curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub segment: u32,
    pub viewers: u64,
    /// `viewers ÷` the film's viewers (0 without viewers).
    pub share: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Retention {
    pub film: Uuid,
    pub viewers: u64,
    /// Every segment index of the film, in order.
    pub points: Vec<Point>,
}

/// For every segment of `film`, the share of its viewers whose coverage includes it.
pub fn retention(store: &Store, film: &Uuid) -> Result<Retention, StoreError> {
    let (head, counted) = store.retention(film)?;
    let segments = counted.last().map_or(0, |(s, _)| s + 1).max(head.segments);
    let mut counts = vec![0u64; segments as usize];
    for (s, n) in counted {
        if let Some(c) = counts.get_mut(s as usize) {
            *c = n;
        }
    }
    let points = counts
        .into_iter()
        .enumerate()
        .map(|(i, viewers)| Point {
            segment: i as u32,
            viewers,
            share: ratio(viewers, head.viewers).unwrap_or(0.0),
        })
        .collect();
    Ok(Retention {
        film: *film,
        viewers: head.viewers,
        points,
    })
}
