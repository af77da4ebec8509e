//! `/metrics` (issue 19, "Observability") against the real server: a film is packaged, a
//! viewer buys it with `dev` and is refunded, two viewers play (a playlist, whole and
//! ranged segments, keys, a refusal at the preview's end), a 404 and an API call; the
//! exposition is scraped with the token before and after the requests this test counts,
//! parsed by an independent OpenMetrics parser (PyPI `prometheus-client`,
//! `tests/peers/parse_metrics.py`), and every family's value must equal what the test did.
//! Bytes are compared with the files on disk; the segments went out by sendfile(2).
//!
//! The server logs as JSON (`log.format = "json"`) meanwhile: every line must be one JSON
//! object, a request's line carries its id in the span, and no token it saw is in the log.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::films::film_info;
use crate::harness::media::src_other;
use crate::harness::peer_scripts::python_json;
use crate::harness::playback::Playback;
use crate::harness::server::{Server, FAST_PACE};
use crate::harness::users::User;

fn token(s: &Server) -> String {
    std::fs::read_to_string(s.root.join("keys/metrics.token"))
        .expect("keys/metrics.token")
        .trim()
        .to_string()
}

/// The parsed families: `{name: {type, samples: [{name, labels, value}]}}`.
struct Scrape(Value);

impl Scrape {
    fn take(s: &Server, token: &str) -> Scrape {
        let r = s.get("/metrics", Some(token));
        r.expect(200, "/metrics with the token");
        let file = s.root.join("metrics.txt");
        std::fs::write(&file, &r.body).expect("write the scrape");
        Scrape(python_json(
            "parse_metrics.py",
            &[file.to_str().expect("utf-8 path")],
        ))
    }

    fn family(&self, name: &str) -> &Value {
        let f = &self.0[name];
        assert!(f.is_object(), "no family {name} in {}", self.0);
        f
    }

    /// The value of sample `sample` of family `family` with exactly `labels`; 0 when the
    /// family has no such sample yet (a label set is created when first counted).
    fn value(&self, family: &str, sample: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.family(family)["samples"]
            .as_array()
            .expect("samples")
            .iter()
            .filter(|s| s["name"] == sample)
            .find(|s| {
                serde_json::from_value::<BTreeMap<String, String>>(s["labels"].clone())
                    .is_ok_and(|l| l == want)
            })
            .map_or(0.0, |s| s["value"].as_f64().expect("a number"))
    }

    fn requests(&self, class: &str, status: &str) -> f64 {
        self.value(
            "cinegate_http_requests",
            "cinegate_http_requests_total",
            &[("class", class), ("status", status)],
        )
    }

    fn class(&self, sample: &str, class: &str) -> f64 {
        let family = sample
            .strip_suffix("_count")
            .or_else(|| sample.strip_suffix("_total"))
            .unwrap_or(sample);
        self.value(family, sample, &[("class", class)])
    }
}

