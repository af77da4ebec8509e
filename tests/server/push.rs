//! Mobile push (issue 17, "Mobile push"): the devices API on the real server, and the FCM
//! and APNs senders against loopback fakes of their contracts (`tests/peers/push/`: node,
//! no packages) with keys made by openssl for each test. The sender tests call the
//! library's `notify::push::sender` directly (each attempt's outcome is what the outbox
//! worker acts on); `a_purchase_pushes_to_the_buyers_devices` runs the whole path on the
//! server (event → router → outbox → worker → sender), which needs the notification
//! router and worker.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cinegate::config::Config;
use cinegate::notify::push::devices;
use cinegate::notify::{Delivery, Outcome};
use cinegate::store::Store;
use reqwest::Method;
use serde_json::{json, Value};
use testkit::process::run_ok;
use uuid::Uuid;

use crate::harness::media::src_other;
use crate::harness::peer_scripts::peer;
use crate::harness::server::Server;
use crate::peers::ControlledFake;

// ---------------------------------------------------------------------------------------
// Keys and fakes
// ---------------------------------------------------------------------------------------

/// An RSA 2048 service-account key (PKCS#8 PEM) and its public half, made by openssl.
fn rsa_key(dir: &Path) -> (String, PathBuf) {
    let private = dir.join("sa.pem");
    let public = dir.join("sa.pub.pem");
    run_ok(
        Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&private),
    );
    run_ok(
        Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public),
    );
    (std::fs::read_to_string(&private).expect("sa.pem"), public)
}

/// An APNs-style `.p8` key (EC P-256, PKCS#8 PEM) and its public half.
fn ec_key(dir: &Path) -> (PathBuf, PathBuf) {
    let raw = dir.join("ec.pem");
    let p8 = dir.join("AuthKey_TEST.p8");
    let public = dir.join("ec.pub.pem");
    run_ok(
        Command::new("openssl")
            .args([
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
            ])
            .arg(&raw),
    );
    run_ok(
        Command::new("openssl")
            .args(["pkcs8", "-topk8", "-nocrypt", "-in"])
            .arg(&raw)
            .arg("-out")
            .arg(&p8),
    );
    run_ok(
        Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&p8)
            .arg("-out")
            .arg(&public),
    );
    (p8, public)
}

pub const PROJECT: &str = "cinegate-test";
pub const CLIENT_EMAIL: &str = "push@cinegate-test.iam.gserviceaccount.com";
pub const TEAM: &str = "TEAM123456";
pub const KEY_ID: &str = "KEY7654321";
pub const TOPIC: &str = "com.example.cinegate";

/// The FCM fake and the service account file that points at its token endpoint.
pub struct Fcm {
    pub fake: ControlledFake,
    pub account_file: PathBuf,
}

pub fn start_fcm(dir: &Path) -> Fcm {
    let (private, public) = rsa_key(dir);
    let mut cmd = Command::new("node");
    cmd.arg(peer("push/fcm_fake.mjs"))
        .arg("--public-key")
        .arg(&public)
        .args(["--client-email", CLIENT_EMAIL, "--project-id", PROJECT]);
    let (fake, _) = ControlledFake::spawn(cmd, "FCM");
    let account_file = dir.join("fcm-service-account.json");
    let account = json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "kid-1",
        "private_key": private,
        "client_email": CLIENT_EMAIL,
        "token_uri": format!("{}/token", fake.base),
    });
    std::fs::write(&account_file, account.to_string()).expect("write the service account");
    Fcm { fake, account_file }
}

/// The APNs fake (h2c on `apns_base`, control on `fake.base`) and the `.p8` key.
pub struct Apns {
    pub fake: ControlledFake,
    pub apns_base: String,
    pub key_file: PathBuf,
}

pub fn start_apns(dir: &Path) -> Apns {
    let (key_file, public) = ec_key(dir);
    let mut cmd = Command::new("node");
    cmd.arg(peer("push/apns_fake.mjs"))
        .arg("--public-key")
        .arg(&public)
        .args(["--team-id", TEAM, "--key-id", KEY_ID, "--topic", TOPIC]);
    let (fake, hello) = ControlledFake::spawn(cmd, "APNs");
    let port = hello["apns_port"].as_u64().expect("apns_port");
    Apns {
        fake,
        apns_base: format!("http://127.0.0.1:{port}"),
        key_file,
    }
}

