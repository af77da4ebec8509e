//! PayPal Orders v2: client-credentials token (cached until shortly before expiry),
//! create (intent CAPTURE, our order id as `custom_id`), approve link, capture on return,
//! refund through the capture, order lookup for reconciliation, and webhook verification
//! through `verify-webhook-signature`. Every write carries a `PayPal-Request-Id` derived
//! from our order id, so a retry never makes a second order, capture or refund.

use futures_util::future::BoxFuture;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::{
    transport, Capture, Checkout, Lookup, OrderRef, PaymentError, PaymentProvider, ReturnParams,
    ReturnUrls, WebhookEvent, WebhookHeaders, WebhookNews,
};
use crate::config::PaypalConfig;
use crate::money::{from_decimal, to_decimal};
use crate::store::orders::Order;

pub struct Paypal {
    client_id: String,
    client_secret: String,
    api: String,
    pub webhook_id: String,
    currencies: Vec<String>,
    http: reqwest::Client,
    token: Mutex<Option<(String, Instant)>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: u64,
}

/// A capture inside an order: `purchase_units[].payments.captures[]`.
fn captures(order: &Value) -> Vec<&Value> {
    order["purchase_units"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|u| u["payments"]["captures"].as_array().into_iter().flatten())
        .collect()
}

/// A capture object (`purchase_units[].payments.captures[]`, or a webhook's resource).
pub(crate) fn capture_of(value: &Value) -> Option<Capture> {
    let currency = value["amount"]["currency_code"].as_str()?.to_string();
    Some(Capture {
        payment_id: value["id"].as_str()?.to_string(),
        amount: from_decimal(value["amount"]["value"].as_str()?, &currency)?,
        currency,
    })
}

/// Capture answers (422) that settle the payment as refused: nothing was taken and
/// nothing will be. Any other failure leaves the outcome unknown, so the order stays
/// approved and a retry or reconciliation settles it.
const CAPTURE_DECLINES: &[&str] = &[
    "INSTRUMENT_DECLINED",
    "TRANSACTION_REFUSED",
    "ORDER_NOT_APPROVED",
    "PAYER_ACTION_REQUIRED",
    "PAYER_CANNOT_PAY",
    "PAYEE_BLOCKED_TRANSACTION",
    "MAX_NUMBER_OF_PAYMENT_ATTEMPTS_EXCEEDED",
    "COMPLIANCE_VIOLATION",
    "REDIRECT_PAYER_FOR_ALTERNATE_FUNDING",
];

/// PayPal answers that say "not now" rather than "no": rate limiting and server errors.
fn retryable(status: u16) -> bool {
    status == 429 || status >= 500
}

/// What `verify-webhook-signature` takes. `webhook_event` is the delivery's body exactly as
/// received: PayPal checks the signature over those bytes, so a re-serialised event (keys
/// re-ordered, numbers re-formatted) would fail verification.
#[derive(Serialize)]
struct VerifyRequest<'a> {
    auth_algo: String,
    cert_url: String,
    transmission_id: String,
    transmission_sig: String,
    transmission_time: String,
    webhook_id: &'a str,
    webhook_event: &'a RawValue,
}

/// The `issue` of a PayPal error body (`details[0].issue`), else its `name`.
fn issue(body: &Value) -> String {
    body["details"][0]["issue"]
        .as_str()
        .or_else(|| body["name"].as_str())
        .unwrap_or("UNKNOWN")
        .to_string()
}

impl Paypal {
    pub fn new(cfg: &PaypalConfig, http: reqwest::Client) -> Self {
        Self {
            client_id: cfg.client_id.clone(),
            client_secret: cfg.client_secret.0.clone(),
            api: cfg.api_url.trim_end_matches('/').to_string(),
            webhook_id: cfg.webhook_id.clone(),
            currencies: cfg.currencies.clone(),
            http,
            token: Mutex::new(None),
        }
    }

