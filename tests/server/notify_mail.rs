//! Notifications by e-mail against a real SMTP server (PyPI `aiosmtpd`,
//! `tests/peers/smtp_sink.py`, which records every message it accepts and parses it with
//! Python's own `email` package): a dev purchase's receipt and its content in both parts
//! and the buyer's language; retries while the SMTP server is down; a `kill -9` before
//! delivery, then exactly one receipt after the restart; a 5xx refusal → a dead letter,
//! retried from the admin API → delivered once, with the admins' alert about it retried
//! from the console's System page in a browser (`tests/peers/browser/notify_pages.mjs`,
//! which also switches the viewer account page's preferences); "new film" mail to a viewer
//! who opted in, once per film, and its one-click unsubscribe. Also the preferences API.
//! One server and one 12-second film for all of it (packaging is the expensive part).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::browser::run_browser;
use crate::harness::films::film_info;
use crate::harness::media::src_other;
use crate::harness::peer_scripts::peer;
use crate::harness::server::Server;
use crate::harness::users::User;
use crate::peers::Proc;

const USD: u64 = 1234;

/// The SMTP sink on a fixed port, which can be stopped ("down") and started again.
struct Smtp {
    port: u16,
    dir: PathBuf,
    proc: Option<Proc>,
}

impl Smtp {
    fn new(dir: &Path) -> Smtp {
        // A port nobody listens on now, for the sink to come and go on.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut s = Smtp {
            port,
            dir: dir.to_path_buf(),
            proc: None,
        };
        s.up();
        s
    }

    fn up(&mut self) {
        let mut cmd = Command::new("python3");
        cmd.arg(peer("smtp_sink.py"))
            .args(["--port", &self.port.to_string(), "--dir"])
            .arg(&self.dir);
        self.proc = Some(Proc::start(cmd, "SMTP (aiosmtpd)").0);
    }

    fn down(&mut self) {
        self.proc = None;
    }

    fn mode(&self, mode: &str) {
        std::fs::write(self.dir.join("mode"), mode).expect("write the sink's mode");
    }

    fn read(&self, file: &str) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    /// The accepted messages to `to`.
    fn to(&self, to: &str) -> Vec<Value> {
        self.read("messages.jsonl")
            .into_iter()
            .filter(|m| m["rcpt_tos"] == json!([to]))
            .collect()
    }

    /// Waits until `to` has `n` accepted messages (and returns them).
    fn wait_for(&self, to: &str, n: usize, within: Duration, server: &Server) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.to(to);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{to} got {} of {n} messages within {within:?}; server log:\n{}",
                got.len(),
                server.log_tail(30)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn retries_logged(server: &Server) -> usize {
    std::fs::read_to_string(server.log_path())
        .unwrap_or_default()
        .matches("delivery failed; retrying")
        .count()
}

