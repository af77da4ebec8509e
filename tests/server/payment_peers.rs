//! The payment test peers, each a child process on loopback with JSON control endpoints:
//! loopback fakes of PayPal REST (`tests/peers/paypal_fake.py`), Kakao Pay
//! (`tests/peers/kakaopay_fake.py`) and Naver Pay 결제형 (`tests/peers/naverpay_fake.py`),
//! written from the contracts in shared/reference/payments.md. Each exits when its stdin
//! closes, so a test run that dies leaves no stray peer; dropping the handle kills it.
//!
//! Every fake takes the same behaviour object (`behave`), merged into what it has:
//!   `payer_action`  "approve" (default) | "cancel" | "fail" (Kakao, Naver): what the payer
//!                   does on the provider's page (PayPal `/checkoutnow`, Kakao `/pay/{tid}`,
//!                   Naver `/payments/{reserveId}`)
//!   `decline_capture`  true: capture/approve/apply is declined (PayPal 422
//!                   INSTRUMENT_DECLINED, order stays APPROVED; Kakao -780 USER_LOCKED; Naver
//!                   OwnerAuthFail); Kakao/Naver also take a string = the result code to use
//!   `amount_override`  the captured amount the provider reports (PayPal: a decimal string;
//!                   Kakao/Naver: integer won); null = the order's
//!   `currency_override`  (PayPal) the captured currency the provider reports
//!   `fail`          "none" | "500" | "timeout" (held `hold_seconds`, default 60, then dropped)
//!                   for every API call (never the payer pages or /_control)
//!   `fail_times`    null = fail until changed; N = fail only the next N API calls, then
//!                   `fail` goes back to "none"
//!   `capture_delay` seconds: the capture/approve/apply is recorded first, then the answer waits
//!   `hold_seconds`  how long "timeout" holds a request
//!   PayPal only: `capture_status` "COMPLETED" | "PENDING"; Kakao only: `tid_ttl` (s, default
//!   900); Naver only: `cancel_pending` (cancel answers CancelNotComplete).
//! An unknown key or a bad value makes the fake answer 400, and `behave` panics.

#![allow(dead_code)] // not every test uses every helper

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::blocking::Client;
use serde_json::{json, Value};

use crate::harness::peer;

