//! The viewer app plays a film whose package is on a bucket behind a CDN (issue 20), in a
//! real browser: Chromium's hls.js fetches the segments cross-origin from the test CDN
//! (nginx over a 3-node Garage cluster), so the CDN's CORS answers and the pages' CSP
//! (`web::headers::configure`) are both judged by the browser, not by us.

use std::time::Instant;

use crate::harness::browser::run_browser;
use crate::harness::garage::Garage;
use crate::harness::media::src_main;
use crate::harness::server::{Server, FAST_PACE};
use crate::storage::{counter, pairs, s3_env};

/// The 66 s film has 11 segments of 6 s and a preview of P = 2: the boundary at 12 s.
const BOUNDARY: u32 = 12;
/// How far the desktop plays: well past the boundary, into paid segments.
const PLAY_TO: u32 = 20;

#[test]
fn a_buyer_plays_a_bucket_film_in_the_browser_with_segments_from_the_cdn(
) -> Result<(), Box<dyn std::error::Error>> {
    let t0 = Instant::now();
    let garage = Garage::start();
    let env = s3_env(&garage, "browser/");
    let mut extra = pairs(&env);
    extra.push(("CINEGATE_PAYMENTS__DEV__ENABLED", "true"));
    extra.push(FAST_PACE);
    let s = Server::start(&extra);
    let admin = s.user("bucket-browser-admin", true);
    let film = s.priced_film(&admin, &src_main(), "Bucket in the browser", 500);
    let viewer = s.user("bucket-browser-viewer", false);
    s.buy_with_dev(&viewer, &film);
    let token = s.login_link_token(&viewer.email);
    let ready = t0.elapsed();

    let cdn = garage.cdn_base_url();
    let out = run_browser(
        "viewer_bucket.mjs",
        &[
            ("BASE_URL", s.base.clone()),
            ("FILM_ID", film.clone()),
            ("CDN_BASE_URL", cdn.clone()),
            ("BOUNDARY", BOUNDARY.to_string()),
            ("PLAY_TO", PLAY_TO.to_string()),
            ("VIEWER_TOKEN", token),
        ],
    )?;
    println!("{out}");
    eprintln!(
        "garage, server and film ready after {ready:?}; all done after {:?}",
        t0.elapsed()
    );

    // The script's own summary: it asserted each figure; here the counts are read back so
    // a script that stopped checking could not pass quietly.
    let summary = out
        .lines()
        .find_map(|l| l.strip_prefix("summary: "))
        .ok_or_else(|| format!("no summary line in:\n{out}"))?;
    let number_before = |what: &str| -> u64 {
        summary
            .split(", ")
            .find_map(|part| part.strip_suffix(what)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {what:?} in {summary:?}"))
    };
    let segments = summary
        .split_once(" segments from the CDN (0 from the origin")
        .and_then(|(n, _)| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no segment count in {summary:?}"));
    assert!(
        segments >= u64::from(PLAY_TO / 6),
        "segments from the CDN: {summary}"
    );
    assert!(summary.contains(" keys from the origin"), "{summary}");
    assert_eq!(number_before(" CSP violations"), 0, "{summary}");
    assert_eq!(number_before(" failed requests"), 0, "{summary}");
    assert!(
        out.contains("ok phone: reopening the film at 390 x 844 resumes from the CDN"),
        "{out}"
    );

    // The origin's own count agrees: it served playlists and keys, no segment byte.
    assert_eq!(
        counter(&s, "cinegate_segments_served"),
        0.0,
        "the origin served segments to the browser"
    );
    assert!(counter(&s, "cinegate_keys_served") >= f64::from(PLAY_TO / 6));
    Ok(())
}
