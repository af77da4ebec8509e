//! Buying films (issue 5) against the contract in `docs/PAYMENTS.md`: checkout → the payer
//! at the provider → the return → capture → entitlement, for `dev`, PayPal, Kakao Pay and
//! Naver Pay; currencies and ownership checked before any provider call; declines, payer
//! cancels, tampered amounts and currencies; provider timeouts; duplicate and simultaneous
//! returns; PayPal webhooks (forged, genuine, replayed, refunds); a crash between the
//! provider's capture and our grant; admin refunds; and the privacy of orders.
//!
//! The providers are the loopback fakes of `payment_peers.rs`. Their behaviour and counters
//! are process-wide, so every test here holds the group's lock (one server, one priced film,
//! the three fakes) for its whole run and starts from fresh fakes, except the two crash
//! tests, which kill and restart their own server with their own PayPal fake.
//!
//! The harness's `public_url` is `http://127.0.0.1:1`, so a provider sends the payer's
//! browser to a URL on that dead port; the test plays the browser and sends the path and
//! query of that URL to the real server instead (`local`).
//!
//! Entitlement is judged twice each time: the `entitlement` of `POST /films/{id}/playback`,
//! and a direct request for segment P (and key P), the first one past the preview — 403
//! `preview_ended` before a purchase, 200 after.

use std::sync::{Barrier, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::{Method, Url};
use serde_json::{json, Value};

use testkit::decode::ffmpeg_decode;
use testkit::probe::format_duration;
use testkit::sources::{lavfi_av, with, X264};

use crate::harness::films::{film_info, FilmInfo};
use crate::harness::http::{no_redirect_client, Resp};
use crate::harness::media::{sources, src_other};
use crate::harness::playback::preview_of;
use crate::harness::server::{Server, FAST_PACE};
use crate::harness::threads::join;
use crate::harness::users::User;
use crate::payment_peers::{KakaoPeer, NaverPeer, PaypalPeer};

/// `CINEGATE_PUBLIC_URL` of every harness server.
const PUBLIC: &str = "http://127.0.0.1:1";

const PP_ID: &str = "pp-client-id";
const PP_SECRET: &str = "pp-client-secret";
const PP_WEBHOOK: &str = "WH-TEST-0123456789";
const KAKAO_KEY: &str = "DEVKAKAOSECRETKEY0001";
const KAKAO_CID: &str = "TC0ONETIME";
const NAVER_ID: &str = "naver-client-id";
const NAVER_SECRET: &str = "naver-client-secret";
const NAVER_CHAIN: &str = "naver-chain-1";
const NAVER_PARTNER: &str = "np_partner_1";

/// The main film's prices.
const USD_PRICE: u64 = 499;
const KRW_PRICE: u64 = 6500;

/// The group's film: 24 s, 640x360, 25 fps, 2 s GOP → 6 s segments, N = 4, P = 1.
fn src_pay() -> std::path::PathBuf {
    let av = with(lavfi_av("testsrc2", "640x360", 25, 24, 660, 48000), X264);
    sources().gen(
        "pay-24s-640x360",
        "mp4",
        with(av, &["-g", "50", "-c:a", "aac", "-b:a", "64k"]),
    )
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The path and query of a URL on `public_url`, to send to the real server.
fn local(url: &str) -> String {
    let rest = url
        .strip_prefix(PUBLIC)
        .filter(|r| r.starts_with('/'))
        .unwrap_or_else(|| panic!("{url:?} is not on public_url {PUBLIC}"));
    rest.to_string()
}

/// A query parameter of a URL or a local path.
fn param(url: &str, key: &str) -> Option<String> {
    let full = if url.starts_with('/') {
        format!("{PUBLIC}{url}")
    } else {
        url.to_string()
    };
    Url::parse(&full)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// The payer's browser at the provider's page: GET without following; returns the
/// `Location` it is sent to.
fn at_provider(url: &str) -> String {
    let resp = no_redirect_client()
        .get(url)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.text().unwrap_or_default();
    assert_eq!(status, 302, "the provider's page {url}: {body}");
    location.unwrap_or_else(|| panic!("the provider's page {url} sent no Location"))
}

fn str_of<'v>(v: &'v Value, key: &str) -> &'v str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing or not a string in {v}"))
}

fn u64_of(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing or not an integer in {v}"))
}

/// How many times `id` appears in PayPal's `request_ids`.
fn request_id_count(state: &Value, id: &str) -> usize {
    state["request_ids"]
        .as_array()
        .expect("request_ids")
        .iter()
        .filter(|r| r.as_str() == Some(id))
        .count()
}

/// The events of an order (admin view) in a given state.
fn events_in(order: &Value, state: &str) -> usize {
    order["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events in {order}"))
        .iter()
        .filter(|e| e["state"] == state)
        .count()
}

/// The first capture of a PayPal order as the fake shows it.
fn pp_capture(order: &Value) -> &Value {
    &order["purchase_units"][0]["payments"]["captures"][0]
}

/// Provider env for a server whose fakes are these (each optional).
fn provider_env(
    paypal: Option<&PaypalPeer>,
    kakao: Option<&KakaoPeer>,
    naver: Option<&NaverPeer>,
    dev: bool,
) -> Vec<(String, String)> {
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    let mut env = vec![
        s("CINEGATE_PAYMENTS__PROVIDER_TIMEOUT", "2s"),
        s(
            "CINEGATE_PAYMENTS__DEV__ENABLED",
            if dev { "true" } else { "false" },
        ),
    ];
    if let Some(p) = paypal {
        env.extend([
            s("CINEGATE_PAYMENTS__PAYPAL__CLIENT_ID", &p.client_id),
            s("CINEGATE_PAYMENTS__PAYPAL__CLIENT_SECRET", &p.client_secret),
            s("CINEGATE_PAYMENTS__PAYPAL__API_URL", &p.base),
            s("CINEGATE_PAYMENTS__PAYPAL__WEBHOOK_ID", &p.webhook_id),
            s("CINEGATE_PAYMENTS__PAYPAL__CURRENCIES", "[\"USD\"]"),
        ]);
    }
    if let Some(k) = kakao {
        env.extend([
            s("CINEGATE_PAYMENTS__KAKAOPAY__SECRET_KEY", &k.secret_key),
            s("CINEGATE_PAYMENTS__KAKAOPAY__CID", &k.cid),
            s("CINEGATE_PAYMENTS__KAKAOPAY__API_URL", &k.base),
        ]);
    }
    if let Some(n) = naver {
        env.extend([
            s("CINEGATE_PAYMENTS__NAVERPAY__CLIENT_ID", &n.client_id),
            s(
                "CINEGATE_PAYMENTS__NAVERPAY__CLIENT_SECRET",
                &n.client_secret,
            ),
            s("CINEGATE_PAYMENTS__NAVERPAY__CHAIN_ID", &n.chain_id),
            s("CINEGATE_PAYMENTS__NAVERPAY__PARTNER_ID", &n.partner_id),
            s("CINEGATE_PAYMENTS__NAVERPAY__API_URL", &n.base),
            s(
                "CINEGATE_PAYMENTS__NAVERPAY__PAYMENT_URL",
                &format!("{}/payments", n.base),
            ),
        ]);
    }
    env
}

fn borrowed(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Packages `file` on `server`, publishes it and prices it in USD and KRW.
fn priced_film(server: &Server, admin: &User, file: &std::path::Path, title: &str) -> FilmInfo {
    let (id, job) = server.ingest(file, title, true);
    server.wait_job_ready(admin, &job, Duration::from_secs(120));
    set_prices(server, admin, &id, both_prices());
    film_info(server, admin, &id)
}

fn set_prices(server: &Server, admin: &User, film: &str, prices: Value) {
    server
        .call(
            Method::PATCH,
            &format!("/api/v1/admin/films/{film}"),
            Some(&admin.access),
            Some(json!({ "prices": prices })),
        )
        .expect(200, "PATCH film prices");
}

fn both_prices() -> Value {
    json!([
        { "amount": USD_PRICE, "currency": "USD" },
        { "amount": KRW_PRICE, "currency": "KRW" }
    ])
}

/// A checkout's answer.
#[derive(Debug, Clone)]
struct Checkout {
    order_id: String,
    redirect_url: String,
    provider: String,
    answer: Value,
}

/// `POST /films/{id}/checkout`, expecting 201.
fn checkout(server: &Server, viewer: &User, film: &str, provider: &str) -> Checkout {
    let r = server.post(
        &format!("/api/v1/films/{film}/checkout"),
        Some(&viewer.access),
        json!({ "provider": provider }),
    );
    let answer = r.expect(201, &format!("checkout with {provider}")).json();
    Checkout {
        order_id: str_of(&answer, "order_id").to_string(),
        redirect_url: str_of(&answer, "redirect_url").to_string(),
        provider: provider.to_string(),
        answer,
    }
}

/// The payer at the provider (its `payer_action` decides): returns the local path of the
/// URL on our server the provider sends them to.
fn payer(co: &Checkout) -> String {
    if co.provider == "dev" {
        // dev's "provider page" is our own return URL.
        return local(&co.redirect_url);
    }
    local(&at_provider(&co.redirect_url))
}

/// `GET /api/v1/orders/{id}` as `viewer`.
fn order_of(server: &Server, viewer: &User, id: &str) -> Value {
    server
        .get(&format!("/api/v1/orders/{id}"), Some(&viewer.access))
        .expect(200, "GET order")
        .json()
}

/// An order as `GET /api/v1/admin/orders` shows it (provider ids, events).
fn admin_order(server: &Server, admin: &User, id: &str) -> Value {
    let all = server
        .get("/api/v1/admin/orders", Some(&admin.access))
        .expect(200, "admin orders")
        .json();
    all["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .find(|o| o["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("order {id} not in /admin/orders"))
}

fn purchases(server: &Server, viewer: &User) -> Value {
    server
        .get("/api/v1/me/purchases", Some(&viewer.access))
        .expect(200, "me/purchases")
        .json()
}

/// The purchases of `viewer` for `film`.
fn purchases_of_film(server: &Server, viewer: &User, film: &str) -> Vec<Value> {
    purchases(server, viewer)["purchases"]
        .as_array()
        .expect("purchases")
        .iter()
        .filter(|p| p["film_id"] == film)
        .cloned()
        .collect()
}

/// Asserts the viewer's entitlement to `film`, through the playback answer and direct
/// requests for segment P (every rendition) and key P.
fn assert_access(server: &Server, viewer: &User, film: &FilmInfo, full: bool, what: &str) {
    let pb = server.playback(viewer, &film.id);
    let want = if full { "full" } else { "preview" };
    assert_eq!(pb.answer["entitlement"], want, "{what}: {}", pb.answer);
    let p = film.preview;
    for r in &film.renditions {
        let resp = server.get(&pb.path(&format!("{r}/{p:05}.ts")), None);
        if full {
            resp.expect(200, &format!("{what}: {r} segment P = {p}"));
        } else {
            resp.expect_error(
                403,
                "preview_ended",
                &format!("{what}: {r} segment P = {p}"),
            );
        }
    }
    let key = server.get(&pb.path(&format!("keys/{p}.key")), None);
    if full {
        key.expect(200, &format!("{what}: key P"));
    } else {
        key.expect_error(403, "preview_ended", &format!("{what}: key P"));
    }
}

/// The payer's return page: status and a word of the HTML.
fn assert_page(r: &Resp, status: u16, words: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.brief());
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/html")),
        "{what}: the return answers an HTML page, got {:?}",
        r.header("content-type")
    );
    assert!(
        r.text().contains(words),
        "{what}: page without {words:?}: {}",
        r.brief()
    );
}

// ---------------------------------------------------------------------------------------
// The group: one server, one priced film, the three fakes
// ---------------------------------------------------------------------------------------

struct Env {
    server: Server,
    admin: User,
    /// 24 s, N = 4, P = 1; USD 4.99 and KRW 6,500.
    film: FilmInfo,
    /// 12 s; its prices are set by the test that uses it.
    other: FilmInfo,
    paypal: PaypalPeer,
    kakao: KakaoPeer,
    naver: NaverPeer,
}

static ENV: OnceLock<Result<Mutex<Env>, String>> = OnceLock::new();

/// The group's environment, locked for the caller's whole test, with fresh fakes.
fn env() -> MutexGuard<'static, Env> {
    let cell = ENV.get_or_init(|| {
        std::panic::catch_unwind(build_env)
            .map(Mutex::new)
            .map_err(|e| {
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into())
            })
    });
    let env = match cell {
        Ok(m) => m.lock().unwrap_or_else(|e| e.into_inner()),
        Err(e) => panic!("the payments server could not be set up: {e}"),
    };
    env.paypal.reset();
    env.kakao.reset();
    env.naver.reset();
    env
}

fn build_env() -> Env {
    let (paypal, kakao, naver) = std::thread::scope(|sc| {
        let p = sc.spawn(|| PaypalPeer::start(PP_ID, PP_SECRET, PP_WEBHOOK));
        let k = sc.spawn(|| KakaoPeer::start(KAKAO_KEY, KAKAO_CID));
        let n = sc.spawn(|| NaverPeer::start(NAVER_ID, NAVER_SECRET, NAVER_CHAIN, NAVER_PARTNER));
        (join(p), join(k), join(n))
    });
    let main_src = src_pay();
    let other_src = src_other();
    let vars = provider_env(Some(&paypal), Some(&kakao), Some(&naver), true);
    // The tip test watches the film at machine speed to open support.
    let server = Server::start_leaked(&[borrowed(&vars), vec![FAST_PACE]].concat());
    let admin = server.user("pay-admin", true);
    let (main_id, main_job) = server.ingest(&main_src, "Pay film", true);
    let (other_id, other_job) = server.ingest(&other_src, "Pay other film", true);
    server.wait_job_ready(&admin, &main_job, Duration::from_secs(120));
    server.wait_job_ready(&admin, &other_job, Duration::from_secs(120));
    set_prices(&server, &admin, &main_id, both_prices());
    let film = film_info(&server, &admin, &main_id);
    let other = film_info(&server, &admin, &other_id);
    assert!(
        film.segments >= 4 && film.preview == preview_of(film.segments),
        "the group's film: N = {}, P = {}",
        film.segments,
        film.preview
    );
    Env {
        server,
        admin,
        film,
        other,
        paypal,
        kakao,
        naver,
    }
}

