//! Wall-clock time as a dependency. Expiry rules (sign-in flows, exchange codes, tokens,
//! sessions, orders, uploads) run at a `now` they are given; the surfaces read it from the
//! `Clock` in `AppState` and pass it down, so a test sets the time instead of sleeping.
//! Monotonic pacing and metrics (`std::time::Instant`) are not wall-clock time and stay
//! outside this trait.
//!
//! Below the domain: it names nothing of `cinegate`.

use std::sync::atomic::{AtomicI64, Ordering};

/// Where "now" comes from, in Unix seconds.
pub trait Clock: Send + Sync {
    fn now(&self) -> i64;
}

/// The system's real time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to. Compiled in every build, not only under
/// `cfg(test)`: integration tests (their own crates under `tests/`, which do not see
/// `cfg(test)` items) and in-process harnesses can build an `AppState` with one. It is a
/// single atomic, so carrying it costs nothing.
#[derive(Debug)]
pub struct TestClock {
    now: AtomicI64,
}

impl TestClock {
    pub fn new(now: i64) -> Self {
        Self {
            now: AtomicI64::new(now),
        }
    }

    pub fn set(&self, now: i64) {
        self.now.store(now, Ordering::SeqCst);
    }

    /// Moves the time on by `secs` (back, if negative).
    pub fn advance(&self, secs: i64) {
        self.now.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_clock_moves_only_when_told() {
        let clock = TestClock::new(1_800_000_000);
        assert_eq!(clock.now(), 1_800_000_000);
        clock.advance(601);
        assert_eq!(clock.now(), 1_800_000_601);
        clock.set(5);
        assert_eq!(clock.now(), 5);
    }

    #[test]
    fn the_system_clock_is_after_2020() {
        assert!(SystemClock.now() > 1_577_836_800);
    }
}
