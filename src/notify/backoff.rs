//! When a failed delivery is tried again: exponential backoff with full jitter (a uniform
//! wait up to `min(cap, base × 2ⁿ)` after the n-th failure, from 0), so deliveries that
//! failed together (a provider's outage) do not all come back together; a provider's
//! `Retry-After` is the least it waits.

use std::time::Duration;

use rand::Rng;

/// The ceiling of the wait after failure number `failures_before` (0 for the first).
pub fn ceiling(base: Duration, cap: Duration, failures_before: u32) -> Duration {
    let factor = 1u32
        .checked_shl(failures_before.min(31))
        .unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(cap).min(cap)
}

/// The wait before the next attempt.
pub fn delay(
    base: Duration,
    cap: Duration,
    failures_before: u32,
    retry_after: Option<Duration>,
    rng: &mut impl Rng,
) -> Duration {
    let top = ceiling(base, cap, failures_before);
    let jittered =
        Duration::from_millis(rng.gen_range(0..=top.as_millis().min(u64::MAX as u128) as u64));
    jittered.max(retry_after.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_doubles_up_to_the_cap() {
        let (base, cap) = (Duration::from_secs(5), Duration::from_secs(3600));
        assert_eq!(ceiling(base, cap, 0), Duration::from_secs(5));
        assert_eq!(ceiling(base, cap, 1), Duration::from_secs(10));
        assert_eq!(ceiling(base, cap, 3), Duration::from_secs(40));
        assert_eq!(ceiling(base, cap, 10), cap);
        assert_eq!(ceiling(base, cap, 200), cap);
    }

    #[test]
    fn delays_stay_within_bounds_and_spread_out() {
        let (base, cap) = (Duration::from_millis(100), Duration::from_secs(2));
        let mut rng = rand::thread_rng();
        for n in 0..12 {
            let top = ceiling(base, cap, n);
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..200 {
                let d = delay(base, cap, n, None, &mut rng);
                assert!(d <= top, "{d:?} > {top:?}");
                seen.insert(d.as_millis());
            }
            // Full jitter: not one fixed wait.
            assert!(seen.len() > 10, "attempt {n}: {seen:?}");
        }
    }

    #[test]
    fn retry_after_is_the_least_wait() {
        let (base, cap) = (Duration::from_millis(100), Duration::from_secs(1));
        let mut rng = rand::thread_rng();
        for _ in 0..100 {
            let d = delay(base, cap, 0, Some(Duration::from_secs(30)), &mut rng);
            assert_eq!(d, Duration::from_secs(30));
        }
    }
}
