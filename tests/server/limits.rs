//! The general `/api/v1` budgets and the playback token's address bound (issue 18,
//! "Limits per client and per account"), from outside: a real server behind a trusted
//! proxy (requests from 127.0.0.1 with `X-Forwarded-For`), real HTTP.
//!
//! Budgets here are a burst of a few requests and then one a minute, so nothing refills
//! while a test runs however loaded the machine: a flood is "until the first 429", with a
//! bound, never "N requests within T seconds".

use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::harness::http::Resp;
use crate::harness::media::src_other;
use crate::harness::server::{Server, BIN};

/// Requests a burst allows before the first refusal.
const BURST: u32 = 3;

fn server(reads_burst: u32, writes_burst: u32, extra: &[(&str, &str)]) -> Server {
    let reads = reads_burst.to_string();
    let writes = writes_burst.to_string();
    let mut env = vec![
        ("CINEGATE_TRUSTED_PROXIES", "127.0.0.1/32"),
        ("CINEGATE_LIMITS__API_READS_PER_MINUTE", "1"),
        ("CINEGATE_LIMITS__API_READS_BURST", reads.as_str()),
        ("CINEGATE_LIMITS__API_WRITES_PER_MINUTE", "1"),
        ("CINEGATE_LIMITS__API_WRITES_BURST", writes.as_str()),
    ];
    env.extend_from_slice(extra);
    Server::start(&env)
}

fn from(s: &Server, method: Method, path: &str, client: &str, bearer: Option<&str>) -> Resp {
    let mut req = s
        .req(method.clone(), path)
        .header("X-Forwarded-For", client);
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    if method == Method::POST {
        req = req.json(&json!({ "refresh_token": "junk" }));
    }
    s.exec(req)
}

fn read(s: &Server, client: &str) -> Resp {
    from(s, Method::GET, "/api/v1/films", client, None)
}

/// A write that needs no account: a junk refresh (401 `invalid_token`).
fn write(s: &Server, client: &str) -> Resp {
    from(s, Method::POST, "/api/v1/auth/refresh", client, None)
}

/// Sends until the first 429, which must come within `burst` + 2 requests (one refill at
/// most, on a machine slow enough to take a minute over a few requests); returns it.
fn flood(what: &str, burst: u32, send: impl Fn() -> Resp) -> Resp {
    for i in 1..=burst + 2 {
        let r = send();
        if r.status == 429 {
            assert!(
                i > burst,
                "{what}: refused at request {i}, inside the burst"
            );
            return r;
        }
        assert!(
            r.header("RateLimit").is_some() && r.header("RateLimit-Policy").is_some(),
            "{what}: answer {i} without RateLimit headers: {:?}",
            r.headers
        );
    }
    panic!("{what}: no 429 after {} requests", burst + 2);
}

/// The refusal's shape: `rate_limited`, `retry_after` in the body and `Retry-After`, and
/// the draft's RateLimit headers with nothing remaining.
fn expect_limited(r: &Resp, kind: &str, what: &str) {
    r.expect_error(429, "rate_limited", what);
    let retry = r.json()["error"]["retry_after"].as_i64().unwrap_or(0);
    assert!((1..=60).contains(&retry), "{what}: retry_after {retry}");
    assert_eq!(
        r.header("Retry-After"),
        Some(retry.to_string().as_str()),
        "{what}"
    );
    let policy = format!("\"{kind}\";q={BURST};w={}", 60 * BURST);
    assert_eq!(
        r.header("RateLimit-Policy"),
        Some(policy.as_str()),
        "{what}"
    );
    let limit = r.header("RateLimit").unwrap_or_default();
    assert!(
        limit.starts_with(&format!("\"{kind}\";r=0;t=")),
        "{what}: RateLimit {limit:?}"
    );
}

#[test]
fn a_flood_from_one_address_does_not_refuse_another() {
    let s = server(BURST, 100, &[]);
    let a = "203.0.113.10";
    // A makes up X-Forwarded-For entries of its own; the trusted proxy's last one counts.
    let r = flood("reads from A", BURST, || {
        read(&s, &format!("192.0.2.1, {a}"))
    });
    expect_limited(&r, "reads", "A past its read budget");
    read(&s, a).expect_error(429, "rate_limited", "A again");
    read(&s, "198.51.100.20").expect(200, "B while A is refused");
    // A peer without forwarding headers is its own client (the proxy itself).
    s.get("/api/v1/films", None)
        .expect(200, "the proxy's own request");
    // /hls/, pages and assets are not counted: A still reaches them.
    let page = s.exec(s.req(Method::GET, "/").header("X-Forwarded-For", a));
    page.expect(200, "the catalogue page for A");
    let hls = s.exec(
        s.req(Method::GET, "/hls/junk/master.m3u8")
            .header("X-Forwarded-For", a),
    );
    assert_ne!(
        hls.status,
        429,
        "/hls/ is not rate limited: {}",
        hls.brief()
    );
}

#[test]
fn reads_and_writes_have_separate_budgets() {
    let s = server(BURST, BURST, &[]);
    let a = "203.0.113.11";
    let r = flood("reads from A", BURST, || read(&s, a));
    expect_limited(&r, "reads", "A's reads");
    write(&s, a).expect_error(401, "invalid_token", "A's write while its reads are spent");
    let b = "203.0.113.12";
    let r = flood("writes from B", BURST, || write(&s, b));
    expect_limited(&r, "writes", "B's writes");
    read(&s, b).expect(200, "B's read while its writes are spent");
}

