//! OpenID Connect ID token verification (Google, Apple): signature against the provider's
//! JWKS (cached; fetched again when a token names an unknown `kid`, at most once a
//! minute), algorithm pinned to RS256, issuer, audience, expiry, nonce.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{decode, decode_header, errors::ErrorKind, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::identity::{IdentityError, ProviderId, ProviderIdentity};

/// How long fetched keys are trusted before they are fetched again.
const JWKS_MAX_AGE: Duration = Duration::from_secs(3600);
/// Unknown `kid`s do not trigger more than one fetch per this interval (a flood of tokens
/// with made-up `kid`s must not become a flood of requests to the provider).
const JWKS_MIN_REFETCH: Duration = Duration::from_secs(60);
/// Clock skew tolerated on `exp` / `iat`.
const LEEWAY_SECS: u64 = 60;

/// How the nonce is checked.
#[derive(Debug, Clone, Copy)]
pub enum Nonce<'a> {
    /// Web flow: the token must carry exactly the nonce cinegate sent.
    Exact(&'a str),
    /// Native flow: the app says which nonce it used, if any; the token's nonce must be it
    /// or its SHA-256 in hex (Apple's SDKs send the hash). A token with a nonce needs one.
    Native(Option<&'a str>),
}

#[derive(Debug, Deserialize)]
struct IdClaims {
    sub: String,
    iat: i64,
    #[serde(default)]
    email: Option<String>,
    /// Google sends a boolean, Apple a string.
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

struct Keys {
    keys: Vec<Jwk>,
    fetched: Instant,
}

pub struct IdTokenVerifier {
    provider: ProviderId,
    issuer: String,
    audiences: Vec<String>,
    jwks_url: String,
    http: reqwest::Client,
    cache: Mutex<Option<Keys>>,
    last_fetch: Mutex<Option<Instant>>,
}

impl IdTokenVerifier {
    pub fn new(
        provider: ProviderId,
        issuer: &str,
        audiences: Vec<String>,
        jwks_url: &str,
        http: reqwest::Client,
    ) -> Self {
        Self {
            provider,
            issuer: issuer.to_string(),
            audiences,
            jwks_url: jwks_url.to_string(),
            http,
            cache: Mutex::new(None),
            last_fetch: Mutex::new(None),
        }
    }

    pub async fn verify(
        &self,
        token: &str,
        nonce: Nonce<'_>,
        now: i64,
    ) -> Result<ProviderIdentity, IdentityError> {
        let bad = |m: &str| IdentityError::InvalidIdToken(m.to_string());
        // `decode_header` refuses `alg: none` (not an algorithm it knows).
        let header = decode_header(token).map_err(|_| bad("not a signed JWT"))?;
        if header.alg != Algorithm::RS256 {
            return Err(bad(&format!(
                "algorithm {:?} is not accepted (RS256 only)",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| bad("the token names no signing key (kid)"))?;
        let jwk = self.key(&kid).await?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| bad("the provider's key is unusable"))?;

        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&self.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub", "iat"]);
        validation.leeway = LEEWAY_SECS;
        let claims = decode::<IdClaims>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => bad("it has expired"),
                ErrorKind::InvalidIssuer => bad("it was issued by someone else (iss)"),
                ErrorKind::InvalidAudience => bad("it was issued for another client (aud)"),
                ErrorKind::InvalidSignature => bad("the signature does not verify"),
                ErrorKind::InvalidAlgorithm => bad("the algorithm does not match the key"),
                ErrorKind::MissingRequiredClaim(c) => bad(&format!("claim {c} is missing")),
                ErrorKind::Json(_) => bad("a claim is missing or of the wrong type"),
                _ => bad("it is malformed"),
            })?
            .claims;
        // jsonwebtoken checks `exp` and `nbf` only; a token "issued" in the future is forged
        // or from a broken clock.
        if claims.iat > now + LEEWAY_SECS as i64 {
            return Err(bad("it was issued in the future (iat)"));
        }
        check_nonce(claims.nonce.as_deref(), nonce)?;
        if claims.sub.is_empty() || claims.sub.len() > 255 {
            return Err(bad("the subject is empty or too long"));
        }
        let email_verified = match &claims.email_verified {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) => s == "true",
            _ => false,
        };
        Ok(ProviderIdentity {
            provider: self.provider,
            subject: claims.sub,
            email: claims.email,
            email_verified,
            name: claims.name,
        })
    }

    async fn key(&self, kid: &str) -> Result<Jwk, IdentityError> {
        let cached = {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            match cache.as_ref() {
                Some(k) if k.fetched.elapsed() < JWKS_MAX_AGE => Some(find(&k.keys, kid)),
                _ => None,
            }
        };
        match cached {
            Some(Some(jwk)) => return Ok(jwk),
            Some(None) if !self.may_refetch() => {
                return Err(IdentityError::InvalidIdToken(
                    "it is signed with a key the provider does not publish".into(),
                ))
            }
            _ => {}
        }
        let keys = self.fetch().await?;
        let found = find(&keys, kid);
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some(Keys {
            keys,
            fetched: Instant::now(),
        });
        found.ok_or_else(|| {
            IdentityError::InvalidIdToken(
                "it is signed with a key the provider does not publish".into(),
            )
        })
    }

    fn may_refetch(&self) -> bool {
        let mut last = self.last_fetch.lock().unwrap_or_else(|p| p.into_inner());
        match *last {
            Some(t) if t.elapsed() < JWKS_MIN_REFETCH => false,
            _ => {
                *last = Some(Instant::now());
                true
            }
        }
    }

    async fn fetch(&self) -> Result<Vec<Jwk>, IdentityError> {
        *self.last_fetch.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        let unavailable = |what: String| {
            IdentityError::ProviderUnavailable(format!(
                "{} signing keys: {what}",
                self.provider.display_name()
            ))
        };
        let response = self
            .http
            .get(&self.jwks_url)
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("HTTP {}", response.status().as_u16())));
        }
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        // Keys of kinds this build cannot read are skipped, not fatal.
        let keys: Vec<Jwk> = body
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or_else(|| unavailable("no `keys` array".into()))?
            .iter()
            .filter_map(|k| serde_json::from_value(k.clone()).ok())
            .collect();
        Ok(keys)
    }
}

