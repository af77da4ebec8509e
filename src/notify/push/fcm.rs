//! Firebase Cloud Messaging, HTTP v1: the service account's RS256 assertion is exchanged
//! at its `token_uri` for an OAuth access token, kept until shortly before it expires and
//! shared by every send; each message is one `POST {base}/v1/projects/{id}/messages:send`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::Config;
use crate::notify::http;
use crate::notify::{NotifyError, Outcome};

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Google's assertions are valid for at most an hour.
const ASSERTION_SECS: i64 = 3600;
/// An access token is replaced this long before Google says it expires (a fifth of its
/// life when that is shorter), so a send never carries one that expires in flight.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// The fields of Google's service account JSON key that are used.
#[derive(Deserialize)]
struct ServiceAccountFile {
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

#[derive(Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

struct AccessToken {
    value: String,
    renew_at: Instant,
}

pub struct Fcm {
    client: reqwest::Client,
    client_email: String,
    key_id: Option<String>,
    key: EncodingKey,
    token_uri: String,
    send_url: String,
    /// One exchange at a time: concurrent sends wait for the same new token.
    token: tokio::sync::Mutex<Option<AccessToken>>,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// What FCM said about one message.
enum Answer {
    Outcome(Outcome),
    /// 401: the access token was refused.
    Unauthorized,
}

impl Fcm {
    /// From `[push.fcm]` and the service account file; an unreadable key stops start-up.
    pub fn from_config(config: &Config) -> Result<Self, NotifyError> {
        let f = &config.push.fcm;
        let bad = |key: &'static str, message: String| NotifyError::Config { key, message };
        let path = config.key_path(&f.service_account_file);
        let text = std::fs::read(&path).map_err(|e| {
            bad(
                "push.fcm.service_account_file",
                format!("{}: {e}", path.display()),
            )
        })?;
        let account: ServiceAccountFile = serde_json::from_slice(&text).map_err(|e| {
            bad(
                "push.fcm.service_account_file",
                format!("{} is not a service account key: {e}", path.display()),
            )
        })?;
        let key = EncodingKey::from_rsa_pem(account.private_key.as_bytes()).map_err(|e| {
            bad(
                "push.fcm.service_account_file",
                format!(
                    "{}: private_key is not an RSA key in PEM: {e}",
                    path.display()
                ),
            )
        })?;
        let token_uri = account
            .token_uri
            .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string());
        if !(token_uri.starts_with("https://") || crate::config::is_loopback_url(&token_uri)) {
            return Err(bad(
                "push.fcm.service_account_file",
                format!("token_uri {token_uri:?} must be https (plain http only to loopback)"),
            ));
        }
        let fcm = Self {
            client: http::client(false).map_err(|e| bad("push.fcm", e))?,
            client_email: account.client_email,
            key_id: account.private_key_id,
            key,
            token_uri,
            send_url: format!(
                "{}/v1/projects/{}/messages:send",
                f.base_url.trim_end_matches('/'),
                f.project_id
            ),
            token: tokio::sync::Mutex::new(None),
        };
        // Sign once now, so a key that cannot sign fails at start, not at the first push.
        fcm.assertion(0)
            .map_err(|e| bad("push.fcm.service_account_file", e))?;
        Ok(fcm)
    }

    fn assertion(&self, now: i64) -> Result<String, String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.key_id.clone();
        let claims = Assertion {
            iss: &self.client_email,
            scope: SCOPE,
            aud: &self.token_uri,
            iat: now,
            exp: now + ASSERTION_SECS,
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| format!("signing the FCM assertion: {e}"))
    }

    /// The access token to send with; a new one when there is none, it is due, or it is
    /// `refused` (the token FCM just answered 401 to — unless another send already
    /// replaced it).
    async fn access_token(&self, refused: Option<&str>) -> Result<String, Outcome> {
        let mut current = self.token.lock().await;
        if let Some(t) = current.as_ref() {
            let refused_this = refused == Some(t.value.as_str());
            if !refused_this && Instant::now() < t.renew_at {
                return Ok(t.value.clone());
            }
        }
        let fresh = self.exchange().await?;
        let value = fresh.value.clone();
        *current = Some(fresh);
        Ok(value)
    }

    async fn exchange(&self) -> Result<AccessToken, Outcome> {
        let assertion = self
            .assertion(unix_now())
            .map_err(|reason| Outcome::Failed { reason })?;
        let resp = self
            .client
            .post(&self.token_uri)
            .form(&[
                ("grant_type", GRANT_TYPE),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|e| http::transport_failure(&e, "the FCM token endpoint"))?;
        let status = resp.status();
        if http::is_transient(status) {
            return Err(http::retry(
                status,
                resp.headers(),
                "the FCM token endpoint",
            ));
        }
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            // invalid_grant and the like: the service account or its key is refused;
            // it will not change by itself.
            return Err(Outcome::Failed {
                reason: format!(
                    "the FCM token endpoint refused the service account: {status} {}",
                    short(&text)
                ),
            });
        }
        let answer: TokenAnswer = serde_json::from_str(&text).map_err(|e| Outcome::Retry {
            after: None,
            reason: format!("the FCM token endpoint's answer is not a token: {e}"),
        })?;
        let life = Duration::from_secs(answer.expires_in.unwrap_or(3600));
        let margin = RENEW_BEFORE.min(life / 5);
        Ok(AccessToken {
            value: answer.access_token,
            renew_at: Instant::now() + life - margin,
        })
    }

