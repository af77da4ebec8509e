//! Operator webhooks: the events an operator's endpoints subscribe to (`[[webhooks]]`),
//! rendered once per event and endpoint (`deliveries`), POSTed signed with the endpoint's
//! secret (`sender`). docs/WEBHOOKS.md is the receiver's side.
//!
//! `Cinegate-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` — `t` is the
//! time of the attempt, so each retry is signed afresh. `Cinegate-Delivery` is the same on
//! every attempt of one delivery (derived from the endpoint and the body, which carries the
//! event id): a receiver de-duplicates on it. A 410 drops the delivery with a warning in
//! the log; the endpoint stays configured (only the operator removes it, so a receiver
//! that answered 410 by mistake does not silently stop every later event).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{http, Delivery, NotifyError, Outcome, Sender};
use crate::config::{Config, Secret, WEBHOOK_EVENTS};
use crate::events::{Event, EventRecord};

/// The webhook sender, when `[[webhooks]]` are configured.
pub fn sender(config: &Config) -> Result<Option<Arc<dyn Sender>>, NotifyError> {
    if config.webhooks.is_empty() {
        return Ok(None);
    }
    let client = http::client(false).map_err(|message| NotifyError::Config {
        key: "webhooks",
        message,
    })?;
    Ok(Some(Arc::new(WebhookSender {
        client,
        secrets: config
            .webhooks
            .iter()
            .map(|w| (w.url.clone(), w.secret.clone()))
            .collect(),
    })))
}

/// The body's envelope, fields in this order.
#[derive(Serialize)]
struct Envelope<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'a str,
    created_at: i64,
    data: Value,
}

/// What a receiver learns of `event`: ids (as strings), amounts, codes — never a name or
/// an e-mail address. `None` for the events webhooks do not carry.
fn data(event: &Event) -> Option<Value> {
    Some(match event {
        Event::PackagingFinished { film, job } => json!({"film": film, "job": job}),
        Event::PackagingFailed {
            film,
            job,
            code,
            message,
        } => json!({"film": film, "job": job, "code": code, "message": message}),
        Event::OrderCaptured(o) | Event::OrderRefunded(o) => json!({
            "order": o.order, "film": o.film, "user": o.user, "provider": o.provider,
            "amount": o.amount, "currency": o.currency, "tip": o.tip,
        }),
        Event::CommentReported {
            user,
            film,
            comment,
        } => json!({"comment": comment, "film": film, "reporter": user}),
        _ => return None,
    })
}

/// The webhook deliveries `event` calls for (one per subscribed endpoint).
pub fn deliveries(config: &Config, event: &EventRecord) -> Vec<Delivery> {
    let name = event.event.name();
    if !WEBHOOK_EVENTS.contains(&name) {
        return Vec::new();
    }
    let Some(data) = data(&event.event) else {
        return Vec::new();
    };
    let endpoints: Vec<_> = config
        .webhooks
        .iter()
        .filter(|w| w.events.iter().any(|e| e == name))
        .collect();
    if endpoints.is_empty() {
        return Vec::new();
    }
    let body = serde_json::to_string(&Envelope {
        id: event.id.to_string(),
        kind: name,
        created_at: event.at,
        data,
    })
    .unwrap_or_default();
    endpoints
        .into_iter()
        .map(|w| Delivery::Webhook {
            url: w.url.clone(),
            event: name.to_string(),
            body: body.clone(),
        })
        .collect()
}

/// `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The delivery's id, the same on every attempt: from its endpoint and its body (which
/// names the event).
pub fn delivery_id(url: &str, body: &str) -> String {
    let mut h = Sha256::new();
    h.update(url.as_bytes());
    h.update([0]);
    h.update(body.as_bytes());
    hex::encode(&h.finalize()[..16])
}

