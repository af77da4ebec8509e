//! Apple Push Notification service over HTTP/2 with a provider token: an ES256 JWT
//! (header `alg`, `kid`; claims `iss` = team id, `iat`) signed with the `.p8` key, made
//! again after 40 minutes (Apple refuses one older than an hour and one renewed more often
//! than every 20 minutes), sent as `authorization: bearer …` with each
//! `POST {base}/3/device/{token}`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::Config;
use crate::notify::http;
use crate::notify::{NotifyError, Outcome};

/// How long one provider token is used.
pub const TOKEN_REUSE: Duration = Duration::from_secs(40 * 60);
/// How long APNs keeps trying to reach a device that is off (`apns-expiration`).
const EXPIRATION_SECS: i64 = 24 * 3600;

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: i64,
}

pub struct Apns {
    client: reqwest::Client,
    base: String,
    topic: String,
    team_id: String,
    key_id: String,
    key: EncodingKey,
    token: Mutex<Option<(String, Instant)>>,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Apns {
    /// From `[push.apns]`; an unreadable key stops start-up.
    pub fn from_config(config: &Config) -> Result<Self, NotifyError> {
        let a = &config.push.apns;
        let bad = |key: &'static str, message: String| NotifyError::Config { key, message };
        let path = config.key_path(&a.key_file);
        let pem = std::fs::read(&path)
            .map_err(|e| bad("push.apns.key_file", format!("{}: {e}", path.display())))?;
        let key = EncodingKey::from_ec_pem(&pem).map_err(|e| {
            bad(
                "push.apns.key_file",
                format!("{} is not an EC private key in PEM: {e}", path.display()),
            )
        })?;
        let apns = Self {
            client: http::client(true).map_err(|e| bad("push.apns", e))?,
            base: a.effective_base_url().trim_end_matches('/').to_string(),
            topic: a.topic.clone(),
            team_id: a.team_id.clone(),
            key_id: a.key_id.clone(),
            key,
            token: Mutex::new(None),
        };
        // Sign once now, so a key of the wrong curve fails at start, not at the first push.
        apns.sign().map_err(|e| bad("push.apns.key_file", e))?;
        Ok(apns)
    }

    fn sign(&self) -> Result<String, String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        let claims = Claims {
            iss: &self.team_id,
            iat: unix_now(),
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| format!("signing the APNs provider token: {e}"))
    }

    /// The provider token to send: the current one until it is `TOKEN_REUSE` old.
    fn provider_token(&self) -> Result<String, String> {
        let mut current = self.token.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((t, made)) = current.as_ref() {
            if made.elapsed() < TOKEN_REUSE {
                return Ok(t.clone());
            }
        }
        let t = self.sign()?;
        *current = Some((t.clone(), Instant::now()));
        Ok(t)
    }

    /// APNs called `refused` expired: the next attempt signs a new one (unless another
    /// send already did). Not signed here: a token made in the same second would be the
    /// same token.
    fn expire(&self, refused: &str) {
        let mut current = self.token.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_some_and(|(t, _)| t == refused) {
            *current = None;
        }
    }

    /// Sends one alert to `token`; `data` rides beside `aps` in the payload.
    pub async fn send(
        &self,
        token: &str,
        title: &str,
        body: &str,
        data: &BTreeMap<String, String>,
    ) -> Outcome {
        let bearer = match self.provider_token() {
            Ok(t) => t,
            Err(reason) => return Outcome::Failed { reason },
        };
        let mut payload = Map::new();
        for (k, v) in data {
            if k != "aps" {
                payload.insert(k.clone(), Value::String(v.clone()));
            }
        }
        payload.insert(
            "aps".into(),
            serde_json::json!({"alert": {"title": title, "body": body}, "sound": "default"}),
        );
        let resp = match self
            .client
            .post(format!("{}/3/device/{token}", self.base))
            .header("authorization", format!("bearer {bearer}"))
            .header("apns-topic", &self.topic)
            .header("apns-push-type", "alert")
            .header("apns-priority", "10")
            .header(
                "apns-expiration",
                (unix_now() + EXPIRATION_SECS).to_string(),
            )
            .json(&Value::Object(payload))
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return http::transport_failure(&e, "APNs"),
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let outcome = classify(status, &headers, &text);
        if reason_of(&text) == "ExpiredProviderToken" {
            self.expire(&bearer);
        }
        outcome
    }
}

/// The `reason` of an APNs error body (`{"reason": "BadDeviceToken"}`).
fn reason_of(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v["reason"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// APNs's answer as an outcome (Apple: "Handling notification responses from APNs").
fn classify(status: StatusCode, headers: &reqwest::header::HeaderMap, text: &str) -> Outcome {
    if status.is_success() {
        return Outcome::Delivered;
    }
    let why = reason_of(text);
    let reason = format!("APNs answered {status} {why}");
    if status == StatusCode::GONE
        || (status == StatusCode::BAD_REQUEST && (why == "BadDeviceToken" || why == "Unregistered"))
    {
        return Outcome::Gone { reason };
    }
    if status == StatusCode::FORBIDDEN && why == "ExpiredProviderToken" {
        return Outcome::Retry {
            after: None,
            reason,
        };
    }
    if http::is_transient(status) {
        return Outcome::Retry {
            after: http::retry_after(headers),
            reason,
        };
    }
    Outcome::Failed { reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    #[test]
    fn each_answer_maps_to_its_outcome() {
        let none = HeaderMap::new();
        let s = |c: u16| StatusCode::from_u16(c).unwrap_or(StatusCode::IM_A_TEAPOT);
        assert_eq!(classify(s(200), &none, ""), Outcome::Delivered);
        let gone = |c, body| matches!(classify(s(c), &none, body), Outcome::Gone { .. });
        assert!(gone(410, r#"{"reason":"Unregistered","timestamp":1}"#));
        assert!(gone(400, r#"{"reason":"BadDeviceToken"}"#));
        assert!(gone(400, r#"{"reason":"Unregistered"}"#));
        assert!(matches!(
            classify(s(400), &none, r#"{"reason":"DeviceTokenNotForTopic"}"#),
            Outcome::Failed { .. }
        ));
        assert!(matches!(
            classify(s(403), &none, r#"{"reason":"ExpiredProviderToken"}"#),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            classify(s(403), &none, r#"{"reason":"InvalidProviderToken"}"#),
            Outcome::Failed { .. }
        ));
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("12"));
        assert!(matches!(
            classify(s(429), &h, r#"{"reason":"TooManyRequests"}"#),
            Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(12)
        ));
        assert!(matches!(
            classify(s(503), &none, r#"{"reason":"ServiceUnavailable"}"#),
            Outcome::Retry { .. }
        ));
        assert!(matches!(classify(s(500), &none, ""), Outcome::Retry { .. }));
        assert!(matches!(
            classify(s(413), &none, r#"{"reason":"PayloadTooLarge"}"#),
            Outcome::Failed { .. }
        ));
    }
}
