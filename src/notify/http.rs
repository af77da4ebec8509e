//! What the HTTP channels (push, webhooks) share: a client with one attempt's time
//! limit, the provider's `Retry-After`, and a failed request as an `Outcome`.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

use super::Outcome;

/// The longest one attempt may take (connect, send, answer). A slow provider is retried
/// later rather than holding a worker.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A `Retry-After` is honoured up to this; beyond it the provider is asked again then.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(6 * 3600);

/// A client for one channel: no redirects (a provider or receiver that moves is a
/// configuration to fix, and a signed body must not follow it elsewhere); HTTP/2 with
/// prior knowledge when `http2_only` (APNs speaks nothing else: over TLS this asks ALPN
/// for h2, over plain http — a loopback test fake — it is h2c).
pub fn client(http2_only: bool) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("cinegate/", env!("CARGO_PKG_VERSION")));
    if http2_only {
        b = b.http2_prior_knowledge();
    }
    b.build().map_err(|e| e.to_string())
}

/// The provider's `Retry-After` in delta-seconds (an HTTP-date is not honoured: the
/// worker's own backoff applies then).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let secs: u64 = text.parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// 429 and 5xx: the provider is busy or down, the same request may succeed later.
pub fn is_transient(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// `Retry` for a transient status, with its `Retry-After`.
pub fn retry(status: StatusCode, headers: &HeaderMap, what: &str) -> Outcome {
    Outcome::Retry {
        after: retry_after(headers),
        reason: format!("{what} answered {status}"),
    }
}

/// A request that got no answer: timeouts, refused or reset connections are retried; a
/// request that could not even be built (a bad URL) never will succeed.
pub fn transport_failure(e: &reqwest::Error, what: &str) -> Outcome {
    if e.is_builder() {
        Outcome::Failed {
            reason: format!("{what}: {e}"),
        }
    } else {
        let kind = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "could not be reached"
        } else {
            "failed"
        };
        Outcome::Retry {
            after: None,
            reason: format!("{what} {kind}: {}", without_url(e)),
        }
    }
}

/// The error's text without its URL (a webhook URL may carry a token in its query).
fn without_url(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    last.unwrap_or_else(|| "no answer".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_in_seconds_capped() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("99999999"));
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2026 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
        assert!(is_transient(StatusCode::SERVICE_UNAVAILABLE));
        assert!(is_transient(StatusCode::TOO_MANY_REQUESTS));
        assert!(!is_transient(StatusCode::BAD_REQUEST));
    }
}