fn find(keys: &[Jwk], kid: &str) -> Option<Jwk> {
    keys.iter()
        .find(|k| k.common.key_id.as_deref() == Some(kid))
        .cloned()
}

fn check_nonce(token: Option<&str>, expected: Nonce<'_>) -> Result<(), IdentityError> {
    let wrong = || IdentityError::InvalidIdToken("the nonce does not match".into());
    match (expected, token) {
        (Nonce::Exact(want), Some(got)) if want == got => Ok(()),
        (Nonce::Exact(_), _) => Err(wrong()),
        (Nonce::Native(None), None) => Ok(()),
        (Nonce::Native(Some(raw)), Some(got)) => {
            let hashed = hex::encode(Sha256::digest(raw.as_bytes()));
            if got == raw || got == hashed {
                Ok(())
            } else {
                Err(wrong())
            }
        }
        (Nonce::Native(_), _) => Err(wrong()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_rules() {
        assert!(check_nonce(Some("n1"), Nonce::Exact("n1")).is_ok());
        assert!(check_nonce(Some("n2"), Nonce::Exact("n1")).is_err());
        assert!(check_nonce(None, Nonce::Exact("n1")).is_err());
        assert!(check_nonce(None, Nonce::Native(None)).is_ok());
        assert!(check_nonce(Some("x"), Nonce::Native(None)).is_err());
        assert!(check_nonce(None, Nonce::Native(Some("x"))).is_err());
        assert!(check_nonce(Some("raw"), Nonce::Native(Some("raw"))).is_ok());
        let hashed = hex::encode(Sha256::digest(b"raw"));
        assert!(check_nonce(Some(&hashed), Nonce::Native(Some("raw"))).is_ok());
        assert!(check_nonce(Some(&hashed), Nonce::Native(Some("other"))).is_err());
    }
}