#[test]
fn metrics_count_what_the_clients_did() {
    let s = Server::start(&[
        ("CINEGATE_PAYMENTS__DEV__ENABLED", "true"),
        ("CINEGATE_LOG__FORMAT", "json"),
        FAST_PACE,
    ]);
    let token = token(&s);
    let admin = s.user("metrics-admin", true);
    let film = s.priced_film(&admin, &src_other(), "Metrics film", 499);
    let info = film_info(&s, &admin, &film);
    assert_eq!((info.segments, info.preview), (2, 1), "the scenario's film");
    let buyer = s.user("metrics-buyer", false);
    let viewer = s.user("metrics-viewer", false);

    // A purchase with dev (created, captured), and a second one refunded.
    let buy = |who: &User| {
        let co = s.checkout_with_dev(who, &film);
        s.get(&co.back, None).expect(200, "dev return");
        // A reloaded return page changes nothing, and counts nothing.
        s.get(&co.back, None).expect(200, "dev return again");
        co.order
    };
    buy(&buyer);
    let refunded_buyer = s.user("metrics-refunded", false);
    let order = buy(&refunded_buyer);
    s.post(
        &format!("/api/v1/admin/orders/{order}/refund"),
        Some(&admin.access),
        json!({}),
    )
    .expect(200, "refund");
    let full = s.playback(&buyer, &film);
    let preview = s.playback(&viewer, &film);
    assert_eq!(preview.answer["entitlement"], "preview");

    let before = Scrape::take(&s, &token);

    // What this part counts: each request below, once.
    let r = &info.renditions[0];
    let mut playlist_bytes = 0;
    for path in [
        full.path("master.m3u8"),
        full.path(&format!("{r}/index.m3u8")),
    ] {
        playlist_bytes += s.get(&path, None).expect(200, "playlist").body.len();
    }
    let segment = |i: usize| {
        std::fs::metadata(info.package_dir.join(r).join(format!("{i:05}.ts")))
            .expect("segment file")
            .len() as usize
    };
    let whole = s.get(&full.path(&format!("{r}/00000.ts")), None);
    whole.expect(200, "segment 0");
    assert_eq!(whole.body.len(), segment(0), "segment 0 is the file");
    let ranged = s.exec(
        s.req(Method::GET, &full.path(&format!("{r}/00001.ts")))
            .header("Range", "bytes=100-1099"),
    );
    ranged.expect(206, "a range of segment 1");
    assert_eq!(ranged.body.len(), 1000);
    let key = s.get(&full.path("keys/1.key"), None);
    key.expect(200, "key 1");
    let previewed = s.get(&preview.path(&format!("{r}/00000.ts")), None);
    previewed.expect(200, "the preview's segment");
    let refused = s.get(&preview.path(&format!("{r}/00001.ts")), None);
    refused.expect_error(403, "preview_ended", "past the preview");
    s.get("/no/such/page", None)
        .expect_error(404, "not_found", "an unknown path");
    let films = s.get("/api/v1/films", Some(&buyer.access));
    films.expect(200, "the catalogue");

    let after = Scrape::take(&s, &token);

    // Answers by class and status: the difference is what this test sent (and the first
    // scrape, counted once it was answered).
    let delta = |class, status| after.requests(class, status) - before.requests(class, status);
    let expected = [
        ("playlist", "200", 2.0),
        ("segment", "200", 2.0),
        ("segment", "206", 1.0),
        ("segment", "403", 1.0),
        ("key", "200", 1.0),
        ("other", "404", 1.0),
        ("api", "200", 1.0),
        ("health", "200", 1.0),
    ];
    for (class, status, n) in expected {
        assert_eq!(delta(class, status), n, "{class} {status}");
    }
    // Nothing else moved: the sums over every label set agree.
    let total = |s: &Scrape| -> f64 {
        s.family("cinegate_http_requests")["samples"]
            .as_array()
            .expect("samples")
            .iter()
            .map(|s| s["value"].as_f64().expect("a number"))
            .sum()
    };
    assert_eq!(
        total(&after) - total(&before),
        expected.iter().map(|e| e.2).sum::<f64>()
    );
    // One latency observation per answer, by class.
    for (class, n) in [
        ("playlist", 2.0),
        ("segment", 4.0),
        ("key", 1.0),
        ("api", 1.0),
    ] {
        let d = after.class("cinegate_http_request_duration_seconds_count", class)
            - before.class("cinegate_http_request_duration_seconds_count", class);
        assert_eq!(d, n, "{class} latency observations");
    }
    let bucket_inf = after.value(
        "cinegate_http_request_duration_seconds",
        "cinegate_http_request_duration_seconds_bucket",
        &[("class", "segment"), ("le", "+Inf")],
    );
    assert_eq!(
        bucket_inf,
        after.class("cinegate_http_request_duration_seconds_count", "segment")
    );
    // Bytes: the segment files (sent by sendfile), the range, the refusal's JSON, the key
    // and the playlists.
    let bytes = |class| {
        after.class("cinegate_served_bytes_total", class)
            - before.class("cinegate_served_bytes_total", class)
    };
    assert_eq!(
        bytes("segment"),
        (2 * segment(0) + 1000 + refused.body.len()) as f64,
        "segment bytes"
    );
    assert_eq!(bytes("key"), 16.0, "key bytes");
    assert_eq!(bytes("playlist"), playlist_bytes as f64, "playlist bytes");
    assert_eq!(
        bytes("api"),
        films.body.len() as f64,
        "the catalogue's bytes"
    );

    // The playback counters kept their names.
    let counter = |name: &str| after.value(name, &format!("{name}_total"), &[]);
    assert_eq!(counter("cinegate_segments_served"), 3.0);
    assert_eq!(counter("cinegate_keys_served"), 1.0);
    assert_eq!(counter("cinegate_gate_refusals"), 1.0);
    // The buyer and the viewer fetched segments in the last 5 minutes.
    assert_eq!(
        after.value("cinegate_active_viewers", "cinegate_active_viewers", &[]),
        2.0
    );
    assert_eq!(
        before.value("cinegate_active_viewers", "cinegate_active_viewers", &[]),
        0.0
    );

    // The packaging queue: one job, done.
    for state in ["queued", "running", "failed"] {
        assert_eq!(
            after.value("cinegate_jobs", "cinegate_jobs", &[("state", state)]),
            0.0,
            "jobs {state}"
        );
    }
    assert_eq!(
        after.value(
            "cinegate_job_duration_seconds",
            "cinegate_job_duration_seconds_count",
            &[("outcome", "done")]
        ),
        1.0
    );
    assert!(
        after.value(
            "cinegate_job_duration_seconds",
            "cinegate_job_duration_seconds_sum",
            &[("outcome", "done")]
        ) > 0.0
    );

    // Payments: two orders created and captured, one refunded; reloads counted nothing.
    let paid = |outcome| {
        after.value(
            "cinegate_payments",
            "cinegate_payments_total",
            &[("provider", "dev"), ("outcome", outcome)],
        )
    };
    assert_eq!(
        ["created", "captured", "refunded", "failed", "cancelled"].map(paid),
        [2.0, 2.0, 1.0, 0.0, 0.0]
    );

    // No notification channel is configured: nothing waits, nothing died.
    for state in ["pending", "dead"] {
        assert_eq!(
            after.value("cinegate_outbox", "cinegate_outbox", &[("state", state)]),
            0.0,
            "outbox {state}"
        );
    }
    // Every channel's outcomes are shown from the start (at 0 here).
    for channel in ["email", "push", "webhook"] {
        for outcome in ["sent", "retried", "dead", "dropped"] {
            assert_eq!(
                after.value(
                    "cinegate_deliveries",
                    "cinegate_deliveries_total",
                    &[("channel", channel), ("outcome", outcome)]
                ),
                0.0,
                "deliveries {channel} {outcome}"
            );
        }
    }
    // Without TLS there is no certificate: its failures show as 0, and the expiry gauge
    // has no domain to show (src/telemetry.rs renders one).
    assert_eq!(
        after.value(
            "cinegate_tls_certificate_failures",
            "cinegate_tls_certificate_failures_total",
            &[]
        ),
        0.0
    );
    // No playback token or film id became a label.
    let text = String::from_utf8(s.get("/metrics", Some(&token)).body).expect("utf-8");
    assert!(
        !text.contains(&full.token) && !text.contains(&film),
        "{text}"
    );

    // The server logged as JSON throughout, and no token it saw.
    check_json_log(
        &s,
        &full,
        &[
            &full.token,
            &preview.token,
            &token,
            &buyer.access,
            &buyer.refresh,
            &admin.access,
        ],
    );
}