impl Env {
    fn webhook_url(&self) -> String {
        self.server.url("/api/v1/payments/paypal/webhook")
    }

    /// The whole purchase: checkout → payer approves → return (200) → captured.
    fn buy(&self, viewer: &User, provider: &str) -> Checkout {
        let co = checkout(&self.server, viewer, &self.film.id, provider);
        let back = payer(&co);
        assert_page(
            &self.server.get(&back, None),
            200,
            "Payment complete",
            &format!("{provider} return"),
        );
        let order = order_of(&self.server, viewer, &co.order_id);
        assert_eq!(order["state"], "captured", "{provider}: {order}");
        co
    }

    /// How many captures (PayPal capture, Kakao approve, Naver apply) reached a provider.
    fn capture_calls(&self, provider: &str) -> u64 {
        match provider {
            "paypal" => u64_of(&self.paypal.state(), "capture_calls"),
            "kakaopay" => u64_of(&self.kakao.state(), "approve_calls"),
            "naverpay" => u64_of(&self.naver.state(), "apply_calls"),
            _ => 0,
        }
    }

    fn behave(&self, provider: &str, v: Value) {
        match provider {
            "paypal" => self.paypal.behave(v),
            "kakaopay" => self.kakao.behave(v),
            "naverpay" => self.naver.behave(v),
            other => panic!("no fake for {other}"),
        };
    }

