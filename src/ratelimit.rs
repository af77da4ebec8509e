//! Fixed-window request budgets (per minute), each keyed by what it protects: the client
//! address (`server::client`, IPv6 by its /64) for sign-in, native sign-in, failed token
//! attempts and the PayPal webhook; the refresh-token family for valid refreshes; the user
//! for comments. Every budget is its own limiter, so a flood against one never spends
//! another. In memory: a restart forgets them, which is acceptable for slowing down floods
//! and guessing, the only things they are for.
//!
//! Memory is bounded: a limiter tracks at most `capacity` keys (`limits.tracked_keys`), in
//! 16 shards (each with its own lock, picked by a randomly seeded hash so a client cannot
//! aim at one), each holding two generations of counters. A key is counted in the young
//! generation; one found in the old generation moves to the young one with its count. When
//! the young generation is full, the old one is forgotten and the young one becomes old.
//! So at capacity the keys idle longest are dropped, a key that keeps sending stays counted,
//! and every step is O(1) (amortised): nothing scans the entries while a request waits. At
//! each new minute a shard starts over with empty maps, which also gives a flood's memory
//! back. Forgetting a key only ever gives it a fresh budget; whoever can cycle through
//! `capacity` addresses to reset one already had `capacity` budgets.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;

use uuid::Uuid;

use crate::config::LimitsConfig;

const SHARDS: usize = 16;

/// A request past its budget; `api::error` answers it 429 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many requests; try again shortly")]
pub struct Limited {
    /// Seconds until the next window.
    pub retry_after: i64,
}

/// Upper bound on the heap bytes a limiter uses per key of its capacity. An entry is the
/// key and a `u32` count plus one control byte: 25 bytes for an `IpAddr`, 21 for a `Uuid`.
/// A table holding `g` entries has fewer than 16g/7 buckets (a power of two, at most 7/8
/// used), so a key costs under 25 × 16/7 ≈ 57 bytes, plus 16 bytes per table.
/// tests/ratelimit_memory.rs measures it with a counting allocator (about 33 bytes).
pub const BYTES_PER_KEY: usize = 64;

struct Shard<K> {
    /// The minute (`now / 60`) the counts below belong to.
    window: i64,
    young: HashMap<K, u32>,
    old: HashMap<K, u32>,
}

/// One budget's counters. `K: Copy` has no destructor, so dropping or clearing a
/// generation frees or resets its table without visiting the entries.
pub struct RateLimiter<K = IpAddr> {
    shards: Box<[Mutex<Shard<K>>]>,
    hasher: RandomState,
    /// Keys per generation per shard.
    generation: usize,
}

impl<K: Hash + Eq + Copy> RateLimiter<K> {
    /// A limiter that tracks at most `capacity` keys at once.
    pub fn new(capacity: usize) -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    window: i64::MIN,
                    young: HashMap::new(),
                    old: HashMap::new(),
                })
            })
            .collect();
        Self {
            shards,
            hasher: RandomState::new(),
            generation: (capacity / SHARDS / 2).max(1),
        }
    }

    /// Counts a request from `key` at `now` (seconds); refuses past `per_minute` with the
    /// seconds until the next window. No key (no peer address) is not limited.
    pub fn check(&self, key: Option<K>, per_minute: u32, now: i64) -> Result<(), Limited> {
        let Some(key) = key else { return Ok(()) };
        if self.count(key, now) > per_minute {
            return Err(Limited {
                retry_after: 60 - now.rem_euclid(60),
            });
        }
        Ok(())
    }

    /// Adds one request of `key` in the minute of `now`; returns its count in that minute.
    fn count(&self, key: K, now: i64) -> u32 {
        let window = now.div_euclid(60);
        let index = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        let mut shard = self.shards[index].lock().unwrap_or_else(|p| p.into_inner());
        if shard.window != window {
            shard.window = window;
            shard.young = HashMap::new();
            shard.old = HashMap::new();
        }
        if let Some(n) = shard.young.get_mut(&key) {
            *n = n.saturating_add(1);
            return *n;
        }
        let n = shard.old.remove(&key).unwrap_or(0).saturating_add(1);
        if shard.young.len() >= self.generation {
            let shard = &mut *shard;
            std::mem::swap(&mut shard.young, &mut shard.old);
            // Reuses the table: one memset of its control bytes per `generation` inserts.
            shard.young.clear();
        }
        shard.young.insert(key, n);
        n
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let s = s.lock().unwrap_or_else(|p| p.into_inner());
                s.young.len() + s.old.len()
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The budgets keyed by client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Browser sign-in: `GET /auth/{provider}/start`, the callback and
    /// `POST /auth/{provider}/link` (`limits.auth_per_minute`).
    SignIn,
    /// `POST /api/v1/auth/{provider}/native` (`limits.native_per_minute`).
    Native,
    /// Failed attempts on the token endpoints (link, refresh, logout, exchange): unknown,
    /// invalid or expired tokens and codes (`limits.token_failures_per_minute`).
    TokenFailures,
    /// `POST /api/v1/payments/paypal/webhook` (`limits.webhook_per_minute`).
    Webhook,
    /// The payer's pages `/pay/{provider}/return|cancel|fail` (`limits.pay_per_minute`).
    Pay,
}

