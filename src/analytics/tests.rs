//! The incremental path (events through the consumer) and the backfill (the stored
//! records) agree on everything the records can tell (see `backfill`'s docs for what they
//! cannot: preview starts, `converted`, preview completions of viewers who later bought,
//! and the day of viewing, which this scenario keeps on one day per viewer).

use uuid::Uuid;

use super::*;
use crate::events::{self, Event, OrderFacts};
use crate::store::analytics::DayRollup;
use crate::store::comments::Support;
use crate::store::orders::{Order, OrderKind, OrderState};
use crate::store::progress::ProgressRecord;
use crate::store::users::Role;
use crate::store::{Store, StoreError};

const DAY: i64 = 86_400;
/// 2026-12-01T12:00:00Z.
const T0: i64 = 1_796_126_400;

fn rollups() -> Rollups {
    Rollups::new(
        Calendar::utc(),
        Rules {
            completion_fraction: 0.9,
            preview_fraction: 0.1,
        },
    )
}

/// A viewer's progress on a 20-segment film: the first `n` segments, 6 s each, stored
/// and reported as one flush.
fn watch(store: &Store, user: Uuid, film: Uuid, n: u32, at: i64) -> Result<(), StoreError> {
    let mut record = ProgressRecord::new(20);
    for i in 0..n {
        record.mark(i);
    }
    record.watch_seconds = 6.0 * f64::from(n);
    record.updated_at = at;
    store.save_progress(&user, &film, &record)?;
    events::record(
        store,
        at,
        Event::Watched {
            user,
            film,
            added: (0..n).collect(),
            watch_seconds: record.watch_seconds,
            covered: n,
            total: 20,
        },
    );
    // The preview of 20 segments at 10% ends at segment 1.
    if n >= 2 && store.purchase(&film, &user)?.is_none() {
        events::record(store, at, Event::PreviewBoundaryReached { user, film });
    }
    Ok(())
}

fn order(
    store: &Store,
    user: Uuid,
    film: Uuid,
    kind: OrderKind,
    amount: u64,
    at: i64,
) -> Result<Order, StoreError> {
    let mut o = Order::new(kind, user, film, "dev", amount, "USD", at);
    o.record(OrderState::Created, "checkout started", at);
    store.create_order(&o)?;
    events::record(
        store,
        at,
        Event::CheckoutStarted(OrderFacts {
            user,
            film,
            order: o.id,
            provider: "dev".into(),
            amount,
            currency: "USD".into(),
            tip: kind == OrderKind::Tip,
        }),
    );
    store.capture_order(&o.id, &format!("pay-{}", o.id), "captured", at + 60)?;
    Ok(o)
}

/// What the records can tell: the figures compared between the two paths.
fn recoverable(r: &DayRollup) -> DayRollup {
    DayRollup {
        preview_starts: 0,
        converted: 0,
        preview_completions: 0,
        ..r.clone()
    }
}

fn everything(store: &Store, film: Option<Uuid>) -> Result<report::Report, StoreError> {
    let from = calendar::parse_date("2026-11-01").unwrap_or_default();
    let to = calendar::parse_date("2026-12-31").unwrap_or_default();
    report(
        store,
        Query {
            from,
            to,
            film,
            granularity: Granularity::Day,
        },
    )
}

