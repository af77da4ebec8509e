//! The sign-in test peers, each a child process on loopback with JSON control endpoints:
//! an OIDC provider (`tests/peers/oidc/server.mjs`, npm oauth2-mock-server) standing in for
//! Google and Apple, and a Facebook Login + Graph API fake (`tests/peers/facebook_graph.py`).
//! Both exit when their stdin closes, so a test run that dies leaves no stray peer.
//! The process wrapper (`Proc`) and the `ControlledFake` helper here serve the payment
//! peers (`payment_peers.rs`) too.

use std::io::{BufRead, BufReader, Read};
use std::ops::Deref;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::blocking::Client;
use serde_json::{json, Value};

use crate::harness::peer_scripts::peer;

const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a control call may take (`/_control/webhook` sets its own).
pub(crate) const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// A started peer process: its first stdout line (JSON) and what it writes to stderr.
/// Dropping it kills the process.
pub(crate) struct Proc {
    child: Child,
    _stdin: ChildStdin,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    /// Spawns `cmd --exit-with-stdin` and waits for its first stdout line, a JSON object
    /// with a `port`; returns that object. Panics (with the peer's stderr) when it fails.
    pub(crate) fn start(mut cmd: Command, what: &str) -> (Proc, Value) {
        let mut child = cmd
            .arg("--exit-with-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn the {what} peer: {e}"));
        let stdin = child.stdin.take().expect("peer stdin");

