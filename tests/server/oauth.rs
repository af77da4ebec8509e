//! Sign-in with Google, Apple and Facebook (issue 4), against the contract in `docs/AUTH.md`:
//! the web flow (start → provider → callback → session cookie → access token), Apple's
//! `form_post`, the app flow (one-time code + PKCE), native SDK tokens, linking, account
//! conflicts, admins by verified e-mail, sign-out everywhere, account deletion, and provider
//! failures; and the attacks of issue 12 item 1: a callback finished in another browser
//! (login CSRF) and a link flow handed to an admin (link CSRF). The providers are the loopback peers of `peers.rs`: two OIDC providers (one
//! configured as Google, one as Apple) and the Facebook Graph fake.
//!
//! Each test starts its own server and peers: the peers' claims, next user and failure mode
//! are process-wide state, so two tests sharing a peer would race.
//!
//! Not tested here: `flow_expired` (a flow lives 10 minutes; unit-tested in src/).
//!
//! Every harness server has `public_url = http://127.0.0.1:1`, so a provider sends the
//! browser back to a URL on that dead port; the test client plays the browser and sends the
//! path and query of that URL to the real server instead (`local`).

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use reqwest::blocking::RequestBuilder;
use reqwest::{Method, Url};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use testkit::process::run_ok;

use crate::harness::clock::now;
use crate::harness::http::{no_redirect_client, Resp};
use crate::harness::server::Server;
use crate::harness::threads::join;
use crate::harness::users::{unique_email, User};
use crate::peers::{FacebookPeer, OidcPeer};