#[test]
fn the_backfill_agrees_with_the_events() -> Result<(), StoreError> {
    let store = Store::temporary()?;
    let (a, b) = (crate::store::new_id(), crate::store::new_id());
    let mut users = Vec::new();
    for (i, email) in [
        "v1@example.com",
        "v2@example.com",
        "v3@example.com",
        "v4@example.com",
    ]
    .iter()
    .enumerate()
    {
        let at = T0 + i as i64 * DAY;
        let u = store.create_user(email, Role::Viewer, at)?;
        events::record(
            &store,
            at,
            Event::UserSignedUp {
                user: u.id,
                provider: "email".into(),
            },
        );
        users.push(u.id);
    }
    // v1 previews film a then buys and completes it; v2 previews and leaves; v3 buys
    // film a and is refunded, and tips film b; v4 watches film b a little and supports it.
    let day = |n: i64| T0 + 5 * DAY + n * DAY;
    events::record(
        &store,
        day(0),
        Event::PlaybackStarted {
            user: users[0],
            film: a,
            entitled: false,
        },
    );
    watch(&store, users[0], a, 2, day(1) - 3600)?;
    order(&store, users[0], a, OrderKind::Purchase, 500, day(1))?;
    watch(&store, users[1], a, 1, day(1))?;
    let refunded = order(&store, users[2], a, OrderKind::Purchase, 500, day(1))?;
    store.refund_order(&refunded.id, "refunded", day(2))?;
    order(&store, users[2], b, OrderKind::Tip, 300, day(2))?;
    watch(&store, users[3], b, 3, day(2))?;
    crate::social::comments::support(
        &store,
        &b,
        &users[3],
        &Support {
            at: day(3),
            message: None,
        },
    )
    .map_err(|e| StoreError::Conflict(e.to_string()))?;
    // v1's later flush completes film a (stored over the first one, reported as new).
    let mut record = store.progress_record(&users[0], &a)?.unwrap_or_default();
    for i in 2..19 {
        record.mark(i);
    }
    record.watch_seconds += 6.0 * 17.0;
    record.updated_at = day(1);
    store.save_progress(&users[0], &a, &record)?;
    events::record(
        &store,
        day(1),
        Event::Watched {
            user: users[0],
            film: a,
            added: (2..19).collect(),
            watch_seconds: 6.0 * 17.0,
            covered: 19,
            total: 20,
        },
    );

    let mut consumer = rollups();
    events::catch_up(&store, &mut consumer)?;
    let incremental = (
        everything(&store, None)?,
        everything(&store, Some(a))?,
        everything(&store, Some(b))?,
    );
    let retention_a = retention(&store, &a)?;

    assert!(backfill_once(&store, &rollups())?);
    assert!(!backfill_once(&store, &rollups())?, "it runs once");
    let backfilled = (
        everything(&store, None)?,
        everything(&store, Some(a))?,
        everything(&store, Some(b))?,
    );

    // The incremental figures are the scenario's.
    let site = &incremental.0.totals;
    assert_eq!(
        (
            site.new_users,
            site.viewers,
            site.purchases,
            site.refunds,
            site.tips,
            site.supports
        ),
        (4, 3, 2, 1, 1, 1)
    );
    assert_eq!(site.revenue_by_currency().get("USD"), Some(&800));
    assert_eq!(
        (site.completions, site.preview_starts, site.converted),
        (1, 1, 1)
    );
    assert_eq!(incremental.0.funnel.checkouts, 2);
    assert_eq!(incremental.1.totals.watch_seconds, 6.0 * 20.0);
    let top: Vec<(Uuid, i64)> = incremental.0.top_by_revenue[0]
        .1
        .iter()
        .map(|r| (r.film, r.value))
        .collect();
    assert_eq!(
        top,
        [(a, 500), (b, 300)],
        "a: 500 + 500 − 500; b: a 300 tip"
    );

    // Day by day, film by film, the recoverable figures agree.
    for (inc, back) in [
        (&incremental.0, &backfilled.0),
        (&incremental.1, &backfilled.1),
        (&incremental.2, &backfilled.2),
    ] {
        assert_eq!(inc.series.len(), back.series.len());
        for (x, y) in inc.series.iter().zip(&back.series) {
            assert_eq!(
                recoverable(&x.counts),
                recoverable(&y.counts),
                "day {}",
                calendar::format_day(x.start)
            );
        }
        assert_eq!(inc.top_by_revenue, back.top_by_revenue);
        assert_eq!(inc.top_by_watch_hours, back.top_by_watch_hours);
    }
    // v1 and v4 reached the preview's end; only v4's is recovered (v1 bought since).
    assert_eq!(incremental.0.totals.preview_completions, 2);
    assert_eq!(backfilled.0.totals.preview_completions, 1);
    assert_eq!(retention(&store, &a)?, retention_a);
    assert_eq!(retention_a.viewers, 2);
    assert_eq!(
        (retention_a.points[0].share, retention_a.points[1].share),
        (1.0, 0.5)
    );

    // The cursor stands at the log's end: nothing is counted twice after the backfill.
    assert_eq!(events::catch_up(&store, &mut rollups())?, 0);
    Ok(())
}

