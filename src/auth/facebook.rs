//! Facebook Login is not OpenID Connect: the identity comes from the Graph API's `/me`,
//! called with `appsecret_proof`, and an app's access token is checked with `debug_token`
//! (valid, and issued to this app) before it is believed.
//!
//! Tokens travel in Graph URLs, so no URL from here is ever logged (`without_url`).

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::identity::{IdentityError, ProviderId, ProviderIdentity};

pub struct Graph {
    pub app_id: String,
    app_secret: String,
    graph_url: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Me {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize)]
struct DebugToken {
    data: DebugData,
}

#[derive(Deserialize)]
struct DebugData {
    #[serde(default)]
    is_valid: bool,
    #[serde(default)]
    app_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
}

#[derive(Deserialize)]
struct GraphErrorBody {
    error: GraphError,
}

#[derive(Deserialize)]
struct GraphError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: i64,
}

/// Graph error codes that mean "try again later", not "this token is bad".
fn transient(code: i64) -> bool {
    matches!(code, 1 | 2 | 4 | 17 | 32 | 341 | 613)
}

/// Classifies a Graph error body (also used for the OAuth token endpoint, which answers in
/// Graph's shape rather than OAuth's).
pub fn classify_error(body: &[u8]) -> IdentityError {
    match serde_json::from_slice::<GraphErrorBody>(body) {
        Ok(b) if transient(b.error.code) => IdentityError::ProviderUnavailable(format!(
            "Facebook: {} (code {})",
            b.error.message, b.error.code
        )),
        Ok(b) => IdentityError::ProviderRejected(format!(
            "Facebook: {} (code {})",
            b.error.message, b.error.code
        )),
        Err(_) => {
            IdentityError::ProviderUnavailable("Facebook answered something unreadable".into())
        }
    }
}

impl Graph {
    pub fn new(app_id: &str, app_secret: &str, graph_url: &str, http: reqwest::Client) -> Self {
        Self {
            app_id: app_id.into(),
            app_secret: app_secret.into(),
            graph_url: graph_url.trim_end_matches('/').into(),
            http,
        }
    }

    pub(super) fn secret(&self) -> &str {
        &self.app_secret
    }

    fn proof(&self, access_token: &str) -> String {
        // HMAC accepts keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.app_secret.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(access_token.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, IdentityError> {
        let response = self
            .http
            .get(format!("{}{path}", self.graph_url))
            .query(query)
            .send()
            .await
            .map_err(|e| {
                IdentityError::ProviderUnavailable(format!("Facebook: {}", e.without_url()))
            })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| {
            IdentityError::ProviderUnavailable(format!("Facebook: {}", e.without_url()))
        })?;
        if status.is_server_error() {
            return Err(IdentityError::ProviderUnavailable(format!(
                "Facebook answered HTTP {}",
                status.as_u16()
            )));
        }
        if !status.is_success() {
            return Err(match classify_error(&body) {
                IdentityError::ProviderRejected(m) => IdentityError::InvalidProviderToken(m),
                other => other,
            });
        }
        serde_json::from_slice(&body).map_err(|_| {
            IdentityError::ProviderUnavailable("Facebook answered something unreadable".into())
        })
    }

    /// The person behind a user access token obtained by cinegate's own code exchange.
    pub async fn me(&self, access_token: &str) -> Result<ProviderIdentity, IdentityError> {
        let proof = self.proof(access_token);
        let me: Me = self
            .get(
                "/me",
                &[
                    ("fields", "id,name,email"),
                    ("access_token", access_token),
                    ("appsecret_proof", &proof),
                ],
            )
            .await?;
        if me.id.is_empty() || me.id.len() > 255 {
            return Err(IdentityError::InvalidProviderToken(
                "Facebook returned no user id".into(),
            ));
        }
        Ok(ProviderIdentity {
            provider: ProviderId::Facebook,
            subject: me.id,
            email: me.email,
            // Graph does not say whether an e-mail is verified.
            email_verified: false,
            name: me.name,
        })
    }

    /// A user access token an app got from the Facebook SDK: valid, issued to this app,
    /// then read like `me`.
    pub async fn native(&self, access_token: &str) -> Result<ProviderIdentity, IdentityError> {
        let app_token = format!("{}|{}", self.app_id, self.app_secret);
        let debug: DebugToken = self
            .get(
                "/debug_token",
                &[("input_token", access_token), ("access_token", &app_token)],
            )
            .await?;
        let invalid = |m: &str| IdentityError::InvalidProviderToken(m.to_string());
        if !debug.data.is_valid {
            return Err(invalid("Facebook says the token is not valid"));
        }
        if debug.data.app_id.as_deref() != Some(self.app_id.as_str()) {
            return Err(invalid("the token was issued to another app"));
        }
        let identity = self.me(access_token).await?;
        if debug.data.user_id.as_deref() != Some(identity.subject.as_str()) {
            return Err(invalid("the token's user does not match"));
        }
        Ok(identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appsecret_proof_is_hmac_sha256_hex() {
        let g = Graph::new("1", "key", "http://x", reqwest::Client::new());
        // RFC 4231-style check against a value computed independently with
        // `printf %s 'The quick brown fox jumps over the lazy dog' | openssl dgst -sha256 -hmac key`.
        assert_eq!(
            g.proof("The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn error_classes() {
        assert!(matches!(
            classify_error(br#"{"error":{"message":"down","code":2}}"#),
            IdentityError::ProviderUnavailable(_)
        ));
        assert!(matches!(
            classify_error(br#"{"error":{"message":"code used","code":100}}"#),
            IdentityError::ProviderRejected(_)
        ));
        assert!(matches!(
            classify_error(b"<html>"),
            IdentityError::ProviderUnavailable(_)
        ));
    }
}