const GOOGLE_ID: &str = "google-web-client";
const GOOGLE_SECRET: &str = "google-web-secret";
const GOOGLE_IOS: &str = "ios-client";
const APPLE_ID: &str = "com.example.cinegate.web";
const APPLE_NATIVE: &str = "com.example.cinegate";
const APPLE_TEAM: &str = "TEAM123456";
const APPLE_KEY_ID: &str = "KEY1234567";
/// Not numeric on purpose: see `provider_list_follows_the_configuration` for a numeric one.
const FB_APP: &str = "fb-app-4242";
const FB_SECRET: &str = "fb-app-secret";
const APP_URI: &str = "cinegate-test://auth";
const BOSS: &str = "boss@example.com";
/// `CINEGATE_PUBLIC_URL` of every harness server.
const PUBLIC: &str = "http://127.0.0.1:1";
const SESSION_COOKIE: &str = "cinegate_session";
/// Set by `/start` (and the link POST); the callback needs it (the flow's browser binding).
const PREAUTH_COOKIE: &str = "cinegate_preauth";
const XRW: &str = "X-Requested-With";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A fresh provider subject (or any unique tag).
fn uniq(tag: &str) -> String {
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

/// base64url without padding (RFC 4648 §5), for PKCE challenges.
fn b64url(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn s256(verifier: &str) -> String {
    b64url(&Sha256::digest(verifier.as_bytes()))
}

/// (code_verifier, S256 code_challenge); the verifier is 64 hex digits (RFC 7636 charset).
fn pkce() -> (String, String) {
    let verifier = hex::encode(Sha256::digest(uniq("verifier").as_bytes()));
    let challenge = s256(&verifier);
    (verifier, challenge)
}

/// `a` with the fields of `b` set over it (both JSON objects).
fn merged(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

fn query(pairs: &[(&str, &str)]) -> String {
    Url::parse_with_params("http://x/", pairs)
        .expect("query")
        .query()
        .unwrap_or("")
        .to_string()
}

fn param(url: &Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Path and query of a URL (on `public_url`), to send to the real server.
fn local(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

fn location(r: &Resp) -> &str {
    r.header("location")
        .unwrap_or_else(|| panic!("no Location: {}", r.brief()))
}

/// A redirect to a local path, relative or on `public_url`.
fn assert_goes_to(r: &Resp, path: &str, what: &str) {
    let loc = location(r);
    assert!(
        loc == path || loc == format!("{PUBLIC}{path}"),
        "{what}: Location {loc:?}, expected {path}"
    );
}

/// The `Set-Cookie` header that sets `name`, if any.
fn set_cookie<'r>(r: &'r Resp, name: &str) -> Option<&'r str> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .find(|v| v.trim_start().starts_with(&format!("{name}=")))
}

fn cookie_attrs(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

// ---------------------------------------------------------------------------------------
// The environment: a server with all three providers pointed at loopback peers
// ---------------------------------------------------------------------------------------

struct Env {
    server: Server,
    google: OidcPeer,
    apple: OidcPeer,
    facebook: FacebookPeer,
    /// Lists the users, to prove that a refusal stored nothing.
    admin: User,
    _keys: tempfile::TempDir,
}

impl Env {
    fn start(extra: &[(&str, &str)]) -> Env {
        let (google, apple, facebook) = std::thread::scope(|sc| {
            let g = sc.spawn(OidcPeer::start);
            let a = sc.spawn(OidcPeer::start);
            let f = sc.spawn(|| FacebookPeer::start(FB_APP, FB_SECRET));
            (join(g), join(a), join(f))
        });

        // Apple's client secret is an ES256 JWT signed with this key; the peer checks it.
        let keys = tempfile::Builder::new()
            .prefix("cinegate-oauth-")
            .tempdir()
            .expect("tempdir");
        let p8 = keys.path().join("apple-signin.p8");
        run_ok(
            Command::new("openssl")
                .args(["genpkey", "-algorithm", "EC"])
                .args(["-pkeyopt", "ec_paramgen_curve:P-256", "-out"])
                .arg(&p8),
        );
        let public = run_ok(
            Command::new("openssl")
                .args(["pkey", "-pubout", "-in"])
                .arg(&p8),
        );
        apple.apple(json!({
            "public_key_pem": String::from_utf8_lossy(&public.stdout),
            "team_id": APPLE_TEAM,
            "client_id": APPLE_ID,
            "key_id": APPLE_KEY_ID,
        }));

        let g = google.issuer.clone();
        let a = apple.issuer.clone();
        let f = facebook.base.clone();
        let mut vars: Vec<(String, String)> = [
            ("ADMINS", format!("[\"{BOSS}\"]")),
            ("APP_REDIRECT_URIS", format!("[\"{APP_URI}\"]")),
            ("GOOGLE__CLIENT_ID", GOOGLE_ID.into()),
            ("GOOGLE__CLIENT_SECRET", GOOGLE_SECRET.into()),
            ("GOOGLE__NATIVE_CLIENT_IDS", format!("[\"{GOOGLE_IOS}\"]")),
            ("GOOGLE__ISSUER", g.clone()),
            ("GOOGLE__AUTHORIZE_URL", format!("{g}/authorize")),
            ("GOOGLE__TOKEN_URL", format!("{g}/token")),
            ("GOOGLE__JWKS_URL", format!("{g}/jwks")),
            ("APPLE__CLIENT_ID", APPLE_ID.into()),
            ("APPLE__NATIVE_CLIENT_IDS", format!("[\"{APPLE_NATIVE}\"]")),
            ("APPLE__TEAM_ID", APPLE_TEAM.into()),
            ("APPLE__KEY_ID", APPLE_KEY_ID.into()),
            ("APPLE__PRIVATE_KEY_FILE", p8.to_string_lossy().into_owned()),
            ("APPLE__ISSUER", a.clone()),
            ("APPLE__AUTHORIZE_URL", format!("{a}/authorize")),
            ("APPLE__TOKEN_URL", format!("{a}/token")),
            ("APPLE__JWKS_URL", format!("{a}/jwks")),
            ("FACEBOOK__APP_ID", FB_APP.into()),
            ("FACEBOOK__APP_SECRET", FB_SECRET.into()),
            ("FACEBOOK__AUTHORIZE_URL", format!("{f}/dialog/oauth")),
            ("FACEBOOK__TOKEN_URL", format!("{f}/oauth/access_token")),
            ("FACEBOOK__GRAPH_URL", f.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (format!("CINEGATE_AUTH__{k}"), v))
        .collect();
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let server = Server::start(&refs);
        let admin = server.user("oauth-admin", true);
        Env {
            server,
            google,
            apple,
            facebook,
            admin,
            _keys: keys,
        }
    }

    /// Who the provider signs in next: id_token claims (Google, Apple) or the Facebook user.
    fn next(&self, provider: &str, who: Value) {
        match provider {
            "google" => self.google.set_claims(who),
            "apple" => self.apple.set_claims(who),
            "facebook" => self.facebook.next_user(who),
            other => panic!("no peer for {other}"),
        }
    }

    fn user_count(&self) -> usize {
        self.server
            .get("/api/v1/admin/users", Some(&self.admin.access))
            .expect(200, "admin user list")
            .json()["users"]
            .as_array()
            .map(Vec::len)
            .expect("users array")
    }

    /// An ID token from the Google peer; `aud` defaults to the web client id.
    fn google_token(&self, claims: Value) -> String {
        self.google
            .mint(json!({ "claims": merged(json!({ "aud": GOOGLE_ID }), claims) }))
    }

    /// An ID token from the Apple peer; `aud` defaults to the app's bundle id.
    fn apple_token(&self, claims: Value) -> String {
        self.apple
            .mint(json!({ "claims": merged(json!({ "aud": APPLE_NATIVE }), claims) }))
    }
}

// ---------------------------------------------------------------------------------------
// A browser: cookie jar, redirects followed by hand
// ---------------------------------------------------------------------------------------

struct Browser<'a> {
    s: &'a Server,
    jar: BTreeMap<String, String>,
}

impl<'a> Browser<'a> {
    fn new(s: &'a Server) -> Self {
        Browser {
            s,
            jar: BTreeMap::new(),
        }
    }

    /// Sends to our server with the jar's cookies; keeps what it sets.
    fn send(&mut self, req: RequestBuilder) -> Resp {
        let req = if self.jar.is_empty() {
            req
        } else {
            let cookies: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req.header("Cookie", cookies.join("; "))
        };
        let r = self.s.exec(req);
        for (k, v) in &r.headers {
            if k.eq_ignore_ascii_case("set-cookie") {
                self.store(v);
            }
        }
        r
    }

    fn store(&mut self, set_cookie: &str) {
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
            return;
        };
        let cleared = value.trim().is_empty()
            || parts.any(|a| {
                let a = a.trim().to_ascii_lowercase();
                a == "max-age=0" || a.starts_with("max-age=-") || a.contains("1970")
            });
        if cleared {
            self.jar.remove(name.trim());
        } else {
            self.jar
                .insert(name.trim().to_string(), value.trim().to_string());
        }
    }

    fn get(&mut self, path: &str) -> Resp {
        let s = self.s;
        self.send(s.req(Method::GET, path))
    }

    fn session(&self) -> Option<String> {
        self.jar.get(SESSION_COOKIE).cloned()
    }

    /// `POST /api/v1/auth/session` as the console does.
    fn post_session(&mut self) -> Resp {
        let s = self.s;
        self.send(
            s.req(Method::POST, "/api/v1/auth/session")
                .header(XRW, "cinegate"),
        )
    }
}

/// `POST /api/v1/auth/session` with exactly this session cookie.
fn session_with(s: &Server, cookie: &str) -> Resp {
    s.exec(
        s.req(Method::POST, "/api/v1/auth/session")
            .header(XRW, "cinegate")
            .header("Cookie", format!("{SESSION_COOKIE}={cookie}")),
    )
}

/// A started web flow: cinegate's state and the provider URL it sent the browser to.
struct Flow {
    provider: String,
    state: String,
    authorize: Url,
}

fn flow_of(provider: &str, r: &Resp, what: &str) -> Flow {
    assert_eq!(r.status, 302, "{what}: {}", r.brief());
    let authorize = Url::parse(location(r)).unwrap_or_else(|e| panic!("{what}: Location: {e}"));
    let state = param(&authorize, "state")
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| panic!("{what}: no state in {authorize}"));
    Flow {
        provider: provider.to_string(),
        state,
        authorize,
    }
}

/// `GET /auth/{provider}/start?{query}` → 302 to the provider.
fn start(b: &mut Browser, provider: &str, query: &str) -> Flow {
    let path = if query.is_empty() {
        format!("/auth/{provider}/start")
    } else {
        format!("/auth/{provider}/start?{query}")
    };
    let r = b.get(&path);
    flow_of(provider, &r, &format!("GET {path}"))
}

/// The provider's half: its authorize endpoint answers at once with a 302 back to
/// `{public_url}/auth/{provider}/callback?code=…&state=…`; that URL.
fn authorize(s: &Server, flow: &Flow) -> Url {
    let r = s.exec(no_redirect_client().get(flow.authorize.as_str()));
    assert_eq!(
        r.status,
        302,
        "provider authorize {}: {}",
        flow.authorize,
        r.brief()
    );
    let back = Url::parse(location(&r)).expect("provider Location");
    let expected = format!("{PUBLIC}/auth/{}/callback", flow.provider);
    assert!(
        back.as_str().starts_with(&expected),
        "the provider sends the browser to {back}, expected {expected}"
    );
    back
}

/// Apple's `form_post` of the callback (code and state taken from the peer's redirect).
fn apple_post(b: &mut Browser, back: &Url, user: Option<&str>) -> Resp {
    let mut form = vec![
        ("code", param(back, "code").expect("code from the provider")),
        (
            "state",
            param(back, "state").expect("state from the provider"),
        ),
    ];
    if let Some(u) = user {
        form.push(("user", u.to_string()));
    }
    let s = b.s;
    b.send(s.req(Method::POST, "/auth/apple/callback").form(&form))
}

/// start → provider → callback; the callback's answer.
fn web_callback(s: &Server, b: &mut Browser, provider: &str, query: &str) -> Resp {
    let flow = start(b, provider, query);
    let back = authorize(s, &flow);
    callback_in(b, provider, &back)
}

/// `POST /auth/{provider}/link{query}` from a signed-in page (with the CSRF header).
fn link_post(b: &mut Browser, provider: &str, query: &str) -> Resp {
    let s = b.s;
    b.send(
        s.req(Method::POST, &format!("/auth/{provider}/link{query}"))
            .header(XRW, "cinegate"),
    )
}

/// The flow a link POST started: 200 `{"authorize_url"}`, never cached.
fn link_flow(provider: &str, r: &Resp, what: &str) -> Flow {
    r.expect(200, what);
    assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
    let v = r.json();
    let authorize = v["authorize_url"]
        .as_str()
        .and_then(|u| Url::parse(u).ok())
        .unwrap_or_else(|| panic!("{what}: no authorize_url in {v}"));
    let state = param(&authorize, "state").unwrap_or_else(|| panic!("{what}: {authorize}"));
    Flow {
        provider: provider.to_string(),
        state,
        authorize,
    }
}

/// The provider's redirect back, opened by `b`: Apple's as a form POST, others as a GET.
fn callback_in(b: &mut Browser, provider: &str, back: &Url) -> Resp {
    if provider == "apple" {
        apple_post(b, back, None)
    } else {
        b.get(&local(back))
    }
}

/// The 303 that ends a web sign-in, with its session cookie (HttpOnly, SameSite=Lax,
/// Path=/, not Secure on an http public_url).
fn expect_signed_in(r: &Resp, what: &str) {
    assert_eq!(r.status, 303, "{what}: {}", r.brief());
    let cookie = set_cookie(r, SESSION_COOKIE)
        .unwrap_or_else(|| panic!("{what}: no {SESSION_COOKIE} cookie: {:?}", r.headers));
    let attrs = cookie_attrs(cookie);
    for want in ["httponly", "samesite=lax", "path=/"] {
        assert!(
            attrs.iter().any(|a| a == want),
            "{what}: cookie without {want}: {cookie}"
        );
    }
    assert!(
        !attrs.iter().any(|a| a == "secure"),
        "{what}: Secure only when public_url is https: {cookie}"
    );
}

/// Session cookie → access token.
fn session_access(b: &mut Browser) -> String {
    let r = b.post_session();
    r.expect(200, "POST /api/v1/auth/session");
    let v = r.json();
    assert!(
        v["token_type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
        "token_type: {v}"
    );
    assert!(
        v["expires_in"].as_u64().is_some_and(|e| e > 0),
        "expires_in: {v}"
    );
    v["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

struct Web<'a> {
    browser: Browser<'a>,
    access: String,
    me: Value,
}

/// A whole web sign-in in a fresh browser as `who`; ends at `GET /api/v1/me`.
fn web_sign_in<'a>(env: &'a Env, provider: &str, who: Value) -> Web<'a> {
    env.next(provider, who);
    let s = &env.server;
    let mut browser = Browser::new(s);
    let done = web_callback(s, &mut browser, provider, "");
    expect_signed_in(&done, &format!("{provider} web callback"));
    assert_goes_to(&done, "/", "default return_to");
    let access = session_access(&mut browser);
    let me = me(s, &access);
    Web {
        browser,
        access,
        me,
    }
}

struct Pair {
    access: String,
    refresh: String,
}

fn pair_of(r: &Resp, what: &str) -> Pair {
    r.expect(200, what);
    let v = r.json();
    let get = |k: &str| {
        v[k].as_str()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| panic!("{what}: no {k} in {v}"))
            .to_string()
    };
    Pair {
        access: get("access_token"),
        refresh: get("refresh_token"),
    }
}

fn native(s: &Server, provider: &str, body: Value, bearer: Option<&str>) -> Resp {
    s.post(&format!("/api/v1/auth/{provider}/native"), bearer, body)
}

fn native_ok(s: &Server, provider: &str, body: Value, what: &str) -> (Pair, Value) {
    let pair = pair_of(&native(s, provider, body, None), what);
    let me = me(s, &pair.access);
    (pair, me)
}

fn me(s: &Server, access: &str) -> Value {
    s.get("/api/v1/me", Some(access))
        .expect(200, "GET /api/v1/me")
        .json()
}

/// The providers linked to an account, sorted.
fn providers_of(me: &Value) -> Vec<String> {
    let list = me["identities"]
        .as_array()
        .unwrap_or_else(|| panic!("/me without identities: {me}"));
    let mut out: Vec<String> = list
        .iter()
        .map(|i| {
            assert!(
                !i["linked_at"].is_null(),
                "identity without linked_at: {me}"
            );
            i["provider"].as_str().expect("provider").to_string()
        })
        .collect();
    out.sort();
    out
}

fn refresh(s: &Server, token: &str) -> Resp {
    s.post(
        "/api/v1/auth/refresh",
        None,
        json!({ "refresh_token": token }),
    )
}

fn exchange(s: &Server, body: Value) -> Resp {
    s.post("/api/v1/auth/exchange", None, body)
}

fn expect_2xx(r: &Resp, what: &str) {
    assert!((200..300).contains(&r.status), "{what}: {}", r.brief());
}

/// 401 `invalid_id_token` whose message names the failed check (one of `words`).
fn expect_id_token_refusal(r: &Resp, words: &[&str], what: &str) {
    r.expect_error(401, "invalid_id_token", what);
    let message = r.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_ascii_lowercase();
    assert!(
        words.iter().any(|w| message.contains(w)),
        "{what}: the message should say which check failed ({words:?}): {message:?}"
    );
}

/// The same JWS with one character of its signature changed (in the middle: the last
/// character may carry only padding bits).
fn tamper(token: &str) -> String {
    let (head, sig) = token.rsplit_once('.').expect("a JWS");
    let mut chars: Vec<char> = sig.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    format!("{head}.{}", chars.into_iter().collect::<String>())
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn pkce_helper_matches_rfc7636() {
    // RFC 7636, appendix B.
    assert_eq!(
        s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
    assert_eq!(b64url(b"f"), "Zg");
    assert_eq!(b64url(b"fo"), "Zm8");
    assert_eq!(b64url(b"foo"), "Zm9v");
}

#[test]
fn google_and_facebook_web_sign_in_end_with_a_session_cookie() {
    let env = Env::start(&[]);
    let s = &env.server;

    // The provider list: exactly the three configured, each with its start URL.
    let list = s
        .get("/api/v1/auth/providers", None)
        .expect(200, "providers")
        .json();
    let entries = list["providers"].as_array().expect("providers array");
    let mut ids: Vec<&str> = entries
        .iter()
        .map(|p| p["id"].as_str().unwrap_or(""))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["apple", "facebook", "google"], "{list}");
    for p in entries {
        let id = p["id"].as_str().unwrap_or("");
        assert_eq!(p["start_url"], format!("/auth/{id}/start"), "{list}");
        assert_eq!(p["native"], true, "{list}");
        assert!(p["name"].as_str().is_some_and(|n| !n.is_empty()), "{list}");
    }

    // Google, step by step.
    let sub = uniq("g-web");
    let email = unique_email("g-web");
    let who = json!({ "sub": sub, "email": email, "email_verified": true });
    env.google.set_claims(who.clone());
    let mut b = Browser::new(s);
    let flow = start(&mut b, "google", "return_to=/console");
    let url = &flow.authorize;
    assert!(
        url.as_str()
            .starts_with(&format!("{}/authorize?", env.google.issuer)),
        "start goes to the configured authorize_url: {url}"
    );
    let q = |k: &str| param(url, k);
    assert_eq!(q("client_id").as_deref(), Some(GOOGLE_ID), "{url}");
    assert_eq!(
        q("redirect_uri"),
        Some(format!("{PUBLIC}/auth/google/callback")),
        "{url}"
    );
    assert_eq!(q("response_type").as_deref(), Some("code"), "{url}");
    assert_eq!(q("code_challenge_method").as_deref(), Some("S256"), "{url}");
    assert_eq!(
        q("code_challenge").map(|c| c.len()),
        Some(43),
        "an S256 challenge is 43 base64url characters: {url}"
    );
    assert!(q("nonce").is_some_and(|n| n.len() >= 16), "nonce: {url}");
    assert!(flow.state.len() >= 16, "state: {url}");
    assert!(
        q("scope").is_some_and(|sc| sc.split(' ').any(|x| x == "openid")),
        "scope openid: {url}"
    );
    let back = authorize(s, &flow);
    let done = b.get(&local(&back));
    expect_signed_in(&done, "Google callback");
    assert_goes_to(&done, "/console", "return_to");

    // The cookie alone is not enough: the console must send X-Requested-With.
    let bare = b.s.req(Method::POST, "/api/v1/auth/session");
    b.send(bare)
        .expect_error(403, "csrf", "session without X-Requested-With");
    let wrong =
        b.s.req(Method::POST, "/api/v1/auth/session")
            .header(XRW, "XMLHttpRequest");
    b.send(wrong)
        .expect_error(403, "csrf", "session with another X-Requested-With");
    Browser::new(s)
        .post_session()
        .expect_error(401, "unauthenticated", "session without a cookie");

    let access = session_access(&mut b);
    let mine = me(s, &access);
    assert_eq!(providers_of(&mine), ["google"], "{mine}");
    assert_eq!(mine["email"], email, "{mine}");
    assert_eq!(mine["email_verified"], true, "{mine}");
    assert_eq!(mine["role"], "viewer", "{mine}");

    // The same identity signing in again (another browser) reaches the same account.
    let mut other = web_sign_in(&env, "google", who);
    assert_eq!(
        other.me["id"], mine["id"],
        "same (provider, subject), same account"
    );

    // Browser sign-out ends this session (the cookie is cleared), not the other one.
    let cookie = b.session().expect("session cookie");
    let out = b.send(
        s.req(Method::DELETE, "/api/v1/auth/session")
            .header(XRW, "cinegate"),
    );
    expect_2xx(&out, "DELETE /api/v1/auth/session");
    assert!(
        b.session().is_none(),
        "sign-out clears the cookie: {:?}",
        out.headers
    );
    session_with(s, &cookie).expect_error(401, "unauthenticated", "a signed-out session");
    other
        .browser
        .post_session()
        .expect(200, "the other browser's session");

    // Facebook, step by step, with an e-mail Facebook does not vouch for.
    let fb_id = uniq("fb-web");
    let fb_email = unique_email("fb-web");
    env.facebook
        .next_user(json!({ "id": fb_id, "name": "Fay Book", "email": fb_email }));
    let mut fb = Browser::new(s);
    let flow = start(&mut fb, "facebook", "");
    let url = &flow.authorize;
    assert!(
        url.as_str()
            .starts_with(&format!("{}/dialog/oauth?", env.facebook.base)),
        "{url}"
    );
    assert_eq!(param(url, "client_id").as_deref(), Some(FB_APP), "{url}");
    assert_eq!(
        param(url, "redirect_uri"),
        Some(format!("{PUBLIC}/auth/facebook/callback")),
        "{url}"
    );
    assert_eq!(
        param(url, "code_challenge_method").as_deref(),
        Some("S256"),
        "{url}"
    );
    let back = authorize(s, &flow);
    let done = fb.get(&local(&back));
    expect_signed_in(&done, "Facebook callback");
    assert_goes_to(&done, "/", "default return_to");
    let fb_me = me(s, &session_access(&mut fb));
    assert_eq!(providers_of(&fb_me), ["facebook"], "{fb_me}");
    assert_eq!(fb_me["email"], fb_email, "{fb_me}");
    assert_eq!(
        fb_me["email_verified"], false,
        "Facebook e-mails are not verified: {fb_me}"
    );
    assert_eq!(fb_me["name"], "Fay Book", "{fb_me}");
    assert_ne!(fb_me["id"], mine["id"]);

    // The user declines at Facebook.
    env.facebook.next_user(json!({ "deny": true }));
    let mut declined = Browser::new(s);
    let flow = start(&mut declined, "facebook", "");
    let back = authorize(s, &flow);
    assert_eq!(
        param(&back, "error").as_deref(),
        Some("access_denied"),
        "{back}"
    );
    declined
        .get(&local(&back))
        .expect_error(401, "sign_in_cancelled", "Facebook access_denied");
    assert!(declined.session().is_none(), "no session after a cancel");
}

#[test]
fn web_callback_refusals_store_nothing() {
    let env = Env::start(&[]);
    let s = &env.server;
    let users = env.user_count();

    // Bad start parameters.
    let mut b = Browser::new(s);
    b.get("/auth/unknown/start")
        .expect_error(404, "unknown_provider", "unknown provider");
    b.get("/auth/google/start?mode=sideways")
        .expect_error(400, "invalid_request", "bad mode");
    for bad in ["https://evil.example/", "//evil.example/x"] {
        b.get(&format!(
            "/auth/google/start?{}",
            query(&[("return_to", bad)])
        ))
        .expect_error(400, "invalid_request", &format!("return_to {bad}"));
    }
    native(s, "unknown", json!({ "id_token": "x" }), None).expect_error(
        404,
        "unknown_provider",
        "native, unknown provider",
    );

    let sub = uniq("refusals");
    env.google.set_claims(json!({ "sub": sub }));
    let flow = start(&mut b, "google", "");
    let back = authorize(s, &flow);
    let code = param(&back, "code").expect("code");

    // Wrong and missing state (the real flow stays usable).
    let cb = |pairs: &[(&str, &str)]| format!("/auth/google/callback?{}", query(pairs));
    b.get(&cb(&[("code", &code), ("state", "not-a-state")]))
        .expect_error(400, "invalid_state", "unknown state");
    b.get(&cb(&[("code", &code)]))
        .expect_error(400, "invalid_state", "missing state");
    assert!(b.session().is_none());
    assert_eq!(env.user_count(), users, "refused callbacks stored a user");

    // The real callback works once; replaying it is refused.
    let done = b.get(&local(&back));
    expect_signed_in(&done, "the genuine callback");
    let mine = me(s, &session_access(&mut b));
    assert_eq!(providers_of(&mine), ["google"]);
    assert_eq!(env.user_count(), users + 1);
    Browser::new(s)
        .get(&local(&back))
        .expect_error(400, "invalid_state", "replayed callback");

    // A used code with a fresh state: the provider refuses it (cinegate passes that on).
    let mut c = Browser::new(s);
    let fresh = start(&mut c, "google", "");
    c.get(&cb(&[("code", &code), ("state", &fresh.state)]))
        .expect_error(401, "provider_rejected", "a used code");

    // PKCE: flow A's code redeemed under flow B's state (and so B's verifier).
    let mut d = Browser::new(s);
    let flow_a = start(&mut d, "google", "");
    let code_a = param(&authorize(s, &flow_a), "code").expect("code A");
    let flow_b = start(&mut d, "google", "");
    d.get(&cb(&[("code", &code_a), ("state", &flow_b.state)]))
        .expect_error(401, "provider_rejected", "PKCE verifier of another flow");

    // A Google state at the Facebook callback.
    let mut e = Browser::new(s);
    let google_flow = start(&mut e, "google", "");
    e.get(&format!(
        "/auth/facebook/callback?{}",
        query(&[("code", "x"), ("state", &google_flow.state)])
    ))
    .expect_error(400, "invalid_state", "a state from another provider");

    // A known state without a code; the provider's error return.
    let mut f = Browser::new(s);
    let flow = start(&mut f, "google", "");
    f.get(&cb(&[("state", &flow.state)]))
        .expect_error(400, "invalid_request", "missing code");
    let flow = start(&mut f, "google", "");
    f.get(&cb(&[("error", "access_denied"), ("state", &flow.state)]))
        .expect_error(401, "sign_in_cancelled", "the user declined");

    // (flow_expired needs a 10-minute-old flow: unit-tested in src/, not here.)

    assert_eq!(
        env.user_count(),
        users + 1,
        "only the genuine callback stored a user"
    );
    for x in [&c, &d, &e, &f] {
        assert!(
            x.session().is_none(),
            "a refused callback set a session cookie"
        );
    }
    // The account made by the genuine callback is whole: one identity.
    let again = web_sign_in(&env, "google", json!({ "sub": sub }));
    assert_eq!(again.me["id"], mine["id"]);
    assert_eq!(providers_of(&again.me), ["google"]);
}

#[test]
fn apple_web_flow_posts_the_form_and_keeps_the_first_name() {
    let env = Env::start(&[]);
    let s = &env.server;
    let sub = uniq("apple-web");
    let email = unique_email("apple-web");
    let who = json!({ "sub": sub, "email": email, "email_verified": true });
    env.apple.set_claims(who.clone());

    let mut b = Browser::new(s);
    let flow = start(&mut b, "apple", "");
    let url = &flow.authorize;
    assert!(
        url.as_str()
            .starts_with(&format!("{}/authorize?", env.apple.issuer)),
        "{url}"
    );
    assert_eq!(
        param(url, "response_mode").as_deref(),
        Some("form_post"),
        "{url}"
    );
    assert_eq!(param(url, "client_id").as_deref(), Some(APPLE_ID), "{url}");
    assert_eq!(
        param(url, "redirect_uri"),
        Some(format!("{PUBLIC}/auth/apple/callback")),
        "{url}"
    );
    assert_eq!(
        param(url, "code_challenge_method").as_deref(),
        Some("S256"),
        "{url}"
    );
    assert!(param(url, "nonce").is_some_and(|n| !n.is_empty()), "{url}");

    let back = authorize(s, &flow);
    let calls = env.apple.token_calls();
    let user = json!({ "name": { "firstName": "Ada", "lastName": "L" }, "email": email });
    let done = apple_post(&mut b, &back, Some(&user.to_string()));
    expect_signed_in(&done, "Apple form_post callback");
    assert_eq!(
        env.apple.token_calls(),
        calls + 1,
        "one code exchange at Apple"
    );
    let first = me(s, &session_access(&mut b));
    assert_eq!(providers_of(&first), ["apple"], "{first}");
    assert_eq!(first["email"], email, "{first}");
    let name = first["name"].as_str().unwrap_or("");
    assert!(name.contains("Ada"), "the first-time name is kept: {first}");

    // Apple sends the name only once: a later sign-in without `user` keeps it.
    let again = web_sign_in(&env, "apple", who);
    assert_eq!(again.me["id"], first["id"]);
    assert_eq!(again.me["name"], first["name"], "{}", again.me);

    // An Apple error return (GET with error=…).
    let mut c = Browser::new(s);
    let flow = start(&mut c, "apple", "");
    c.get(&format!(
        "/auth/apple/callback?{}",
        query(&[
            ("error", "user_cancelled_authorize"),
            ("state", &flow.state)
        ])
    ))
    .expect_error(401, "sign_in_cancelled", "Apple error return");
}

/// Runs an app-mode flow for whoever the Google peer signs in next; the final redirect.
fn app_flow(s: &Server, app_state: &str, challenge: Option<&str>) -> Resp {
    let mut pairs = vec![
        ("mode", "app"),
        ("redirect_uri", APP_URI),
        ("state", app_state),
    ];
    if let Some(c) = challenge {
        pairs.push(("code_challenge", c));
        pairs.push(("code_challenge_method", "S256"));
    }
    let mut b = Browser::new(s);
    web_callback(s, &mut b, "google", &query(&pairs))
}

/// The app redirect at the end of an app flow: `{APP_URI}?…&state=S`.
fn app_redirect(r: &Resp, app_state: &str, what: &str) -> Url {
    assert!(matches!(r.status, 302 | 303), "{what}: {}", r.brief());
    let loc = location(r);
    assert!(
        loc.starts_with(&format!("{APP_URI}?")),
        "{what}: Location {loc}"
    );
    let url = Url::parse(loc).unwrap_or_else(|e| panic!("{what}: {loc}: {e}"));
    assert_eq!(
        param(&url, "state").as_deref(),
        Some(app_state),
        "{what}: {loc}"
    );
    for secret in ["access_token", "refresh_token", "id_token"] {
        assert!(
            param(&url, secret).is_none(),
            "{what}: tokens never travel in a URL: {loc}"
        );
    }
    url
}

fn app_code(s: &Server, challenge: Option<&str>) -> String {
    let app_state = uniq("app-state");
    let r = app_flow(s, &app_state, challenge);
    assert_eq!(r.status, 303, "app flow: {}", r.brief());
    let url = app_redirect(&r, &app_state, "app flow");
    param(&url, "code").expect("code")
}

#[test]
fn app_mode_hands_the_app_a_one_time_code() {
    let env = Env::start(&[]);
    let s = &env.server;
    let email = unique_email("app");
    env.google
        .set_claims(json!({ "sub": uniq("app"), "email": email, "email_verified": true }));

    let (verifier, challenge) = pkce();
    let r = app_flow(s, "S-app-1", Some(&challenge));
    assert_eq!(r.status, 303, "app flow: {}", r.brief());
    assert!(
        set_cookie(&r, SESSION_COOKIE).is_none(),
        "the app flow sets no browser session: {:?}",
        r.headers
    );
    let url = app_redirect(&r, "S-app-1", "app flow");
    let code = param(&url, "code").expect("code");

    // The in-app browser keeps the pre-auth cookie from start to callback; the same
    // callback opened in another browser is refused (no redirect, no code for the app)
    // and cancels the flow; the app's browser then starts again and finishes.
    let mut app_browser = Browser::new(s);
    let app_q = query(&[
        ("mode", "app"),
        ("redirect_uri", APP_URI),
        ("state", "S-elsewhere"),
    ]);
    let flow = start(&mut app_browser, "google", &app_q);
    let back = authorize(s, &flow);
    let r = Browser::new(s).get(&local(&back));
    r.expect_error(400, "invalid_state", "app callback in another browser");
    assert!(r.header("location").is_none(), "{:?}", r.headers);
    app_browser.get(&local(&back)).expect_error(
        400,
        "invalid_state",
        "the cancelled flow in the app's browser",
    );
    let flow = start(&mut app_browser, "google", &app_q);
    let back = authorize(s, &flow);
    let r = app_browser.get(&local(&back));
    let url = app_redirect(&r, "S-elsewhere", "app callback in the app's browser");
    assert!(param(&url, "code").is_some(), "{url}");
    let pair = pair_of(
        &exchange(s, json!({ "code": code, "code_verifier": verifier })),
        "exchange",
    );
    let mine = me(s, &pair.access);
    assert_eq!(providers_of(&mine), ["google"], "{mine}");
    assert_eq!(mine["email"], email);
    refresh(s, &pair.refresh).expect(200, "the app's refresh token");
    exchange(s, json!({ "code": code, "code_verifier": verifier })).expect_error(
        400,
        "invalid_code",
        "a code works once",
    );

    // The code is bound to the challenge.
    let (other_verifier, _) = pkce();
    let code = app_code(s, Some(&challenge));
    exchange(s, json!({ "code": code, "code_verifier": other_verifier })).expect_error(
        400,
        "invalid_code",
        "wrong code_verifier",
    );
    let code = app_code(s, Some(&challenge));
    exchange(s, json!({ "code": code })).expect_error(400, "invalid_code", "code_verifier missing");
    exchange(
        s,
        json!({ "code": "no-such-code", "code_verifier": verifier }),
    )
    .expect_error(400, "invalid_code", "unknown code");

    // Without a challenge, the code alone is enough; same identity, same account.
    let code = app_code(s, None);
    let plain = pair_of(
        &exchange(s, json!({ "code": code })),
        "exchange without PKCE",
    );
    assert_eq!(me(s, &plain.access)["id"], mine["id"]);

    // The redirect URI must be listed, exactly.
    for bad in [
        "evil://auth",
        "cinegate-test://auth/x",
        "cinegate-test://auth?x=1",
    ] {
        let path = format!(
            "/auth/google/start?{}",
            query(&[("mode", "app"), ("redirect_uri", bad), ("state", "S")])
        );
        Browser::new(s)
            .get(&path)
            .expect_error(400, "invalid_redirect_uri", bad);
    }

    // Once the flow is known, failures go back to the app as ?error=CODE&state=S.
    let mut b = Browser::new(s);
    let app_q = query(&[
        ("mode", "app"),
        ("redirect_uri", APP_URI),
        ("state", "S-bad"),
    ]);
    let flow = start(&mut b, "google", &app_q);
    let r = b.get(&format!(
        "/auth/google/callback?{}",
        query(&[("code", "made-up-code"), ("state", &flow.state)])
    ));
    let url = app_redirect(&r, "S-bad", "provider refused the code");
    assert_eq!(
        param(&url, "error").as_deref(),
        Some("provider_rejected"),
        "{url}"
    );
    let app_q = query(&[
        ("mode", "app"),
        ("redirect_uri", APP_URI),
        ("state", "S-no"),
    ]);
    let flow = start(&mut b, "google", &app_q);
    let r = b.get(&format!(
        "/auth/google/callback?{}",
        query(&[("error", "access_denied"), ("state", &flow.state)])
    ));
    let url = app_redirect(&r, "S-no", "the user declined");
    assert_eq!(
        param(&url, "error").as_deref(),
        Some("sign_in_cancelled"),
        "{url}"
    );
}

#[test]
fn native_id_tokens_are_verified_before_anything_is_stored() {
    let env = Env::start(&[]);
    let s = &env.server;
    let users = env.user_count();

    // A good token signs in, creating the account; the JWKS is cached after that.
    let sub = uniq("native");
    let email = unique_email("native");
    let who = json!({ "sub": sub, "email": email, "email_verified": true });
    let (first, mine) = native_ok(
        s,
        "google",
        json!({ "id_token": env.google_token(who.clone()) }),
        "good Google ID token",
    );
    assert_eq!(providers_of(&mine), ["google"], "{mine}");
    assert_eq!(mine["email"], email, "{mine}");
    assert_eq!(mine["email_verified"], true, "{mine}");
    assert_eq!(mine["role"], "viewer", "{mine}");
    refresh(s, &first.refresh).expect(200, "refresh a native sign-in");
    let jwks = env.google.jwks_calls();
    assert!(jwks >= 1, "the JWKS was fetched");
    let (_, again) = native_ok(
        s,
        "google",
        json!({ "id_token": env.google_token(who) }),
        "second sign-in",
    );
    assert_eq!(again["id"], mine["id"]);
    assert_eq!(
        env.google.jwks_calls(),
        jwks,
        "the second sign-in used the cached JWKS"
    );
    assert_eq!(env.user_count(), users + 1);

    // Refusals, all for an identity that does not exist yet.
    let bad_sub = uniq("never");
    let bad = json!({ "sub": bad_sub, "email": unique_email("never"), "email_verified": true });
    let claims = |extra: Value| merged(merged(json!({ "aud": GOOGLE_ID }), bad.clone()), extra);
    let t = now();
    let cases: Vec<(&str, String, Value, &[&str])> = vec![
        (
            "wrong aud",
            env.google
                .mint(json!({ "claims": claims(json!({ "aud": "someone-else" })) })),
            json!({}),
            &["aud"],
        ),
        (
            "wrong iss",
            env.google
                .mint(json!({ "claims": claims(json!({ "iss": env.apple.issuer })) })),
            json!({}),
            &["iss"],
        ),
        (
            "expired",
            env.google
                .mint(json!({ "claims": claims(json!({})), "expires_in": -3600 })),
            json!({}),
            &["exp"],
        ),
        (
            "bad signature",
            tamper(&env.google.mint(json!({ "claims": claims(json!({})) }))),
            json!({}),
            &["signature"],
        ),
        (
            "signed by another provider's rs1",
            env.apple
                .mint(json!({ "claims": claims(json!({ "iss": env.google.issuer })) })),
            json!({}),
            &["signature"],
        ),
        (
            "alg none",
            env.google
                .mint(json!({ "claims": claims(json!({})), "alg_none": true })),
            json!({}),
            &["alg", "signed"],
        ),
        (
            "HS256 keyed with the public key",
            env.google
                .mint(json!({ "claims": claims(json!({})), "hs256_with_public_key": true })),
            json!({}),
            &["alg"],
        ),
        (
            "ES256 by a published key (alg is pinned to RS256)",
            env.google
                .mint(json!({ "claims": claims(json!({})), "kid": "es1" })),
            json!({}),
            &["alg"],
        ),
        (
            "nonce differs",
            env.google
                .mint(json!({ "claims": claims(json!({ "nonce": "nonce-in-token" })) })),
            json!({ "nonce": "nonce-in-body" }),
            &["nonce"],
        ),
        (
            "body sends a nonce, the token has none",
            env.google.mint(json!({ "claims": claims(json!({})) })),
            json!({ "nonce": "nonce-in-body" }),
            &["nonce"],
        ),
        (
            "the token has a nonce, the body none",
            env.google
                .mint(json!({ "claims": claims(json!({ "nonce": "nonce-in-token" })) })),
            json!({}),
            &["nonce"],
        ),
        (
            "issued in the future (iat)",
            env.google
                .mint(json!({ "claims": claims(json!({ "iat": t + 3600, "exp": t + 7200 })) })),
            json!({}),
            &["iat", "future", "issued"],
        ),
        ("not a JWT", "not-a-jwt".to_string(), json!({}), &[""]),
    ];
    for (what, token, extra, words) in cases {
        let r = native(
            s,
            "google",
            merged(json!({ "id_token": token }), extra),
            None,
        );
        expect_id_token_refusal(&r, words, what);
    }

    // Unknown kid: refused; the JWKS is fetched again at most once a minute.
    let jwks = env.google.jwks_calls();
    for _ in 0..2 {
        let token = env
            .google
            .mint(json!({ "claims": claims(json!({})), "kid": "rogue" }));
        let r = native(s, "google", json!({ "id_token": token }), None);
        expect_id_token_refusal(&r, &["kid", "key"], "unknown kid");
    }
    let refetches = env.google.jwks_calls() - jwks;
    assert!(
        refetches <= 1,
        "{refetches} JWKS fetches for two unknown kids"
    );

    assert_eq!(env.user_count(), users + 1, "a refused token stored a user");
    // The refused identity signs in properly now: a fresh account with one identity.
    let (_, fresh) = native_ok(
        s,
        "google",
        json!({ "id_token": env.google.mint(json!({ "claims": claims(json!({})) })) }),
        "the refused identity, properly",
    );
    assert_ne!(fresh["id"], mine["id"]);
    assert_eq!(providers_of(&fresh), ["google"]);
    assert_eq!(env.user_count(), users + 2);

    // Also accepted: a native client id as aud; a nonce that matches.
    let ios = json!({ "sub": uniq("ios"), "aud": GOOGLE_IOS });
    native_ok(
        s,
        "google",
        json!({ "id_token": env.google_token(ios) }),
        "aud ios-client",
    );
    let nonce = uniq("nonce");
    let with_nonce = json!({ "sub": uniq("nonce"), "nonce": nonce });
    native_ok(
        s,
        "google",
        json!({ "id_token": env.google_token(with_nonce), "nonce": nonce }),
        "matching nonce",
    );

    // Apple: the SDK puts SHA-256(nonce) in hex in the token; the body has the raw nonce.
    let apple_sub = uniq("apple-native");
    let raw = uniq("raw-nonce");
    let hashed = hex::encode(Sha256::digest(raw.as_bytes()));
    let token = env.apple_token(json!({ "sub": apple_sub, "nonce": hashed }));
    let (_, apple_me) = native_ok(
        s,
        "apple",
        json!({ "id_token": token, "nonce": raw, "name": "Grace H" }),
        "Apple, hashed nonce",
    );
    assert_eq!(providers_of(&apple_me), ["apple"], "{apple_me}");
    assert_eq!(
        apple_me["name"], "Grace H",
        "name kept when the account is made"
    );
    // Later sign-ins do not rename the account; the Services ID is an accepted aud too.
    let token = env.apple_token(json!({ "sub": apple_sub, "aud": APPLE_ID }));
    let (_, apple_again) = native_ok(
        s,
        "apple",
        json!({ "id_token": token, "name": "Somebody Else" }),
        "Apple, aud = Services ID",
    );
    assert_eq!(apple_again["id"], apple_me["id"]);
    assert_eq!(apple_again["name"], "Grace H", "{apple_again}");
    // A Google token is no Apple token.
    let token = env.google_token(json!({ "sub": uniq("cross") }));
    let r = native(s, "apple", json!({ "id_token": token }), None);
    r.expect_error(401, "invalid_id_token", "a Google token at Apple");
}

#[test]
fn facebook_native_tokens_are_checked_with_graph() {
    let env = Env::start(&[]);
    let s = &env.server;
    let fb = &env.facebook;
    let users = env.user_count();

    let fid = uniq("fb-native");
    let email = unique_email("fb-native");
    let token = uniq("EAAgood");
    let user = json!({ "id": fid, "name": "Fred N", "email": email });
    fb.register_token(json!({ "access_token": token, "app_id": FB_APP, "user": user }));
    let (pair, mine) = native_ok(s, "facebook", json!({ "access_token": token }), "Facebook");
    assert_eq!(providers_of(&mine), ["facebook"], "{mine}");
    assert_eq!(mine["email"], email, "{mine}");
    assert_eq!(mine["email_verified"], false, "{mine}");
    assert_eq!(mine["name"], "Fred N", "{mine}");
    refresh(s, &pair.refresh).expect(200, "refresh");
    let (_, again) = native_ok(s, "facebook", json!({ "access_token": token }), "again");
    assert_eq!(again["id"], mine["id"]);
    assert_eq!(env.user_count(), users + 1);

    // Refusals.
    let stranger = json!({ "id": uniq("fb-stranger"), "name": "S" });
    let other_app = uniq("EAAother");
    fb.register_token(
        json!({ "access_token": other_app, "app_id": "another-app", "user": stranger }),
    );
    native(s, "facebook", json!({ "access_token": other_app }), None).expect_error(
        401,
        "invalid_provider_token",
        "a token issued to another app",
    );
    native(
        s,
        "facebook",
        json!({ "access_token": "EAAnonsense" }),
        None,
    )
    .expect_error(401, "invalid_provider_token", "an unknown token");
    let revoked = uniq("EAArevoked");
    fb.register_token(
        json!({ "access_token": revoked, "app_id": FB_APP, "user": stranger, "valid": false }),
    );
    native(s, "facebook", json!({ "access_token": revoked }), None).expect_error(
        401,
        "invalid_provider_token",
        "an invalidated token",
    );
    let expired = uniq("EAAexpired");
    fb.register_token(json!({
        "access_token": expired, "app_id": FB_APP, "user": stranger, "expires_at": now() - 60
    }));
    native(s, "facebook", json!({ "access_token": expired }), None).expect_error(
        401,
        "invalid_provider_token",
        "an expired token",
    );
    assert_eq!(env.user_count(), users + 1, "a refused token stored a user");

    // A Facebook e-mail never makes an admin and never claims the e-mail index.
    let boss = uniq("EAAboss");
    let fake_boss = json!({ "id": uniq("fb-boss"), "name": "Not The Boss", "email": BOSS });
    fb.register_token(json!({ "access_token": boss, "app_id": FB_APP, "user": fake_boss }));
    let (_, not_boss) = native_ok(
        s,
        "facebook",
        json!({ "access_token": boss }),
        "boss e-mail",
    );
    assert_eq!(not_boss["role"], "viewer", "{not_boss}");

    let taken = unique_email("fb-taken");
    s.cli(&["user", "create", &taken]);
    let tok = uniq("EAAtaken");
    let taker = json!({ "id": uniq("fb-taken"), "name": "T", "email": taken });
    fb.register_token(json!({ "access_token": tok, "app_id": FB_APP, "user": taker }));
    let (_, separate) = native_ok(
        s,
        "facebook",
        json!({ "access_token": tok }),
        "taken e-mail",
    );
    assert_eq!(providers_of(&separate), ["facebook"]);
    let link = s.login_link_token(&taken);
    let owner = pair_of(
        &s.post("/api/v1/auth/link", None, json!({ "token": link })),
        "link",
    );
    let owner_me = me(s, &owner.access);
    assert_ne!(
        owner_me["id"], separate["id"],
        "an unverified e-mail reaches no one's account"
    );
    assert!(providers_of(&owner_me).is_empty(), "{owner_me}");
}

#[test]
fn linking_account_conflicts_and_admins() {
    let env = Env::start(&[]);
    let s = &env.server;
    let gtoken = |claims: Value| json!({ "id_token": env.google_token(claims) });

    // A signed-in user links Google natively; that Google identity then signs into them.
    let alice = s.user("alice", false);
    let g_alice = uniq("g-alice");
    let r = native(
        s,
        "google",
        gtoken(json!({ "sub": g_alice })),
        Some(&alice.access),
    );
    r.expect(200, "link Google");
    assert_eq!(r.json(), json!({ "linked": "google" }));
    assert_eq!(providers_of(&me(s, &alice.access)), ["google"]);
    let (_, via_google) = native_ok(s, "google", gtoken(json!({ "sub": g_alice })), "linked");
    assert_eq!(
        via_google["id"],
        alice.id.as_str(),
        "the linked identity signs into alice"
    );

    // That identity cannot be linked to someone else.
    let bob = s.user("bob", false);
    native(
        s,
        "google",
        gtoken(json!({ "sub": g_alice })),
        Some(&bob.access),
    )
    .expect_error(409, "identity_in_use", "alice's Google identity for bob");
    assert!(providers_of(&me(s, &bob.access)).is_empty());

    // A new identity whose verified e-mail belongs to an existing account: 409, nothing
    // stored; signed in to that account, the user links it, and it signs in there.
    let carol = unique_email("carol");
    s.cli(&["user", "create", &carol]);
    let users = env.user_count();
    let g_carol = uniq("g-carol");
    let carol_claims = json!({ "sub": g_carol, "email": carol, "email_verified": true });
    native(s, "google", gtoken(carol_claims.clone()), None).expect_error(
        409,
        "account_exists",
        "verified e-mail of another account",
    );
    assert_eq!(env.user_count(), users, "account_exists stored a user");
    let link = s.login_link_token(&carol);
    let carol_pair = pair_of(
        &s.post("/api/v1/auth/link", None, json!({ "token": link })),
        "link",
    );
    let carol_id = me(s, &carol_pair.access)["id"].clone();
    native(
        s,
        "google",
        gtoken(carol_claims.clone()),
        Some(&carol_pair.access),
    )
    .expect(200, "carol links her Google identity");
    let (_, as_carol) = native_ok(s, "google", gtoken(carol_claims), "carol via Google");
    assert_eq!(as_carol["id"], carol_id);
    // The same e-mail, unverified, claims nothing: a separate account.
    let unverified = json!({ "sub": uniq("g-carol2"), "email": carol, "email_verified": false });
    let (_, other) = native_ok(s, "google", gtoken(unverified), "unverified e-mail");
    assert_ne!(other["id"], carol_id);

    // Admins: only a verified e-mail on the list (the unverified one first, so it cannot
    // collide with the verified one's claim on the e-mail index).
    let fake = json!({ "sub": uniq("g-boss-unverified"), "email": BOSS, "email_verified": false });
    let (_, not_admin) = native_ok(s, "google", gtoken(fake), "unverified boss e-mail");
    assert_eq!(not_admin["role"], "viewer", "{not_admin}");
    let real = json!({ "sub": uniq("g-boss"), "email": BOSS, "email_verified": true });
    let (_, boss) = native_ok(s, "google", gtoken(real), "verified boss e-mail");
    assert_eq!(boss["role"], "admin", "{boss}");

    // Web linking: a POST from the signed-in page (session cookie and X-Requested-With)
    // answers the provider URL; the GET of old (`intent=link`) no longer links.
    let mut anon = Browser::new(s);
    link_post(&mut anon, "google", "").expect_error(
        401,
        "unauthenticated",
        "link without a session",
    );
    let fb_user = json!({ "id": uniq("fb-dave"), "name": "Dave" });
    let mut dave = web_sign_in(&env, "facebook", fb_user);
    let no_header = s.req(Method::POST, "/auth/google/link");
    dave.browser
        .send(no_header)
        .expect_error(403, "csrf", "link without X-Requested-With");
    dave.browser
        .get("/auth/google/start?intent=link")
        .expect_error(400, "invalid_request", "GET intent=link");
    link_post(&mut dave.browser, "google", "?return_to=//evil.example").expect_error(
        400,
        "invalid_request",
        "link with a foreign return_to",
    );
    let g_dave = uniq("g-dave");
    env.google.set_claims(json!({ "sub": g_dave }));
    let r = link_post(&mut dave.browser, "google", "?return_to=/console");
    assert!(
        set_cookie(&r, PREAUTH_COOKIE).is_some(),
        "the link POST sets the pre-auth cookie: {:?}",
        r.headers
    );
    let flow = link_flow("google", &r, "link POST");
    let back = authorize(s, &flow);
    let done = dave.browser.get(&local(&back));
    assert_eq!(done.status, 303, "web link callback: {}", done.brief());
    assert_goes_to(&done, "/console", "link return_to");
    assert_eq!(providers_of(&me(s, &dave.access)), ["facebook", "google"]);
    let (_, via) = native_ok(
        s,
        "google",
        gtoken(json!({ "sub": g_dave })),
        "dave via Google",
    );
    assert_eq!(via["id"], dave.me["id"]);

    // Unlinking: fine while another way in remains, refused for the last one.
    let unlink = |p: &str| {
        s.call(
            Method::DELETE,
            &format!("/api/v1/me/identities/{p}"),
            Some(&dave.access),
            None,
        )
    };
    expect_2xx(&unlink("google"), "unlink Google");
    assert_eq!(providers_of(&me(s, &dave.access)), ["facebook"]);
    unlink("facebook").expect_error(409, "last_identity", "unlink the last provider");
    assert_eq!(providers_of(&me(s, &dave.access)), ["facebook"]);
}

#[test]
fn logout_all_and_account_deletion_end_every_credential() {
    let env = Env::start(&[]);
    let s = &env.server;
    let gtoken = |claims: Value| json!({ "id_token": env.google_token(claims) });

    // One account, signed in on the web (cookie) and natively (token pair).
    let sub = uniq("everywhere");
    let web = web_sign_in(&env, "google", json!({ "sub": sub }));
    let (pair, mine) = native_ok(s, "google", gtoken(json!({ "sub": sub })), "native");
    assert_eq!(mine["id"], web.me["id"]);
    let cookie = web.browser.session().expect("cookie");

    s.post("/api/v1/auth/logout-all", None, json!({}))
        .expect_error(401, "unauthenticated", "logout-all without a token");
    expect_2xx(
        &s.post("/api/v1/auth/logout-all", Some(&pair.access), json!({})),
        "logout-all",
    );
    for (what, token) in [
        ("access token", &pair.access),
        ("session's access token", &web.access),
    ] {
        let r = s.get("/api/v1/me", Some(token));
        assert_eq!(r.status, 401, "{what} after logout-all: {}", r.brief());
    }
    let r = refresh(s, &pair.refresh);
    assert_eq!(
        r.status,
        401,
        "refresh token after logout-all: {}",
        r.brief()
    );
    session_with(s, &cookie).expect_error(401, "unauthenticated", "session after logout-all");
    // The account goes on: signing in again works.
    let (again, back) = native_ok(
        s,
        "google",
        gtoken(json!({ "sub": sub })),
        "after logout-all",
    );
    assert_eq!(back["id"], mine["id"]);
    refresh(s, &again.refresh).expect(200, "a new refresh token");

    // Deleting the account.
    let sub = uniq("leaver");
    let email = unique_email("leaver");
    let who = json!({ "sub": sub, "email": email, "email_verified": true });
    let web = web_sign_in(&env, "google", who.clone());
    let (pair, mine) = native_ok(s, "google", gtoken(who.clone()), "native");
    assert_eq!(mine["id"], web.me["id"]);
    let cookie = web.browser.session().expect("cookie");
    expect_2xx(
        &s.call(Method::DELETE, "/api/v1/me", Some(&pair.access), None),
        "DELETE /api/v1/me",
    );
    for (what, token) in [
        ("access token", &pair.access),
        ("session's access token", &web.access),
    ] {
        let r = s.get("/api/v1/me", Some(token));
        assert_eq!(r.status, 401, "{what} of a deleted account: {}", r.brief());
    }
    let r = refresh(s, &pair.refresh);
    assert_eq!(
        r.status,
        401,
        "refresh token of a deleted account: {}",
        r.brief()
    );
    let r = session_with(s, &cookie);
    assert_eq!(r.status, 401, "session of a deleted account: {}", r.brief());
    // The same identity (and verified e-mail, whose index entry went too) makes a new,
    // empty account.
    let (_, reborn) = native_ok(s, "google", gtoken(who), "after deletion");
    assert_ne!(reborn["id"], mine["id"]);
    assert_eq!(providers_of(&reborn), ["google"]);
    assert_eq!(reborn["email"], email);
}

#[test]
fn provider_failures_answer_502_and_store_nothing() {
    let env = Env::start(&[("CINEGATE_AUTH__PROVIDER_TIMEOUT", "2s")]);
    let s = &env.server;
    let users = env.user_count();
    let sub = uniq("flaky");
    env.google.set_claims(json!({ "sub": sub }));
    let fid = uniq("fb-flaky");
    let fb_user = json!({ "id": fid, "name": "Flaky" });
    env.facebook.next_user(fb_user.clone());
    let fb_token = uniq("EAAflaky");
    env.facebook
        .register_token(json!({ "access_token": fb_token, "app_id": FB_APP, "user": fb_user }));
    let fb_body = json!({ "access_token": fb_token });
    let quick = |t: Instant, what: &str| {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "{what}: took {:?}; provider_timeout is 2 s",
            t.elapsed()
        );
    };

    // Timeouts (the peers hold the request for 60 s).
    env.google.fail("timeout");
    let t = Instant::now();
    let mut b = Browser::new(s);
    web_callback(s, &mut b, "google", "").expect_error(
        502,
        "provider_unavailable",
        "Google /token times out",
    );
    quick(t, "Google web callback");
    assert!(b.session().is_none());
    env.facebook.fail("timeout");
    let t = Instant::now();
    native(s, "facebook", fb_body.clone(), None).expect_error(
        502,
        "provider_unavailable",
        "Graph times out",
    );
    quick(t, "Facebook native");

    // 500s.
    env.google.fail("500");
    env.facebook.fail("500");
    web_callback(s, &mut Browser::new(s), "google", "").expect_error(
        502,
        "provider_unavailable",
        "Google /token answers 500",
    );
    web_callback(s, &mut Browser::new(s), "facebook", "").expect_error(
        502,
        "provider_unavailable",
        "Facebook token endpoint answers 500",
    );
    native(s, "facebook", fb_body.clone(), None).expect_error(
        502,
        "provider_unavailable",
        "Graph answers 500",
    );
    // In the app flow the failure goes back to the app.
    let r = app_flow(s, "S-502", None);
    let url = app_redirect(&r, "S-502", "app flow, provider 500");
    assert_eq!(
        param(&url, "error").as_deref(),
        Some("provider_unavailable"),
        "{url}"
    );

    assert_eq!(env.user_count(), users, "a failed sign-in stored a user");

    // Recovered: the same identities sign in and their accounts are made now, fresh.
    env.google.fail("none");
    env.facebook.fail("none");
    let web = web_sign_in(&env, "google", json!({ "sub": sub }));
    assert_eq!(providers_of(&web.me), ["google"]);
    let (_, fb_me) = native_ok(s, "facebook", fb_body, "Facebook recovered");
    assert_eq!(providers_of(&fb_me), ["facebook"]);
    assert_eq!(env.user_count(), users + 2);
}

/// A provider that refuses cinegate itself (issue 12, item 8) — a wrong Google client
/// secret, a wrong Apple key, an error return naming the client — is the operator's
/// problem: the viewer (and the app) get 502 `provider_unavailable` with a generic
/// message that names no configuration key, provider text or URL; the detail is logged.
#[test]
fn provider_configuration_errors_reach_the_log_not_the_viewer() {
    let env = Env::start(&[]);
    let s = &env.server;
    let users = env.user_count();
    // The Google peer now wants another secret than the one cinegate is configured with.
    let control = |peer: &OidcPeer, body: Value| {
        let url = format!("{}/_control/client", peer.issuer);
        let r = s.exec(no_redirect_client().post(url.as_str()).json(&body));
        assert_eq!(r.status, 200, "{url}: {}", r.brief());
    };
    control(
        &env.google,
        json!({ "client_id": GOOGLE_ID, "client_secret": "the-secret-google-really-has" }),
    );
    // Apple checks its client secret (an ES256 JWT) against another key.
    let other_key = env._keys.path().join("other.p8");
    run_ok(
        Command::new("openssl")
            .args(["genpkey", "-algorithm", "EC"])
            .args(["-pkeyopt", "ec_paramgen_curve:P-256", "-out"])
            .arg(&other_key),
    );
    let other_public = run_ok(
        Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&other_key),
    );
    env.apple.apple(json!({
        "public_key_pem": String::from_utf8_lossy(&other_public.stdout),
        "team_id": APPLE_TEAM,
        "client_id": APPLE_ID,
        "key_id": APPLE_KEY_ID,
    }));
    let generic = "the sign-in provider is not available right now; try again in a few minutes";
    let telltales = [
        "invalid_client",
        "unauthorized_client",
        "client_secret",
        "client_id",
        "client",
        "secret",
        "auth.",
        "http",
        "127.0.0.1",
        GOOGLE_ID,
        GOOGLE_SECRET,
        APPLE_ID,
        "OAuth",
    ];
    let expect_generic = |r: &Resp, what: &str| {
        r.expect_error(502, "provider_unavailable", what);
        assert_eq!(r.json()["error"]["message"], generic, "{what}");
        let body = r.text();
        for t in telltales {
            assert!(!body.contains(t), "{what}: the answer names {t:?}: {body}");
        }
    };

    let mut b = Browser::new(s);
    expect_generic(
        &web_callback(s, &mut b, "google", ""),
        "Google refuses the client secret",
    );
    assert!(b.session().is_none());
    expect_generic(
        &web_callback(s, &mut Browser::new(s), "apple", ""),
        "Apple refuses the client secret",
    );
    // A provider's error return that names the client is the operator's too.
    let mut c = Browser::new(s);
    let flow = start(&mut c, "google", "");
    let back = format!(
        "/auth/google/callback?{}",
        query(&[
            ("error", "unauthorized_client"),
            (
                "error_description",
                "Client google-web-client is not allowed: see http://127.0.0.1/x",
            ),
            ("state", &flow.state),
        ])
    );
    expect_generic(&c.get(&back), "error return unauthorized_client");
    // The app flow gets the same code.
    let r = app_flow(s, "S-conf", None);
    let url = app_redirect(&r, "S-conf", "app flow, wrong client secret");
    assert_eq!(
        param(&url, "error").as_deref(),
        Some("provider_unavailable"),
        "{url}"
    );
    assert_eq!(env.user_count(), users, "a refused sign-in stored a user");
    // The operator's log has what to fix.
    let log = s.log_tail(400);
    assert!(
        log.contains("invalid_client") && log.contains("auth.google"),
        "the log does not say what Google refused:\n{log}"
    );

    // Fixed: sign-in works again.
    control(&env.google, json!({}));
    let sub = uniq("conf-fixed");
    let web = web_sign_in(&env, "google", json!({ "sub": sub }));
    assert_eq!(providers_of(&web.me), ["google"]);
}

