//! Rate limits (issue 12, item 2; the PayPal webhook from item 3), from outside: a real
//! server, a trusted proxy in front of it (requests from 127.0.0.1 with forwarding
//! headers), a client that floods junk, and users whose good requests must still pass.
//! Every address budget here is `BUDGET` requests a minute.

use std::cell::Cell;
use std::net::IpAddr;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::clock::now;
use crate::harness::http::Resp;
use crate::harness::server::Server;

const BUDGET: u32 = 5;
const WEBHOOK: &str = "/api/v1/payments/paypal/webhook";

/// A server whose per-address budgets are all `BUDGET`; `trusted` is `trusted_proxies`.
fn server(trusted: &str, extra: &[(&str, &str)]) -> Server {
    let budget = BUDGET.to_string();
    let mut env = vec![("CINEGATE_TRUSTED_PROXIES", trusted)];
    for key in [
        "CINEGATE_LIMITS__AUTH_PER_MINUTE",
        "CINEGATE_LIMITS__NATIVE_PER_MINUTE",
        "CINEGATE_LIMITS__TOKEN_FAILURES_PER_MINUTE",
        "CINEGATE_LIMITS__WEBHOOK_PER_MINUTE",
    ] {
        env.push((key, budget.as_str()));
    }
    env.extend_from_slice(extra);
    Server::start(&env)
}

/// Budgets are per clock minute: start a flood with at least 20 s of the minute left, so
/// that it and the checks after it fall in one window.
fn fresh_window() {
    let left = 60 - now().rem_euclid(60);
    if left < 20 {
        std::thread::sleep(Duration::from_secs(left as u64 + 1));
    }
}