const START_TIMEOUT: Duration = Duration::from_secs(20);
/// `/_control/webhook` waits for our server's answer to the delivery (the fake allows it 20 s).
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// A started peer process: its first stdout line (JSON) and what it writes to stderr.
struct Proc {
    child: Child,
    _stdin: ChildStdin,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    fn start(mut cmd: Command, what: &str) -> (Proc, u16) {
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
            Ok(line) => (line, "its first stdout line is not {\"port\":N}"),
            Err(_) => (String::new(), "it printed nothing within 20 s"),
        };
        let port = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|v| v["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok());
        if let Some(port) = port {
            return (proc, port);
        }
        let _ = proc.child.kill();
        let status = proc.child.wait().map(|s| s.to_string()).unwrap_or_default();
        std::thread::sleep(Duration::from_millis(100)); // let the last stderr arrive
        panic!(
            "the {what} peer failed to start: {why} ({status}); first line {line:?}\nstderr:\n{}",
            proc.stderr()
        );
    }

    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// POST `body` to a control endpoint (GET when `body` is None); panics unless 200 + JSON.
    fn control(&self, base: &str, path: &str, body: Option<Value>, timeout: Duration) -> Value {
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

const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// PayPal
// ---------------------------------------------------------------------------------------

/// PayPal REST on `base`: `/v1/oauth2/token`, `/v2/checkout/orders[/{id}[/capture]]`,
/// `/v2/payments/captures/{id}[/refund]`, `/v2/payments/refunds/{id}`,
/// `/v1/notifications/verify-webhook-signature`, and the payer's page
/// `/checkoutnow?token={order id}` (the approve / payer-action link).
pub struct PaypalPeer {
    pub base: String,
    pub port: u16,
    pub client_id: String,
    pub client_secret: String,
    pub webhook_id: String,
    child: Proc,
}

impl PaypalPeer {
    pub fn start(client_id: &str, client_secret: &str, webhook_id: &str) -> PaypalPeer {
        let mut cmd = Command::new("python3");
        cmd.arg(peer("paypal_fake.py")).args([
            "--client-id",
            client_id,
            "--client-secret",
            client_secret,
            "--webhook-id",
            webhook_id,
        ]);
        let (child, port) = Proc::start(cmd, "PayPal");
        PaypalPeer {
            base: format!("http://127.0.0.1:{port}"),
            port,
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            webhook_id: webhook_id.to_string(),
            child,
        }
    }

    /// Merges `v` into the behaviour (see the module doc); returns the whole behaviour.
    pub fn behave(&self, v: Value) -> Value {
        self.child
            .control(&self.base, "/_control/behaviour", Some(v), CONTROL_TIMEOUT)
    }

    /// `{"orders": {id: order as GET shows it}, "request_ids": [PayPal-Request-Id seen, in
    /// order], "token_calls", "create_calls", "get_calls", "capture_calls", "refund_calls",
    /// "verify_calls", "injected_failures", "behaviour", "webhooks": [{event_id, event_type,
    /// transmission_id, url, status, tampered}]}`. Calls count every request to the route,
    /// injected failures included.
    pub fn state(&self) -> Value {
        self.child
            .control(&self.base, "/_control/state", None, CONTROL_TIMEOUT)
    }

    /// Forgets orders, captures, refunds, webhooks and counters; default behaviour. Issued
    /// access tokens stay valid.
    pub fn reset(&self) {
        self.child.control(
            &self.base,
            "/_control/reset",
            Some(json!({})),
            CONTROL_TIMEOUT,
        );
    }

    /// Every access token issued so far is refused (401 AUTHENTICATION_FAILURE) from now on.
    pub fn expire_tokens(&self) {
        self.child.control(
            &self.base,
            "/_control/expire_tokens",
            Some(json!({})),
            CONTROL_TIMEOUT,
        );
    }

    /// Delivers a webhook: `{"url", "event_type", "order_id", "event_id"?, "tamper"?,
    /// "apply"?}`. The fake builds the event (capture resource for PAYMENT.CAPTURE.COMPLETED |
    /// PENDING | DECLINED | DENIED, refund resource for PAYMENT.CAPTURE.REFUNDED | REVERSED,
    /// the order for CHECKOUT.ORDER.*), moves its own state to match unless `"apply": false`
    /// (e.g. REFUNDED refunds the remainder, like a dashboard refund), signs it, POSTs it to
    /// `url` and answers `{"status": our HTTP status (null if unreachable), "body": our body,
    /// "event_id", "transmission_id", "event": the event as signed, "delivered"?: what was
    /// sent instead when `"tamper": true` (verification then fails)}`. A known `event_id`
    /// re-sends the very same bytes in a new transmission (a redelivery).
    pub fn webhook(&self, v: Value) -> Value {
        self.child
            .control(&self.base, "/_control/webhook", Some(v), WEBHOOK_TIMEOUT)
    }

    /// The payer's page for an order (what the approve / payer-action link points at).
    pub fn checkout_url(&self, order_id: &str) -> String {
        format!("{}/checkoutnow?token={order_id}", self.base)
    }
}

// ---------------------------------------------------------------------------------------
// Kakao Pay
// ---------------------------------------------------------------------------------------

/// Kakao Pay on `base`: `/online/v1/payment/{ready,approve,order,cancel}` and the payer's
/// page `/pay/{tid}` (next_redirect_pc_url).
pub struct KakaoPeer {
    pub base: String,
    pub port: u16,
    pub secret_key: String,
    pub cid: String,
    child: Proc,
}

impl KakaoPeer {
    pub fn start(secret_key: &str, cid: &str) -> KakaoPeer {
        let mut cmd = Command::new("python3");
        cmd.arg(peer("kakaopay_fake.py"))
            .args(["--secret-key", secret_key, "--cid", cid]);
        let (child, port) = Proc::start(cmd, "Kakao Pay");
        KakaoPeer {
            base: format!("http://127.0.0.1:{port}"),
            port,
            secret_key: secret_key.to_string(),
            cid: cid.to_string(),
            child,
        }
    }

    /// Merges `v` into the behaviour (see the module doc); returns the whole behaviour.
    pub fn behave(&self, v: Value) -> Value {
        self.child
            .control(&self.base, "/_control/behaviour", Some(v), CONTROL_TIMEOUT)
    }

    /// `{"tids": {tid: {status, partner_order_id, pg_token, approved, canceled, ...}},
    /// "ready_calls", "approve_calls", "order_calls", "cancel_calls", "injected_failures",
    /// "behaviour"}`.
    pub fn state(&self) -> Value {
        self.child
            .control(&self.base, "/_control/state", None, CONTROL_TIMEOUT)
    }

    /// Forgets every tid and counter; default behaviour.
    pub fn reset(&self) {
        self.child.control(
            &self.base,
            "/_control/reset",
            Some(json!({})),
            CONTROL_TIMEOUT,
        );
    }
}

// ---------------------------------------------------------------------------------------
// Naver Pay
// ---------------------------------------------------------------------------------------

/// Naver Pay on `base`: `/{partner_id}/naverpay/payments/{v2/reserve, v2.2/apply/payment,
/// v1/cancel, v2.2/list/history}` (the literal `naverpay-partner` works as the partner
/// segment too) and the payer's page `/payments/{reserveId}`.
pub struct NaverPeer {
    pub base: String,
    pub port: u16,
    pub client_id: String,
    pub client_secret: String,
    pub chain_id: String,
    pub partner_id: String,
    child: Proc,
}

impl NaverPeer {
    pub fn start(
        client_id: &str,
        client_secret: &str,
        chain_id: &str,
        partner_id: &str,
    ) -> NaverPeer {
        let mut cmd = Command::new("python3");
        cmd.arg(peer("naverpay_fake.py")).args([
            "--client-id",
            client_id,
            "--client-secret",
            client_secret,
            "--chain-id",
            chain_id,
            "--partner-id",
            partner_id,
        ]);
        let (child, port) = Proc::start(cmd, "Naver Pay");
        NaverPeer {
            base: format!("http://127.0.0.1:{port}"),
            port,
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            chain_id: chain_id.to_string(),
            partner_id: partner_id.to_string(),
            child,
        }
    }

    /// Merges `v` into the behaviour (see the module doc); returns the whole behaviour.
    pub fn behave(&self, v: Value) -> Value {
        self.child
            .control(&self.base, "/_control/behaviour", Some(v), CONTROL_TIMEOUT)
    }

    /// `{"reserves": {reserveId: {...}}, "payments": {paymentId: {state, detail, rows,
    /// rest}}, "idempotency_keys": [...], "reserve_calls", "apply_calls", "cancel_calls",
    /// "history_calls", "injected_failures", "behaviour"}`.
    pub fn state(&self) -> Value {
        self.child
            .control(&self.base, "/_control/state", None, CONTROL_TIMEOUT)
    }

    /// Forgets every reservation, payment, idempotency key and counter; default behaviour.
    pub fn reset(&self) {
        self.child.control(
            &self.base,
            "/_control/reset",
            Some(json!({})),
            CONTROL_TIMEOUT,
        );
    }

    /// The API prefix `{base}/{partner_id}/naverpay/payments`.
    pub fn api_base(&self) -> String {
        format!("{}/{}/naverpay/payments", self.base, self.partner_id)
    }
}