/// Login CSRF (issue 12, item 1): an attacker runs a sign-in as themself up to the
/// provider's redirect and hands the unused callback URL to a victim. The flow is bound to
/// the browser that started it, so in any other browser the callback answers 400 and
/// stores nothing; the flow is not spent by that, and its own browser still finishes it.
#[test]
fn a_callback_finishes_only_in_the_browser_that_started_it() {
    let env = Env::start(&[]);
    let s = &env.server;
    let mut users = env.user_count();

    // The pre-auth cookie: HttpOnly, for /auth, as long as a flow lives; SameSite=None and
    // Secure, so Apple's cross-site form_post carries it (public_url is http on loopback,
    // where browsers keep Secure cookies).
    let r = Browser::new(s).get("/auth/apple/start");
    assert_eq!(r.status, 302, "{}", r.brief());
    let cookie = set_cookie(&r, PREAUTH_COOKIE)
        .unwrap_or_else(|| panic!("start sets no {PREAUTH_COOKIE}: {:?}", r.headers));
    let attrs = cookie_attrs(cookie);
    for want in [
        "httponly",
        "path=/auth",
        "samesite=none",
        "secure",
        "max-age=600",
    ] {
        assert!(attrs.iter().any(|a| a == want), "without {want}: {cookie}");
    }

    for provider in ["google", "facebook", "apple"] {
        let attacker = match provider {
            "facebook" => json!({ "id": uniq("fb-mallory"), "name": "Mallory" }),
            _ => json!({ "sub": uniq("mallory"), "email": unique_email("mallory"),
                         "email_verified": true }),
        };
        env.next(provider, attacker);
        let mut evil = Browser::new(s);
        let flow = start(&mut evil, provider, "");
        let back = authorize(s, &flow);

        // Victims: a browser with no cookie, and one with a flow of its own under way.
        let mut fresh = Browser::new(s);
        let mut busy = Browser::new(s);
        start(&mut busy, provider, "");
        for (what, victim) in [
            ("a fresh browser", &mut fresh),
            ("a busy browser", &mut busy),
        ] {
            let r = callback_in(victim, provider, &back);
            r.expect_error(
                400,
                "invalid_state",
                &format!("{provider}: the attacker's callback in {what}"),
            );
            assert!(
                set_cookie(&r, SESSION_COOKIE).is_none() && victim.session().is_none(),
                "{provider}, {what}: a session was set: {:?}",
                r.headers
            );
        }
        assert_eq!(
            env.user_count(),
            users,
            "{provider}: a refused callback stored an account"
        );
        // The refusal cancelled the flow (see the next test for why), for its own browser too.
        callback_in(&mut evil, provider, &back).expect_error(
            400,
            "invalid_state",
            &format!("{provider}: the flow after a refused callback"),
        );
        assert!(evil.session().is_none());

        // A flow finishes in the browser that started it.
        let done = web_callback(s, &mut evil, provider, "");
        expect_signed_in(&done, &format!("{provider}: the flow's own browser"));
        users += 1;
        assert_eq!(env.user_count(), users);
    }
}

