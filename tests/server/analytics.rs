//! Analytics (issue 17) against the real server: viewers watch different amounts (segments
//! and keys fetched as a player does), some buy with `dev`, one is refunded, one
//! completes; the API's rollups, funnel, conversion, top films and retention curve equal
//! the figures this test works out from what it did. Then the server is stopped, its
//! analytics trees are emptied and the backfill marker removed (through the library, the
//! server stopped), and the next start's backfill must give the same figures for what the
//! records can tell (see `src/analytics/backfill.rs`: not preview starts, `converted`, or
//! preview ends, judged by who has the film now).
//!
//! The film: 36 s, 2 s GOP → 6 s segments, N = 6, P = ceil(0.6) = 1; completion is 90% of
//! 6 → all 6 segments.

use std::error::Error;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::sources::{lavfi_av, with, X264};

use crate::harness::browser::run_browser;
use crate::harness::clock;
use crate::harness::films::{film_info, FilmInfo};
use crate::harness::media::sources;
use crate::harness::playback::Playback;
use crate::harness::server::{Server, FAST_PACE};
use crate::harness::users::User;

const PRICE: i64 = 499;

fn src_analytics() -> std::path::PathBuf {
    let av = with(lavfi_av("testsrc2", "320x180", 25, 36, 550, 48000), X264);
    sources().gen(
        "analytics-36s-320x180",
        "mp4",
        with(av, &["-g", "50", "-c:a", "aac", "-b:a", "48k"]),
    )
}

