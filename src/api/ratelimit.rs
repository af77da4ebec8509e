//! A fixed-window request counter per key: the client address for the sign-in endpoints
//! (`limits.auth_per_minute`), the user for comments (`social.comments_per_minute`). In
//! memory: a restart forgets it, which is acceptable for slowing down guessing and floods,
//! the only things it is for.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use actix_web::http::StatusCode;

use super::error::ApiError;

/// Keyed by client address (sign-in) or by user (comments).
pub struct RateLimiter<K = IpAddr> {
    windows: Mutex<HashMap<K, (i64, u32)>>,
}

impl<K> Default for RateLimiter<K> {
    fn default() -> Self {
        Self {
            windows: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: std::hash::Hash + Eq> RateLimiter<K> {
    /// Counts a request from `key` at `now` (seconds); refuses past `per_minute`.
    pub fn check(&self, key: Option<K>, per_minute: u32, now: i64) -> Result<(), ApiError> {
        let Some(key) = key else { return Ok(()) };
        let window = now.div_euclid(60);
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() > 100_000 {
            windows.retain(|_, (w, _)| *w == window);
        }
        let entry = windows.entry(key).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        entry.1 += 1;
        if entry.1 > per_minute {
            let retry = 60 - now.rem_euclid(60);
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests; try again shortly",
            )
            .with("retry_after", retry)
            .header("Retry-After", retry.to_string()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_and_resets_each_minute() {
        let r = RateLimiter::<IpAddr>::default();
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        for _ in 0..3 {
            assert!(r.check(ip, 3, 120).is_ok());
        }
        assert!(r.check(ip, 3, 121).is_err());
        assert!(r.check(Some(IpAddr::from([10, 0, 0, 1])), 3, 121).is_ok());
        assert!(r.check(ip, 3, 180).is_ok());
    }
}