/// A callback opened in another browser cancels its flow (issue 12, item 1, follow-up).
/// That callback carries the code of whoever opened it: the operator who followed an
/// attacker's link flow, a victim sent an attacker's sign-in. Were the flow kept, the
/// attacker's browser — the one it is bound to — could finish it with that code once the
/// URL leaked (history, a shared screenshot, a proxy log): linking the operator's Google
/// identity to the attacker's account, or signing the attacker in as the victim.
#[test]
fn a_leaked_callback_refused_in_another_browser_finishes_nothing() {
    let env = Env::start(&[]);
    let s = &env.server;
    let boss_google = json!({ "sub": uniq("g-boss"), "email": BOSS, "email_verified": true });

    // Link CSRF: the attacker's link flow, completed at Google by the operator.
    let fb = json!({ "id": uniq("fb-mallory"), "name": "Mallory" });
    let mut mallory = web_sign_in(&env, "facebook", fb);
    let flow = link_flow(
        "google",
        &link_post(&mut mallory.browser, "google", ""),
        "link POST",
    );
    env.google.set_claims(boss_google.clone());
    let back = authorize(s, &flow);
    let mut operator = Browser::new(s);
    operator.get(&local(&back)).expect_error(
        400,
        "invalid_state",
        "the link flow in the operator's browser",
    );
    // The URL leaks to the attacker, whose browser the flow is bound to.
    mallory.browser.get(&local(&back)).expect_error(
        400,
        "invalid_state",
        "the leaked link callback in the attacker's browser",
    );
    let m = me(s, &mallory.access);
    assert_eq!(
        providers_of(&m),
        ["facebook"],
        "the operator's Google identity is on the attacker's account: {m}"
    );

    // Login the other way round: the attacker's sign-in flow, completed by a victim.
    let users = env.user_count();
    let victim = json!({ "sub": uniq("g-victim"), "email": unique_email("victim"),
                         "email_verified": true });
    let mut evil = Browser::new(s);
    let flow = start(&mut evil, "google", "");
    env.google.set_claims(victim);
    let back = authorize(s, &flow);
    Browser::new(s).get(&local(&back)).expect_error(
        400,
        "invalid_state",
        "the sign-in flow in the victim's browser",
    );
    let r = evil.get(&local(&back));
    r.expect_error(
        400,
        "invalid_state",
        "the leaked sign-in callback in the attacker's browser",
    );
    assert!(evil.session().is_none(), "the attacker got a session");
    assert_eq!(
        env.user_count(),
        users,
        "an account was made for the victim"
    );
}