/// The log as JSON lines (`log.format = "json"`): every line one object with the time,
/// level, target and the event's fields; fails on a line that is not JSON.
fn json_lines(s: &Server) -> Vec<Value> {
    let log = std::fs::read_to_string(s.log_path()).expect("the log");
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let line: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {l}"));
            for key in ["timestamp", "level", "target"] {
                assert!(line[key].is_string(), "no {key} in {l}");
            }
            assert!(line["fields"].is_object(), "no fields in {l}");
            line
        })
        .collect()
}

/// The access log line of the request whose answer had `X-Request-Id: id` (the id is a
/// field of the request's span).
fn request_line(s: &Server, id: &str) -> Value {
    // Written after the answer went out.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = json_lines(s)
            .into_iter()
            .find(|l| l["span"]["request_id"] == id && l["fields"]["message"] == "request");
        match found {
            Some(line) => return line,
            None if std::time::Instant::now() > deadline => {
                panic!(
                    "no access log line with request id {id}: {}",
                    s.log_tail(20)
                )
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// `log.format = "json"`: one JSON object per line (checked on every line the server
/// wrote), a request's line carries its id in the span, and no token appears — the
/// playback token is logged as its id.
fn check_json_log(s: &Server, hls: &Playback, secrets: &[&str]) {
    let r = s.get(&hls.path("master.m3u8"), None);
    r.expect(200, "the master playlist");
    let id = r.header("x-request-id").expect("x-request-id").to_string();
    let line = request_line(s, &id);
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["fields"]["method"], "GET", "{line}");
    assert_eq!(line["fields"]["status"], 200, "{line}");
    let path = line["fields"]["path"].as_str().unwrap_or_default();
    assert!(
        path.starts_with("/hls/~") && path.ends_with("/master.m3u8"),
        "the playback path is not logged by the token's id: {line}"
    );
    let log = std::fs::read_to_string(s.log_path()).expect("the log");
    assert!(json_lines(s).len() > 10, "{log}");
    for secret in secrets {
        assert!(!log.contains(secret), "a token is in the log: {secret}");
    }
    assert!(!log.contains('\u{1b}'), "colour codes in a JSON log");
}
