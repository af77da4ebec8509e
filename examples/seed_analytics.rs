//! Seeds a data root with a year of daily analytics rollups for `bench/analytics.sh`:
//! FILMS films, each with a rollup on each of the last DAYS days (viewers, watch time,
//! checkouts, purchases, refunds, revenue in USD and KRW from two providers, tips), the
//! site-wide rollups and top-film indexes that go with them, and a retention curve for the
//! first film (VIEWERS viewers of 900 segments). Writes through `Store::apply_analytics`,
//! the consumer's own transaction, with the server stopped; marks the backfill as done so
//! the server keeps the seeded rollups.
//! Run: `cargo run --release --example seed_analytics -- MEDIA_DIR [FILMS DAYS VIEWERS]`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cinegate::analytics::calendar::{month_of, Calendar};
use cinegate::store::analytics::{milestone, DayRollup, Plan};
use cinegate::store::films::Film;
use cinegate::store::Store;
use uuid::Uuid;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let media: PathBuf = args
        .next()
        .ok_or("usage: seed_analytics MEDIA_DIR [FILMS DAYS VIEWERS]")?
        .into();
    let films: usize = args.next().map_or(Ok(1000), |a| a.parse())?;
    let days: i32 = args.next().map_or(Ok(365), |a| a.parse())?;
    let viewers: u32 = args.next().map_or(Ok(200), |a| a.parse())?;
    let store = Store::open(&media.join("store"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let today = Calendar::utc().day_of(now);

    let mut ids = Vec::with_capacity(films);
    for i in 0..films {
        let film = Film {
            id: cinegate::store::new_id(),
            title: format!("Analytics film {i:04}"),
            description: String::new(),
            prices: Vec::new(),
            published: false,
            publish_when_ready: false,
            source: None,
            package: None,
            created_at: now - 400 * 86_400,
            updated_at: now - 400 * 86_400,
        };
        store.save_film(&film)?;
        ids.push(film.id);
    }

    let started = std::time::Instant::now();
    for (i, film) in ids.iter().enumerate() {
        for d in 0..days {
            let day = today - days + 1 + d;
            let n = (i as u64 * 7 + d as u64) % 13;
            let purchases = (i as u64 + d as u64) % 3;
            let (provider, currency, price) = if i % 4 == 0 {
                ("kakaopay", "KRW", 5_900)
            } else {
                ("dev", "USD", 499 + (i as i64 % 5) * 100)
            };
            let refunds = u64::from(d % 29 == 0 && purchases > 0);
            let mut revenue = BTreeMap::new();
            revenue.insert(
                provider.to_string(),
                [(
                    currency.to_string(),
                    (purchases as i64 - refunds as i64) * price,
                )]
                .into(),
            );
            let plan = Plan {
                day,
                month: month_of(day),
                film: *film,
                user: None,
                counts: DayRollup {
                    viewers: n,
                    active_viewers: n + 2,
                    preview_starts: n,
                    preview_completions: n / 2,
                    checkouts: purchases + 1,
                    checkout_viewers: purchases + 1,
                    purchases,
                    buyers: purchases,
                    converted: purchases / 2,
                    refunds,
                    revenue,
                    watch_seconds: n as f64 * 1_800.0,
                    completions: n / 4,
                    supports: u64::from(d % 7 == 0),
                    tips: u64::from(d % 11 == 0),
                    tip_amounts: if d % 11 == 0 {
                        [("USD".to_string(), 300)].into()
                    } else {
                        BTreeMap::new()
                    },
                    ..DayRollup::default()
                },
                ..Plan::default()
            };
            store.apply_analytics(&plan, None)?;
        }
    }
    // Sign-ups, site-wide.
    for d in 0..days {
        let day = today - days + 1 + d;
        let plan = Plan {
            day,
            month: month_of(day),
            film: Uuid::nil(),
            counts: DayRollup {
                new_users: (d as u64 % 17) + 1,
                ..DayRollup::default()
            },
            ..Plan::default()
        };
        store.apply_analytics(&plan, None)?;
    }
    // The first film's retention: viewer v watched the first 900 − 4v segments.
    if let Some(film) = ids.first() {
        for v in 0..viewers {
            let covered = 900u32.saturating_sub(v * 4).max(1);
            let plan = Plan {
                day: today,
                month: month_of(today),
                film: *film,
                user: Some(Uuid::from_u128(u128::from(v) + 1)),
                milestones: milestone::VIEWER,
                added: (0..covered).collect(),
                segments: 900,
                ..Plan::default()
            };
            store.apply_analytics(&plan, None)?;
        }
    }
    store.finish_analytics_backfill(cinegate::analytics::NAME, store.last_event_id()?)?;
    store.flush()?;
    eprintln!(
        "seeded {films} films × {days} days of rollups ({:.1} s); first film {}",
        started.elapsed().as_secs_f64(),
        ids.first().map(Uuid::to_string).unwrap_or_default()
    );
    if let Some(film) = ids.first() {
        println!("{film}");
    }
    Ok(())
}