/// Link CSRF ending in admin (issue 12, item 1): the attacker, signed in, starts linking
/// Google to their own account and gets the operator (whose Google e-mail is on
/// `auth.admins`) to open the link flow. Whatever URL the attacker can make, the chain ends
/// with the operator's Google identity not on the attacker's account and no admin rights
/// for the attacker; and a linked identity's e-mail never promotes an account.
#[test]
fn link_csrf_ends_with_no_admin() {
    let env = Env::start(&[]);
    let s = &env.server;
    let gtoken = |claims: Value| json!({ "id_token": env.google_token(claims) });
    // The operator's account, made with the CLI for BOSS before they ever used Google.
    s.cli(&["user", "create", BOSS]);
    let boss_google = json!({ "sub": uniq("g-boss"), "email": BOSS, "email_verified": true });

    // The attacker, signed in on the web with Facebook, collects link-flow URLs.
    let fb = json!({ "id": uniq("fb-mallory"), "name": "Mallory" });
    let mut mallory = web_sign_in(&env, "facebook", fb);
    let mut flows = Vec::new();
    let r = mallory.browser.get("/auth/google/start?intent=link");
    if r.status == 302 {
        flows.push(flow_of("google", &r, "GET intent=link"));
    } else {
        r.expect_error(400, "invalid_request", "GET intent=link");
    }
    let r = link_post(&mut mallory.browser, "google", "");
    if r.status == 200 {
        flows.push(link_flow("google", &r, "link POST"));
    }
    assert!(!flows.is_empty(), "the attacker got no link flow at all");

    // The operator opens each in their own browser, signed in to Google as BOSS, and later
    // signs in with Google as usual.
    let mut operator = Browser::new(s);
    let mut answers = Vec::new();
    for flow in &flows {
        env.google.set_claims(boss_google.clone());
        let back = authorize(s, flow);
        answers.push(operator.get(&local(&back)));
    }
    env.google.set_claims(boss_google.clone());
    let _ = web_callback(s, &mut operator, "google", "");

    let m = me(s, &mallory.access);
    assert_eq!(m["role"], "viewer", "the attacker became admin: {m}");
    assert_eq!(
        providers_of(&m),
        ["facebook"],
        "the operator's identity is on the attacker's account"
    );
    for r in &answers {
        r.expect_error(
            400,
            "invalid_state",
            "the attacker's link flow, operator's browser",
        );
    }

    // A linked identity's verified e-mail on the list promotes nobody (here linked through
    // the native endpoint, which needs the account's own Bearer token).
    let eve = s.user("eve", false);
    let listed = json!({ "sub": uniq("g-boss-alias"), "email": BOSS, "email_verified": true });
    native(s, "google", gtoken(listed.clone()), Some(&eve.access)).expect(200, "eve links");
    let (_, eve_me) = native_ok(s, "google", gtoken(listed), "eve via Google");
    assert_eq!(eve_me["id"], eve.id.as_str());
    assert_eq!(
        eve_me["role"], "viewer",
        "a linked e-mail promoted: {eve_me}"
    );

    // The operator's own account, whose verified e-mail is on the list, is promoted when it
    // signs in with the provider it linked itself.
    let link = s.login_link_token(BOSS);
    let boss = pair_of(
        &s.post("/api/v1/auth/link", None, json!({ "token": link })),
        "operator's login link",
    );
    native(s, "google", gtoken(boss_google.clone()), Some(&boss.access))
        .expect(200, "the operator links Google");
    let (_, boss_me) = native_ok(s, "google", gtoken(boss_google), "operator via Google");
    assert_eq!(boss_me["email"], BOSS);
    assert_eq!(boss_me["role"], "admin", "{boss_me}");
}