    /// Sends one notification to `token`.
    pub async fn send(
        &self,
        token: &str,
        title: &str,
        body: &str,
        data: &BTreeMap<String, String>,
    ) -> Outcome {
        let message = json!({"message": {
            "token": token,
            "notification": {"title": title, "body": body},
            "data": data,
        }});
        let access = match self.access_token(None).await {
            Ok(t) => t,
            Err(outcome) => return outcome,
        };
        match self.post(&access, &message).await {
            Answer::Outcome(o) => o,
            // A token revoked early (or the clocks disagree): one fresh token, one more
            // try now; refused again, the worker tries later.
            Answer::Unauthorized => {
                let access = match self.access_token(Some(&access)).await {
                    Ok(t) => t,
                    Err(outcome) => return outcome,
                };
                match self.post(&access, &message).await {
                    Answer::Outcome(o) => o,
                    Answer::Unauthorized => Outcome::Retry {
                        after: None,
                        reason: "FCM refused a fresh access token (401)".into(),
                    },
                }
            }
        }
    }

    async fn post(&self, access: &str, message: &Value) -> Answer {
        let resp = match self
            .client
            .post(&self.send_url)
            .bearer_auth(access)
            .json(message)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return Answer::Outcome(http::transport_failure(&e, "FCM")),
        };
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED {
            return Answer::Unauthorized;
        }
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        Answer::Outcome(classify(status, &headers, &text))
    }
}

/// FCM's answer to a send as an outcome (docs: "FCM HTTP v1 error codes"); 401 is the
/// caller's.
fn classify(status: StatusCode, headers: &reqwest::header::HeaderMap, text: &str) -> Outcome {
    if status.is_success() {
        return Outcome::Delivered;
    }
    let error: Value = serde_json::from_str::<Value>(text)
        .ok()
        .map(|v| v["error"].clone())
        .unwrap_or(Value::Null);
    let details = error["details"].as_array().cloned().unwrap_or_default();
    let error_code = details
        .iter()
        .find_map(|d| d["errorCode"].as_str())
        .unwrap_or_default()
        .to_string();
    let reason = format!(
        "FCM answered {status} {}: {}",
        if error_code.is_empty() {
            error["status"].as_str().unwrap_or_default()
        } else {
            &error_code
        },
        short(error["message"].as_str().unwrap_or_default())
    );
    if status == StatusCode::NOT_FOUND || error_code == "UNREGISTERED" {
        return Outcome::Gone { reason };
    }
    if status == StatusCode::BAD_REQUEST
        && (error_code == "INVALID_ARGUMENT" || error["status"] == "INVALID_ARGUMENT")
        && about_the_token(&error, &details)
    {
        return Outcome::Gone { reason };
    }
    if http::is_transient(status) {
        return Outcome::Retry {
            after: http::retry_after(headers),
            reason,
        };
    }
    Outcome::Failed { reason }
}

/// Whether an INVALID_ARGUMENT names the registration token (not the message's shape).
fn about_the_token(error: &Value, details: &[Value]) -> bool {
    let field = details.iter().any(|d| {
        d["fieldViolations"]
            .as_array()
            .is_some_and(|v| v.iter().any(|f| f["field"] == "message.token"))
    });
    field
        || error["message"]
            .as_str()
            .is_some_and(|m| m.to_ascii_lowercase().contains("registration token"))
}

fn short(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    fn fcm_error(code: u16, status: &str, error_code: Option<&str>, extra: Value) -> String {
        let mut details = vec![];
        if let Some(c) = error_code {
            details.push(json!({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": c}));
        }
        if !extra.is_null() {
            details.push(extra);
        }
        json!({"error": {"code": code, "message": "m", "status": status, "details": details}})
            .to_string()
    }

    #[test]
    fn each_answer_maps_to_its_outcome() {
        let none = HeaderMap::new();
        let s = |c: u16| StatusCode::from_u16(c).unwrap_or(StatusCode::IM_A_TEAPOT);
        assert_eq!(
            classify(s(200), &none, "{\"name\":\"x\"}"),
            Outcome::Delivered
        );
        let unreg = fcm_error(404, "NOT_FOUND", Some("UNREGISTERED"), Value::Null);
        assert!(matches!(
            classify(s(404), &none, &unreg),
            Outcome::Gone { .. }
        ));
        let bad_token = fcm_error(
            400,
            "INVALID_ARGUMENT",
            Some("INVALID_ARGUMENT"),
            json!({"@type": "type.googleapis.com/google.rpc.BadRequest",
                   "fieldViolations": [{"field": "message.token", "description": "bad"}]}),
        );
        assert!(matches!(
            classify(s(400), &none, &bad_token),
            Outcome::Gone { .. }
        ));
        // An invalid message (not its token) is ours to fix: failed, the device stays.
        let bad_message = fcm_error(
            400,
            "INVALID_ARGUMENT",
            Some("INVALID_ARGUMENT"),
            json!({"@type": "type.googleapis.com/google.rpc.BadRequest",
                   "fieldViolations": [{"field": "message.data", "description": "bad"}]}),
        );
        assert!(matches!(
            classify(s(400), &none, &bad_message),
            Outcome::Failed { .. }
        ));
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("30"));
        let quota = fcm_error(
            429,
            "RESOURCE_EXHAUSTED",
            Some("QUOTA_EXCEEDED"),
            Value::Null,
        );
        assert!(matches!(
            classify(s(429), &h, &quota),
            Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(30)
        ));
        assert!(matches!(
            classify(s(503), &none, ""),
            Outcome::Retry { after: None, .. }
        ));
        assert!(matches!(
            classify(s(500), &none, "oops"),
            Outcome::Retry { .. }
        ));
        let mismatch = fcm_error(
            403,
            "PERMISSION_DENIED",
            Some("SENDER_ID_MISMATCH"),
            Value::Null,
        );
        assert!(matches!(
            classify(s(403), &none, &mismatch),
            Outcome::Failed { .. }
        ));
    }
}