fn day(at: i64) -> String {
    // Civil date of a UTC day (the server's default `analytics.timezone`).
    let z = at.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The whole site's report over yesterday..tomorrow (so a test crossing midnight passes).
fn report(server: &Server, admin: &User, extra: &str) -> Value {
    let now = clock::now();
    let path = format!(
        "/api/v1/admin/analytics?from={}&to={}{extra}",
        day(now - 86_400),
        day(now + 86_400)
    );
    server
        .get(&path, Some(&admin.access))
        .expect(200, "analytics")
        .json()
}

/// Polls the report until `done` holds (the consumer runs beside the request path).
fn wait_for(server: &Server, admin: &User, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let r = report(server, admin, "");
        if done(&r) {
            return r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what}: the rollups never got there: {}",
            r["totals"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Fetches segments `indexes` (and their keys) of the first rendition, as a player does.
fn watch(server: &Server, info: &FilmInfo, pb: &Playback, indexes: std::ops::Range<usize>) {
    let r = &info.renditions[0];
    for i in indexes {
        server
            .get(&pb.path(&format!("{r}/{i:05}.ts")), None)
            .expect(200, &format!("segment {i}"));
        server
            .get(&pb.path(&format!("keys/{i}.key")), None)
            .expect(200, &format!("key {i}"));
    }
}

/// Segment durations from a buyer's media playlist (`#EXTINF:<seconds>,`).
fn durations(server: &Server, info: &FilmInfo, pb: &Playback) -> Vec<f64> {
    let r = &info.renditions[0];
    let text = server
        .get(&pb.path(&format!("{r}/index.m3u8")), None)
        .expect(200, "media playlist")
        .text();
    text.lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .filter_map(|l| l.split(',').next()?.parse().ok())
        .collect()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(u64::MAX)
}

/// The figures compared after the backfill: everything but preview starts, `converted`
/// and preview completions.
fn recoverable(r: &Value) -> Value {
    let mut t = r["totals"].clone();
    for k in ["preview_starts", "converted", "preview_completions"] {
        t[k] = Value::Null;
    }
    json!({
        "totals": t,
        "funnel": [r["funnel"]["viewers"], r["funnel"]["checkouts"], r["funnel"]["purchases"], r["funnel"]["completions"]],
        "top_by_revenue": r["top_by_revenue"],
        "top_by_watch_hours": r["top_by_watch_hours"],
    })
}

#[test]
fn rollups_funnel_and_retention_match_what_the_viewers_did_and_the_backfill_agrees(
) -> Result<(), Box<dyn Error>> {
    let mut server = Server::start(&[("CINEGATE_PAYMENTS__DEV__ENABLED", "true"), FAST_PACE]);
    let admin = server.user("analytics-admin", true);
    let film = server.priced_film(&admin, &src_analytics(), "Analytics film", PRICE);
    let info = film_info(&server, &admin, &film);
    assert_eq!((info.segments, info.preview), (6, 1), "the scenario's film");
    let viewers: Vec<User> = (1..=4)
        .map(|i| server.user(&format!("analytics-v{i}"), false))
        .collect();
    let (v1, v2, v3, v4) = (&viewers[0], &viewers[1], &viewers[2], &viewers[3]);

    // v1 and v2 watch the preview (segment 0 = P − 1, its end).
    let p1 = server.playback(v1, &film);
    assert_eq!(p1.answer["entitlement"], "preview");
    watch(&server, &info, &p1, 0..1);
    let p2 = server.playback(v2, &film);
    watch(&server, &info, &p2, 0..1);
    // Both preview ends are counted before v1 buys (it is a preview end only without the film).
    wait_for(&server, &admin, "two preview ends", |r| {
        u(&r["totals"]["preview_completions"]) == 2
    });
    // v1 buys and watches it all: a completion.
    server.buy_with_dev(v1, &film);
    let full = server.playback(v1, &film);
    assert_eq!(full.answer["entitlement"], "full");
    watch(&server, &info, &full, 1..6);
    let seconds = durations(&server, &info, &full);
    assert_eq!(seconds.len(), 6);
    // v3 buys without a preview, watches 4 segments, and is refunded.
    let refunded = server.buy_with_dev(v3, &film);
    let p3 = server.playback(v3, &film);
    watch(&server, &info, &p3, 0..4);
    // Refunded only once the flush has counted v3's watching: a flush after the refund
    // would see a viewer without the film reach the preview's end.
    wait_for(&server, &admin, "v3's watching", |r| {
        u(&r["totals"]["viewers"]) == 3
    });
    server
        .post(
            &format!("/api/v1/admin/orders/{refunded}/refund"),
            Some(&admin.access),
            json!({}),
        )
        .expect(200, "refund");
    // v4 starts a preview and a checkout, and stops there.
    server.playback(v4, &film);
    server.checkout_with_dev(v4, &film);

    // What the test did, worked out here.
    let watched: f64 = seconds.iter().sum::<f64>() + seconds[0] + seconds[..4].iter().sum::<f64>();
    let r = wait_for(&server, &admin, "the whole scenario", |r| {
        let t = &r["totals"];
        u(&t["refunds"]) == 1
            && u(&t["checkouts"]) == 3
            && u(&t["completions"]) == 1
            && (t["watch_seconds"].as_f64().unwrap_or(0.0) - watched).abs() < 0.01
            && u(&t["preview_starts"]) == 3
    });
    let t = &r["totals"];
    let figures = [
        ("new_users", 5),
        ("viewers", 3),
        ("active_viewers", 3),
        ("preview_starts", 3),
        ("preview_completions", 2),
        ("checkouts", 3),
        ("checkout_viewers", 3),
        ("purchases", 2),
        ("buyers", 2),
        ("converted", 1),
        ("refunds", 1),
        ("completions", 1),
        ("supports", 0),
        ("tips", 0),
    ];
    for (k, want) in figures {
        assert_eq!(u(&t[k]), want, "totals.{k}: {t}");
    }
    assert_eq!(
        t["revenue"],
        json!([{ "provider": "dev", "currency": "USD", "amount": PRICE }]),
        "499 + 499 − 499"
    );
    assert_eq!(
        r["funnel"],
        json!({ "viewers": 3, "preview_completions": 2, "checkouts": 3, "purchases": 2, "completions": 1 })
    );
    assert_eq!(r["conversion"]["preview_viewers"], 3);
    assert_eq!(r["conversion"]["buyers"], 1);
    assert_eq!(r["top_by_revenue"][0]["currency"], "USD");
    assert_eq!(r["top_by_revenue"][0]["films"][0]["film"], film.as_str());
    assert_eq!(r["top_by_revenue"][0]["films"][0]["amount"], PRICE);
    let hours = r["top_by_watch_hours"][0]["hours"].as_f64().unwrap_or(0.0);
    assert!((hours - watched / 3600.0).abs() < 1e-5, "{hours} h");
    // The day's bucket holds it all; the film's own report agrees with the site's.
    let today = day(clock::now());
    let bucket = r["series"]
        .as_array()
        .and_then(|s| s.iter().find(|b| b["start"] == today.as_str()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(u(&bucket["viewers"]), 3, "{bucket}");
    let one = report(&server, &admin, &format!("&film={film}&granularity=month"));
    assert_eq!(one["funnel"], r["funnel"]);
    assert_eq!(u(&one["totals"]["new_users"]), 0, "sign-ups are site-wide");

    // Retention: 3 viewers; segment 0 all of them, 1–3 v1 and v3, 4–5 v1 only.
    let retention = |server: &Server| -> Value {
        server
            .get(
                &format!("/api/v1/admin/analytics/films/{film}/retention"),
                Some(&admin.access),
            )
            .expect(200, "retention")
            .json()
    };
    let curve = retention(&server);
    assert_eq!(curve["viewers"], 3);
    let counts: Vec<u64> = curve["segments"]
        .as_array()
        .map(|s| s.iter().map(|p| u(&p["viewers"])).collect())
        .unwrap_or_default();
    assert_eq!(counts, [3, 2, 2, 2, 1, 1]);
    assert!((curve["segments"][1]["share"].as_f64().unwrap_or(0.0) - 2.0 / 3.0).abs() < 1e-9);

    // CSV of both; bad ranges are refused with the stable code.
    let csv = server.get(
        &format!("/api/v1/admin/analytics/films/{film}/retention?format=csv"),
        Some(&admin.access),
    );
    assert_eq!(csv.status, 200);
    assert!(csv
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/csv"));
    assert_eq!(csv.text().lines().next(), Some("segment,viewers,share"));
    let csv = server.get(
        &format!("/api/v1/admin/analytics?from={today}&to={today}&format=csv"),
        Some(&admin.access),
    );
    let text = csv.text();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(
        rows[0].starts_with("start,end,viewers,") && rows[0].ends_with(",revenue:dev:USD"),
        "{text}"
    );
    assert!(
        rows[1].starts_with(&format!("{today},{today},3,3,3,2,3,3,2,2,1,1,")),
        "{text}"
    );
    for bad in [
        "from=2026-02-30&to=2026-03-01",
        "from=2026-03-02&to=2026-03-01",
        "from=2020-01-01&to=2026-01-01",
        "granularity=year",
        "format=xml",
    ] {
        server
            .get(
                &format!("/api/v1/admin/analytics?{bad}"),
                Some(&admin.access),
            )
            .expect_error(422, "invalid_range", bad);
    }
    server
        .get("/api/v1/admin/analytics", Some(&viewers[0].access))
        .expect(403, "a viewer");

    // The console's page shows the same figures, drawn in a real browser.
    let out = run_browser(
        "console_analytics.mjs",
        &[
            ("BASE_URL", server.base.clone()),
            ("ADMIN_TOKEN", server.login_link_token(&admin.email)),
            ("FILM_ID", film.clone()),
            ("FUNNEL", r["funnel"].to_string()),
            ("SEGMENTS", info.segments.to_string()),
            ("VIEWERS", "3".into()),
        ],
    )?;
    for step in [
        "ok every chart is drawn",
        "ok the funnel table reads as the API reports",
        "ok one film: its retention curve and the CSV exports",
        "ok a range the form cannot make is refused in words",
        "ok the page fits a 360 px screen",
    ] {
        assert!(out.contains(step), "{step} missing from:\n{out}");
    }

    // The backfill: the same figures from the records alone.
    server.stop();
    {
        let store = cinegate::store::Store::open(&server.root.join("media/store"))?;
        store.forget_analytics()?;
        store.flush()?;
    }
    server.restart();
    let again = wait_for(&server, &admin, "the backfill", |r| {
        u(&r["totals"]["viewers"]) == 3
    });
    assert_eq!(recoverable(&again), recoverable(&r));
    // From the records: whoever has neither the film nor a grant now and covers segment
    // P − 1, so v2 and the refunded v3 (who watched as a buyer), not v1 (who bought since).
    assert_eq!(u(&again["totals"]["preview_completions"]), 2);
    assert_eq!(retention(&server), curve);
    Ok(())
}