pub struct WebhookSender {
    client: reqwest::Client,
    /// Endpoint URL → its secret (looked up at send time: never in the outbox).
    secrets: HashMap<String, Secret>,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Sender for WebhookSender {
    fn send<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let Delivery::Webhook { url, event, body } = delivery else {
                return Outcome::Failed {
                    reason: format!(
                        "a {} delivery reached the webhook sender",
                        delivery.channel()
                    ),
                };
            };
            let Some(secret) = self.secrets.get(url) else {
                // The operator removed the endpoint since the event was routed.
                return Outcome::Gone {
                    reason: "the endpoint is no longer in [[webhooks]]".into(),
                };
            };
            let resp = match self
                .client
                .post(url)
                .header("content-type", "application/json")
                .header("cinegate-event", event)
                .header("cinegate-delivery", delivery_id(url, body))
                .header("cinegate-signature", signature(&secret.0, unix_now(), body))
                .body(body.clone())
                .send()
                .await
            {
                Ok(r) => r,
                Err(e) => return http::transport_failure(&e, "the webhook endpoint"),
            };
            let status = resp.status();
            if status.is_success() {
                Outcome::Delivered
            } else if status == reqwest::StatusCode::GONE {
                tracing::warn!(
                    event = %event,
                    "a webhook endpoint answered 410 Gone: this delivery is dropped; the endpoint stays configured until it is removed from [[webhooks]]"
                );
                Outcome::Gone {
                    reason: "the endpoint answered 410 Gone".into(),
                }
            } else if http::is_transient(status) {
                http::retry(status, resp.headers(), "the webhook endpoint")
            } else {
                Outcome::Failed {
                    reason: format!("the webhook endpoint answered {status}"),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WebhookConfig;
    use crate::events::OrderFacts;

    fn endpoint(url: &str, events: &[&str]) -> WebhookConfig {
        WebhookConfig {
            url: url.into(),
            secret: Secret("0123456789abcdef".into()),
            events: events.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn one_body_per_event_for_each_subscribed_endpoint() -> Result<(), serde_json::Error> {
        let config = Config {
            webhooks: vec![
                endpoint("https://a.example/hook", &WEBHOOK_EVENTS),
                endpoint("https://b.example/hook", &["film.failed"]),
            ],
            ..Config::default()
        };
        let (user, film, order) = (
            crate::store::new_id(),
            crate::store::new_id(),
            crate::store::new_id(),
        );
        let record = EventRecord {
            id: 42,
            at: 1_700_000_000,
            event: Event::OrderCaptured(OrderFacts {
                user,
                film,
                order,
                provider: "paypal".into(),
                amount: 499,
                currency: "USD".into(),
                tip: false,
            }),
        };
        let out = deliveries(&config, &record);
        assert_eq!(out.len(), 1);
        let Delivery::Webhook { url, event, body } = &out[0] else {
            panic!("not a webhook: {out:?}");
        };
        assert_eq!(
            (url.as_str(), event.as_str()),
            ("https://a.example/hook", "order.captured")
        );
        assert!(
            body.starts_with(
                r#"{"id":"42","type":"order.captured","created_at":1700000000,"data":{"#
            ),
            "{body}"
        );
        let v: Value = serde_json::from_str(body)?;
        assert_eq!(v["data"]["order"], order.to_string());
        assert_eq!(v["data"]["amount"], 499);

        let failed = EventRecord {
            id: 43,
            at: 1,
            event: Event::PackagingFailed {
                film,
                job: order,
                code: "not_media".into(),
                message: "m".into(),
            },
        };
        assert_eq!(deliveries(&config, &failed).len(), 2);
        let posted = EventRecord {
            id: 44,
            at: 1,
            event: Event::CommentPosted {
                user,
                film,
                comment: order,
            },
        };
        assert!(deliveries(&config, &posted).is_empty());
        Ok(())
    }

    #[test]
    fn signature_is_hmac_of_time_dot_body() {
        let sig = signature("secret", 1_700_000_000, r#"{"a":1}"#);
        let expected = {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"secret")
                .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
            mac.update(br#"1700000000.{"a":1}"#);
            hex::encode(mac.finalize().into_bytes())
        };
        assert_eq!(sig, format!("t=1700000000,v1={expected}"));
        assert_eq!(delivery_id("u", "b"), delivery_id("u", "b"));
        assert_ne!(delivery_id("u", "b"), delivery_id("v", "b"));
    }
}