        // Keep draining stderr (a full pipe would block the peer); keep it for messages.
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("peer stderr");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err_pipe.read(&mut buf) {
                let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });

        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("peer stdout");
        std::thread::spawn(move || {
            let mut lines = BufReader::new(out);
            let mut first = String::new();
            let _ = lines.read_line(&mut first);
            let _ = tx.send(first);
            std::io::copy(&mut lines, &mut std::io::sink()).ok(); // drain the rest
        });

        let mut proc = Proc {
            child,
            _stdin: stdin,
            stderr,
        };
        let (line, why) = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => (line, "its first stdout line is not {\"port\":N,...}"),
            Err(_) => (String::new(), "it printed nothing within 20 s"),
        };
        if let Some(v) = serde_json::from_str::<Value>(&line)
            .ok()
            .filter(|v| v["port"].as_u64().is_some_and(|p| u16::try_from(p).is_ok()))
        {
            return (proc, v);
        }
        let _ = proc.child.kill();
        let status = proc.child.wait().map(|s| s.to_string()).unwrap_or_default();
        std::thread::sleep(Duration::from_millis(100)); // let the last stderr arrive
        panic!(
            "the {what} peer failed to start: {why} ({status}); first line {line:?}\n\
             stderr:\n{}\n(did scripts/install-deps.sh run? it installs the npm peer)",
            proc.stderr()
        );
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// POST `body` to a control endpoint (GET when `body` is None); panics unless 2xx + JSON.
    pub(crate) fn control(
        &self,
        base: &str,
        path: &str,
        body: Option<Value>,
        timeout: Duration,
    ) -> Value {
        let url = format!("{base}{path}");
        let client = Client::builder()
            .timeout(timeout)
            .build()
            .expect("build the control client");
        let req = match body {
            Some(b) => client.post(&url).json(&b),
            None => client.get(&url),
        };
        let resp = req
            .send()
            .unwrap_or_else(|e| panic!("{url}: {e}\npeer stderr:\n{}", self.stderr()));
        let status = resp.status();
        let text = resp.text().unwrap_or_default();
        assert!(
            status.is_success(),
            "{url}: HTTP {status} {text}\npeer stderr:\n{}",
            self.stderr()
        );
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {text}"))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A peer process serving on `http://127.0.0.1:{port}` (`base`) with JSON control endpoints
/// under `/_control/`, and what it was started with (`config`, whose fields read as the
/// fake's own through `Deref`: `paypal.client_id`). The payment fakes are this type
/// (`payment_peers.rs`) and share the `behave`, `state` and `reset` calls.
pub struct ControlledFake<C = ()> {
    pub base: String,
    pub port: u16,
    config: C,
    proc: Proc,
}

impl ControlledFake {
    /// Starts `cmd` (see [`Proc::start`]); also returns its first stdout line.
    pub(crate) fn spawn(cmd: Command, what: &str) -> (ControlledFake, Value) {
        let (proc, hello) = Proc::start(cmd, what);
        let port = hello["port"].as_u64().expect("port") as u16;
        let fake = ControlledFake {
            base: format!("http://127.0.0.1:{port}"),
            port,
            config: (),
            proc,
        };
        (fake, hello)
    }

    /// Starts `python3 tests/peers/{script} {args...}`.
    pub(crate) fn python(script: &str, what: &str, args: &[&str]) -> ControlledFake {
        let mut cmd = Command::new("python3");
        cmd.arg(peer(script)).args(args);
        ControlledFake::spawn(cmd, what).0
    }

    /// The same fake, with `config` to show as its own fields.
    pub(crate) fn with<C>(self, config: C) -> ControlledFake<C> {
        let ControlledFake {
            base, port, proc, ..
        } = self;
        ControlledFake {
            base,
            port,
            config,
            proc,
        }
    }
}

impl<C> ControlledFake<C> {
    /// POST `body` to `/_control/...` (GET when `body` is None); panics unless 2xx + JSON.
    pub(crate) fn control(&self, path: &str, body: Option<Value>) -> Value {
        self.control_within(path, body, CONTROL_TIMEOUT)
    }

    /// [`ControlledFake::control`] allowing `timeout` for the answer.
    pub(crate) fn control_within(
        &self,
        path: &str,
        body: Option<Value>,
        timeout: Duration,
    ) -> Value {
        self.proc.control(&self.base, path, body, timeout)
    }

    /// Merges `v` into the behaviour (see payment_peers.rs); returns the whole behaviour.
    pub fn behave(&self, v: Value) -> Value {
        self.control("/_control/behaviour", Some(v))
    }

    /// What the fake holds and has counted (each fake's type says what that is).
    pub fn state(&self) -> Value {
        self.control("/_control/state", None)
    }

    /// Forgets what `state` shows, the behaviour back to the default.
    pub fn reset(&self) {
        self.control("/_control/reset", Some(json!({})));
    }
}

impl<C> Deref for ControlledFake<C> {
    type Target = C;

    fn deref(&self) -> &C {
        &self.config
    }
}

// ---------------------------------------------------------------------------------------
// OIDC (Google, Apple)
// ---------------------------------------------------------------------------------------

/// An OpenID provider: `{issuer}/.well-known/openid-configuration`, `/authorize`, `/token`,
/// `/jwks` (kid "rs1" RS256 signs every issued token; kid "es1" ES256 is published too).
pub struct OidcPeer {
    pub issuer: String,
    fake: ControlledFake,
}

impl OidcPeer {
    pub fn start() -> OidcPeer {
        let mut cmd = Command::new("node");
        cmd.arg(peer("oidc/server.mjs"));
        let (fake, hello) = ControlledFake::spawn(cmd, "OIDC");
        OidcPeer {
            issuer: hello["issuer"].as_str().expect("issuer").to_string(),
            fake,
        }
    }

    fn control(&self, path: &str, body: Option<Value>) -> Value {
        self.fake.control(path, body)
    }

    /// Claims merged into every id_token issued from now on (a null value removes one,
    /// e.g. `nonce`); `json!({})` resets.
    pub fn set_claims(&self, claims: Value) {
        self.control("/_control/claims", Some(claims));
    }

    /// Mints an id_token: `{"claims", "expires_in" (default 600, negative = expired),
    /// "kid": "rs1" | "es1" | any other (signed by an unpublished key), "alg_none",
    /// "hs256_with_public_key"}`. Defaults: iss = issuer, sub "johndoe", iat, exp.
    pub fn mint(&self, req: Value) -> String {
        let v = self.control("/_control/mint", Some(req));
        v["id_token"].as_str().expect("id_token").to_string()
    }

    /// "none", "500" (/token and /jwks answer 500) or "timeout" (they hold ~60 s, then drop).
    pub fn fail(&self, mode: &str) {
        self.control("/_control/fail", Some(json!({ "mode": mode })));
    }

    /// `{"public_key_pem", "team_id", "client_id", "key_id"}`: /token then demands an
    /// Apple-style ES256 client_secret (and that client_id); `json!({})` turns it off.
    pub fn apple(&self, cfg: Value) {
        self.control("/_control/apple", Some(cfg));
    }

    pub fn token_calls(&self) -> u64 {
        self.control("/_control/requests", None)["token_calls"]
            .as_u64()
            .expect("token_calls")
    }

    pub fn jwks_calls(&self) -> u64 {
        self.control("/_control/requests", None)["jwks_calls"]
            .as_u64()
            .expect("jwks_calls")
    }
}

// ---------------------------------------------------------------------------------------
// Facebook Login + Graph API
// ---------------------------------------------------------------------------------------

/// Facebook's `/dialog/oauth`, `/oauth/access_token`, `/me`, `/debug_token` (with or
/// without a `/v19.0` prefix) for one app id/secret.
pub struct FacebookPeer {
    pub base: String,
    fake: ControlledFake,
}

impl FacebookPeer {
    pub fn start(app_id: &str, app_secret: &str) -> FacebookPeer {
        let args = ["--app-id", app_id, "--app-secret", app_secret];
        let fake = ControlledFake::python("facebook_graph.py", "Facebook Graph", &args);
        FacebookPeer {
            base: fake.base.clone(),
            fake,
        }
    }

    fn control(&self, path: &str, body: Value) -> Value {
        self.fake.control(path, Some(body))
    }

    /// `{"id", "name", "email"?}`: who every later /dialog/oauth logs in; `{"deny": true}`
    /// makes the dialog redirect with `error=access_denied` instead.
    pub fn next_user(&self, user: Value) {
        self.control("/_control/user", user);
    }

    /// `{"access_token", "app_id", "user": {"id","name","email"?}, "valid", "expires_at"}`
    /// (`expires_at` 0 = never expires).
    pub fn register_token(&self, v: Value) {
        self.control("/_control/token", v);
    }

    /// "none", "500" or "timeout", for /oauth/access_token, /me and /debug_token.
    pub fn fail(&self, mode: &str) {
        self.control("/_control/fail", json!({ "mode": mode }));
    }
}