/// Waits until the log shows more failed attempts than `before`.
fn wait_retries(server: &Server, before: usize, more: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while retries_logged(server) < before + more {
        assert!(
            Instant::now() < deadline,
            "no retried delivery logged; server log:\n{}",
            server.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn dead(server: &Server, admin: &User) -> Vec<Value> {
    server
        .get("/api/v1/admin/notifications/dead", Some(&admin.access))
        .expect(200, "dead letters")
        .json()["dead"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The one mail to `to` (after a moment for a duplicate to show).
fn exactly_one(smtp: &Smtp, to: &str, what: &str) -> Value {
    std::thread::sleep(Duration::from_millis(1500));
    let got = smtp.to(to);
    assert_eq!(
        got.len(),
        1,
        "{what}: {} messages to {to}: {got:#?}",
        got.len()
    );
    got.into_iter().next().expect("one")
}

#[test]
fn receipts_over_smtp_survive_outages_crashes_and_refusals() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut smtp = Smtp::new(tmp.path());
    let port = smtp.port.to_string();
    let mut server = Server::start(&[
        ("CINEGATE_PAYMENTS__DEV__ENABLED", "true"),
        ("CINEGATE_SMTP__HOST", "127.0.0.1"),
        ("CINEGATE_SMTP__PORT", &port),
        ("CINEGATE_SMTP__SECURITY", "none"),
        ("CINEGATE_SMTP__FROM", "cinegate <films@test.example>"),
        // smtp.timeout stays 30 s: a sink slowed down by a loaded machine must not time out
        // after accepting a message (a timeout is retried, which would send it twice).
        ("CINEGATE_NOTIFY__RETRY_BASE", "100ms"),
        ("CINEGATE_NOTIFY__RETRY_CAP", "500ms"),
        ("CINEGATE_NOTIFY__MAX_ATTEMPTS", "100"),
    ]);
    let admin = server.user("mail-admin", true);
    let (film, job) = server.ingest(&src_other(), "Night & Day <12 s>", false);
    server.wait_job_ready(&admin, &job, Duration::from_secs(120));

    // 0. "New film" mail to a viewer who opted in, with the one-click unsubscribe.
    let fan = server.user("new-films", false);
    server
        .call(
            Method::PUT,
            "/api/v1/me/notifications",
            Some(&fan.access),
            Some(json!({ "new_films_email": true })),
        )
        .expect(200, "opt in");
    let publish = |what: &str| {
        server
            .post(
                &format!("/api/v1/admin/films/{film}/publish"),
                Some(&admin.access),
                json!({}),
            )
            .expect(200, what);
    };
    publish("publish");
    let m = smtp
        .wait_for(&fan.email, 1, Duration::from_secs(20), &server)
        .remove(0);
    assert_eq!(m["subject"], "New film: Night & Day <12 s>");
    let unsub = m["list_unsubscribe"].as_str().expect("List-Unsubscribe");
    assert!(
        unsub.starts_with("<http://127.0.0.1:1/unsubscribe?token=") && unsub.ends_with('>'),
        "{unsub}"
    );
    assert_eq!(m["list_unsubscribe_post"], "List-Unsubscribe=One-Click");
    assert!(m["text"]
        .as_str()
        .is_some_and(|t| t.contains(&format!("/films/{film}"))));
    // RFC 8058: the mail client POSTs `List-Unsubscribe=One-Click` to the URL.
    let path = &unsub[unsub.find("/unsubscribe").expect("path")..unsub.len() - 1];
    let page = server.get(path, None);
    page.expect(200, "the unsubscribe page");
    assert!(
        page.text().contains("<form method=\"post\""),
        "{}",
        page.text()
    );
    let r = server.exec(
        server
            .req(Method::POST, path)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click"),
    );
    r.expect(200, "one-click unsubscribe");
    let prefs = server
        .get("/api/v1/me/notifications", Some(&fan.access))
        .expect(200, "prefs")
        .json();
    assert_eq!(prefs["new_films_email"], false, "{prefs}");
    // Published again after an unpublish: no news, no second mail.
    server
        .post(
            &format!("/api/v1/admin/films/{film}/unpublish"),
            Some(&admin.access),
            json!({}),
        )
        .expect(200, "unpublish");
    publish("publish again");
    server
        .call(
            Method::PATCH,
            &format!("/api/v1/admin/films/{film}"),
            Some(&admin.access),
            Some(json!({ "prices": [{ "amount": USD, "currency": "USD" }] })),
        )
        .expect(200, "price the film");
    let _ = film_info(&server, &admin, &film);

    // 1. A receipt, in English and (for a buyer who chose it) in Korean.
    let en = server.user("receipt-en", false);
    let order = server.buy_with_dev(&en, &film);
    let m = smtp
        .wait_for(&en.email, 1, Duration::from_secs(20), &server)
        .remove(0);
    assert_eq!(m["mail_from"], "films@test.example");
    assert_eq!(m["subject"], "Your receipt: Night & Day <12 s>");
    assert!(
        m["content_types"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("text/plain")) && t.contains(&json!("text/html"))),
        "both parts: {}",
        m["content_types"]
    );
    let (text, html) = (
        m["text"].as_str().expect("text part"),
        m["html"].as_str().expect("html part"),
    );
    for (part, title) in [
        (text, "Night & Day <12 s>"),
        (html, "Night &#38; Day &#60;12 s&#62;"),
    ] {
        assert!(part.contains("12.34 USD"), "the amount: {part}");
        assert!(part.contains("dev"), "the provider: {part}");
        assert!(part.contains(&order), "the order id: {part}");
        assert!(
            part.contains(title) || part.contains("Night &amp; Day &lt;12 s&gt;"),
            "the film (escaped in HTML): {part}"
        );
    }
    assert!(!html.contains("<12 s>"), "the title is escaped in HTML");
    assert!(html.contains("lang=\"en\""), "{html}");
    assert!(
        m["list_unsubscribe"].is_null(),
        "a receipt is transactional"
    );

    let ko = server.user("receipt-ko", false);
    server
        .call(
            Method::PUT,
            "/api/v1/me/notifications",
            Some(&ko.access),
            Some(json!({ "language": "ko" })),
        )
        .expect(200, "language ko");
    let ko_order = server.buy_with_dev(&ko, &film);
    let m = smtp
        .wait_for(&ko.email, 1, Duration::from_secs(20), &server)
        .remove(0);
    assert_eq!(m["subject"], "영수증: Night & Day <12 s>");
    let text = m["text"].as_str().expect("text part");
    assert!(
        text.contains("금액: 12.34 USD") && text.contains(&ko_order),
        "{text}"
    );
    assert!(m["html"]
        .as_str()
        .is_some_and(|h| h.contains("lang=\"ko\"")));

    // 2. The SMTP server is down: the receipt is retried, and delivered once it is back.
    smtp.down();
    let before = retries_logged(&server);
    let late = server.user("receipt-late", false);
    server.buy_with_dev(&late, &film);
    wait_retries(&server, before, 2);
    assert!(smtp.to(&late.email).is_empty());
    smtp.up();
    smtp.wait_for(&late.email, 1, Duration::from_secs(20), &server);
    exactly_one(&smtp, &late.email, "after the outage");

    // 3. kill -9 before delivery (SMTP down): after the restart, delivered exactly once.
    smtp.down();
    let before = retries_logged(&server);
    let crashed = server.user("receipt-crash", false);
    server.buy_with_dev(&crashed, &film);
    wait_retries(&server, before, 1);
    server.kill9();
    smtp.up();
    server.restart();
    smtp.wait_for(&crashed.email, 1, Duration::from_secs(30), &server);
    exactly_one(&smtp, &crashed.email, "after kill -9 and a restart");

    // 4. A 5xx refusal: a dead letter at once; retried from the admin API → delivered once.
    smtp.mode("reject");
    let refused = server.user("receipt-refused", false);
    // The admin's tokens were signed before the restart; they still hold.
    server.buy_with_dev(&refused, &film);
    let deadline = Instant::now() + Duration::from_secs(20);
    // The receipt's dead letter, and the admins' alert about it (refused too: the sink
    // still refuses everything).
    let (letter, alert_letter) = loop {
        let all = dead(&server, &admin);
        let of = |to: &str| all.iter().find(|d| d["recipient"] == to).cloned();
        if let (Some(d), Some(a)) = (of(&refused.email), of(&admin.email)) {
            break (d, a);
        }
        assert!(
            Instant::now() < deadline,
            "no dead letter; log:\n{}",
            server.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(letter["channel"], "email");
    assert!(
        letter["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("550")),
        "{letter}"
    );
    assert_eq!(
        letter["attempts"], 1,
        "a permanent refusal is not retried: {letter}"
    );
    let rejected = smtp.read("rejected.jsonl");
    assert!(
        rejected
            .iter()
            .filter(|m| m["rcpt_tos"] == json!([refused.email]))
            .count()
            == 1,
        "tried once: {rejected:#?}"
    );
    assert!(smtp.to(&refused.email).is_empty());
    // Only admins see or retry dead letters.
    server
        .get("/api/v1/admin/notifications/dead", Some(&refused.access))
        .expect_error(403, "admin_only", "a viewer lists dead letters");
    let id = letter["id"].as_str().expect("id");
    server
        .post(
            &format!("/api/v1/admin/notifications/dead/{}/retry", uuid_nil()),
            Some(&admin.access),
            json!({}),
        )
        .expect_error(404, "not_found", "retrying an unknown dead letter");
    smtp.mode("accept");
    server
        .post(
            &format!("/api/v1/admin/notifications/dead/{id}/retry"),
            Some(&admin.access),
            json!({}),
        )
        .expect(200, "retry the dead letter");
    smtp.wait_for(&refused.email, 1, Duration::from_secs(20), &server);
    exactly_one(&smtp, &refused.email, "a retried dead letter");
    assert!(
        !dead(&server, &admin)
            .iter()
            .any(|d| d["recipient"] == refused.email.as_str()),
        "no longer dead"
    );

    // The dead letter also alerted the admins (refused too while the sink refused: it is a
    // dead letter of its own), retried here from the console's System page in a browser;
    // the viewer's account page switches the preferences.
    let reader = server.user("account-page", false);
    let out = run_browser(
        "notify_pages.mjs",
        &[
            ("BASE_URL", server.base.clone()),
            ("ADMIN_TOKEN", server.login_link_token(&admin.email)),
            ("VIEWER_TOKEN", server.login_link_token(&reader.email)),
            (
                "DEAD_ID",
                alert_letter["id"].as_str().expect("id").to_string(),
            ),
        ],
    )
    .expect("the browser script");
    assert!(out.contains("ok the account page switches"), "{out}");
    let prefs = server
        .get("/api/v1/me/notifications", Some(&reader.access))
        .expect(200, "prefs")
        .json();
    assert_eq!(
        (&prefs["new_films_email"], &prefs["language"]),
        (&json!(true), &json!("ko"))
    );
    for d in dead(&server, &admin) {
        let id = d["id"].as_str().expect("id");
        server
            .post(
                &format!("/api/v1/admin/notifications/dead/{id}/retry"),
                Some(&admin.access),
                json!({}),
            )
            .expect(200, "retry the alert");
    }
    let alert = smtp.wait_for(&admin.email, 1, Duration::from_secs(20), &server);
    assert!(
        alert
            .iter()
            .any(|m| m["subject"] == "[cinegate] Notifications are failing"),
        "{alert:#?}"
    );

    // Each buyer got exactly one receipt, whatever happened on the way, and the film was
    // announced once.
    for u in [&fan, &en, &ko, &late, &crashed, &refused] {
        let got = smtp.to(&u.email);
        assert_eq!(
            got.len(),
            1,
            "{}: {:#?}\nlog:\n{}",
            u.email,
            got.iter().map(|m| &m["subject"]).collect::<Vec<_>>(),
            std::fs::read_to_string(server.log_path()).unwrap_or_default()
        );
    }
}

fn uuid_nil() -> &'static str {
    "00000000-0000-0000-0000-000000000000"
}

#[test]
fn preferences_and_the_one_click_unsubscribe() {
    let s = &crate::harness::shared::shared().server;
    let viewer = s.user("prefs", false);
    let prefs = s
        .get("/api/v1/me/notifications", Some(&viewer.access))
        .expect(200, "prefs")
        .json();
    assert_eq!(
        prefs,
        json!({
            "new_films_email": false,
            "new_films_push": false,
            "language": "en",
            "transactional_email": "always"
        })
    );
    let put = |body: Value| {
        s.call(
            Method::PUT,
            "/api/v1/me/notifications",
            Some(&viewer.access),
            Some(body),
        )
    };
    let changed = put(json!({ "new_films_email": true, "language": "ko" }))
        .expect(200, "set prefs")
        .json();
    assert_eq!(changed["new_films_email"], true);
    assert_eq!(changed["new_films_push"], false, "an absent field stays");
    assert_eq!(changed["language"], "ko");
    put(json!({ "language": "fr" })).expect_error(422, "invalid_input", "an unknown language");
    put(json!({ "receipts": false })).expect_error(400, "invalid_json", "an unknown switch");
    s.get("/api/v1/me/notifications", None).expect_error(
        401,
        "unauthenticated",
        "prefs without a token",
    );

    // A forged unsubscribe token opens nothing.
    let forged = format!("{}.{}", viewer.id.replace('-', ""), "00".repeat(32));
    s.get(&format!("/unsubscribe?token={forged}"), None)
        .expect_error(404, "not_found", "a forged unsubscribe link");
    s.post(&format!("/unsubscribe?token={forged}"), None, json!({}))
        .expect_error(404, "not_found", "a forged one-click unsubscribe");
}