/// The server's environment for both push channels on these fakes.
pub fn push_env(fcm: &Fcm, apns: &Apns) -> Vec<(String, String)> {
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    vec![
        s("CINEGATE_PUSH__FCM__PROJECT_ID", PROJECT),
        s(
            "CINEGATE_PUSH__FCM__SERVICE_ACCOUNT_FILE",
            &fcm.account_file.to_string_lossy(),
        ),
        s("CINEGATE_PUSH__FCM__BASE_URL", &fcm.fake.base),
        s("CINEGATE_PUSH__APNS__TEAM_ID", TEAM),
        s("CINEGATE_PUSH__APNS__KEY_ID", KEY_ID),
        s(
            "CINEGATE_PUSH__APNS__KEY_FILE",
            &apns.key_file.to_string_lossy(),
        ),
        s("CINEGATE_PUSH__APNS__TOPIC", TOPIC),
        s("CINEGATE_PUSH__APNS__BASE_URL", &apns.apns_base),
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A store of its own and a configuration with keys in `dir`.
fn library_setup(dir: &Path) -> (Config, Store) {
    let config = Config {
        keys_dir: dir.to_path_buf(),
        media_dir: dir.join("media"),
        ..Config::default()
    };
    let store = Store::open(&dir.join("store")).expect("open the store");
    (config, store)
}

fn push_to(user: Uuid, device: &cinegate::store::devices::Device, title: &str) -> Delivery {
    Delivery::Push {
        user,
        device: device.id,
        platform: device.platform,
        token: device.token.clone(),
        title: title.into(),
        body: "body".into(),
        data: BTreeMap::from([("film".to_string(), "f1".to_string())]),
    }
}

fn is_retry_after(o: &Outcome, secs: u64) -> bool {
    matches!(o, Outcome::Retry { after: Some(d), .. } if *d == Duration::from_secs(secs))
}

// ---------------------------------------------------------------------------------------
// FCM
// ---------------------------------------------------------------------------------------

#[test]
fn fcm_exchanges_one_oauth_token_maps_each_answer_and_removes_unregistered_devices() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fcm = start_fcm(dir.path());
    let (mut config, store) = library_setup(dir.path());
    config.push.fcm.project_id = PROJECT.into();
    config.push.fcm.service_account_file = "fcm-service-account.json".into();
    config.push.fcm.base_url = fcm.fake.base.clone();
    config.validate().expect("valid config");
    let sender = cinegate::notify::push::sender(&config, &store)
        .expect("sender")
        .expect("push is configured");

    let user = Uuid::now_v7();
    let token = |name: &str| format!("{name}:APA91b{}", "x".repeat(40));
    let reg = |name: &str| {
        devices::register(&store, &user, "android", &token(name), None, 1)
            .expect("register")
            .0
    };
    let (ok1, ok2, gone, invalid, flaky) = (
        reg("ok1"),
        reg("ok2"),
        reg("gone"),
        reg("invalid"),
        reg("flaky"),
    );
    fcm.fake.behave(json!({
        "unregistered": [token("gone")],
        "invalid": [token("invalid")],
        "fail": { token("flaky"): [429, 503] },
        "retry_after": 3,
    }));
    let rt = runtime();
    let send = |d: &cinegate::store::devices::Device| {
        rt.block_on(sender.send(&push_to(user, d, "Film unlocked")))
    };

    assert_eq!(send(&ok1), Outcome::Delivered);
    assert_eq!(send(&ok2), Outcome::Delivered);
    let state = fcm.fake.state();
    assert_eq!(
        state["token_calls"], 1,
        "one OAuth exchange for several sends: {state}"
    );
    assert_eq!(state["token_problems"], json!([]), "{state}");
    // The assertion as the fake decoded it (its signature verified with the public key).
    let a = &state["assertions"][0];
    assert_eq!(a["header"]["alg"], "RS256");
    assert_eq!(a["header"]["kid"], "kid-1");
    assert_eq!(a["claims"]["iss"], CLIENT_EMAIL);
    assert_eq!(
        a["claims"]["scope"],
        "https://www.googleapis.com/auth/firebase.messaging"
    );
    assert_eq!(a["claims"]["aud"], format!("{}/token", fcm.fake.base));
    assert_eq!(
        a["claims"]["exp"].as_i64().unwrap_or(0) - a["claims"]["iat"].as_i64().unwrap_or(0),
        3600
    );
    let sent = &state["sends"][0];
    assert_eq!(sent["status"], 200);
    assert_eq!(sent["message"]["token"], ok1.token);
    assert_eq!(sent["message"]["notification"]["title"], "Film unlocked");
    assert_eq!(sent["message"]["data"]["film"], "f1");

    // UNREGISTERED (404) and an invalid token (400 INVALID_ARGUMENT on message.token):
    // gone, and the device is removed.
    assert!(matches!(send(&gone), Outcome::Gone { .. }));
    assert!(matches!(send(&invalid), Outcome::Gone { .. }));
    let left: Vec<String> = store
        .devices_of(&user)
        .expect("devices")
        .into_iter()
        .map(|d| d.token)
        .collect();
    assert_eq!(
        left,
        [ok1.token.clone(), ok2.token.clone(), flaky.token.clone()]
    );

    // 429 and 503 are retried, honouring Retry-After; the third attempt is delivered.
    assert!(is_retry_after(&send(&flaky), 3), "429");
    assert!(is_retry_after(&send(&flaky), 3), "503");
    assert_eq!(send(&flaky), Outcome::Delivered);
    assert_eq!(fcm.fake.state()["token_calls"], 1);

    // A revoked access token: 401, one new exchange, the same attempt delivered.
    fcm.fake.control("/_control/revoke", Some(json!({})));
    assert_eq!(send(&ok1), Outcome::Delivered);
    assert_eq!(fcm.fake.state()["token_calls"], 2);

    // A short-lived token is renewed before it expires.
    fcm.fake.behave(json!({"expires_in": 1}));
    fcm.fake.control("/_control/revoke", Some(json!({})));
    assert_eq!(send(&ok1), Outcome::Delivered);
    assert_eq!(fcm.fake.state()["token_calls"], 3);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(send(&ok2), Outcome::Delivered);
    let state = fcm.fake.state();
    assert_eq!(state["token_calls"], 4, "{state}");
    let unauthorized = state["sends"]
        .as_array()
        .expect("sends")
        .iter()
        .filter(|s| s["status"] == 401)
        .count();
    assert_eq!(
        unauthorized, 2,
        "only the two revocations met a 401: {state}"
    );
}

// ---------------------------------------------------------------------------------------
// APNs
// ---------------------------------------------------------------------------------------

#[test]
fn apns_over_h2c_signs_a_reused_provider_token_and_maps_each_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let apns = start_apns(dir.path());
    let (mut config, store) = library_setup(dir.path());
    config.push.apns.team_id = TEAM.into();
    config.push.apns.key_id = KEY_ID.into();
    config.push.apns.key_file = apns.key_file.clone();
    config.push.apns.topic = TOPIC.into();
    config.push.apns.base_url = apns.apns_base.clone();
    config.validate().expect("valid config");
    let sender = cinegate::notify::push::sender(&config, &store)
        .expect("sender")
        .expect("push is configured");

    let user = Uuid::now_v7();
    let token = |n: u8| format!("{n:02x}").repeat(32);
    let reg = |n: u8| {
        devices::register(&store, &user, "ios", &token(n), Some("ko-KR"), 1)
            .expect("register")
            .0
    };
    let (ok, gone, bad, flaky, expired) = (reg(1), reg(2), reg(3), reg(4), reg(5));
    apns.fake.behave(json!({
        "unregistered": [token(2)],
        "bad_tokens": [token(3)],
        "fail": { token(4): [429, 503], token(5): [403] },
        "retry_after": 2,
    }));
    let rt = runtime();
    let send = |d: &cinegate::store::devices::Device| {
        rt.block_on(sender.send(&push_to(user, d, "영화가 열렸어요")))
    };

    assert_eq!(send(&ok), Outcome::Delivered);
    assert_eq!(send(&ok), Outcome::Delivered);
    let state = apns.fake.state();
    let r = &state["requests"][0];
    assert_eq!(r["problems"], json!([]), "{state}");
    assert_eq!(r["status"], 200);
    assert_eq!(r["protocol"], "HTTP/2 (h2c)");
    assert_eq!(r["jwt_header"]["alg"], "ES256");
    assert_eq!(r["jwt_header"]["kid"], KEY_ID);
    assert_eq!(r["jwt_claims"]["iss"], TEAM);
    assert!(r["jwt_claims"]["iat"].as_i64().is_some());
    assert_eq!(r["headers"]["apns-topic"], TOPIC);
    assert_eq!(r["headers"]["apns-push-type"], "alert");
    assert_eq!(r["headers"]["apns-priority"], "10");
    assert_eq!(r["payload"]["aps"]["alert"]["title"], "영화가 열렸어요");
    assert_eq!(r["payload"]["film"], "f1");
    assert_eq!(
        state["provider_tokens"].as_array().map(Vec::len),
        Some(1),
        "one provider token reused"
    );

    // 410 Unregistered and 400 BadDeviceToken: gone, device removed.
    assert!(matches!(send(&gone), Outcome::Gone { .. }));
    assert!(matches!(send(&bad), Outcome::Gone { .. }));
    let left: Vec<Uuid> = store
        .devices_of(&user)
        .expect("devices")
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(left, [ok.id, flaky.id, expired.id]);

    // 429 and 503: retried with Retry-After, then delivered.
    assert!(is_retry_after(&send(&flaky), 2), "429");
    assert!(is_retry_after(&send(&flaky), 2), "503");
    assert_eq!(send(&flaky), Outcome::Delivered);

    // 403 ExpiredProviderToken: retried, and the next attempt signs a new provider token
    // (iat in a later second: ES256 here signs deterministically).
    assert!(matches!(send(&expired), Outcome::Retry { .. }));
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(send(&expired), Outcome::Delivered);
    let state = apns.fake.state();
    assert_eq!(
        state["provider_tokens"].as_array().map(Vec::len),
        Some(2),
        "{state}"
    );
    let problems: Vec<&Value> = state["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter(|r| r["problems"] != json!([]))
        .collect();
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn plain_http_to_apns_only_on_loopback() {
    let mut config = Config::default();
    config.push.apns.team_id = TEAM.into();
    config.push.apns.key_id = KEY_ID.into();
    config.push.apns.topic = TOPIC.into();
    config.push.apns.base_url = "http://push.example.com".into();
    let e = config
        .validate()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("push.apns.base_url"), "{e}");
    config.push.apns.base_url = "http://127.0.0.1:9".into();
    assert!(config.validate().is_ok());
}

// ---------------------------------------------------------------------------------------
// The devices API
// ---------------------------------------------------------------------------------------

#[test]
fn devices_are_registered_listed_moved_and_removed() {
    // No film needed: a fresh server is cheaper than the shared one's packaging.
    let server = Server::start(&[]);
    let s = &server;
    let alice = s.user("devices-a", false);
    let bob = s.user("devices-b", false);
    let ios = "AB".repeat(32);
    let r = s.post(
        "/api/v1/me/devices",
        Some(&alice.access),
        json!({"platform": "ios", "token": ios, "lang": "ko"}),
    );
    let first = r.expect(201, "register").json();
    assert_eq!(first["platform"], "ios");
    assert_eq!(first["token"], ios.to_lowercase());
    assert_eq!(first["lang"], "ko");
    let id = first["id"].as_str().expect("id").to_string();
    // Again: the same device.
    let again = s
        .post(
            "/api/v1/me/devices",
            Some(&alice.access),
            json!({"platform": "ios", "token": ios}),
        )
        .expect(200, "register again")
        .json();
    assert_eq!(again["id"], id.as_str());
    let android = format!("fcm:{}", "y".repeat(60));
    s.post(
        "/api/v1/me/devices",
        Some(&alice.access),
        json!({"platform": "android", "token": android}),
    )
    .expect(201, "android");
    let list = s
        .get("/api/v1/me/devices", Some(&alice.access))
        .expect(200, "list")
        .json();
    assert_eq!(list["devices"].as_array().map(Vec::len), Some(2), "{list}");

    s.post(
        "/api/v1/me/devices",
        Some(&alice.access),
        json!({"platform": "web", "token": ios}),
    )
    .expect_error(422, "invalid_platform", "platform");
    s.post(
        "/api/v1/me/devices",
        Some(&alice.access),
        json!({"platform": "ios", "token": "abc"}),
    )
    .expect_error(422, "invalid_device_token", "short APNs token");
    s.post(
        "/api/v1/me/devices",
        Some(&alice.access),
        json!({"platform": "android", "token": "no spaces allowed in here, none at all"}),
    )
    .expect_error(422, "invalid_device_token", "FCM token with spaces");
    s.post(
        "/api/v1/me/devices",
        None,
        json!({"platform": "ios", "token": ios}),
    )
    .expect_error(401, "unauthenticated", "anonymous");

    // Someone else's device is not found; the token registered by Bob moves to him.
    s.call(
        Method::DELETE,
        &format!("/api/v1/me/devices/{id}"),
        Some(&bob.access),
        None,
    )
    .expect_error(404, "not_found", "bob deletes alice's device");
    let moved = s
        .post(
            "/api/v1/me/devices",
            Some(&bob.access),
            json!({"platform": "ios", "token": ios}),
        )
        .expect(201, "bob registers the token")
        .json();
    assert_ne!(moved["id"], id.as_str());
    let list = s
        .get("/api/v1/me/devices", Some(&alice.access))
        .expect(200, "list")
        .json();
    assert_eq!(list["devices"].as_array().map(Vec::len), Some(1), "{list}");
    s.call(
        Method::DELETE,
        &format!("/api/v1/me/devices/{id}"),
        Some(&alice.access),
        None,
    )
    .expect_error(404, "not_found", "the moved device is gone from alice");
    let bobs = moved["id"].as_str().expect("id");
    s.call(
        Method::DELETE,
        &format!("/api/v1/me/devices/{bobs}"),
        Some(&bob.access),
        None,
    )
    .expect(204, "delete own");
    let list = s
        .get("/api/v1/me/devices", Some(&bob.access))
        .expect(200, "list")
        .json();
    assert_eq!(list["devices"], json!([]));
}

// ---------------------------------------------------------------------------------------
// The whole path (needs the notification router and delivery worker)
// ---------------------------------------------------------------------------------------

/// Waits until `f` holds, polling.
pub fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<Value>) -> Value {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A dev purchase on a server with both push channels on the fakes: the buyer's Android
/// and iOS devices get "Film unlocked" once each, through a 429 and a 503 on the way; an
/// unregistered token is removed from the buyer's devices. NEEDS the router and worker.
#[test]
fn a_purchase_pushes_to_the_buyers_devices() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fcm = start_fcm(dir.path());
    let apns = start_apns(dir.path());
    let mut env = push_env(&fcm, &apns);
    env.push(("CINEGATE_PAYMENTS__DEV__ENABLED".into(), "true".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start(&env);
    let admin = server.user("push-admin", true);
    let buyer = server.user("push-buyer", false);
    let film = server.priced_film(&admin, &src_other(), "Push film", 300);

    let android = format!("buyer:APA91b{}", "a".repeat(40));
    let android_gone = format!("gone:APA91b{}", "b".repeat(40));
    let ios = "cd".repeat(32);
    for (platform, token) in [
        ("android", &android),
        ("android", &android_gone),
        ("ios", &ios),
    ] {
        server
            .post(
                "/api/v1/me/devices",
                Some(&buyer.access),
                json!({"platform": platform, "token": token}),
            )
            .expect(201, "register");
    }
    fcm.fake
        .behave(json!({"unregistered": [android_gone], "fail": {android.clone(): [429]}}));
    apns.fake.behave(json!({"fail": {ios.clone(): [503]}}));

    server.buy_with_dev(&buyer, &film);

    let delivered = |fake: &ControlledFake, key: &str, token: &str| {
        let state = fake.state();
        let hits: Vec<Value> = state[key]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r["token"] == token || r["message"]["token"] == token)
            .collect();
        hits.iter().any(|r| r["status"] == 200).then(|| json!(hits))
    };
    let fcm_hits = eventually("FCM delivery", Duration::from_secs(60), || {
        delivered(&fcm.fake, "sends", &android)
    });
    let apns_hits = eventually("APNs delivery", Duration::from_secs(60), || {
        delivered(&apns.fake, "requests", &ios)
    });
    assert_eq!(
        fcm_hits.as_array().map(Vec::len),
        Some(2),
        "429 then 200: {fcm_hits}"
    );
    assert_eq!(
        apns_hits.as_array().map(Vec::len),
        Some(2),
        "503 then 200: {apns_hits}"
    );
    assert_eq!(
        fcm_hits[1]["message"]["notification"]["title"],
        "Film unlocked"
    );
    assert_eq!(
        apns_hits[1]["payload"]["aps"]["alert"]["title"],
        "Film unlocked"
    );
    eventually(
        "the unregistered device removed",
        Duration::from_secs(30),
        || {
            let list = server
                .get("/api/v1/me/devices", Some(&buyer.access))
                .expect(200, "list")
                .json();
            (list["devices"].as_array().map(Vec::len) == Some(2)).then_some(list)
        },
    );
    // Delivered once: nothing more arrives.
    std::thread::sleep(Duration::from_secs(2));
    let sends = fcm.fake.state()["sends"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        sends
            .iter()
            .filter(|s| s["message"]["token"] == android.as_str() && s["status"] == 200)
            .count(),
        1
    );
}