    async fn token(&self) -> Result<String, PaymentError> {
        if let Some((token, until)) = self.token.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            if Instant::now() < until {
                return Ok(token);
            }
        }
        let response = self
            .http
            .post(format!("{}/v1/oauth2/token", self.api))
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .map_err(|e| transport("PayPal", e))?;
        if !response.status().is_success() {
            return Err(if retryable(response.status().as_u16()) {
                PaymentError::Unavailable(format!(
                    "PayPal token: HTTP {}",
                    response.status().as_u16()
                ))
            } else {
                PaymentError::Refused(format!(
                    "PayPal refused the credentials (HTTP {}): check payments.paypal.client_id/client_secret",
                    response.status().as_u16()
                ))
            });
        }
        let t: TokenResponse = response.json().await.map_err(|e| transport("PayPal", e))?;
        // Renewed a minute early so a token never expires in flight.
        let life = Duration::from_secs(t.expires_in.saturating_sub(60).max(30));
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((t.access_token.clone(), Instant::now() + life));
        Ok(t.access_token)
    }

    /// One authenticated call. A 401 drops the cached token and retries once.
    async fn call<B: Serialize + ?Sized>(
        &self,
        method: reqwest::Method,
        path: &str,
        request_id: Option<&str>,
        body: Option<&B>,
    ) -> Result<(u16, Value), PaymentError> {
        for attempt in 0..2 {
            let token = self.token().await?;
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.api))
                .bearer_auth(&token)
                .header("Prefer", "return=representation");
            if let Some(id) = request_id {
                req = req.header("PayPal-Request-Id", id);
            }
            if let Some(body) = body {
                req = req.json(body);
            }
            let response = req.send().await.map_err(|e| transport("PayPal", e))?;
            let status = response.status().as_u16();
            if status == 401 && attempt == 0 {
                *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
                continue;
            }
            let text = response.bytes().await.map_err(|e| transport("PayPal", e))?;
            let value: Option<Value> = if text.is_empty() {
                Some(Value::Null)
            } else {
                serde_json::from_slice(&text).ok()
            };
            // 429 RATE_LIMIT_REACHED and 5xx: PayPal did not do it, or may have; either way
            // it is for a retry, never a refusal.
            if retryable(status) {
                return Err(PaymentError::Unavailable(format!(
                    "PayPal answered HTTP {status} {}",
                    value.as_ref().map(issue).unwrap_or_default()
                )));
            }
            let value = value.ok_or_else(|| {
                PaymentError::Unavailable(format!(
                    "PayPal answered HTTP {status} with something unreadable"
                ))
            })?;
            return Ok((status, value));
        }
        Err(PaymentError::Refused(
            "PayPal refused our access token twice".into(),
        ))
    }

    /// Asks PayPal whether a webhook delivery is genuine. `event` is the body exactly as
    /// it arrived; `headers` the delivery's (`paypal-*` are read).
    async fn verify(
        &self,
        headers: &WebhookHeaders,
        event: &RawValue,
    ) -> Result<bool, PaymentError> {
        let header = |name: &str| headers.get(name).cloned();
        if self.webhook_id.is_empty() {
            return Ok(false);
        }
        let (
            Some(auth_algo),
            Some(cert_url),
            Some(transmission_id),
            Some(transmission_sig),
            Some(transmission_time),
        ) = (
            header("paypal-auth-algo"),
            header("paypal-cert-url"),
            header("paypal-transmission-id"),
            header("paypal-transmission-sig"),
            header("paypal-transmission-time"),
        )
        else {
            return Ok(false);
        };
        let body = VerifyRequest {
            auth_algo,
            cert_url,
            transmission_id,
            transmission_sig,
            transmission_time,
            webhook_id: &self.webhook_id,
            webhook_event: event,
        };
        let (status, answer) = self
            .call(
                reqwest::Method::POST,
                "/v1/notifications/verify-webhook-signature",
                None,
                Some(&body),
            )
            .await?;
        Ok(status == 200 && answer["verification_status"] == "SUCCESS")
    }
}