#[test]
fn an_account_budget_holds_across_addresses() {
    // Large while the user is made (the CLI's sign-in and `GET /me` come from loopback
    // with the account), then the account's reads are spent from fresh addresses.
    let s = server(BURST, 100, &[]);
    let user = s.user("limited", false);
    let me = |client: &str| from(&s, Method::GET, "/api/v1/me", client, Some(&user.access));
    // `GET /me` in `user()` spent one of the account's reads already.
    let mut refused = None;
    for i in 0..BURST + 2 {
        let r = me(&format!("198.51.100.{}", 100 + i));
        if r.status == 429 {
            refused = Some(r);
            break;
        }
        r.expect(200, "GET /me from a fresh address");
    }
    let r = refused.expect("the account's reads refused from fresh addresses");
    expect_limited(&r, "reads", "the account past its budget");
    // Another account from one of those addresses is not refused; neither is the address
    // without the account.
    read(&s, "198.51.100.100").expect(200, "the address without the account");
}

#[test]
fn a_fourth_address_on_one_playback_token_is_refused() {
    let mut s = server(1000, 1000, &[]);
    let admin = s.user("admin", true);
    let (film, job) = s.ingest(&src_other(), "Shared link", true);
    s.wait_job_ready(&admin, &job, Duration::from_secs(180));
    let viewer = s.user("viewer", false);
    let playback = s.playback(&viewer, &film);
    let master = playback.path("master.m3u8");
    let get = |client: &str| {
        s.exec(
            s.req(Method::GET, &master)
                .header("X-Forwarded-For", client),
        )
    };
    let homes = ["203.0.113.1", "2001:db8:1:2::1", "198.51.100.3"];
    for home in homes {
        get(home).expect(200, "one of the first three addresses");
    }
    // Another host in an IPv6 /64 already counted is the same subscriber.
    get("2001:db8:1:2::99").expect(200, "the same /64");
    let r = get("192.0.2.44");
    r.expect_error(403, "token_shared", "a fourth address");
    get("192.0.2.45").expect_error(403, "token_shared", "a fifth address");
    for home in homes {
        get(home).expect(200, "the first three keep playing");
    }
    // The viewer's own new token (a new device) plays from the new address.
    let fresh = s.playback(&viewer, &film);
    s.exec(
        s.req(Method::GET, &fresh.path("master.m3u8"))
            .header("X-Forwarded-For", "192.0.2.44"),
    )
    .expect(200, "a new token from the fourth address");

    s.stop();
    let store = cinegate::store::Store::open(&s.root.join("media/store")).expect("the store");
    let shared: Vec<_> = store
        .events_after(None, 10_000)
        .expect("the event log")
        .into_iter()
        .filter(|e| e.event.name() == "playback.token_shared")
        .collect();
    assert_eq!(shared.len(), 1, "recorded once per token per window");
    match &shared[0].event {
        cinegate::events::Event::PlaybackTokenShared {
            user,
            film: f,
            addresses,
            ..
        } => {
            assert_eq!(user.to_string(), viewer.id);
            assert_eq!(f.to_string(), film);
            assert_eq!(*addresses, 4);
        }
        other => panic!("not a token_shared event: {other:?}"),
    }
}

#[test]
fn a_bad_limit_stops_start_up_naming_its_key() {
    for (key, value, name) in [
        (
            "CINEGATE_LIMITS__API_READS_BURST",
            "0",
            "limits.api_reads_burst",
        ),
        (
            "CINEGATE_LIMITS__API_WRITES_PER_MINUTE",
            "0",
            "limits.api_writes_per_minute",
        ),
        (
            "CINEGATE_PLAYBACK__MAX_ADDRESSES_PER_TOKEN",
            "0",
            "playback.max_addresses_per_token",
        ),
        (
            "CINEGATE_PLAYBACK__ADDRESS_WINDOW",
            "5s",
            "playback.address_window",
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars() {
            if k.starts_with("CINEGATE_") {
                cmd.env_remove(k);
            }
        }
        let out = cmd
            .arg("serve")
            .env("CINEGATE_LISTEN", "127.0.0.1:0")
            .env("CINEGATE_MEDIA_DIR", dir.path().join("media"))
            .env("CINEGATE_KEYS_DIR", dir.path().join("keys"))
            .env(key, value)
            .current_dir(dir.path())
            .output()
            .expect("run cinegate serve");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(name),
            "{key}={value}: exit {}, stderr: {stderr}",
            out.status
        );
    }
}

/// Every HTML answer, from the pages' own routes or not, an error page included, carries
/// the CSP (with `frame-ancestors`), `X-Content-Type-Options` and `Referrer-Policy`.
#[test]
fn every_html_answer_carries_the_page_headers() {
    let s = Server::start(&[("CINEGATE_PAYMENTS__DEV__ENABLED", "true")]);
    let mut html = 0;
    for path in [
        "/",
        "/sign-in",
        "/films/00000000-0000-0000-0000-000000000000",
        "/admin",
        "/admin/sign-in",
        "/pay/dev/return",
        "/pay/dev/cancel",
        "/pay/dev/fail",
        "/pay/nope/return",
        "/unsubscribe?token=junk",
    ] {
        let r = s.exec(s.req(Method::GET, path));
        let kind = r.header("Content-Type").unwrap_or_default().to_string();
        if !kind.starts_with("text/html") {
            assert!(!path.starts_with("/pay/dev/"), "{path} is a page: {kind}");
            continue;
        }
        html += 1;
        let csp = r.header("Content-Security-Policy").unwrap_or_default();
        assert!(
            csp.contains("frame-ancestors 'none'"),
            "{path} ({}): CSP {csp:?}",
            r.status
        );
        assert_eq!(
            r.header("X-Content-Type-Options"),
            Some("nosniff"),
            "{path}"
        );
        assert!(
            r.header("Referrer-Policy").is_some(),
            "{path}: no Referrer-Policy"
        );
    }
    assert!(html >= 6, "only {html} HTML answers among the paths");
}