#[test]
fn provider_list_follows_the_configuration() {
    // No provider configured: an empty list, and every provider route is unknown.
    let bare = Server::start(&[]);
    let list = bare
        .get("/api/v1/auth/providers", None)
        .expect(200, "providers")
        .json();
    assert_eq!(list, json!({ "providers": [] }));
    bare.get("/auth/google/start", None).expect_error(
        404,
        "unknown_provider",
        "unconfigured Google, web",
    );
    native(&bare, "google", json!({ "id_token": "x" }), None).expect_error(
        404,
        "unknown_provider",
        "unconfigured Google, native",
    );
    drop(bare);

    // Facebook app ids are numeric; set from the environment they must still be read as
    // a string (figment parses a numeric env value as a number).
    let numeric = Server::start(&[
        ("CINEGATE_AUTH__FACEBOOK__APP_ID", "1234567890"),
        ("CINEGATE_AUTH__FACEBOOK__APP_SECRET", "fb-secret"),
    ]);
    let list = numeric
        .get("/api/v1/auth/providers", None)
        .expect(200, "providers")
        .json();
    let ids: Vec<&str> = list["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .map(|p| p["id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ids, ["facebook"], "{list}");
    let r = numeric.get("/auth/facebook/start", None);
    let url = flow_of("facebook", &r, "numeric app id").authorize;
    assert_eq!(
        param(&url, "client_id").as_deref(),
        Some("1234567890"),
        "{url}"
    );
}