#[test]
fn buckets_cover_the_range_and_ranges_are_bounded() -> Result<(), StoreError> {
    let store = Store::temporary()?;
    let from = calendar::parse_date("2026-11-30").unwrap_or_default();
    let to = calendar::parse_date("2027-01-02").unwrap_or_default();
    let q = |granularity| Query {
        from,
        to,
        film: None,
        granularity,
    };
    let weeks = report(&store, q(Granularity::Week))?;
    assert_eq!(calendar::format_day(weeks.series[0].start), "2026-11-30");
    assert_eq!(weeks.series.len(), 5);
    let months = report(&store, q(Granularity::Month))?;
    let bounds: Vec<(String, String)> = months
        .series
        .iter()
        .map(|b| (calendar::format_day(b.start), calendar::format_day(b.end)))
        .collect();
    assert_eq!(
        bounds,
        [
            ("2026-11-30", "2026-11-30"),
            ("2026-12-01", "2026-12-31"),
            ("2027-01-01", "2027-01-02")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(report(&store, q(Granularity::Day))?.series.len(), 34);
    assert!(Query {
        from: to,
        to: from,
        film: None,
        granularity: Granularity::Day
    }
    .check()
    .is_err());
    assert!(Query {
        from,
        to: from + report::MAX_DAYS,
        film: None,
        granularity: Granularity::Day
    }
    .check()
    .is_err());
    assert!(Query {
        from,
        to: from + report::MAX_DAYS - 1,
        film: None,
        granularity: Granularity::Day
    }
    .check()
    .is_ok());
    Ok(())
}

#[test]
fn top_film_totals_from_months_and_days_equal_the_days_summed() -> Result<(), StoreError> {
    use crate::store::analytics::Plan;
    use std::collections::{BTreeMap, HashMap};
    let store = Store::temporary()?;
    let films = [crate::store::new_id(), crate::store::new_id()];
    let start = calendar::parse_date("2026-10-01").unwrap_or_default();
    for d in 0..100 {
        for (i, film) in films.iter().enumerate() {
            let day = start + d;
            let mut revenue = BTreeMap::new();
            revenue.insert(
                "dev".to_string(),
                [("USD".to_string(), i64::from(d) * (i as i64 + 1))].into(),
            );
            let plan = Plan {
                day,
                month: calendar::month_of(day),
                film: *film,
                counts: DayRollup {
                    watch_seconds: f64::from(d % 7) * 60.0,
                    revenue,
                    ..DayRollup::default()
                },
                ..Plan::default()
            };
            store.apply_analytics(&plan, None)?;
        }
    }
    let ranges = [
        ("2026-10-01", "2026-12-31"),
        ("2026-10-03", "2026-12-28"),
        ("2026-10-20", "2026-11-02"),
        ("2026-11-05", "2026-11-06"),
        ("2026-10-31", "2027-01-08"),
    ];
    for (a, b) in ranges {
        let (from, to) = (
            calendar::parse_date(a).unwrap_or_default(),
            calendar::parse_date(b).unwrap_or_default(),
        );
        let fast = report::film_totals(&store, from, to)?;
        let mut slow = HashMap::new();
        store.film_totals_of_days(from, to, &mut slow)?;
        for film in &films {
            let (f, s) = (
                fast.get(film).cloned().unwrap_or_default(),
                slow.get(film).cloned().unwrap_or_default(),
            );
            assert_eq!(f.revenue, s.revenue, "{a}..{b}");
            assert!((f.watch_seconds - s.watch_seconds).abs() < 1e-6, "{a}..{b}");
        }
    }
    Ok(())
}