fn send(
    s: &Server,
    method: Method,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Resp {
    let mut req = s.req(method, path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    s.exec(req)
}

fn refresh(s: &Server, token: &str, headers: &[(&str, &str)]) -> Resp {
    let body = json!({ "refresh_token": token });
    send(s, Method::POST, "/api/v1/auth/refresh", Some(body), headers)
}

/// A 429 in the shape every refusal has: `rate_limited`, `retry_after`, `Retry-After`.
fn expect_limited(r: &Resp, what: &str) {
    r.expect_error(429, "rate_limited", what);
    let retry = r.json()["error"]["retry_after"].as_i64().unwrap_or(0);
    assert!((1..=60).contains(&retry), "{what}: retry_after {retry}");
    let header = retry.to_string();
    assert_eq!(r.header("Retry-After"), Some(header.as_str()), "{what}");
}

/// Spends a budget: `BUDGET` answers `(status, code)`, then the refusal.
fn spend(what: &str, answer: (u16, &str), send: impl Fn() -> Resp) {
    for i in 1..=BUDGET {
        send().expect_error(
            answer.0,
            answer.1,
            &format!("{what}: request {i} of {BUDGET}"),
        );
    }
    expect_limited(&send(), &format!("{what}: past the budget"));
}

#[test]
fn one_client_flooding_through_the_proxy_does_not_refuse_another() {
    let s = server("127.0.0.1/32", &[]);
    let a = [("X-Forwarded-For", "203.0.113.10")];
    let b = [("X-Forwarded-For", "198.51.100.20")];
    fresh_window();

    // A makes up an X-Forwarded-For of its own each time; the proxy appends the address A
    // really connected from, and that is what counts.
    let made_up = Cell::new(0u32);
    spend("junk refreshes from A", (401, "invalid_token"), || {
        made_up.set(made_up.get() + 1);
        let claimed = format!("192.0.2.{}, 203.0.113.10", made_up.get());
        refresh(&s, "junk", &[("X-Forwarded-For", &claimed)])
    });
    refresh(&s, "junk", &b).expect_error(401, "invalid_token", "B's refresh while A is refused");

    // Browser sign-in is a budget of its own: A's junk refreshes did not spend it.
    let start = |h: &[(&str, &str)]| send(&s, Method::GET, "/auth/google/start", None, h);
    spend("sign-in starts from A", (404, "unknown_provider"), || {
        start(&a)
    });
    start(&b).expect_error(
        404,
        "unknown_provider",
        "B's sign-in start while A is refused",
    );

    let native = |h: &[(&str, &str)]| {
        let body = json!({ "id_token": "junk" });
        send(
            &s,
            Method::POST,
            "/api/v1/auth/google/native",
            Some(body),
            h,
        )
    };
    spend("native sign-ins from A", (404, "unknown_provider"), || {
        native(&a)
    });
    native(&b).expect_error(
        404,
        "unknown_provider",
        "B's native sign-in while A is refused",
    );
}

#[test]
fn ipv6_clients_are_counted_by_their_64_and_mapped_ipv4_as_ipv4() {
    let s = server("127.0.0.1/32", &[]);
    // RFC 7239 syntax this time: quoted, bracketed, with a port.
    let fwd = |addr: &str| format!("for=\"[{addr}]:4711\";proto=https");
    fresh_window();

    let first = fwd("2001:db8:aa:1::1");
    spend(
        "junk refreshes from 2001:db8:aa:1::1",
        (401, "invalid_token"),
        || refresh(&s, "junk", &[("Forwarded", &first)]),
    );
    let same_64 = fwd("2001:db8:aa:1:ffff:ffff:ffff:ffff");
    expect_limited(
        &refresh(&s, "junk", &[("Forwarded", &same_64)]),
        "another address in the same /64",
    );
    let next_64 = fwd("2001:db8:aa:2::1");
    refresh(&s, "junk", &[("Forwarded", &next_64)]).expect_error(
        401,
        "invalid_token",
        "an address in the next /64",
    );

    spend(
        "junk refreshes from 192.0.2.7",
        (401, "invalid_token"),
        || refresh(&s, "junk", &[("X-Forwarded-For", "192.0.2.7")]),
    );
    expect_limited(
        &refresh(&s, "junk", &[("X-Forwarded-For", "::ffff:192.0.2.7")]),
        "the same IPv4 address, IPv4-mapped",
    );
}

#[test]
fn forwarding_headers_from_an_untrusted_peer_count_against_the_peer() {
    let s = server("127.0.0.1/32", &[]);
    // Another loopback address: a peer that is not the trusted proxy.
    let direct = reqwest::blocking::Client::builder()
        .local_address(IpAddr::from([127, 0, 0, 2]))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("HTTP client on 127.0.0.2");
    let sent = Cell::new(0u32);
    let spoofed = || {
        sent.set(sent.get() + 1);
        let n = sent.get();
        // Every request claims another client, in one header or the other.
        let (name, value) = if n.is_multiple_of(2) {
            ("X-Forwarded-For", format!("198.51.100.{n}"))
        } else {
            ("Forwarded", format!("for=198.51.100.{n}"))
        };
        s.exec(
            direct
                .post(s.url("/api/v1/auth/refresh"))
                .header(name, value)
                .json(&json!({ "refresh_token": "junk" })),
        )
    };
    fresh_window();

    spend(
        "junk refreshes from 127.0.0.2, each claiming another client",
        (401, "invalid_token"),
        spoofed,
    );
    expect_limited(
        &s.exec(
            direct
                .post(s.url("/api/v1/auth/refresh"))
                .json(&json!({ "refresh_token": "junk" })),
        ),
        "127.0.0.2 without a header",
    );
    // The trusted proxy and its clients were not charged for any of it.
    refresh(&s, "junk", &[("X-Forwarded-For", "198.51.100.2")]).expect_error(
        401,
        "invalid_token",
        "a client the proxy names, one the flood claimed to be",
    );
}

#[test]
fn junk_from_an_address_does_not_stop_good_tokens_from_it() {
    // No trusted proxy: every request, flood and users alike, comes from 127.0.0.1, as
    // behind a proxy that trusted_proxies does not name.
    let s = server("", &[]);
    let user = s.user("good-tokens", false);
    fresh_window();

    spend("junk refreshes", (401, "invalid_token"), || {
        refresh(&s, "junk", &[])
    });
    // Every token endpoint's failures share the budget.
    let post = |path: &str, body: Value| send(&s, Method::POST, path, Some(body), &[]);
    expect_limited(
        &post("/api/v1/auth/link", json!({ "token": "junk" })),
        "a junk login link",
    );
    expect_limited(
        &post("/api/v1/auth/exchange", json!({ "code": "junk" })),
        "a junk app code",
    );
    expect_limited(
        &post("/api/v1/auth/logout", json!({ "refresh_token": "junk" })),
        "a junk logout",
    );
    expect_limited(&refresh(&s, "", &[]), "an empty refresh token");

    // Good tokens from the same address still work: their uses count elsewhere.
    let pair = refresh(&s, &user.refresh, &[])
        .expect(200, "a valid refresh after the flood")
        .json();
    let rotated = pair["refresh_token"].as_str().expect("refresh_token");
    let link = s.login_link_token(&user.email);
    post("/api/v1/auth/link", json!({ "token": link })).expect(200, "a valid login link");
    post("/api/v1/auth/logout", json!({ "refresh_token": rotated })).expect(204, "a valid logout");
    // Junk is still refused.
    expect_limited(&refresh(&s, "junk", &[]), "junk after the good requests");
}

#[test]
fn each_sign_in_has_its_own_refresh_budget() {
    let s = server("", &[("CINEGATE_LIMITS__REFRESH_FAMILY_PER_MINUTE", "3")]);
    let alice = s.user("family-a", false);
    let bob = s.user("family-b", false);
    fresh_window();

    let mut token = alice.refresh.clone();
    for i in 1..=3 {
        let pair = refresh(&s, &token, &[])
            .expect(200, &format!("alice's refresh {i} of 3"))
            .json();
        token = pair["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_string();
    }
    expect_limited(
        &refresh(&s, &token, &[]),
        "alice's fourth refresh of one sign-in",
    );
    expect_limited(
        &send(
            &s,
            Method::POST,
            "/api/v1/auth/logout",
            Some(json!({ "refresh_token": token })),
            &[],
        ),
        "a logout of the same sign-in",
    );
    refresh(&s, &bob.refresh, &[]).expect(200, "bob's refresh");
    // Alice signing in again starts a new family with its own budget.
    let link = s.login_link_token(&alice.email);
    let pair = s
        .post("/api/v1/auth/link", None, json!({ "token": link }))
        .expect(200, "alice signs in again")
        .json();
    let again = pair["refresh_token"].as_str().expect("refresh_token");
    refresh(&s, again, &[]).expect(200, "a refresh of alice's new sign-in");
}

#[test]
fn the_paypal_webhook_has_a_budget_of_its_own() {
    let s = server(
        "127.0.0.1/32",
        &[
            ("CINEGATE_PAYMENTS__PAYPAL__CLIENT_ID", "ratelimit-client"),
            (
                "CINEGATE_PAYMENTS__PAYPAL__CLIENT_SECRET",
                "ratelimit-secret",
            ),
            // Never reached: these webhooks are answered before PayPal would be asked.
            ("CINEGATE_PAYMENTS__PAYPAL__API_URL", "http://127.0.0.1:1"),
            ("CINEGATE_PAYMENTS__PAYPAL__WEBHOOK_ID", "WH-RATELIMIT"),
        ],
    );
    let a = [("X-Forwarded-For", "203.0.113.40")];
    let b = [("X-Forwarded-For", "198.51.100.40")];
    // A refund naming no captured order: answered "ignored" without a call to PayPal, but
    // counted against the budget first like every delivery.
    let forged = |h: &[(&str, &str)]| {
        let event = json!({
            "id": "WH-FORGED",
            "event_type": "PAYMENT.CAPTURE.REFUNDED",
            "resource": {},
        });
        send(&s, Method::POST, WEBHOOK, Some(event), h)
    };
    let ignored = |r: Resp, what: &str| {
        assert_eq!(
            (r.status, r.json()),
            (200, json!({ "status": "ignored" })),
            "{what}"
        );
    };
    fresh_window();

    for i in 1..=BUDGET {
        ignored(
            forged(&a),
            &format!("forged webhooks from A: request {i} of {BUDGET}"),
        );
    }
    expect_limited(&forged(&a), "forged webhooks from A: past the budget");
    ignored(forged(&b), "B's webhook while A is refused");
    refresh(&s, "junk", &a).expect_error(401, "invalid_token", "A's refresh: another budget");
}
