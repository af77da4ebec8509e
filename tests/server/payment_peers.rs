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
//!   `fail`          "none" | "500" | "429" (PayPal: RATE_LIMIT_REACHED) | "timeout" (held
//!                   `hold_seconds`, default 60, then dropped) for every API call (never the
//!                   payer pages or /_control)
//!   `fail_on`       null = `fail` applies to every API call; a list of call counters (e.g.
//!                   `["capture_calls"]`, `["order_calls"]`) = only to those calls
//!   `fail_times`    null = fail until changed; N = fail only the next N API calls, then
//!                   `fail` goes back to "none"
//!   `capture_delay` seconds: the capture/approve/apply is recorded first, then the answer waits
//!   `hold_seconds`  how long "timeout" holds a request
//!   PayPal only: `capture_status` "COMPLETED" | "PENDING"; Kakao only: `tid_ttl` (s, default
//!   900); Naver only: `cancel_pending` (cancel answers CancelNotComplete).
//! An unknown key or a bad value makes the fake answer 400, and `behave` panics.

use std::time::Duration;

use serde_json::{json, Value};

use crate::peers::ControlledFake;

/// `/_control/webhook` waits for our server's answer to the delivery (the fake allows it 20 s).
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// PayPal
// ---------------------------------------------------------------------------------------

/// PayPal REST on `base`: `/v1/oauth2/token`, `/v2/checkout/orders[/{id}[/capture]]`,
/// `/v2/payments/captures/{id}[/refund]`, `/v2/payments/refunds/{id}`,
/// `/v1/notifications/verify-webhook-signature`, and the payer's page
/// `/checkoutnow?token={order id}` (the approve / payer-action link).
///
/// `state()`: `{"orders": {id: order as GET shows it}, "request_ids": [PayPal-Request-Id
/// seen, in order], "token_calls", "create_calls", "get_calls", "capture_calls",
/// "refund_calls", "verify_calls", "injected_failures", "behaviour", "webhooks": [{event_id,
/// event_type, transmission_id, url, status, tampered}], "verifications": [{transmission_id,
/// verbatim, status}]}`. `verify-webhook-signature` succeeds only when the request embeds
/// the event byte for byte as the fake sent it (`verbatim`), as PayPal checks it. Calls count every request to the
/// route, injected failures included. `reset()` forgets orders, captures, refunds, webhooks
/// and counters; issued access tokens stay valid.
pub type PaypalPeer = ControlledFake<Paypal>;

/// What a [`PaypalPeer`] was started with.
pub struct Paypal {
    pub client_id: String,
    pub client_secret: String,
    pub webhook_id: String,
}

impl PaypalPeer {
    pub fn start(client_id: &str, client_secret: &str, webhook_id: &str) -> PaypalPeer {
        let args = [
            "--client-id",
            client_id,
            "--client-secret",
            client_secret,
            "--webhook-id",
            webhook_id,
        ];
        ControlledFake::python("paypal_fake.py", "PayPal", &args).with(Paypal {
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            webhook_id: webhook_id.to_string(),
        })
    }

    /// Every access token issued so far is refused (401 AUTHENTICATION_FAILURE) from now on.
    pub fn expire_tokens(&self) {
        self.control("/_control/expire_tokens", Some(json!({})));
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
        self.control_within("/_control/webhook", Some(v), WEBHOOK_TIMEOUT)
    }
}

// ---------------------------------------------------------------------------------------
// Kakao Pay
// ---------------------------------------------------------------------------------------

/// Kakao Pay on `base`: `/online/v1/payment/{ready,approve,order,cancel}` and the payer's
/// page `/pay/{tid}` (next_redirect_pc_url).
///
/// `state()`: `{"tids": {tid: {status, partner_order_id, pg_token, approved, canceled, ...}},
/// "ready_calls", "approve_calls", "order_calls", "cancel_calls", "injected_failures",
/// "behaviour"}`; `reset()` forgets every tid and counter.
pub type KakaoPeer = ControlledFake<Kakao>;

/// What a [`KakaoPeer`] was started with.
pub struct Kakao {
    pub secret_key: String,
    pub cid: String,
}

impl KakaoPeer {
    pub fn start(secret_key: &str, cid: &str) -> KakaoPeer {
        let args = ["--secret-key", secret_key, "--cid", cid];
        ControlledFake::python("kakaopay_fake.py", "Kakao Pay", &args).with(Kakao {
            secret_key: secret_key.to_string(),
            cid: cid.to_string(),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Naver Pay
// ---------------------------------------------------------------------------------------

/// Naver Pay on `base`: `/{partner_id}/naverpay/payments/{v2/reserve, v2.2/apply/payment,
/// v1/cancel, v2.2/list/history}` (the literal `naverpay-partner` works as the partner
/// segment too) and the payer's page `/payments/{reserveId}`.
///
/// `state()`: `{"reserves": {reserveId: {...}}, "payments": {paymentId: {state, detail, rows,
/// rest}}, "idempotency_keys": [...], "reserve_calls", "apply_calls", "cancel_calls",
/// "history_calls", "injected_failures", "behaviour"}`; `reset()` forgets every reservation,
/// payment, idempotency key and counter.
pub type NaverPeer = ControlledFake<Naver>;

/// What a [`NaverPeer`] was started with.
pub struct Naver {
    pub client_id: String,
    pub client_secret: String,
    pub chain_id: String,
    pub partner_id: String,
}

impl NaverPeer {
    pub fn start(
        client_id: &str,
        client_secret: &str,
        chain_id: &str,
        partner_id: &str,
    ) -> NaverPeer {
        let args = [
            "--client-id",
            client_id,
            "--client-secret",
            client_secret,
            "--chain-id",
            chain_id,
            "--partner-id",
            partner_id,
        ];
        ControlledFake::python("naverpay_fake.py", "Naver Pay", &args).with(Naver {
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            chain_id: chain_id.to_string(),
            partner_id: partner_id.to_string(),
        })
    }
}