impl PaymentProvider for Paypal {
    fn id(&self) -> &'static str {
        "paypal"
    }

    fn accepts(&self, currency: &str) -> bool {
        self.currencies.iter().any(|c| c == currency)
    }

    fn accepted(&self) -> String {
        self.currencies.join(", ")
    }

    fn link_lifetime(&self) -> Duration {
        // PayPal: the payer has 3 hours to act on an order's approval link.
        Duration::from_secs(3 * 3600)
    }

    fn check_return(&self, order: &Order, params: &ReturnParams) -> Result<(), PaymentError> {
        // PayPal adds `token` = its order id to every return; without it, or with another
        // one, the return is not this order's payer coming back.
        match (order.provider_ref.as_deref(), params.get("token")) {
            (Some(id), Some(token)) if token == id => Ok(()),
            _ => Err(PaymentError::Declined(
                "the return does not belong to this order".into(),
            )),
        }
    }

    fn retry_params(&self, order: &Order) -> Option<ReturnParams> {
        // Capture needs nothing from the return, and its PayPal-Request-Id (`capture-{id}`)
        // makes a retry answer the first capture instead of taking the money twice.
        order.provider_ref.as_ref().map(|_| ReturnParams::new())
    }

    fn create<'a>(
        &'a self,
        order: &'a Order,
        item: &'a str,
        urls: &'a ReturnUrls,
    ) -> BoxFuture<'a, Result<Checkout, PaymentError>> {
        Box::pin(async move {
            let body = json!({
                "intent": "CAPTURE",
                "purchase_units": [{
                    "reference_id": order.film_id.to_string(),
                    "custom_id": order.id.to_string(),
                    "description": item.chars().take(127).collect::<String>(),
                    "amount": {
                        "currency_code": order.currency,
                        "value": to_decimal(order.amount, &order.currency),
                    },
                }],
                "payment_source": { "paypal": { "experience_context": {
                    "return_url": urls.approve,
                    "cancel_url": urls.cancel,
                    "user_action": "PAY_NOW",
                    "shipping_preference": "NO_SHIPPING",
                }}},
            });
            let (status, answer) = self
                .call(
                    reqwest::Method::POST,
                    "/v2/checkout/orders",
                    Some(&format!("create-{}", order.id)),
                    Some(&body),
                )
                .await?;
            if status != 200 && status != 201 {
                return Err(PaymentError::Refused(format!(
                    "PayPal: {} (HTTP {status})",
                    issue(&answer)
                )));
            }
            let id = answer["id"]
                .as_str()
                .ok_or_else(|| PaymentError::Unavailable("PayPal returned no order id".into()))?;
            // `payer-action` with experience_context, `approve` with the older application_context.
            let link = answer["links"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|l| l["rel"] == "payer-action" || l["rel"] == "approve")
                .and_then(|l| l["href"].as_str())
                .ok_or_else(|| {
                    PaymentError::Unavailable("PayPal returned no approval link".into())
                })?;
            Ok(Checkout {
                provider_ref: id.to_string(),
                redirect_url: link.to_string(),
                mobile_url: None,
                app_url: None,
            })
        })
    }

    fn capture<'a>(
        &'a self,
        order: &'a Order,
        _params: &'a ReturnParams,
    ) -> BoxFuture<'a, Result<Capture, PaymentError>> {
        Box::pin(async move {
            let id = order
                .provider_ref
                .as_deref()
                .ok_or_else(|| PaymentError::Declined("the order never reached PayPal".into()))?;
            let (status, answer) = self
                .call(
                    reqwest::Method::POST,
                    &format!("/v2/checkout/orders/{id}/capture"),
                    Some(&format!("capture-{}", order.id)),
                    Some(&json!({})),
                )
                .await?;
            if status == 200 || status == 201 {
                let all = captures(&answer);
                let capture = all.iter().find(|c| c["status"] == "COMPLETED");
                return match capture.and_then(|c| capture_of(c)) {
                    Some(c) => Ok(c),
                    None => match all.first() {
                        Some(c) if c["status"] == "PENDING" => Err(PaymentError::Unavailable(
                            "PayPal holds the capture as pending".into(),
                        )),
                        Some(c) => Err(PaymentError::Declined(format!(
                            "PayPal capture {}",
                            c["status"].as_str().unwrap_or("not completed")
                        ))),
                        None => Err(PaymentError::Unavailable(
                            "PayPal returned no capture".into(),
                        )),
                    },
                };
            }
            match (status, issue(&answer).as_str()) {
                // Captured before (a retry with another request id, or by a webhook path):
                // PayPal's order tells what was taken.
                (_, "ORDER_ALREADY_CAPTURED") => match self.lookup(order).await? {
                    Lookup::Captured(c) => Ok(c),
                    other => Err(PaymentError::Unavailable(format!(
                        "PayPal says captured, order shows {other:?}"
                    ))),
                },
                (422, decline) if CAPTURE_DECLINES.contains(&decline) => {
                    Err(PaymentError::Declined(format!("PayPal: {decline}")))
                }
                // The order is gone at PayPal (its capture window closed): nothing was taken.
                (404, other) => Err(PaymentError::Declined(format!("PayPal: {other}"))),
                (400 | 401 | 403, other) => Err(PaymentError::Refused(format!(
                    "PayPal refused the capture: {other} (HTTP {status})"
                ))),
                // ORDER_COMPLETION_IN_PROGRESS, a conflict, anything new: the outcome is not
                // known, so the order stays approved for a retry or reconciliation.
                (_, other) => Err(PaymentError::Unavailable(format!(
                    "PayPal answered the capture with {other} (HTTP {status})"
                ))),
            }
        })
    }

    fn lookup<'a>(&'a self, order: &'a Order) -> BoxFuture<'a, Result<Lookup, PaymentError>> {
        Box::pin(async move {
            let Some(id) = order.provider_ref.as_deref() else {
                return Ok(Lookup::Abandoned("never reached PayPal".into()));
            };
            let (status, answer) = self
                .call(
                    reqwest::Method::GET,
                    &format!("/v2/checkout/orders/{id}"),
                    None,
                    None::<&Value>,
                )
                .await?;
            if status == 404 {
                return Ok(Lookup::Abandoned(
                    "PayPal does not know the order (expired)".into(),
                ));
            }
            if status != 200 {
                return Err(PaymentError::Unavailable(format!(
                    "PayPal: {} (HTTP {status})",
                    issue(&answer)
                )));
            }
            let all = captures(&answer);
            if all.iter().any(|c| c["status"] == "REFUNDED") {
                return Ok(Lookup::Refunded);
            }
            if let Some(c) = all
                .iter()
                .find(|c| c["status"] == "COMPLETED" || c["status"] == "PARTIALLY_REFUNDED")
                .and_then(|c| capture_of(c))
            {
                return Ok(Lookup::Captured(c));
            }
            Ok(match answer["status"].as_str() {
                Some("VOIDED") => Lookup::Abandoned("PayPal voided the order".into()),
                // The payer approved; the money moves only when we capture.
                Some("APPROVED") => Lookup::Approved,
                _ => Lookup::Pending,
            })
        })
    }

    fn refund<'a>(&'a self, order: &'a Order) -> BoxFuture<'a, Result<(), PaymentError>> {
        Box::pin(async move {
            let capture = order
                .payment_id
                .as_deref()
                .ok_or_else(|| PaymentError::Refused("the order has no PayPal capture".into()))?;
            let (status, answer) = self
                .call(
                    reqwest::Method::POST,
                    &format!("/v2/payments/captures/{capture}/refund"),
                    Some(&format!("refund-{}", order.id)),
                    Some(&json!({})),
                )
                .await?;
            match (status, issue(&answer).as_str()) {
                (200 | 201, _) | (_, "CAPTURE_FULLY_REFUNDED") => Ok(()),
                (409, other) => Err(PaymentError::Unavailable(format!(
                    "PayPal: {other} (HTTP {status})"
                ))),
                (_, other) => Err(PaymentError::Refused(format!(
                    "PayPal: {other} (HTTP {status})"
                ))),
            }
        })
    }

    fn webhook_event(&self, event: &Value) -> Option<WebhookEvent> {
        let id = event["id"]
            .as_str()
            .filter(|id| !id.is_empty() && id.len() <= 255)?;
        let resource = &event["resource"];
        let by_custom_id = || {
            resource["custom_id"]
                .as_str()
                .and_then(crate::store::parse_id)
                .map(OrderRef::Order)
        };
        let (about, news) = match event["event_type"].as_str().unwrap_or("") {
            "PAYMENT.CAPTURE.COMPLETED" => {
                (by_custom_id()?, WebhookNews::Captured(capture_of(resource)))
            }
            "PAYMENT.CAPTURE.DENIED" | "PAYMENT.CAPTURE.DECLINED" => (
                by_custom_id()?,
                WebhookNews::Declined("PayPal denied the capture".into()),
            ),
            // A refund made in PayPal's dashboard may carry no custom_id: its capture names
            // the order.
            "PAYMENT.CAPTURE.REFUNDED" | "PAYMENT.CAPTURE.REVERSED" => {
                let about = if resource["custom_id"].is_null() {
                    OrderRef::Payment(refunded_capture(event)?.to_string())
                } else {
                    by_custom_id()?
                };
                (about, WebhookNews::Refunded)
            }
            _ => return None,
        };
        Some(WebhookEvent {
            id: id.to_string(),
            about,
            news,
        })
    }

    fn verify_webhook<'a>(
        &'a self,
        headers: &'a WebhookHeaders,
        raw: &'a RawValue,
    ) -> BoxFuture<'a, Result<bool, PaymentError>> {
        Box::pin(self.verify(headers, raw))
    }
}

/// The capture a refund or reversal event is about: the refund resource's `up` link
/// (`…/v2/payments/captures/{id}`), else, for a reversal delivered with the capture itself
/// as its resource, the resource's own id.
fn refunded_capture(event: &Value) -> Option<&str> {
    let resource = &event["resource"];
    let up = resource["links"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["rel"] == "up")
        .and_then(|l| l["href"].as_str())
        .and_then(|h| h.split_once("/v2/payments/captures/"))
        .map(|(_, id)| id.trim_end_matches('/'));
    match up {
        Some(id) => Some(id),
        None if event["event_type"] == "PAYMENT.CAPTURE.REVERSED" => resource["id"].as_str(),
        None => None,
    }
    .filter(|id| !id.is_empty() && id.len() <= 64 && !id.contains('/'))
}