    fn price_of(provider: &str) -> (u64, &'static str) {
        match provider {
            "kakaopay" | "naverpay" => (KRW_PRICE, "KRW"),
            _ => (USD_PRICE, "USD"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// 1. Happy paths
// ---------------------------------------------------------------------------------------

/// A purchase through `provider` from checkout to full playback; returns the viewer, the
/// checkout and the admin's view of the order.
fn happy_path(e: &Env, provider: &str) -> (User, Checkout, Value) {
    let s = &e.server;
    let viewer = s.user(&format!("buyer-{provider}"), false);
    assert_access(s, &viewer, &e.film, false, &format!("{provider}: before"));

    let co = checkout(s, &viewer, &e.film.id, provider);
    let (amount, currency) = Env::price_of(provider);
    assert_eq!(
        (u64_of(&co.answer, "amount"), str_of(&co.answer, "currency")),
        (amount, currency),
        "{provider} checkout: the film's price in the provider's currency: {}",
        co.answer
    );
    let created = order_of(s, &viewer, &co.order_id);
    assert_eq!(created["state"], "created", "{provider}: {created}");
    assert_eq!(created["film_id"], e.film.id.as_str());
    assert_eq!(created["provider"], provider);

    let back = payer(&co);
    assert!(
        back.starts_with(&format!("/pay/{provider}/return?")),
        "{provider}: the payer is sent back to {back}"
    );
    assert_eq!(
        param(&back, "order").as_deref(),
        Some(co.order_id.as_str()),
        "{provider}: the return names the order"
    );
    // Approved at the provider, not paid: still the preview.
    assert_access(s, &viewer, &e.film, false, &format!("{provider}: approved"));

    assert_page(
        &s.get(&back, None),
        200,
        "Payment complete",
        &format!("{provider} return"),
    );
    let order = order_of(s, &viewer, &co.order_id);
    assert_eq!(order["state"], "captured", "{provider}: {order}");
    assert_eq!(
        (u64_of(&order, "amount"), str_of(&order, "currency")),
        (amount, currency),
        "{provider}: order {order}"
    );
    assert!(order["failure"].is_null(), "{provider}: {order}");
    assert_access(s, &viewer, &e.film, true, &format!("{provider}: captured"));

    let admin_view = admin_order(s, &e.admin, &co.order_id);
    assert!(
        admin_view["provider_ref"].is_string() && admin_view["payment_id"].is_string(),
        "{provider}: provider ids kept: {admin_view}"
    );
    assert_eq!(
        events_in(&admin_view, "captured"),
        1,
        "{provider}: {admin_view}"
    );

    let mine = purchases(s, &viewer);
    let list = mine["purchases"].as_array().expect("purchases");
    assert_eq!(list.len(), 1, "{provider}: /me/purchases {mine}");
    let p = &list[0];
    assert_eq!(p["film_id"], e.film.id.as_str(), "{mine}");
    assert_eq!(p["order_id"], co.order_id.as_str(), "{mine}");
    assert_eq!(p["title"], "Pay film", "{mine}");
    assert_eq!(p["provider"], provider, "{mine}");
    assert_eq!(
        (u64_of(p, "amount"), str_of(p, "currency")),
        (amount, currency),
        "{mine}"
    );
    assert!(p["purchased_at"].as_i64().is_some_and(|t| t > 0), "{mine}");
    assert!(
        mine["orders"]
            .as_array()
            .expect("orders")
            .iter()
            .any(|o| o["id"] == co.order_id.as_str() && o["state"] == "captured"),
        "{provider}: the order in /me/purchases: {mine}"
    );
    (viewer, co, admin_view)
}

#[test]
fn providers_are_listed() {
    let e = env();
    let r = e
        .server
        .get("/api/v1/payments/providers", None)
        .expect(200, "providers")
        .json();
    assert_eq!(
        r,
        json!({ "providers": ["dev", "paypal", "kakaopay", "naverpay"] })
    );
}

#[test]
fn dev_purchase_unlocks_the_film() {
    let e = env();
    let (_, co, order) = happy_path(&e, "dev");
    assert_eq!(
        co.redirect_url,
        format!("{PUBLIC}/pay/dev/return?order={}", co.order_id),
        "dev sends the payer straight to the return"
    );
    assert!(
        str_of(&order, "payment_id").starts_with("DEVPAY-"),
        "{order}"
    );
}

#[test]
fn paypal_purchase_plays_the_whole_film_with_ffmpeg() {
    let e = env();
    let s = &e.server;
    // Before: ffmpeg gets the preview only.
    let probe_viewer = s.user("pp-preview", false);
    let source_seconds = format_duration(src_pay());
    let (n, p) = (e.film.segments, e.film.preview);
    let preview_seconds = source_seconds * p as f64 / n as f64;
    let pb = s.playback(&probe_viewer, &e.film.id);
    let decoded = ffmpeg_decode(&pb.master);
    assert!(
        decoded.ok && (decoded.seconds - preview_seconds).abs() <= 1.0,
        "a non-buyer decodes {} s, want the preview's {preview_seconds} s: {decoded:?}",
        decoded.seconds
    );

    let (viewer, co, order) = happy_path(&e, "paypal");
    let pp_order = str_of(&order, "provider_ref");
    let state = e.paypal.state();
    let at_paypal = &state["orders"][pp_order];
    assert_eq!(at_paypal["status"], "COMPLETED", "{at_paypal}");
    assert_eq!(
        at_paypal["purchase_units"][0]["custom_id"],
        co.order_id.as_str(),
        "our order id as custom_id"
    );
    let capture = pp_capture(at_paypal);
    assert_eq!(capture["id"], order["payment_id"], "capture id kept");
    assert_eq!(
        capture["amount"],
        json!({ "currency_code": "USD", "value": "4.99" }),
        "what PayPal charged"
    );
    assert_eq!(capture["status"], "COMPLETED");
    assert_eq!(u64_of(&state, "capture_calls"), 1, "{state}");
    assert_eq!(
        request_id_count(&state, &format!("create-{}", co.order_id)),
        1
    );
    assert_eq!(
        request_id_count(&state, &format!("capture-{}", co.order_id)),
        1
    );

    // After: the whole film, decrypted and decoded by ffmpeg over HTTP.
    let pb = s.playback(&viewer, &e.film.id);
    assert_eq!(pb.answer["entitlement"], "full");
    let decoded = ffmpeg_decode(&pb.master);
    assert!(
        decoded.ok && decoded.stderr.trim().is_empty(),
        "ffmpeg on the buyer's master: {decoded:?}"
    );
    assert!(
        (decoded.seconds - source_seconds).abs() <= 1.0,
        "the buyer decoded {} s of a {source_seconds} s film ({decoded:?})",
        decoded.seconds
    );
}

#[test]
fn kakaopay_purchase_unlocks_the_film() {
    let e = env();
    let (viewer, co, order) = happy_path(&e, "kakaopay");
    let tid = str_of(&order, "provider_ref");
    let state = e.kakao.state();
    let rec = &state["tids"][tid];
    assert_eq!(rec["status"], "SUCCESS_PAYMENT", "{rec}");
    assert_eq!(rec["partner_order_id"], co.order_id.as_str(), "{rec}");
    assert_eq!(rec["partner_user_id"], viewer.id.as_str(), "{rec}");
    assert_eq!(rec["total_amount"], KRW_PRICE, "{rec}");
    assert_eq!(
        rec["approved"]["total"], KRW_PRICE,
        "what Kakao Pay charged: {rec}"
    );
    assert_eq!(rec["aid"], order["payment_id"], "aid kept: {rec}");
    assert_eq!(u64_of(&state, "approve_calls"), 1, "{state}");
    assert_eq!(u64_of(&state, "ready_calls"), 1, "{state}");
    // Kakao Pay's three payer entry points reach the app: PC, mobile web, the Kakao app.
    for key in ["redirect_url", "mobile_url", "app_url"] {
        assert!(
            co.answer[key].as_str().is_some_and(|u| !u.is_empty()),
            "checkout answer has {key}: {}",
            co.answer
        );
    }
}

#[test]
fn naverpay_purchase_unlocks_the_film() {
    let e = env();
    let (viewer, co, order) = happy_path(&e, "naverpay");
    let payment_id = str_of(&order, "payment_id");
    let reserve = str_of(&order, "provider_ref");
    let state = e.naver.state();
    assert_eq!(
        state["reserves"][reserve]["merchantPayKey"],
        co.order_id.as_str()
    );
    assert_eq!(
        state["reserves"][reserve]["merchantUserKey"],
        viewer.id.as_str()
    );
    let paid = &state["payments"][payment_id];
    assert_eq!(paid["state"], "APPLIED", "{paid}");
    assert_eq!(
        paid["detail"]["totalPayAmount"], KRW_PRICE,
        "what Naver Pay charged: {paid}"
    );
    assert_eq!(paid["detail"]["merchantPayKey"], co.order_id.as_str());
    assert_eq!(u64_of(&state, "apply_calls"), 1, "{state}");
    assert_eq!(
        state["idempotency_keys"],
        json!([format!("apply-{}", co.order_id)]),
        "the apply carries its idempotency key"
    );
}

// ---------------------------------------------------------------------------------------
// 2. Currency, price and ownership: refused before any provider call
// ---------------------------------------------------------------------------------------

#[test]
fn currency_price_and_ownership_are_checked_before_any_provider_call() {
    let e = env();
    let s = &e.server;
    let other = &e.other.id;
    let viewer = s.user("currency", false);
    let at = |provider: &str, film: &str| {
        s.post(
            &format!("/api/v1/films/{film}/checkout"),
            Some(&viewer.access),
            json!({ "provider": provider }),
        )
    };

    // USD only: the KRW providers cannot sell it.
    set_prices(
        s,
        &e.admin,
        other,
        json!([{ "amount": 299, "currency": "USD" }]),
    );
    at("kakaopay", other).expect_error(422, "currency_unsupported", "USD-only film, Kakao Pay");
    at("naverpay", other).expect_error(422, "currency_unsupported", "USD-only film, Naver Pay");
    // KRW only: PayPal (configured for USD) cannot.
    set_prices(
        s,
        &e.admin,
        other,
        json!([{ "amount": 3000, "currency": "KRW" }]),
    );
    at("paypal", other).expect_error(422, "currency_unsupported", "KRW-only film, PayPal");
    // No price: not for sale, whatever the provider.
    set_prices(s, &e.admin, other, json!([]));
    at("dev", other).expect_error(409, "not_for_sale", "a film without a price");
    at("bitcoin", &e.film.id).expect_error(404, "unknown_provider", "an unknown provider");
    // The client does not set the amount.
    s.post(
        &format!("/api/v1/films/{}/checkout", e.film.id),
        Some(&viewer.access),
        json!({ "provider": "dev", "amount": 1, "currency": "USD" }),
    )
    .expect_error(400, "invalid_json", "a checkout naming its own amount");
    assert!(
        purchases(s, &viewer)["orders"]
            .as_array()
            .is_some_and(|o| o.is_empty()),
        "no order was made by a refused checkout"
    );
    let kakao = e.kakao.state();
    let naver = e.naver.state();
    let paypal = e.paypal.state();
    assert_eq!(
        u64_of(&kakao, "ready_calls"),
        0,
        "Kakao Pay was called: {kakao}"
    );
    assert_eq!(
        u64_of(&naver, "reserve_calls"),
        0,
        "Naver Pay was called: {naver}"
    );
    assert_eq!(
        u64_of(&paypal, "create_calls"),
        0,
        "PayPal was called: {paypal}"
    );

    // dev takes any currency: the film's first price.
    set_prices(
        s,
        &e.admin,
        other,
        json!([{ "amount": 299, "currency": "USD" }]),
    );
    let co = checkout(s, &viewer, other, "dev");
    assert_eq!(
        (u64_of(&co.answer, "amount"), str_of(&co.answer, "currency")),
        (299, "USD")
    );

    // Already owned, by a purchase and by an admin's grant: 409 before any provider call.
    let buyer = s.user("owner-by-purchase", false);
    e.buy(&buyer, "dev");
    let granted = s.user("owner-by-grant", false);
    s.grant(&e.admin, &e.film.id, &granted);
    for (who, user) in [("buyer", &buyer), ("grantee", &granted)] {
        for provider in ["paypal", "kakaopay", "naverpay", "dev"] {
            s.post(
                &format!("/api/v1/films/{}/checkout", e.film.id),
                Some(&user.access),
                json!({ "provider": provider }),
            )
            .expect_error(
                409,
                "already_owned",
                &format!("{who} buys again via {provider}"),
            );
        }
    }
    assert_eq!(u64_of(&e.paypal.state(), "create_calls"), 0);
    assert_eq!(u64_of(&e.kakao.state(), "ready_calls"), 0);
    assert_eq!(u64_of(&e.naver.state(), "reserve_calls"), 0);
}

/// Two open orders for one film (through two providers: a second checkout through the
/// same one answers the first order): the first return buys it, the second order is
/// cancelled, not captured.
#[test]
fn a_second_open_order_for_a_film_bought_meanwhile_is_cancelled_not_captured() {
    let e = env();
    let s = &e.server;
    let viewer = s.user("two-orders", false);
    let a = checkout(s, &viewer, &e.film.id, "paypal");
    let b = checkout(s, &viewer, &e.film.id, "kakaopay");
    let back_a = payer(&a);
    let back_b = payer(&b);
    assert_page(
        &s.get(&back_a, None),
        200,
        "Payment complete",
        "first return",
    );
    let r = s.get(&back_b, None);
    assert_eq!(r.status, 402, "second return: {}", r.brief());
    let ob = order_of(s, &viewer, &b.order_id);
    assert_eq!(ob["state"], "cancelled", "the second order: {ob}");
    assert_eq!(
        u64_of(&e.paypal.state(), "capture_calls"),
        1,
        "one capture for the two orders"
    );
    assert_eq!(
        u64_of(&e.kakao.state(), "approve_calls"),
        0,
        "the second order is not approved at Kakao Pay"
    );
    let bought = purchases_of_film(s, &viewer, &e.film.id);
    assert_eq!(bought.len(), 1, "{bought:?}");
    assert_eq!(bought[0]["order_id"], a.order_id.as_str());
    assert_access(s, &viewer, &e.film, true, "after the first order");
}

// ---------------------------------------------------------------------------------------
// 3. Declined, cancelled, failed
// ---------------------------------------------------------------------------------------

/// PayPal revokes our cached access token between the checkout and the capture: the
/// capture's 401 drops the token, one new token is fetched, the capture is retried once
/// under the same request id and the order is paid exactly once.
#[test]
fn a_revoked_paypal_token_is_renewed_once_and_the_capture_goes_through() {
    let e = env();
    let s = &e.server;
    let viewer = s.user("revoked-token", false);
    let co = checkout(s, &viewer, &e.film.id, "paypal");
    let tokens_before = u64_of(&e.paypal.state(), "token_calls");
    e.paypal.expire_tokens();
    assert_page(
        &s.get(&payer(&co), None),
        200,
        "Payment complete",
        "paypal return after the token was revoked",
    );
    let order = order_of(s, &viewer, &co.order_id);
    assert_eq!(order["state"], "captured", "{order}");
    let state = e.paypal.state();
    assert_eq!(
        u64_of(&state, "token_calls"),
        tokens_before + 1,
        "one new token after the 401: {state}"
    );
    // The refused call and its retry carry the same PayPal-Request-Id; PayPal holds one capture.
    assert_eq!(
        e.capture_calls("paypal"),
        2,
        "refused, then retried: {state}"
    );
    let admin_view = admin_order(s, &e.admin, &co.order_id);
    let pp_id = str_of(&admin_view, "provider_ref");
    assert_eq!(
        state["orders"][pp_id]["purchase_units"][0]["payments"]["captures"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "one capture at PayPal: {state}"
    );
    assert_eq!(
        request_id_count(&state, &format!("capture-{}", co.order_id)),
        2,
        "{state}"
    );
    assert_eq!(events_in(&admin_view, "captured"), 1, "{admin_view}");
    assert_access(s, &viewer, &e.film, true, "bought after the renewal");
}

#[test]
fn a_declined_payment_fails_the_order_and_grants_nothing() {
    let e = env();
    let s = &e.server;
    for provider in ["paypal", "kakaopay", "naverpay"] {
        e.behave(provider, json!({ "decline_capture": true }));
        let viewer = s.user(&format!("declined-{provider}"), false);
        let co = checkout(s, &viewer, &e.film.id, provider);
        let back = payer(&co);
        assert_page(
            &s.get(&back, None),
            402,
            "Payment not completed",
            &format!("{provider}: declined return"),
        );
        let order = order_of(s, &viewer, &co.order_id);
        assert_eq!(order["state"], "failed", "{provider}: {order}");
        assert!(
            order["failure"].as_str().is_some_and(|f| !f.is_empty()),
            "{provider}: a failure reason: {order}"
        );
        assert_access(s, &viewer, &e.film, false, &format!("{provider}: declined"));
        assert!(purchases_of_film(s, &viewer, &e.film.id).is_empty());
        assert_eq!(
            e.capture_calls(provider),
            1,
            "{provider}: one refused capture"
        );

        // A failed order is final; the viewer can try again with a new one.
        e.behave(provider, json!({ "decline_capture": false }));
        assert_page(
            &s.get(&back, None),
            402,
            "Payment not completed",
            &format!("{provider}: the failed return again"),
        );
        assert_eq!(order_of(s, &viewer, &co.order_id)["state"], "failed");
        assert_eq!(
            e.capture_calls(provider),
            1,
            "{provider}: not captured again"
        );
        e.buy(&viewer, provider);
        assert_access(
            s,
            &viewer,
            &e.film,
            true,
            &format!("{provider}: second try"),
        );
    }
}

#[test]
fn a_payer_who_cancels_or_fails_at_the_provider_gets_nothing() {
    let e = env();
    let s = &e.server;
    for (provider, action, route, state) in [
        ("paypal", "cancel", "cancel", "cancelled"),
        ("kakaopay", "cancel", "cancel", "cancelled"),
        ("kakaopay", "fail", "fail", "failed"),
    ] {
        let what = format!("{provider} payer {action}");
        e.behave(provider, json!({ "payer_action": action }));
        let viewer = s.user(&format!("{provider}-{action}"), false);
        let co = checkout(s, &viewer, &e.film.id, provider);
        let back = payer(&co);
        assert!(
            back.starts_with(&format!("/pay/{provider}/{route}?")),
            "{what}: sent to {back}"
        );
        assert_eq!(param(&back, "order").as_deref(), Some(co.order_id.as_str()));
        assert_page(&s.get(&back, None), 200, "Payment not completed", &what);
        let order = order_of(s, &viewer, &co.order_id);
        assert_eq!(order["state"], state, "{what}: {order}");
        assert_access(s, &viewer, &e.film, false, &what);
        assert_eq!(e.capture_calls(provider), 0, "{what}: nothing captured");
        // The return URL, visited afterwards, does not revive it.
        let ret = format!("/pay/{provider}/return?order={}", co.order_id);
        let r = s.get(&ret, None);
        assert_eq!(r.status, 402, "{what}: a late return: {}", r.brief());
        assert_eq!(order_of(s, &viewer, &co.order_id)["state"], state, "{what}");
        assert_eq!(e.capture_calls(provider), 0, "{what}: nothing captured");
        e.behave(provider, json!({ "payer_action": "approve" }));
    }
}

/// Naver Pay has no cancel URL: a payer who cancels comes back to the return URL with
/// `resultCode=UserCancel`. The payer gave up before paying, which is `cancelled`
/// (docs/PAYMENTS.md: "payer cancelled → cancelled"; `OrderState::Cancelled`: "the payer
/// gave up"), not `failed` (the provider declined).
#[test]
fn naverpay_user_cancel_cancels_the_order() {
    let e = env();
    let s = &e.server;
    e.naver.behave(json!({ "payer_action": "cancel" }));
    let viewer = s.user("naver-cancel", false);
    let co = checkout(s, &viewer, &e.film.id, "naverpay");
    let back = payer(&co);
    assert_eq!(param(&back, "resultCode").as_deref(), Some("UserCancel"));
    let r = s.get(&back, None);
    assert_eq!(r.status, 402, "{}", r.brief());
    assert_access(s, &viewer, &e.film, false, "naver cancel");
    assert_eq!(u64_of(&e.naver.state(), "apply_calls"), 0);
    let order = order_of(s, &viewer, &co.order_id);
    assert_eq!(order["state"], "cancelled", "Naver Pay UserCancel: {order}");
}

// ---------------------------------------------------------------------------------------
// 4. The provider's answer tampered with
// ---------------------------------------------------------------------------------------

#[test]
fn a_captured_amount_or_currency_that_differs_fails_the_order() {
    let e = env();
    let s = &e.server;
    for (provider, behaviour, reported) in [
        ("paypal", json!({ "amount_override": "0.01" }), "1 USD"),
        ("paypal", json!({ "currency_override": "EUR" }), "499 EUR"),
        ("kakaopay", json!({ "amount_override": 100 }), "100 KRW"),
        ("naverpay", json!({ "amount_override": 100 }), "100 KRW"),
    ] {
        let what = format!("{provider} {behaviour}");
        e.behave(provider, behaviour.clone());
        let viewer = s.user(&format!("tamper-{provider}"), false);
        let co = checkout(s, &viewer, &e.film.id, provider);
        let back = payer(&co);
        assert_page(&s.get(&back, None), 402, "Payment not completed", &what);
        let order = order_of(s, &viewer, &co.order_id);
        assert_eq!(order["state"], "failed", "{what}: {order}");
        let failure = order["failure"].as_str().unwrap_or("");
        assert!(
            failure.contains(reported),
            "{what}: the failure names what the provider reported ({reported}): {order}"
        );
        assert_access(s, &viewer, &e.film, false, &what);
        assert!(
            purchases_of_film(s, &viewer, &e.film.id).is_empty(),
            "{what}"
        );
        // Money may have moved: the provider's payment id is kept, the operator is told.
        let admin_view = admin_order(s, &e.admin, &co.order_id);
        assert!(admin_view["payment_id"].is_string(), "{what}: {admin_view}");
        assert!(
            s.log_tail(400)
                .lines()
                .any(|l| l.contains("ERROR") && l.contains(&co.order_id) && l.contains(reported)),
            "{what}: the mismatch is logged as an error for the operator:\n{}",
            s.log_tail(20)
        );
        // Returning again does not grant it either.
        assert_eq!(s.get(&back, None).status, 402, "{what}: again");
        assert_access(s, &viewer, &e.film, false, &what);
        e.behave(
            provider,
            if provider == "paypal" {
                json!({ "amount_override": null, "currency_override": null })
            } else {
                json!({ "amount_override": null })
            },
        );
    }
}

// ---------------------------------------------------------------------------------------
// 5. Provider timeout, then the return retried
// ---------------------------------------------------------------------------------------

#[test]
fn a_provider_timeout_leaves_the_order_open_and_a_retried_return_captures() {
    let e = env();
    let s = &e.server;
    for provider in ["paypal", "kakaopay", "naverpay"] {
        let viewer = s.user(&format!("timeout-{provider}"), false);
        let co = checkout(s, &viewer, &e.film.id, provider);
        let back = payer(&co);
        // The next API call (the capture) hangs past payments.provider_timeout (2 s).
        e.behave(
            provider,
            json!({ "fail": "timeout", "fail_times": 1, "hold_seconds": 3 }),
        );
        let started = Instant::now();
        let r = s.get(&back, None);
        assert_page(
            &r,
            502,
            "Payment not completed",
            &format!("{provider}: timeout"),
        );
        assert!(
            started.elapsed() >= Duration::from_millis(1800),
            "{provider}: answered in {:?}, before the timeout",
            started.elapsed()
        );
        let order = order_of(s, &viewer, &co.order_id);
        assert_eq!(
            order["state"], "approved",
            "{provider}: the outcome is unknown, the order stays open: {order}"
        );
        assert_access(
            s,
            &viewer,
            &e.film,
            false,
            &format!("{provider}: timed out"),
        );

        // The payer reloads the page: the same return URL.
        assert_page(
            &s.get(&back, None),
            200,
            "Payment complete",
            &format!("{provider}: retried return"),
        );
        let order = order_of(s, &viewer, &co.order_id);
        assert_eq!(order["state"], "captured", "{provider}: {order}");
        assert_access(s, &viewer, &e.film, true, &format!("{provider}: retried"));
        assert_eq!(purchases_of_film(s, &viewer, &e.film.id).len(), 1);
        match provider {
            "paypal" => {
                let st = e.paypal.state();
                let at =
                    &st["orders"][str_of(&admin_order(s, &e.admin, &co.order_id), "provider_ref")];
                assert_eq!(
                    at["purchase_units"][0]["payments"]["captures"]
                        .as_array()
                        .map(Vec::len),
                    Some(1),
                    "one capture at PayPal: {at}"
                );
                assert_eq!(
                    request_id_count(&st, &format!("capture-{}", co.order_id)),
                    2,
                    "both attempts carry the same PayPal-Request-Id"
                );
            }
            "kakaopay" => {
                let st = e.kakao.state();
                let tid =
                    str_of(&admin_order(s, &e.admin, &co.order_id), "provider_ref").to_string();
                assert_eq!(st["tids"][&tid]["approved"]["total"], KRW_PRICE, "{st}");
            }
            _ => {
                let st = e.naver.state();
                let keys = st["idempotency_keys"].as_array().expect("keys");
                assert!(
                    keys.iter()
                        .all(|k| *k == json!(format!("apply-{}", co.order_id))),
                    "{st}"
                );
            }
        }
    }
}

/// The provider takes the money but answers after `payments.provider_timeout`: Kakao Pay
/// and Naver Pay settle it on the spot by looking the payment up; PayPal's order stays open
/// until reconciliation asks PayPal. One charge either way.
#[test]
fn a_capture_answered_too_late_is_settled_without_a_second_charge() {
    let e = env();
    let s = &e.server;
    for provider in ["kakaopay", "naverpay", "paypal"] {
        let viewer = s.user(&format!("late-{provider}"), false);
        let co = checkout(s, &viewer, &e.film.id, provider);
        let back = payer(&co);
        // Recorded at once, answered after 3 s; we give up after 2 s.
        e.behave(provider, json!({ "capture_delay": 3 }));
        let r = s.get(&back, None);
        e.behave(provider, json!({ "capture_delay": 0 }));
        if provider == "paypal" {
            assert_page(&r, 502, "Payment not completed", "paypal: late capture");
            let order = order_of(s, &viewer, &co.order_id);
            assert_eq!(order["state"], "approved", "{order}");
            assert_access(s, &viewer, &e.film, false, "paypal: outcome unknown");
            let changed = s
                .post(
                    "/api/v1/admin/payments/reconcile",
                    Some(&e.admin.access),
                    json!({}),
                )
                .expect(200, "reconcile")
                .json();
            assert!(u64_of(&changed, "changed") >= 1, "{changed}");
        } else {
            assert_page(
                &r,
                200,
                "Payment complete",
                &format!("{provider}: late approval, looked up"),
            );
        }
        let order = admin_order(s, &e.admin, &co.order_id);
        assert_eq!(order["state"], "captured", "{provider}: {order}");
        assert_access(s, &viewer, &e.film, true, &format!("{provider}: settled"));
        // The payer reloads the page: complete, no second charge.
        assert_page(
            &s.get(&back, None),
            200,
            "Payment complete",
            &format!("{provider}: reload"),
        );
        assert_eq!(e.capture_calls(provider), 1, "{provider}: one capture");
        assert_eq!(
            events_in(&admin_order(s, &e.admin, &co.order_id), "captured"),
            1
        );
        assert_eq!(purchases_of_film(s, &viewer, &e.film.id).len(), 1);
        match provider {
            "paypal" => {
                let st = e.paypal.state();
                let at = &st["orders"][str_of(&order, "provider_ref")];
                assert_eq!(pp_capture(at)["id"], order["payment_id"], "{at}");
            }
            "kakaopay" => {
                let st = e.kakao.state();
                assert_eq!(
                    st["tids"][str_of(&order, "provider_ref")]["aid"],
                    order["payment_id"]
                );
            }
            _ => {
                let st = e.naver.state();
                assert_eq!(
                    st["payments"][str_of(&order, "payment_id")]["state"],
                    "APPLIED"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// 6. and 7. Duplicate and simultaneous returns
// ---------------------------------------------------------------------------------------

#[test]
fn a_duplicate_return_captures_and_grants_once() {
    let e = env();
    let s = &e.server;
    for provider in ["paypal", "kakaopay", "naverpay", "dev"] {
        let viewer = s.user(&format!("dup-{provider}"), false);
        let co = checkout(s, &viewer, &e.film.id, provider);
        let back = payer(&co);
        for n in 1..=2 {
            assert_page(
                &s.get(&back, None),
                200,
                "Payment complete",
                &format!("{provider}: return #{n}"),
            );
        }
        let order = admin_order(s, &e.admin, &co.order_id);
        assert_eq!(order["state"], "captured", "{order}");
        assert_eq!(events_in(&order, "captured"), 1, "{provider}: {order}");
        assert_eq!(purchases_of_film(s, &viewer, &e.film.id).len(), 1);
        if provider != "dev" {
            assert_eq!(e.capture_calls(provider), 1, "{provider}: one capture");
        }
        assert_access(s, &viewer, &e.film, true, provider);

        if provider == "paypal" {
            let st = e.paypal.state();
            assert_eq!(
                request_id_count(&st, &format!("capture-{}", co.order_id)),
                1
            );
            // PayPal's webhook for the same capture, after the return: nothing changes.
            let w = e.paypal.webhook(json!({
                "url": e.webhook_url(),
                "event_type": "PAYMENT.CAPTURE.COMPLETED",
                "order_id": str_of(&order, "provider_ref"),
            }));
            assert_eq!(w["status"], 200, "{w}");
            let after = admin_order(s, &e.admin, &co.order_id);
            assert_eq!(
                after["events"], order["events"],
                "the webhook changed nothing"
            );
            assert_eq!(u64_of(&e.paypal.state(), "capture_calls"), 1);
            assert_eq!(purchases_of_film(s, &viewer, &e.film.id).len(), 1);
        }
    }
}

#[test]
fn two_returns_at_once_capture_once() {
    let e = env();
    let s = &e.server;
    for provider in ["paypal", "kakaopay", "naverpay"] {
        let viewer = s.user(&format!("race-{provider}"), false);
        let co = checkout(s, &viewer, &e.film.id, provider);
        let back = payer(&co);
        // The provider sits on its answer for a second, so the two overlap.
        e.behave(provider, json!({ "capture_delay": 1 }));
        let barrier = Barrier::new(2);
        let (a, b) = std::thread::scope(|sc| {
            let go = || {
                barrier.wait();
                s.get(&back, None)
            };
            let a = sc.spawn(go);
            let b = sc.spawn(go);
            (a.join().expect("thread a"), b.join().expect("thread b"))
        });
        for (n, r) in [(1, &a), (2, &b)] {
            assert_page(
                r,
                200,
                "Payment complete",
                &format!("{provider}: simultaneous return #{n}"),
            );
        }
        e.behave(provider, json!({ "capture_delay": 0 }));
        assert_eq!(
            e.capture_calls(provider),
            1,
            "{provider}: one capture taken"
        );
        if provider == "paypal" {
            assert_eq!(
                request_id_count(&e.paypal.state(), &format!("capture-{}", co.order_id)),
                1
            );
        }
        let order = admin_order(s, &e.admin, &co.order_id);
        assert_eq!(order["state"], "captured", "{order}");
        assert_eq!(events_in(&order, "captured"), 1, "{provider}: {order}");
        assert_eq!(purchases_of_film(s, &viewer, &e.film.id).len(), 1);
        assert_access(s, &viewer, &e.film, true, provider);
    }
}

// ---------------------------------------------------------------------------------------
// 8. PayPal webhooks
// ---------------------------------------------------------------------------------------

fn forged_event(order_id: &str, event_id: &str) -> Value {
    json!({
        "id": event_id,
        "event_version": "1.0",
        "create_time": "2030-01-01T00:00:00Z",
        "resource_type": "capture",
        "resource_version": "2.0",
        "event_type": "PAYMENT.CAPTURE.COMPLETED",
        "summary": "Payment completed for 4.99 USD",
        "resource": {
            "id": "CAP-FORGED0000001",
            "status": "COMPLETED",
            "amount": { "currency_code": "USD", "value": "4.99" },
            "final_capture": true,
            "custom_id": order_id,
            "supplementary_data": { "related_ids": { "order_id": "FORGED00000000000" } },
        },
    })
}

#[test]
fn paypal_webhooks_are_verified_deduplicated_and_applied() {
    let e = env();
    let s = &e.server;
    let url = e.webhook_url();
    let viewer = s.user("webhook", false);
    let co = checkout(s, &viewer, &e.film.id, "paypal");
    let pp_order = str_of(&admin_order(s, &e.admin, &co.order_id), "provider_ref").to_string();

    // A forged COMPLETED for the unpaid order: refused, nothing changes.
    let forged = forged_event(&co.order_id, "WH-FORGED-0001");
    let r = s.exec(
        s.req(Method::POST, "/api/v1/payments/paypal/webhook")
            .header("PAYPAL-AUTH-ALGO", "SHA256withRSA")
            .header(
                "PAYPAL-CERT-URL",
                "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77",
            )
            .header(
                "PAYPAL-TRANSMISSION-ID",
                "b2f0a7c0-0000-4000-8000-000000000001",
            )
            .header("PAYPAL-TRANSMISSION-SIG", "Zm9yZ2VkIHNpZ25hdHVyZQ==")
            .header("PAYPAL-TRANSMISSION-TIME", "2030-01-01T00:00:00Z")
            .json(&forged),
    );
    r.expect_error(401, "invalid_signature", "a forged webhook");
    assert!(
        u64_of(&e.paypal.state(), "verify_calls") >= 1,
        "the forged delivery was checked with PayPal"
    );
    let r = s.exec(
        s.req(Method::POST, "/api/v1/payments/paypal/webhook")
            .json(&forged_event(&co.order_id, "WH-FORGED-0002")),
    );
    r.expect_error(
        401,
        "invalid_signature",
        "a webhook without PAYPAL-* headers",
    );
    // A genuine delivery altered on the way (the amount): refused too.
    let tampered = e.paypal.webhook(json!({
        "url": url, "event_type": "PAYMENT.CAPTURE.COMPLETED", "order_id": pp_order,
        "tamper": true, "apply": false,
    }));
    assert_eq!(tampered["status"], 401, "a tampered delivery: {tampered}");
    assert!(
        tampered["body"]
            .as_str()
            .is_some_and(|b| b.contains("invalid_signature")),
        "{tampered}"
    );
    let order = order_of(s, &viewer, &co.order_id);
    assert_eq!(order["state"], "created", "after forged webhooks: {order}");
    assert_access(s, &viewer, &e.film, false, "after forged webhooks");
    assert!(purchases_of_film(s, &viewer, &e.film.id).is_empty());

    // The payer approves at PayPal but never comes back; PayPal's genuine COMPLETED
    // webhook captures the order.
    let back = payer(&co);
    let w = e.paypal.webhook(json!({
        "url": url, "event_type": "PAYMENT.CAPTURE.COMPLETED", "order_id": pp_order,
    }));
    assert_eq!(w["status"], 200, "genuine COMPLETED: {w}");
    let body: Value = serde_json::from_str(str_of(&w, "body")).expect("webhook answer JSON");
    assert_eq!(body, json!({ "status": "captured" }), "{w}");
    let order = admin_order(s, &e.admin, &co.order_id);
    assert_eq!(order["state"], "captured", "{order}");
    assert_eq!(order["payment_id"], w["event"]["resource"]["id"], "{order}");
    assert_access(s, &viewer, &e.film, true, "after the COMPLETED webhook");
    assert_eq!(purchases_of_film(s, &viewer, &e.film.id).len(), 1);

    // The same event again (a redelivery): a duplicate, nothing changes.
    let again = e.paypal.webhook(json!({
        "url": url, "event_type": "PAYMENT.CAPTURE.COMPLETED", "order_id": pp_order,
        "event_id": w["event_id"],
    }));
    assert_eq!(again["status"], 200, "{again}");
    assert_eq!(
        serde_json::from_str::<Value>(str_of(&again, "body")).expect("JSON"),
        json!({ "status": "duplicate" }),
        "{again}"
    );
    assert_eq!(
        admin_order(s, &e.admin, &co.order_id),
        order,
        "the replay changed nothing"
    );

    // The payer's late return: complete, nothing captured by us.
    assert_page(
        &s.get(&back, None),
        200,
        "Payment complete",
        "the late return",
    );
    assert_eq!(
        admin_order(s, &e.admin, &co.order_id)["events"],
        order["events"]
    );
    assert_eq!(u64_of(&e.paypal.state(), "capture_calls"), 0);
    assert_eq!(purchases_of_film(s, &viewer, &e.film.id).len(), 1);

    // Refunded from PayPal's dashboard: the REFUNDED webhook revokes the purchase.
    let refund = e.paypal.webhook(json!({
        "url": url, "event_type": "PAYMENT.CAPTURE.REFUNDED", "order_id": pp_order,
    }));
    assert_eq!(refund["status"], 200, "{refund}");
    assert_eq!(
        serde_json::from_str::<Value>(str_of(&refund, "body")).expect("JSON"),
        json!({ "status": "refunded" }),
        "{refund}"
    );
    let order = order_of(s, &viewer, &co.order_id);
    assert_eq!(order["state"], "refunded", "{order}");
    assert_access(s, &viewer, &e.film, false, "after the REFUNDED webhook");
    assert!(purchases_of_film(s, &viewer, &e.film.id).is_empty());
    let replay = e.paypal.webhook(json!({
        "url": url, "event_type": "PAYMENT.CAPTURE.REFUNDED", "order_id": pp_order,
        "event_id": refund["event_id"],
    }));
    assert_eq!(
        serde_json::from_str::<Value>(str_of(&replay, "body")).expect("JSON"),
        json!({ "status": "duplicate" }),
        "{replay}"
    );
    assert_eq!(order_of(s, &viewer, &co.order_id)["state"], "refunded");
    assert_eq!(
        u64_of(&e.paypal.state(), "refund_calls"),
        0,
        "refunded by PayPal, not us"
    );

    // DENIED for an open order fails it.
    let co2 = checkout(s, &viewer, &e.film.id, "paypal");
    let pp2 = str_of(&admin_order(s, &e.admin, &co2.order_id), "provider_ref").to_string();
    payer(&co2);
    let denied = e.paypal.webhook(json!({
        "url": url, "event_type": "PAYMENT.CAPTURE.DENIED", "order_id": pp2,
    }));
    assert_eq!(denied["status"], 200, "{denied}");
    assert_eq!(order_of(s, &viewer, &co2.order_id)["state"], "failed");
    assert_access(s, &viewer, &e.film, false, "after DENIED");
}

// ---------------------------------------------------------------------------------------
// 9. A crash between the provider's capture and our grant
// ---------------------------------------------------------------------------------------

#[test]
fn a_crash_between_capture_and_grant_is_reconciled_at_start() {
    // Its own server and PayPal fake: this test kills and restarts the server.
    let paypal = PaypalPeer::start(PP_ID, PP_SECRET, PP_WEBHOOK);
    let vars = provider_env(Some(&paypal), None, None, false);
    let mut s = Server::start(&borrowed(&vars));
    let admin = s.user("crash-admin", true);
    let film = priced_film(&s, &admin, &src_other(), "Crash pay film");
    let viewer = s.user("crash-buyer", false);
    assert_access(&s, &viewer, &film, false, "before");

    let co = checkout(&s, &viewer, &film.id, "paypal");
    let pp_order = str_of(&admin_order(&s, &admin, &co.order_id), "provider_ref").to_string();
    // The payer spends a moment on PayPal's page; the store's background flush (every
    // 500 ms) writes the new order out meanwhile. (The `approved` mark made by the return
    // just before the crash may be lost; reconciliation settles `created` orders too.)
    std::thread::sleep(Duration::from_millis(1200));
    let back = payer(&co);

    // PayPal records the capture, then holds its answer; we die meanwhile.
    paypal.behave(json!({ "capture_delay": 5 }));
    let return_url = s.url(&back);
    let returning = std::thread::spawn(move || {
        let client = Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .expect("client");
        client.get(&return_url).send().map(|r| r.status().as_u16())
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let st = paypal.state();
        if st["orders"][&pp_order]["status"] == "COMPLETED" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "PayPal never saw the capture: {st}\nlog:\n{}",
            s.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    s.kill9();
    let answered = returning.join().expect("return thread");
    assert!(
        answered.is_err(),
        "the return must die with the server, got {answered:?}"
    );
    paypal.behave(json!({ "capture_delay": 0 }));

    s.restart();
    // Reconciliation at start asks PayPal and grants.
    let deadline = Instant::now() + Duration::from_secs(15);
    let order = loop {
        let order = order_of(&s, &viewer, &co.order_id);
        if order["state"] == "captured" {
            break order;
        }
        assert!(
            Instant::now() < deadline
                && order["state"] != "failed"
                && order["state"] != "cancelled",
            "not reconciled after the restart: {order}\nlog:\n{}",
            s.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        (u64_of(&order, "amount"), str_of(&order, "currency")),
        (USD_PRICE, "USD")
    );
    let st = paypal.state();
    assert_eq!(
        u64_of(&st, "capture_calls"),
        1,
        "one capture at PayPal: {st}"
    );
    let at = &st["orders"][&pp_order];
    assert_eq!(
        pp_capture(at)["id"],
        admin_order(&s, &admin, &co.order_id)["payment_id"],
        "the reconciled order carries PayPal's capture id"
    );
    assert_access(
        &s,
        &viewer,
        &film,
        true,
        "after the crash and reconciliation",
    );
    assert_eq!(purchases_of_film(&s, &viewer, &film.id).len(), 1);

    // Asking again changes nothing; the payer's return, retried, is complete.
    let r = s
        .post(
            "/api/v1/admin/payments/reconcile",
            Some(&admin.access),
            json!({}),
        )
        .expect(200, "reconcile")
        .json();
    assert_eq!(r, json!({ "changed": 0 }));
    assert_page(
        &s.get(&back, None),
        200,
        "Payment complete",
        "return after the crash",
    );
    assert_eq!(u64_of(&paypal.state(), "capture_calls"), 1);
    assert_eq!(
        events_in(&admin_order(&s, &admin, &co.order_id), "captured"),
        1
    );
}

/// A refund the admin was told succeeded must survive a crash right after it: PayPal has
/// given the money back, and reconciliation only looks at open orders, so a refund lost
/// from our store would leave the order `captured` and the film unlocked for good.
#[test]
fn an_acknowledged_refund_survives_a_crash_right_after_it() {
    let paypal = PaypalPeer::start(PP_ID, PP_SECRET, PP_WEBHOOK);
    let vars = provider_env(Some(&paypal), None, None, false);
    let mut s = Server::start(&borrowed(&vars));
    let admin = s.user("refund-crash-admin", true);
    let film = priced_film(&s, &admin, &src_other(), "Refund crash film");
    let viewer = s.user("refund-crash-buyer", false);
    let co = checkout(&s, &viewer, &film.id, "paypal");
    let back = payer(&co);
    assert_page(&s.get(&back, None), 200, "Payment complete", "return");
    let pp_order = str_of(&admin_order(&s, &admin, &co.order_id), "provider_ref").to_string();
    // Well past the store's 500 ms background flush: the capture is on disk.
    std::thread::sleep(Duration::from_millis(1200));

    let r = s
        .post(
            &format!("/api/v1/admin/orders/{}/refund", co.order_id),
            Some(&admin.access),
            json!({}),
        )
        .expect(200, "refund")
        .json();
    assert_eq!(r["state"], "refunded", "{r}");
    s.kill9();
    let st = paypal.state();
    assert_eq!(pp_capture(&st["orders"][&pp_order])["status"], "REFUNDED");

    s.restart();
    let order = order_of(&s, &viewer, &co.order_id);
    assert_eq!(
        order["state"], "refunded",
        "PayPal refunded it and the admin was told so; after a crash: {order}"
    );
    assert_access(&s, &viewer, &film, false, "refunded, then a crash");
}

// ---------------------------------------------------------------------------------------
// 10. Refunds by the admin
// ---------------------------------------------------------------------------------------

#[test]
fn an_admin_refund_revokes_the_purchase() {
    let e = env();
    let s = &e.server;
    let refund = |id: &str, token: Option<&str>| {
        s.post(
            &format!("/api/v1/admin/orders/{id}/refund"),
            token,
            json!({}),
        )
    };
    for provider in ["paypal", "kakaopay", "naverpay"] {
        let viewer = s.user(&format!("refund-{provider}"), false);
        let co = e.buy(&viewer, provider);
        let before = admin_order(s, &e.admin, &co.order_id);

        // Not by the buyer, not without a token.
        refund(&co.order_id, Some(&viewer.access)).expect_error(403, "admin_only", "viewer");
        refund(&co.order_id, None).expect_error(401, "unauthenticated", "no token");
        assert_access(
            s,
            &viewer,
            &e.film,
            true,
            &format!("{provider}: refused refunds"),
        );

        let r = refund(&co.order_id, Some(&e.admin.access))
            .expect(200, "refund")
            .json();
        assert_eq!(r["state"], "refunded", "{provider}: {r}");
        assert_eq!(order_of(s, &viewer, &co.order_id)["state"], "refunded");
        assert_access(s, &viewer, &e.film, false, &format!("{provider}: refunded"));
        assert!(purchases_of_film(s, &viewer, &e.film.id).is_empty());
        let calls = |provider: &str| match provider {
            "paypal" => u64_of(&e.paypal.state(), "refund_calls"),
            "kakaopay" => u64_of(&e.kakao.state(), "cancel_calls"),
            _ => u64_of(&e.naver.state(), "cancel_calls"),
        };
        assert_eq!(calls(provider), 1, "{provider}: one refund at the provider");
        match provider {
            "paypal" => {
                let st = e.paypal.state();
                let cap = pp_capture(&st["orders"][str_of(&before, "provider_ref")]).clone();
                assert_eq!(cap["status"], "REFUNDED", "{cap}");
                assert_eq!(request_id_count(&st, &format!("refund-{}", co.order_id)), 1);
            }
            "kakaopay" => {
                let st = e.kakao.state();
                let rec = &st["tids"][str_of(&before, "provider_ref")];
                assert_eq!(rec["status"], "CANCEL_PAYMENT", "{rec}");
                assert_eq!(rec["canceled"]["total"], KRW_PRICE, "{rec}");
            }
            _ => {
                let st = e.naver.state();
                let paid = &st["payments"][str_of(&before, "payment_id")];
                assert_eq!(paid["rest"]["total"], 0, "{paid}");
            }
        }

        // Again: harmless, nothing more at the provider.
        let r = refund(&co.order_id, Some(&e.admin.access))
            .expect(200, "refund again")
            .json();
        assert_eq!(r["state"], "refunded", "{r}");
        assert_eq!(calls(provider), 1, "{provider}: refunded once");
        assert_eq!(
            events_in(&admin_order(s, &e.admin, &co.order_id), "refunded"),
            1
        );

        // The viewer can buy it again.
        if provider == "kakaopay" {
            e.buy(&viewer, "kakaopay");
            assert_access(s, &viewer, &e.film, true, "bought again after a refund");
        }
    }

    // Not a captured order: 409 order_state; unknown: 404.
    let viewer = s.user("refund-open", false);
    let refunds_before = u64_of(&e.paypal.state(), "refund_calls");
    let open = checkout(s, &viewer, &e.film.id, "paypal");
    refund(&open.order_id, Some(&e.admin.access)).expect_error(409, "order_state", "created");
    e.paypal.behave(json!({ "decline_capture": true }));
    let failed = checkout(s, &viewer, &e.film.id, "paypal");
    s.get(&payer(&failed), None);
    e.paypal.behave(json!({ "decline_capture": false }));
    assert_eq!(order_of(s, &viewer, &failed.order_id)["state"], "failed");
    refund(&failed.order_id, Some(&e.admin.access)).expect_error(409, "order_state", "failed");
    refund(
        "0190aaaa-bbbb-7ccc-8ddd-eeeeffff0000",
        Some(&e.admin.access),
    )
    .expect_error(404, "not_found", "an unknown order");
    assert_eq!(
        u64_of(&e.paypal.state(), "refund_calls"),
        refunds_before,
        "no refund reached PayPal for orders that were not captured"
    );

    // An admin's complimentary grant is separate: it survives the refund.
    let viewer = s.user("refund-granted", false);
    let co = e.buy(&viewer, "dev");
    s.grant(&e.admin, &e.film.id, &viewer);
    refund(&co.order_id, Some(&e.admin.access)).expect(200, "refund with a grant");
    assert!(purchases_of_film(s, &viewer, &e.film.id).is_empty());
    assert_access(s, &viewer, &e.film, true, "granted, purchase refunded");
}

/// Naver Pay may accept a cancel without finishing it (`CancelNotComplete`); its history
/// then shows the cancel (a row with `admissionTypeCode` 03, full cancel) and the refund
/// must go through (docs/PAYMENTS.md: "list/history for lookups").
#[test]
fn a_naverpay_cancel_not_complete_is_confirmed_by_history() {
    let e = env();
    let s = &e.server;
    let viewer = s.user("refund-naver-pending", false);
    let co = e.buy(&viewer, "naverpay");
    e.naver.behave(json!({ "cancel_pending": true }));
    let r = s.post(
        &format!("/api/v1/admin/orders/{}/refund", co.order_id),
        Some(&e.admin.access),
        json!({}),
    );
    let payment_id = str_of(&admin_order(s, &e.admin, &co.order_id), "payment_id").to_string();
    let st = e.naver.state();
    assert_eq!(
        st["payments"][&payment_id]["rest"]["total"], 0,
        "the fake took the cancel: {st}"
    );
    assert_eq!(
        r.status,
        200,
        "refund with CancelNotComplete: {}",
        r.brief()
    );
    assert_eq!(order_of(s, &viewer, &co.order_id)["state"], "refunded");
    assert_access(
        s,
        &viewer,
        &e.film,
        false,
        "naver refund confirmed by history",
    );
}

// ---------------------------------------------------------------------------------------
// 11. Orders are private
// ---------------------------------------------------------------------------------------

#[test]
fn another_users_order_is_not_found() {
    let e = env();
    let s = &e.server;
    let owner = s.user("order-owner", false);
    let stranger = s.user("order-stranger", false);
    let co = e.buy(&owner, "dev");
    let path = format!("/api/v1/orders/{}", co.order_id);
    s.get(&path, Some(&owner.access)).expect(200, "the owner");
    s.get(&path, Some(&stranger.access))
        .expect_error(404, "not_found", "another viewer's order");
    s.get(&path, None)
        .expect_error(401, "unauthenticated", "an order without a token");
    s.get("/api/v1/orders/not-an-id", Some(&owner.access))
        .expect_error(404, "not_found", "a malformed id");
    let theirs = purchases(s, &stranger);
    assert_eq!(theirs, json!({ "purchases": [], "orders": [] }), "{theirs}");
    s.get("/api/v1/me/purchases", None).expect_error(
        401,
        "unauthenticated",
        "purchases without a token",
    );
    assert_access(s, &stranger, &e.film, false, "the stranger");
}

/// Issue 6: a tip with the support button is an order of kind tip through a provider; it is
/// captured like a purchase but never unlocks anything, and its amount must be within the
/// configured bounds (USD 1.00–100.00 by default).
#[test]
fn a_tip_is_paid_through_a_provider_and_unlocks_nothing() {
    let e = env();
    let (s, f) = (&e.server, &e.film);
    let fan = s.user("tipper", false);
    s.grant(&e.admin, &f.id, &fan);
    // Watch it all (keys are enough for coverage), so support opens.
    let pb = s.playback(&fan, &f.id);
    for i in 0..f.segments {
        s.get(&pb.path(&format!("keys/{i}.key")), None)
            .expect(200, "key");
    }
    let support = |body: Value| {
        s.post(
            &format!("/api/v1/films/{}/support", f.id),
            Some(&fan.access),
            body,
        )
    };
    support(json!({ "tip": { "provider": "dev", "amount": 50, "currency": "USD" } })).expect_error(
        422,
        "invalid_input",
        "below the smallest tip",
    );
    support(json!({ "tip": { "provider": "dev", "amount": 10_001, "currency": "USD" } }))
        .expect_error(422, "invalid_input", "above the largest tip");
    support(json!({ "tip": { "provider": "kakaopay", "amount": 300, "currency": "USD" } }))
        .expect_error(422, "currency_unsupported", "Kakao Pay takes no USD");
    let answer = support(json!({
        "message": "loved it",
        "tip": { "provider": "dev", "amount": 300, "currency": "USD" }
    }))
    .expect(
        201,
        "the first support, with a tip (the refused calls recorded nothing)",
    )
    .json();
    let tip = &answer["tip"];
    let order_id = str_of(tip, "order_id").to_string();
    assert_eq!(tip["amount"], 300, "{answer}");
    let back = local(str_of(tip, "redirect_url"));
    assert_page(&s.get(&back, None), 200, "complete", "the tip's return");
    let order = order_of(s, &fan, &order_id);
    assert_eq!(order["state"], "captured", "{order}");
    assert_eq!(order["kind"], "tip", "{order}");
    // Nothing was bought: no purchase, and without the grant the film is a preview again.
    assert!(
        purchases_of_film(s, &fan, &f.id).is_empty(),
        "{}",
        purchases(s, &fan)
    );
    s.call(
        reqwest::Method::DELETE,
        &format!("/api/v1/admin/films/{}/grants/{}", f.id, fan.id),
        Some(&e.admin.access),
        None,
    )
    .expect(204, "revoke the grant");
    assert_access(s, &fan, f, false, "a tipper without a grant");
    let listed = s
        .get(
            &format!("/api/v1/admin/films/{}/supporters", f.id),
            Some(&e.admin.access),
        )
        .expect(200, "supporters")
        .json();
    assert!(
        listed["tips"]
            .as_array()
            .expect("tips")
            .iter()
            .any(|t| t["order_id"] == order_id.as_str() && t["state"] == "captured"),
        "{listed}"
    );
}

/// A tip refused by the open-order cap (`payments.max_open_orders`) records no support:
/// the cap is checked before the support is, like the provider and the amount.
#[test]
fn a_tip_refused_by_the_open_order_cap_records_no_support() {
    let e = env();
    let (s, f) = (&e.server, &e.film);
    set_prices(s, &e.admin, &e.other.id, both_prices());
    let fan = s.user("capped-tipper", false);
    for (film, provider) in [
        (&f.id, "paypal"),
        (&f.id, "kakaopay"),
        (&f.id, "naverpay"),
        (&f.id, "dev"),
        (&e.other.id, "paypal"),
    ] {
        checkout(s, &fan, film, provider);
    }
    s.grant(&e.admin, &f.id, &fan);
    let pb = s.playback(&fan, &f.id);
    for i in 0..f.segments {
        s.get(&pb.path(&format!("keys/{i}.key")), None)
            .expect(200, "key");
    }
    let support = |body: Value| {
        s.post(
            &format!("/api/v1/films/{}/support", f.id),
            Some(&fan.access),
            body,
        )
    };
    support(json!({
        "message": "capped",
        "tip": { "provider": "dev", "amount": 300, "currency": "USD" }
    }))
    .expect_error(429, "too_many_open_orders", "a tip past the cap");
    let listed = s
        .get(
            &format!("/api/v1/admin/films/{}/supporters", f.id),
            Some(&e.admin.access),
        )
        .expect(200, "supporters")
        .json();
    assert!(
        !listed["supporters"]
            .as_array()
            .expect("supporters")
            .iter()
            .any(|x| x["user_id"] == fan.id.as_str()),
        "a refused tip recorded a support: {listed}"
    );
    support(json!({ "message": "without a tip" })).expect(201, "the first support");
}

/// Anyone with a return link can load it: reloads of an approved order (its capture
/// refused for now each time) record the return once, not once per load.
#[test]
fn reloading_the_return_of_an_approved_order_records_nothing_new() {
    let e = env();
    let s = &e.server;
    let viewer = s.user("reload-return", false);
    let co = checkout(s, &viewer, &e.film.id, "paypal");
    let back = payer(&co);
    e.paypal
        .behave(json!({ "fail": "429", "fail_on": ["capture_calls"], "fail_times": 3 }));
    for i in 0..3 {
        assert_page(&s.get(&back, None), 502, "try again", &format!("load {i}"));
    }
    let order = admin_order(s, &e.admin, &co.order_id);
    assert_eq!(order["state"], "approved", "{order}");
    assert_eq!(events_in(&order, "approved"), 1, "{order}");
    assert_page(
        &s.get(&back, None),
        200,
        "Payment complete",
        "the last reload",
    );
    let order = admin_order(s, &e.admin, &co.order_id);
    assert_eq!(events_in(&order, "approved"), 1, "{order}");
}

/// The payer's pages (`/pay/{provider}/return|cancel|fail`) need no session and a return
/// may call the provider: they have a per-address budget (`limits.pay_per_minute`), past
/// which they answer 429 with Retry-After before any order is read.
#[test]
fn the_payers_pages_have_a_budget_per_address() {
    let s = Server::start(&[("CINEGATE_LIMITS__PAY_PER_MINUTE", "3")]);
    // Budgets are per clock minute: all of this in one window.
    let left = 60 - crate::harness::clock::now().rem_euclid(60);
    if left < 20 {
        std::thread::sleep(Duration::from_secs(left as u64 + 1));
    }
    let order = "0190aaaa-bbbb-7ccc-8ddd-eeeeffff0002";
    let pages = [
        format!("/pay/dev/return?order={order}"),
        format!("/pay/dev/cancel?order={order}"),
        format!("/pay/dev/fail?order={order}"),
    ];
    for path in &pages {
        let r = s.get(path, None);
        assert_ne!(r.status, 429, "{path}: {}", r.brief());
    }
    let r = s.get(&pages[0], None);
    assert_eq!(r.status, 429, "past the budget: {}", r.brief());
    assert!(r.text().contains("Too many requests"), "{}", r.brief());
    let retry: i64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a Retry-After: {}", r.brief()));
    assert!((1..=60).contains(&retry), "{retry}");
}

// ---------------------------------------------------------------------------------------
// 12. Order lifecycle and provider errors (issue 12, items 3 and 8)
// ---------------------------------------------------------------------------------------

/// `payments.max_open_orders`' default.
const MAX_OPEN_ORDERS: usize = 5;

/// What a viewer must never read when a provider fails: configuration keys, URLs, the
/// provider's own words (its error names and messages, its HTTP status).
const PROVIDER_DETAILS: &[&str] = &[
    "payments.",
    "client_id",
    "client_secret",
    "secret_key",
    "http",
    "127.0.0.1",
    "HTTP",
    "invalid_client",
    "Client Authentication",
    "invalid secret key",
    "Unauthorized",
    "X-Naver",
    "RATE_LIMIT",
    "INTERNAL_SERVER_ERROR",
    "InternalServerError",
    "-401",
    "-500",
    "PayPal",
    "Kakao",
    "Naver",
];

fn assert_no_provider_details(text: &str, what: &str) {
    for detail in PROVIDER_DETAILS {
        assert!(
            !text.contains(detail),
            "{what}: the viewer reads {detail:?} in {text}"
        );
    }
}

/// A checkout refused with 502 `provider_unavailable` and a message that says to try
/// again and names nothing of the provider; the order it left behind (failed: the payer
/// never got a link) says no more. Returns that order's id.
fn assert_generic_provider_failure(
    s: &Server,
    viewer: &User,
    film: &str,
    provider: &str,
) -> String {
    let what = format!("{provider} checkout");
    let before: Vec<Value> = purchases(s, viewer)["orders"]
        .as_array()
        .expect("orders")
        .clone();
    let r = s.post(
        &format!("/api/v1/films/{film}/checkout"),
        Some(&viewer.access),
        json!({ "provider": provider }),
    );
    r.expect_error(502, "provider_unavailable", &what);
    let message = r.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(message.contains("try again"), "{what}: {message}");
    assert_no_provider_details(&r.text(), &what);
    let after = purchases(s, viewer)["orders"]
        .as_array()
        .expect("orders")
        .clone();
    let order = after
        .iter()
        .find(|o| !before.contains(o))
        .unwrap_or_else(|| panic!("{what}: no order left behind: {after:?}"))
        .clone();
    assert_eq!(order["state"], "failed", "{what}: {order}");
    assert_no_provider_details(
        order["failure"].as_str().unwrap_or_default(),
        &format!("{what}: the order's failure"),
    );
    str_of(&order, "id").to_string()
}

/// The notes of an order's events (admin view), one string.
fn event_notes(order: &Value) -> String {
    order["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["note"].as_str().unwrap_or_default())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Item 8: a provider that fails (5xx, PayPal's 429) is a generic `provider_unavailable`
/// to the viewer; what it answered is for the admin and the log.
#[test]
fn a_failing_provider_is_reported_to_the_viewer_without_its_details() {
    let e = env();
    let s = &e.server;
    for (provider, behaviour, detail) in [
        (
            "paypal",
            json!({ "fail": "500", "fail_on": ["create_calls"] }),
            "HTTP 500",
        ),
        (
            "paypal",
            json!({ "fail": "429", "fail_on": ["create_calls"] }),
            "RATE_LIMIT_REACHED",
        ),
        (
            "kakaopay",
            json!({ "fail": "500", "fail_on": ["ready_calls"] }),
            "HTTP 500",
        ),
        (
            "naverpay",
            json!({ "fail": "500", "fail_on": ["reserve_calls"] }),
            "HTTP 500",
        ),
    ] {
        e.behave(provider, behaviour.clone());
        let viewer = s.user(&format!("failing-{provider}"), false);
        let id = assert_generic_provider_failure(s, &viewer, &e.film.id, provider);
        e.behave(provider, json!({ "fail": "none", "fail_on": null }));
        let notes = event_notes(&admin_order(s, &e.admin, &id));
        assert!(
            notes.contains(detail),
            "{provider} {behaviour}: the admin sees what the provider answered ({detail}): {notes}"
        );
    }
}

/// Item 8: credentials the provider refuses are a configuration error; the viewer reads a
/// generic `provider_unavailable`, never the keys to fix (the log and the admin do).
#[test]
fn a_misconfigured_provider_is_reported_to_the_viewer_without_its_details() {
    let paypal = PaypalPeer::start(PP_ID, PP_SECRET, PP_WEBHOOK);
    let kakao = KakaoPeer::start(KAKAO_KEY, KAKAO_CID);
    let naver = NaverPeer::start(NAVER_ID, NAVER_SECRET, NAVER_CHAIN, NAVER_PARTNER);
    let mut vars = provider_env(Some(&paypal), Some(&kakao), Some(&naver), false);
    for (key, value) in &mut vars {
        if matches!(
            key.as_str(),
            "CINEGATE_PAYMENTS__PAYPAL__CLIENT_SECRET"
                | "CINEGATE_PAYMENTS__KAKAOPAY__SECRET_KEY"
                | "CINEGATE_PAYMENTS__NAVERPAY__CLIENT_SECRET"
        ) {
            *value = "not-the-secret".into();
        }
    }
    let s = Server::start(&borrowed(&vars));
    let admin = s.user("misconfigured-admin", true);
    let film = priced_film(&s, &admin, &src_other(), "Misconfigured pay film");
    let viewer = s.user("misconfigured-viewer", false);
    for provider in ["paypal", "kakaopay", "naverpay"] {
        let id = assert_generic_provider_failure(&s, &viewer, &film.id, provider);
        let notes = event_notes(&admin_order(&s, &admin, &id));
        assert!(
            notes.contains("401"),
            "{provider}: the admin sees the provider's refusal: {notes}"
        );
    }
    let log = s.log_tail(400);
    assert!(
        log.contains("payments.paypal.client_id"),
        "the operator's log names the key to fix:\n{log}"
    );
}

/// Item 3: the provider took the money but its answer came too late (and Kakao Pay's and
/// Naver Pay's on-the-spot lookup failed too), so the order is `approved` with its capture
/// in doubt. The cancel and fail links and a return's query need no session: none of them
/// may end that order, or nothing would ever grant what was paid (Kakao Pay and Naver Pay
/// send no webhooks). Reconciliation settles it with the provider.
#[test]
fn a_payment_in_doubt_is_not_abandoned_by_a_link_and_is_reconciled() {
    let e = env();
    let s = &e.server;
    for provider in ["paypal", "kakaopay", "naverpay"] {
        let viewer = s.user(&format!("doubt-{provider}"), false);
        let co = checkout(s, &viewer, &e.film.id, provider);
        let id = co.order_id.clone();
        let back = payer(&co);
        // Recorded at once, answered after 3 s; we give up after 2 s.
        let behaviour = match provider {
            "kakaopay" => json!({
                "capture_delay": 3, "fail": "500", "fail_on": ["order_calls"], "fail_times": 1
            }),
            "naverpay" => json!({
                "capture_delay": 3, "fail": "500", "fail_on": ["history_calls"], "fail_times": 1
            }),
            _ => json!({ "capture_delay": 3 }),
        };
        e.behave(provider, behaviour);
        let r = s.get(&back, None);
        e.behave(provider, json!({ "capture_delay": 0 }));
        assert_page(
            &r,
            502,
            "try again",
            &format!("{provider}: capture in doubt"),
        );
        let order = order_of(s, &viewer, &id);
        assert_eq!(order["state"], "approved", "{provider}: {order}");
        let admin_view = admin_order(s, &e.admin, &id);
        let paid = match provider {
            "paypal" => {
                e.paypal.state()["orders"][str_of(&admin_view, "provider_ref")]["status"]
                    == "COMPLETED"
            }
            "kakaopay" => {
                e.kakao.state()["tids"][str_of(&admin_view, "provider_ref")]["status"]
                    == "SUCCESS_PAYMENT"
            }
            _ => {
                e.naver.state()["payments"][str_of(&admin_view, "payment_id")]["state"] == "APPLIED"
            }
        };
        assert!(
            paid,
            "{provider}: the provider took the money: {admin_view}"
        );

        let mut links = vec![
            format!("/pay/{provider}/cancel?order={id}"),
            format!("/pay/{provider}/fail?order={id}"),
        ];
        links.push(match provider {
            "paypal" => format!("/pay/paypal/return?order={id}&token=NOT-THIS-ORDER&PayerID=X"),
            "kakaopay" => format!("/pay/kakaopay/return?order={id}"),
            _ => format!("/pay/naverpay/return?order={id}&resultCode=UserCancel"),
        });
        for link in &links {
            let r = s.get(link, None);
            assert!(
                matches!(r.status, 202 | 409) && r.text().contains("being confirmed"),
                "{provider}: {link} on a payment in doubt: {}",
                r.brief()
            );
            let order = order_of(s, &viewer, &id);
            assert_eq!(
                order["state"], "approved",
                "{provider}: {link} must not end a payment in doubt: {order}"
            );
        }
        assert_access(s, &viewer, &e.film, false, &format!("{provider}: in doubt"));

        let changed = s
            .post(
                "/api/v1/admin/payments/reconcile",
                Some(&e.admin.access),
                json!({}),
            )
            .expect(200, "reconcile")
            .json();
        assert!(u64_of(&changed, "changed") >= 1, "{provider}: {changed}");
        let order = order_of(s, &viewer, &id);
        assert_eq!(
            order["state"], "captured",
            "{provider}: reconciled: {order}"
        );
        assert_access(
            s,
            &viewer,
            &e.film,
            true,
            &format!("{provider}: reconciled"),
        );
        assert_eq!(purchases_of_film(s, &viewer, &e.film.id).len(), 1);
        assert_eq!(e.capture_calls(provider), 1, "{provider}: one capture");
    }
}

/// Item 3: PayPal answering the capture with 429 RATE_LIMIT_REACHED has taken nothing and
/// refused nothing: the order stays approved, the payer reads "try again" (not
/// "declined"), and the reloaded return captures.
#[test]
fn a_rate_limited_paypal_capture_is_retried_not_declined() {
    let e = env();
    let s = &e.server;
    let viewer = s.user("rate-limited-capture", false);
    let co = checkout(s, &viewer, &e.film.id, "paypal");
    let back = payer(&co);
    e.paypal
        .behave(json!({ "fail": "429", "fail_on": ["capture_calls"], "fail_times": 1 }));
    let r = s.get(&back, None);
    assert_page(&r, 502, "try again", "a 429 on capture");
    assert!(
        !r.text().to_lowercase().contains("declined"),
        "a 429 is not a decline: {}",
        r.brief()
    );
    let order = order_of(s, &viewer, &co.order_id);
    assert_eq!(order["state"], "approved", "{order}");
    assert!(order["failure"].is_null(), "{order}");
    assert_eq!(u64_of(&e.paypal.state(), "injected_failures"), 1);

    assert_page(
        &s.get(&back, None),
        200,
        "Payment complete",
        "the return reloaded",
    );
    assert_eq!(order_of(s, &viewer, &co.order_id)["state"], "captured");
    assert_access(s, &viewer, &e.film, true, "captured after a 429");
    let st = e.paypal.state();
    assert_eq!(u64_of(&st, "capture_calls"), 2, "{st}");
    assert_eq!(
        request_id_count(&st, &format!("capture-{}", co.order_id)),
        2,
        "the retry carries the same PayPal-Request-Id"
    );
}

/// Issue 12 item 3 ("treat it as unavailable and retry"): the provider refuses the capture
/// for now (PayPal 429 RATE_LIMIT_REACHED, a Kakao Pay or Naver Pay 5xx) after the payer
/// approved, and the payer never reloads the return page. The provider still holds the
/// approval, so reconciliation asks for the capture again (the same idempotency key, the
/// pg_token kept from the return) instead of letting the approval lapse at `order_ttl`.
#[test]
fn a_capture_refused_for_now_is_retried_by_reconciliation_without_the_payer() {
    let e = env();
    let s = &e.server;
    for provider in ["paypal", "kakaopay", "naverpay"] {
        let viewer = s.user(&format!("retry-capture-{provider}"), false);
        let co = checkout(s, &viewer, &e.film.id, provider);
        let back = payer(&co);
        let (fail, calls) = match provider {
            "paypal" => ("429", "capture_calls"),
            "kakaopay" => ("500", "approve_calls"),
            _ => ("500", "apply_calls"),
        };
        e.behave(
            provider,
            json!({ "fail": fail, "fail_on": [calls], "fail_times": 1 }),
        );
        assert_page(
            &s.get(&back, None),
            502,
            "try again",
            &format!("{provider}: capture refused for now"),
        );
        let order = order_of(s, &viewer, &co.order_id);
        assert_eq!(order["state"], "approved", "{provider}: {order}");
        assert_eq!(e.capture_calls(provider), 1, "{provider}");

        // No reload: the admin's (or the periodic) reconciliation retries the capture.
        let changed = s
            .post(
                "/api/v1/admin/payments/reconcile",
                Some(&e.admin.access),
                json!({}),
            )
            .expect(200, "reconcile")
            .json();
        assert!(u64_of(&changed, "changed") >= 1, "{provider}: {changed}");
        let order = order_of(s, &viewer, &co.order_id);
        assert_eq!(
            order["state"],
            "captured",
            "{provider}: captured by reconciliation: {order}\n{}",
            s.log_tail(20)
        );
        assert_access(
            s,
            &viewer,
            &e.film,
            true,
            &format!("{provider}: after the retried capture"),
        );
        assert_eq!(e.capture_calls(provider), 2, "{provider}: one retry");
        assert_eq!(purchases_of_film(s, &viewer, &e.film.id).len(), 1);
        let admin_view = admin_order(s, &e.admin, &co.order_id);
        assert!(
            admin_view.get("capture_token").is_none(),
            "{provider}: the pg_token is not shown: {admin_view}"
        );
        if provider == "paypal" {
            assert_eq!(
                request_id_count(&e.paypal.state(), &format!("capture-{}", co.order_id)),
                2,
                "the retry carries the same PayPal-Request-Id"
            );
        }
    }
}

/// A payer told to "try again" after a capture refused for now (429) who buys the film
/// through a new order must not be charged a second time when reconciliation later finds
/// the first approval still open: it is cancelled, not captured.
#[test]
fn reconciliation_does_not_capture_an_order_for_a_film_bought_meanwhile() {
    let e = env();
    let s = &e.server;
    let viewer = s.user("bought-meanwhile", false);
    let first = checkout(s, &viewer, &e.film.id, "paypal");
    let back = payer(&first);
    e.behave(
        "paypal",
        json!({ "fail": "429", "fail_on": ["capture_calls"], "fail_times": 1 }),
    );
    assert_page(
        &s.get(&back, None),
        502,
        "try again",
        "capture refused for now",
    );
    assert_eq!(order_of(s, &viewer, &first.order_id)["state"], "approved");

    let second = checkout(s, &viewer, &e.film.id, "paypal");
    assert_ne!(
        second.order_id, first.order_id,
        "an approved order is not reused"
    );
    assert_page(
        &s.get(&payer(&second), None),
        200,
        "Payment complete",
        "bought again",
    );
    assert_access(s, &viewer, &e.film, true, "the second order");
    let calls = e.capture_calls("paypal");

    s.post(
        "/api/v1/admin/payments/reconcile",
        Some(&e.admin.access),
        json!({}),
    )
    .expect(200, "reconcile");
    let order = order_of(s, &viewer, &first.order_id);
    assert_eq!(order["state"], "cancelled", "{order}");
    assert_eq!(e.capture_calls("paypal"), calls, "no second charge");
    assert_eq!(order_of(s, &viewer, &second.order_id)["state"], "captured");
    assert_eq!(purchases_of_film(s, &viewer, &e.film.id).len(), 1);
}

/// Kakao Pay refusing our approve (a SECRET_KEY it no longer takes: 401, -401) or Naver
/// Pay refusing our apply (`InvalidMerchant`) is a configuration problem, not a declined
/// payment: the order is not failed for good with the provider's words on the payer's page.
/// It stays approved, the payer reads the generic provider_unavailable, and once the key is
/// fixed reconciliation approves it with the pg_token kept from the return.
#[test]
fn a_provider_refusing_our_capture_request_is_not_a_declined_payment() {
    let e = env();
    let s = &e.server;
    let mut kakao = None;
    for (provider, refuse) in [
        ("kakaopay", json!({ "reject_key": true })),
        ("naverpay", json!({ "decline_capture": "InvalidMerchant" })),
    ] {
        let viewer = s.user(&format!("refused-capture-{provider}"), false);
        let co = checkout(s, &viewer, &e.film.id, provider);
        let back = payer(&co);
        e.behave(provider, refuse);
        let r = s.get(&back, None);
        assert_page(&r, 502, "try again", &format!("{provider}: refused"));
        assert_no_provider_details(&r.text(), provider);
        let order = order_of(s, &viewer, &co.order_id);
        assert_eq!(order["state"], "approved", "{provider}: {order}");
        assert!(order["failure"].is_null(), "{provider}: {order}");
        assert_access(s, &viewer, &e.film, false, provider);
        if provider == "kakaopay" {
            kakao = Some((viewer, co.order_id));
        }
    }
    // The key fixed: the next reconciliation approves the Kakao Pay order.
    let (viewer, id) = kakao.expect("the Kakao Pay order");
    e.kakao.behave(json!({ "reject_key": false }));
    s.post(
        "/api/v1/admin/payments/reconcile",
        Some(&e.admin.access),
        json!({}),
    )
    .expect(200, "reconcile");
    let order = order_of(s, &viewer, &id);
    assert_eq!(order["state"], "captured", "{order}");
    assert_access(
        s,
        &viewer,
        &e.film,
        true,
        "kakaopay: after the key was fixed",
    );
}

/// Item 3: a checkout asked again answers the open order (its link still works) instead
/// of persisting another and calling the provider; a user's open orders are capped.
#[test]
fn a_repeated_checkout_answers_the_open_order_and_open_orders_are_capped() {
    let e = env();
    let s = &e.server;
    set_prices(s, &e.admin, &e.other.id, both_prices());
    let viewer = s.user("open-orders", false);
    let first = checkout(s, &viewer, &e.film.id, "paypal");
    let again = checkout(s, &viewer, &e.film.id, "paypal");
    assert_eq!(
        again.answer, first.answer,
        "the same open order, the same link"
    );
    assert_eq!(u64_of(&e.paypal.state(), "create_calls"), 1);
    let kakao = checkout(s, &viewer, &e.film.id, "kakaopay");
    let kakao_again = checkout(s, &viewer, &e.film.id, "kakaopay");
    assert_eq!(
        kakao_again.answer, kakao.answer,
        "PC, mobile and app links kept"
    );
    assert_eq!(u64_of(&e.kakao.state(), "ready_calls"), 1);
    // Another viewer's checkout is theirs.
    let stranger = s.user("open-orders-stranger", false);
    let theirs = checkout(s, &stranger, &e.film.id, "paypal");
    assert_ne!(theirs.order_id, first.order_id);

    // Up to payments.max_open_orders open orders...
    let opened = [
        first.order_id.clone(),
        kakao.order_id.clone(),
        checkout(s, &viewer, &e.film.id, "naverpay").order_id,
        checkout(s, &viewer, &e.film.id, "dev").order_id,
        checkout(s, &viewer, &e.other.id, "paypal").order_id,
    ];
    assert_eq!(opened.len(), MAX_OPEN_ORDERS);
    let ready_calls = u64_of(&e.kakao.state(), "ready_calls");
    let r = s.post(
        &format!("/api/v1/films/{}/checkout", e.other.id),
        Some(&viewer.access),
        json!({ "provider": "kakaopay" }),
    );
    r.expect_error(429, "too_many_open_orders", "one open order too many");
    let retry_after: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a Retry-After: {}", r.brief()));
    assert!((1..=3 * 3600).contains(&retry_after), "{retry_after}");
    assert_eq!(
        u64_of(&e.kakao.state(), "ready_calls"),
        ready_calls,
        "refused before the provider is called"
    );
    let orders = purchases(s, &viewer)["orders"]
        .as_array()
        .expect("orders")
        .len();
    assert_eq!(orders, MAX_OPEN_ORDERS, "nothing was persisted");
    // ...an open one is still answered...
    assert_eq!(
        checkout(s, &viewer, &e.film.id, "paypal").order_id,
        first.order_id
    );
    // ...and once one ends there is room again.
    let cancelled = s.get(
        &format!("/pay/paypal/cancel?order={}", first.order_id),
        None,
    );
    assert_page(
        &cancelled,
        200,
        "Payment not completed",
        "cancel a created order",
    );
    let next = checkout(s, &viewer, &e.other.id, "kakaopay");
    assert!(!opened.contains(&next.order_id));
}

/// Item 3: PayPal verifies a webhook over the bytes it sent; the event goes back to
/// `verify-webhook-signature` embedded verbatim (key order, spacing, escapes), never
/// re-serialised.
#[test]
fn a_paypal_webhook_is_verified_with_its_body_byte_for_byte() {
    let e = env();
    let s = &e.server;
    let viewer = s.user("webhook-verbatim", false);
    let co = checkout(s, &viewer, &e.film.id, "paypal");
    let pp_order = str_of(&admin_order(s, &e.admin, &co.order_id), "provider_ref").to_string();
    payer(&co); // approves at PayPal and never comes back
    let w = e.paypal.webhook(json!({
        "url": e.webhook_url(), "event_type": "PAYMENT.CAPTURE.COMPLETED", "order_id": pp_order,
    }));
    let st = e.paypal.state();
    let check = st["verifications"]
        .as_array()
        .and_then(|v| v.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (check["transmission_id"].clone(), check["verbatim"].clone()),
        (w["transmission_id"].clone(), json!(true)),
        "the event reached verify-webhook-signature byte for byte: {st}"
    );
    assert_eq!(w["status"], 200, "{w}");
    assert_eq!(
        serde_json::from_str::<Value>(str_of(&w, "body")).expect("JSON"),
        json!({ "status": "captured" }),
        "{w}"
    );
    assert_eq!(order_of(s, &viewer, &co.order_id)["state"], "captured");
    assert_access(s, &viewer, &e.film, true, "after a verified webhook");
}

/// A delivery with forged PAYPAL-* headers.
fn post_webhook(s: &Server, event: &Value) -> Resp {
    s.exec(
        s.req(Method::POST, "/api/v1/payments/paypal/webhook")
            .header("PAYPAL-AUTH-ALGO", "SHA256withRSA")
            .header(
                "PAYPAL-CERT-URL",
                "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77",
            )
            .header(
                "PAYPAL-TRANSMISSION-ID",
                "b2f0a7c0-0000-4000-8000-000000000002",
            )
            .header("PAYPAL-TRANSMISSION-SIG", "Zm9yZ2VkIHNpZ25hdHVyZQ==")
            .header("PAYPAL-TRANSMISSION-TIME", "2030-01-01T00:00:00Z")
            .json(event),
    )
}

/// Item 3: a webhook we would ignore (an unhandled type, a `custom_id` naming no order the
/// event could change) is answered without asking PayPal, so nobody can spend our calls to
/// PayPal with it; one we would act on is still verified first.
#[test]
fn paypal_webhooks_we_would_ignore_are_not_sent_to_paypal() {
    let e = env();
    let s = &e.server;
    let open_viewer = s.user("webhook-filter-open", false);
    let open = checkout(s, &open_viewer, &e.film.id, "paypal");
    let buyer = s.user("webhook-filter-buyer", false);
    let bought = e.buy(&buyer, "paypal");
    let verify_calls = || u64_of(&e.paypal.state(), "verify_calls");
    let before = verify_calls();
    let event = |event_type: &str, custom_id: Option<&str>, n: u32| {
        let mut ev = forged_event(custom_id.unwrap_or(""), &format!("WH-FILTER-{n:04}"));
        ev["event_type"] = json!(event_type);
        if custom_id.is_none() {
            ev["resource"]
                .as_object_mut()
                .expect("resource")
                .remove("custom_id");
        }
        ev
    };
    let unknown = "0190aaaa-bbbb-7ccc-8ddd-eeeeffff0001";
    let mut no_id = event("PAYMENT.CAPTURE.COMPLETED", Some(&open.order_id), 8);
    no_id.as_object_mut().expect("event").remove("id");
    let ignored = [
        (
            "an unhandled type",
            event("BILLING.SUBSCRIPTION.CREATED", Some(&open.order_id), 1),
        ),
        (
            "no such order",
            event("PAYMENT.CAPTURE.COMPLETED", Some(unknown), 2),
        ),
        (
            "not an order id",
            event("PAYMENT.CAPTURE.COMPLETED", Some("not-an-order"), 3),
        ),
        ("no custom_id", event("PAYMENT.CAPTURE.COMPLETED", None, 4)),
        (
            "captured already",
            event("PAYMENT.CAPTURE.COMPLETED", Some(&bought.order_id), 5),
        ),
        (
            "denied after capture",
            event("PAYMENT.CAPTURE.DENIED", Some(&bought.order_id), 6),
        ),
        (
            "refund of an unpaid order",
            event("PAYMENT.CAPTURE.REFUNDED", Some(&open.order_id), 7),
        ),
        ("no event id", no_id),
    ];
    for (what, ev) in &ignored {
        let r = post_webhook(s, ev);
        assert_eq!(r.status, 200, "{what}: {}", r.brief());
        assert_eq!(r.json(), json!({ "status": "ignored" }), "{what}");
        assert_eq!(verify_calls(), before, "{what}: PayPal was asked");
    }
    // A genuine delivery of a type we do not handle: the same.
    let pp_open = str_of(&admin_order(s, &e.admin, &open.order_id), "provider_ref").to_string();
    let w = e.paypal.webhook(json!({
        "url": e.webhook_url(), "event_type": "CHECKOUT.ORDER.APPROVED", "order_id": pp_open,
    }));
    assert_eq!(w["status"], 200, "{w}");
    assert_eq!(
        verify_calls(),
        before,
        "CHECKOUT.ORDER.APPROVED: PayPal was asked"
    );
    assert_eq!(
        order_of(s, &open_viewer, &open.order_id)["state"],
        "created"
    );
    assert_eq!(order_of(s, &buyer, &bought.order_id)["state"], "captured");

    // One we would act on is verified with PayPal first (and this one is forged).
    post_webhook(
        s,
        &event("PAYMENT.CAPTURE.COMPLETED", Some(&open.order_id), 9),
    )
    .expect_error(
        401,
        "invalid_signature",
        "a forged COMPLETED for an open order",
    );
    assert_eq!(verify_calls(), before + 1);
    assert_eq!(
        order_of(s, &open_viewer, &open.order_id)["state"],
        "created"
    );
}

/// A refund or reversal without `custom_id` (as one made in PayPal's dashboard may come) is
/// verified with PayPal only if its capture (the refund's `up` link; a reversal's own id)
/// is a captured PayPal order's: a stranger's made-up refunds cost no call to PayPal (whose
/// rate limits are our app's, and would push our captures into 429). A genuine one is still
/// applied, found through its capture.
#[test]
fn a_forged_refund_naming_no_captured_order_is_not_sent_to_paypal() {
    let e = env();
    let s = &e.server;
    let open_viewer = s.user("refund-filter-open", false);
    let open = checkout(s, &open_viewer, &e.film.id, "paypal");
    let buyer = s.user("refund-filter-buyer", false);
    let bought = e.buy(&buyer, "paypal");
    let capture_id = str_of(&admin_order(s, &e.admin, &bought.order_id), "payment_id").to_string();
    let verify_calls = || u64_of(&e.paypal.state(), "verify_calls");
    let before = verify_calls();
    let refund = |event_type: &str, n: u32, resource: Value| {
        json!({
            "id": format!("WH-REFUND-FILTER-{n:04}"),
            "event_version": "1.0",
            "create_time": "2030-01-01T00:00:00Z",
            "resource_type": "refund",
            "resource_version": "2.0",
            "event_type": event_type,
            "summary": "A 4.99 USD capture payment was refunded",
            "resource": resource,
        })
    };
    let up = |capture: &str| {
        json!({
            "id": "REF-FORGED000001",
            "status": "COMPLETED",
            "amount": { "currency_code": "USD", "value": "4.99" },
            "links": [
                { "href": "https://api.paypal.com/v2/payments/refunds/REF-FORGED000001", "rel": "self", "method": "GET" },
                { "href": format!("https://api.paypal.com/v2/payments/captures/{capture}"), "rel": "up", "method": "GET" },
            ],
        })
    };
    let ignored = [
        (
            "an empty resource",
            refund("PAYMENT.CAPTURE.REFUNDED", 1, json!({})),
        ),
        (
            "an unknown capture",
            refund("PAYMENT.CAPTURE.REFUNDED", 2, up("CAP-NOSUCHCAPTURE")),
        ),
        (
            "a reversal of an unknown capture",
            refund(
                "PAYMENT.CAPTURE.REVERSED",
                3,
                json!({ "id": "CAP-NOSUCHCAPTURE", "status": "REVERSED" }),
            ),
        ),
        (
            "a link that is no capture",
            refund(
                "PAYMENT.CAPTURE.REFUNDED",
                4,
                json!({ "id": "REF-X", "links": [{ "href": format!("https://api.paypal.com/v2/checkout/orders/{capture_id}"), "rel": "up" }] }),
            ),
        ),
    ];
    for (what, ev) in &ignored {
        let r = post_webhook(s, ev);
        assert_eq!(r.status, 200, "{what}: {}", r.brief());
        assert_eq!(r.json(), json!({ "status": "ignored" }), "{what}");
        assert_eq!(verify_calls(), before, "{what}: PayPal was asked");
    }
    // The capture of an order that is open, not captured: the same.
    assert_eq!(
        order_of(s, &open_viewer, &open.order_id)["state"],
        "created"
    );

    // A refund of our captured order's capture is verified first (this one is forged).
    post_webhook(s, &refund("PAYMENT.CAPTURE.REFUNDED", 5, up(&capture_id))).expect_error(
        401,
        "invalid_signature",
        "a forged refund of a real capture",
    );
    assert_eq!(verify_calls(), before + 1);
    assert_eq!(order_of(s, &buyer, &bought.order_id)["state"], "captured");

    // A genuine dashboard refund without custom_id is applied through its capture.
    let pp_order = str_of(&admin_order(s, &e.admin, &bought.order_id), "provider_ref").to_string();
    let w = e.paypal.webhook(json!({
        "url": e.webhook_url(), "event_type": "PAYMENT.CAPTURE.REFUNDED", "order_id": pp_order,
        "without_custom_id": true,
    }));
    assert!(w["event"]["resource"].get("custom_id").is_none(), "{w}");
    assert_eq!(w["status"], 200, "{w}");
    assert_eq!(
        serde_json::from_str::<Value>(str_of(&w, "body")).expect("JSON"),
        json!({ "status": "refunded" }),
        "{w}"
    );
    assert_eq!(order_of(s, &buyer, &bought.order_id)["state"], "refunded");
    assert_access(s, &buyer, &e.film, false, "after a dashboard refund");
}

/// A PayPal `PAYMENT.CAPTURE.DENIED` webhook (verified) ends an `approved` order: the
/// provider's own answer, unlike the links anyone can send.
#[test]
fn a_denied_webhook_fails_an_approved_order() {
    let e = env();
    let s = &e.server;
    let viewer = s.user("denied-approved", false);
    let co = checkout(s, &viewer, &e.film.id, "paypal");
    let back = payer(&co);
    e.paypal
        .behave(json!({ "fail": "429", "fail_on": ["capture_calls"], "fail_times": 1 }));
    assert_page(
        &s.get(&back, None),
        502,
        "try again",
        "capture refused for now",
    );
    assert_eq!(order_of(s, &viewer, &co.order_id)["state"], "approved");
    let pp_order = str_of(&admin_order(s, &e.admin, &co.order_id), "provider_ref").to_string();
    let w = e.paypal.webhook(json!({
        "url": e.webhook_url(), "event_type": "PAYMENT.CAPTURE.DENIED", "order_id": pp_order,
    }));
    assert_eq!(w["status"], 200, "{w}");
    assert_eq!(
        serde_json::from_str::<Value>(str_of(&w, "body")).expect("JSON"),
        json!({ "status": "failed" }),
        "{w}"
    );
    let order = order_of(s, &viewer, &co.order_id);
    assert_eq!(order["state"], "failed", "{order}");
    assert_access(s, &viewer, &e.film, false, "after a denied capture");
}

/// A `failed` (or `cancelled`) order whose return was seen may have had a capture in doubt
/// when it ended: reconciliation asks the provider about it once, not on every pass.
#[test]
fn a_failed_order_whose_return_was_seen_is_rechecked_once() {
    let e = env();
    let s = &e.server;
    let viewer = s.user("recheck-once", false);
    let co = checkout(s, &viewer, &e.film.id, "paypal");
    let back = payer(&co);
    e.paypal.behave(json!({ "decline_capture": true }));
    s.get(&back, None);
    e.paypal.behave(json!({ "decline_capture": false }));
    let order = admin_order(s, &e.admin, &co.order_id);
    assert_eq!(order["state"], "failed", "{order}");
    assert!(order["rechecked_at"].is_null(), "{order}");
    let reconcile = || {
        s.post(
            "/api/v1/admin/payments/reconcile",
            Some(&e.admin.access),
            json!({}),
        )
        .expect(200, "reconcile");
    };
    let get_calls = || u64_of(&e.paypal.state(), "get_calls");
    let before = get_calls();
    reconcile();
    assert!(get_calls() > before, "PayPal was asked");
    let order = admin_order(s, &e.admin, &co.order_id);
    assert_eq!(order["state"], "failed", "{order}");
    assert!(order["rechecked_at"].is_i64(), "asked once: {order}");
    // Orders other tests left behind settle in the first passes; then nothing is asked.
    reconcile();
    let settled = get_calls();
    reconcile();
    assert_eq!(get_calls(), settled, "asked again");
    assert_eq!(admin_order(s, &e.admin, &co.order_id)["state"], "failed");
}

/// Item 3: reconciliation runs every `payments.reconcile_interval` (docs/PAYMENTS.md
/// promises hourly), not only at start, and stops with the server.
#[test]
fn open_orders_are_reconciled_periodically_and_the_reconciler_stops_with_the_server() {
    let paypal = PaypalPeer::start(PP_ID, PP_SECRET, PP_WEBHOOK);
    let mut vars = provider_env(Some(&paypal), None, None, false);
    vars.push(("CINEGATE_PAYMENTS__RECONCILE_INTERVAL".into(), "2s".into()));
    let mut s = Server::start(&borrowed(&vars));
    let admin = s.user("periodic-admin", true);
    let film = priced_film(&s, &admin, &src_other(), "Periodic pay film");
    let viewer = s.user("periodic-buyer", false);
    let co = checkout(&s, &viewer, &film.id, "paypal");
    let back = payer(&co);
    // PayPal takes the money and answers too late: the order is left approved.
    paypal.behave(json!({ "capture_delay": 3 }));
    let r = s.get(&back, None);
    paypal.behave(json!({ "capture_delay": 0 }));
    assert_page(&r, 502, "try again", "late capture");

    // Nobody asks (no reload, no admin): a later pass settles it.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let order = order_of(&s, &viewer, &co.order_id);
        if order["state"] == "captured" {
            break;
        }
        assert!(
            Instant::now() < deadline && order["state"] == "approved",
            "not reconciled by a periodic pass: {order}\nlog:\n{}",
            s.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let notes = event_notes(&admin_order(&s, &admin, &co.order_id));
    assert!(
        notes.contains("reconciled with the provider"),
        "captured by reconciliation: {notes}"
    );
    assert_access(&s, &viewer, &film, true, "after a periodic reconciliation");
    assert_eq!(u64_of(&paypal.state(), "capture_calls"), 1);

    // SIGTERM while passes keep coming: the server stops promptly and cleanly.
    std::thread::sleep(Duration::from_millis(2500));
    let started = Instant::now();
    s.stop();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopping took {:?}",
        started.elapsed()
    );
    let log = s.log_tail(20);
    assert!(
        log.contains("stopped") && !log.contains("did not stop in time"),
        "a clean stop:\n{log}"
    );
}