/// Every budget of the sign-in, token and webhook endpoints, with its limit.
pub struct Limits {
    sign_in: (RateLimiter<IpAddr>, u32),
    native: (RateLimiter<IpAddr>, u32),
    token_failures: (RateLimiter<IpAddr>, u32),
    webhook: (RateLimiter<IpAddr>, u32),
    pay: (RateLimiter<IpAddr>, u32),
    /// Uses (refresh, logout) of one refresh-token family, i.e. one sign-in.
    families: (RateLimiter<Uuid>, u32),
}

impl Limits {
    pub fn new(cfg: &LimitsConfig) -> Self {
        let cap = cfg.tracked_keys;
        Self {
            sign_in: (RateLimiter::new(cap), cfg.auth_per_minute),
            native: (RateLimiter::new(cap), cfg.native_per_minute),
            token_failures: (RateLimiter::new(cap), cfg.token_failures_per_minute),
            webhook: (RateLimiter::new(cap), cfg.webhook_per_minute),
            pay: (RateLimiter::new(cap), cfg.pay_per_minute),
            families: (RateLimiter::new(cap), cfg.refresh_family_per_minute),
        }
    }

    /// Counts one request of `budget` from the client key `client` (`server::client::key`).
    pub fn client(&self, budget: Budget, client: IpAddr, now: i64) -> Result<(), Limited> {
        let (limiter, per_minute) = match budget {
            Budget::SignIn => &self.sign_in,
            Budget::Native => &self.native,
            Budget::TokenFailures => &self.token_failures,
            Budget::Webhook => &self.webhook,
            Budget::Pay => &self.pay,
        };
        limiter.check(Some(client), *per_minute, now)
    }

    /// Counts one use of a refresh-token family.
    pub fn family(&self, family: Uuid, now: i64) -> Result<(), Limited> {
        let (limiter, per_minute) = &self.families;
        limiter.check(Some(family), *per_minute, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_and_resets_each_minute() {
        let r = RateLimiter::<IpAddr>::new(1000);
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        for _ in 0..3 {
            assert!(r.check(ip, 3, 120).is_ok());
        }
        // How a refusal is answered (429, `rate_limited`, `Retry-After`) is
        // `api::error`'s test `a_refused_budget_is_429_with_retry_after`.
        assert_eq!(r.check(ip, 3, 121), Err(Limited { retry_after: 59 }));
        assert!(r.check(Some(IpAddr::from([10, 0, 0, 1])), 3, 121).is_ok());
        assert!(r.check(ip, 3, 180).is_ok());
    }

    /// 200 000 distinct addresses in one minute (twice the default capacity): the limiter
    /// stays within `capacity` entries, and still limits a key that keeps sending during
    /// the flood and one that comes after it. (Its bytes are measured by
    /// tests/ratelimit_memory.rs, with a counting allocator.)
    #[test]
    fn a_flood_of_distinct_addresses_stays_bounded_and_hot_keys_stay_limited() {
        const CAPACITY: usize = 100_000;
        let r = RateLimiter::<IpAddr>::new(CAPACITY);
        let hot = IpAddr::from([192, 0, 2, 1]);
        let now = 6_000;
        let mut hot_refused = 0;
        for i in 0u32..200_000 {
            let ip = IpAddr::from((0x0a00_0000 + i).to_be_bytes());
            assert!(r.check(Some(ip), 1_000, now).is_ok(), "flood key {i}");
            if i % 100 == 0 && r.check(Some(hot), 1_000, now).is_err() {
                hot_refused += 1;
            }
            if i % 20_000 == 0 {
                assert!(r.len() <= CAPACITY, "{} keys after {i}", r.len());
            }
        }
        // 2 000 hot requests at 1 000 per minute: the second thousand were refused, so
        // its count survived every rotation of the flood.
        assert_eq!(hot_refused, 1_000);
        assert!(r.len() <= CAPACITY, "{} keys", r.len());
        let late = Some(IpAddr::from([198, 51, 100, 7]));
        for _ in 0..5 {
            assert!(r.check(late, 5, now).is_ok());
        }
        assert!(r.check(late, 5, now).is_err(), "a key after the flood");
        // The next minute starts over, shard by shard as requests reach them, and hands
        // the flood's memory back.
        assert!(r.check(late, 5, now + 60).is_ok());
        for i in 0u32..1_000 {
            assert!(r
                .check(Some(IpAddr::from(i.to_be_bytes())), 5, now + 60)
                .is_ok());
        }
        assert!(r.len() <= 1_001, "{} keys in a new minute", r.len());
    }

    #[test]
    fn budgets_are_separate() {
        let cfg = LimitsConfig {
            auth_per_minute: 2,
            token_failures_per_minute: 2,
            ..LimitsConfig::default()
        };
        let limits = Limits::new(&cfg);
        let ip = IpAddr::from([203, 0, 113, 9]);
        for _ in 0..2 {
            assert!(limits.client(Budget::TokenFailures, ip, 60).is_ok());
        }
        assert!(limits.client(Budget::TokenFailures, ip, 60).is_err());
        assert!(limits.client(Budget::SignIn, ip, 60).is_ok());
        assert!(limits.client(Budget::Webhook, ip, 60).is_ok());
        assert!(limits.family(Uuid::nil(), 60).is_ok());
    }
}
