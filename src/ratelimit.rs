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
//!
//! The general budgets of `/api/v1` ([`ApiLimits`]) are governor's GCRA rather than fixed
//! windows (no window edge at which a client gets two budgets at once), with governor's
//! keyed state kept in the same kind of bounded two-generation map ([`BoundedStore`]).
//! The budgets above stay fixed-window: clients and tests rely on their per-minute windows
//! and `Retry-After` up to the next minute.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;

use governor::nanos::Nanos;
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

/// `SHARDS` locks, each guarding a `T`, picked by a randomly seeded hash of the key so a
/// client cannot aim at one: what [`RateLimiter`] and [`BoundedMap`] are both built on.
struct Sharded<T> {
    shards: Box<[Mutex<T>]>,
    hasher: RandomState,
}

impl<T> Sharded<T> {
    fn new(make: impl Fn() -> T) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(make())).collect(),
            hasher: RandomState::new(),
        }
    }

    fn lock<K: Hash>(&self, key: &K) -> std::sync::MutexGuard<'_, T> {
        let index = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        self.shards[index].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on every shard in turn (sweeps and counts, never on a request).
    fn each(&self, mut f: impl FnMut(&mut T)) {
        for shard in self.shards.iter() {
            f(&mut shard.lock().unwrap_or_else(|p| p.into_inner()));
        }
    }
}

/// One shard's two generations of keys: a key is kept in the young one; one taken from
/// the old one comes back young. When the young generation is full, the old one is
/// forgotten and the young one becomes old, so the keys idle longest go first, in O(1)
/// (amortised) per access.
struct Generations<K, V> {
    young: HashMap<K, V>,
    old: HashMap<K, V>,
}

impl<K: Hash + Eq, V> Generations<K, V> {
    fn new() -> Self {
        Self {
            young: HashMap::new(),
            old: HashMap::new(),
        }
    }

    /// Removes `key`, wherever it is.
    fn take(&mut self, key: &K) -> Option<V> {
        self.young.remove(key).or_else(|| self.old.remove(key))
    }

    /// Keeps `key` as the youngest, turning the generations over first when the young one
    /// holds `generation` keys.
    fn keep(&mut self, key: K, value: V, generation: usize) {
        if self.young.len() >= generation {
            std::mem::swap(&mut self.young, &mut self.old);
            // Reuses the table: one memset of its control bytes per `generation` inserts.
            self.young.clear();
        }
        self.young.insert(key, value);
    }

    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

/// Keys per generation per shard for a bound of `capacity` keys in all.
fn generation(capacity: usize) -> usize {
    (capacity / SHARDS / 2).max(1)
}

struct Window<K> {
    /// The minute (`now / 60`) the counts below belong to.
    minute: i64,
    counts: Generations<K, u32>,
}

/// One budget's counters. `K: Copy` has no destructor, so dropping or clearing a
/// generation frees or resets its table without visiting the entries.
pub struct RateLimiter<K = IpAddr> {
    shards: Sharded<Window<K>>,
    /// Keys per generation per shard.
    generation: usize,
}

impl<K: Hash + Eq + Copy> RateLimiter<K> {
    /// A limiter that tracks at most `capacity` keys at once.
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: Sharded::new(|| Window {
                minute: i64::MIN,
                counts: Generations::new(),
            }),
            generation: generation(capacity),
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
        let minute = now.div_euclid(60);
        let mut shard = self.shards.lock(&key);
        if shard.minute != minute {
            // A new minute starts over with empty tables, which also gives a flood's
            // memory back.
            shard.minute = minute;
            shard.counts = Generations::new();
        }
        if let Some(n) = shard.counts.young.get_mut(&key) {
            *n = n.saturating_add(1);
            return *n;
        }
        let n = shard.counts.take(&key).unwrap_or(0).saturating_add(1);
        shard.counts.keep(key, n, self.generation);
        n
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        let mut n = 0;
        self.shards.each(|s| n += s.counts.len());
        n
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

// --- the general API budgets: governor's GCRA over a bounded store ---

/// A map of at most `capacity` keys, in the same shards and generations as
/// [`RateLimiter`], without the per-minute reset: a key touched moves to the young
/// generation, and when that is full the old one is forgotten. O(1) per access; the keys
/// idle longest go first.
pub struct BoundedMap<K, V> {
    shards: Sharded<Generations<K, V>>,
    generation: usize,
}

impl<K: Hash + Eq, V> BoundedMap<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: Sharded::new(Generations::new),
            generation: generation(capacity),
        }
    }

    /// Runs `f` on `key`'s value (`None` when untracked) under its shard's lock; a value
    /// left in the slot is kept (as the youngest), an emptied slot forgets the key.
    pub fn with<R>(&self, key: K, f: impl FnOnce(&mut Option<V>) -> R) -> R {
        let mut shard = self.shards.lock(&key);
        let mut slot = shard.take(&key);
        let out = f(&mut slot);
        if let Some(v) = slot {
            shard.keep(key, v, self.generation);
        }
        out
    }

    /// Forgets every key whose value `keep` refuses (a periodic sweep, never on a request).
    pub fn retain(&self, keep: impl Fn(&V) -> bool) {
        self.shards.each(|s| {
            s.young.retain(|_, v| keep(v));
            s.old.retain(|_, v| keep(v));
        });
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        let mut n = 0;
        self.shards.each(|s| n += s.len());
        n
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// governor's keyed state (each key's GCRA "theoretical arrival time", in nanoseconds
/// since the limiter started) in a [`BoundedMap`], so a flood of distinct keys cannot
/// grow it past `limits.tracked_keys`. Forgetting a key only gives it a fresh budget.
pub struct BoundedStore<K>(BoundedMap<K, u64>);

impl<K: Hash + Eq + Clone> governor::state::StateStore for BoundedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0.with(key.clone(), |slot| {
            let (out, tat) = f(slot.map(Nanos::from))?;
            *slot = Some(tat.into());
            Ok(out)
        })
    }
}

impl<K: Hash + Eq + Clone> governor::state::keyed::ShrinkableKeyedStateStore<K>
    for BoundedStore<K>
{
    fn retain_recent(&self, drop_below: Nanos) {
        let drop_below = drop_below.as_u64();
        self.0.retain(|tat| *tat > drop_below);
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

type Gcra<K> = governor::RateLimiter<
    K,
    BoundedStore<K>,
    governor::clock::DefaultClock,
    governor::middleware::StateInformationMiddleware,
>;

/// What a request does, for the API budgets: reads (GET, HEAD) and writes (the rest) are
/// counted apart, so a burst of reads never spends the budget of a purchase or a comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl Access {
    fn name(self) -> &'static str {
        match self {
            Access::Read => "reads",
            Access::Write => "writes",
        }
    }
}

/// Where a request stands in the tighter of its budgets, for the `RateLimit-Policy` and
/// `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers-09): the policy is the burst
/// `quota` over the `window` seconds it takes to refill; `remaining` requests may go now,
/// and the bucket is full again in `reset` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub access: Access,
    pub quota: u32,
    pub window: u64,
    pub remaining: u32,
    pub reset: u64,
}

impl Standing {
    /// `RateLimit-Policy`: `"reads";q=120;w=12`.
    pub fn policy_header(&self) -> String {
        format!(
            "\"{}\";q={};w={}",
            self.access.name(),
            self.quota,
            self.window
        )
    }

    /// `RateLimit`: `"reads";r=119;t=1`.
    pub fn header(&self) -> String {
        format!(
            "\"{}\";r={};t={}",
            self.access.name(),
            self.remaining,
            self.reset
        )
    }
}

/// A request past an API budget: how long to wait, and the budget's standing (nothing
/// remaining).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_after: u64,
    pub standing: Standing,
}

/// The general budgets of `/api/v1`: per client address (`server::client::key`) and per
/// account (the bearer's or session's user), each for reads and for writes
/// (`limits.api_reads_*`, `limits.api_writes_*`). GCRA (governor): a burst, then one
/// request every `60 / per_minute` seconds, with no window edge at which a client gets
/// two budgets at once.
pub struct ApiLimits {
    client_reads: Gcra<IpAddr>,
    client_writes: Gcra<IpAddr>,
    account_reads: Gcra<Uuid>,
    account_writes: Gcra<Uuid>,
}

fn quota(per_minute: u32, burst: u32) -> governor::Quota {
    let one = std::num::NonZeroU32::MIN;
    governor::Quota::per_minute(std::num::NonZeroU32::new(per_minute).unwrap_or(one))
        .allow_burst(std::num::NonZeroU32::new(burst).unwrap_or(one))
}

fn gcra<K: Hash + Eq + Clone>(quota: governor::Quota, capacity: usize) -> Gcra<K> {
    governor::RateLimiter::<K, _, _, governor::middleware::NoOpMiddleware>::new(
        quota,
        BoundedStore(BoundedMap::new(capacity)),
        governor::clock::DefaultClock::default(),
    )
    .with_middleware::<governor::middleware::StateInformationMiddleware>()
}

fn ceil_secs(d: std::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn standing(access: Access, quota: governor::Quota, remaining: u32) -> Standing {
    let burst = quota.burst_size().get();
    let interval = quota.replenish_interval();
    Standing {
        access,
        quota: burst,
        window: ceil_secs(quota.burst_size_replenished_in()),
        remaining,
        reset: ceil_secs(interval.saturating_mul(burst.saturating_sub(remaining))),
    }
}

impl ApiLimits {
    pub fn new(cfg: &LimitsConfig) -> Self {
        let cap = cfg.tracked_keys;
        let reads = quota(cfg.api_reads_per_minute, cfg.api_reads_burst);
        let writes = quota(cfg.api_writes_per_minute, cfg.api_writes_burst);
        Self {
            client_reads: gcra(reads, cap),
            client_writes: gcra(writes, cap),
            account_reads: gcra(reads, cap),
            account_writes: gcra(writes, cap),
        }
    }

    /// Counts one request of `access` from `client`, and from `account` when signed in;
    /// refused when either budget is spent.
    pub fn check(
        &self,
        access: Access,
        client: IpAddr,
        account: Option<Uuid>,
    ) -> Result<Standing, Refused> {
        let (by_client, by_account) = match access {
            Access::Read => (&self.client_reads, &self.account_reads),
            Access::Write => (&self.client_writes, &self.account_writes),
        };
        let mut tightest = one(access, by_client, &client)?;
        if let Some(account) = account {
            let s = one(access, by_account, &account)?;
            if s.remaining < tightest.remaining {
                tightest = s;
            }
        }
        Ok(tightest)
    }

    /// Forgets the keys whose budgets are full again (they would start fresh anyway);
    /// run every minute by `startup`, so memory follows the traffic.
    pub fn retain_recent(&self) {
        self.client_reads.retain_recent();
        self.client_writes.retain_recent();
        self.account_reads.retain_recent();
        self.account_writes.retain_recent();
    }

    /// Keys tracked over all four budgets.
    pub fn len(&self) -> usize {
        self.client_reads.len()
            + self.client_writes.len()
            + self.account_reads.len()
            + self.account_writes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn one<K: Hash + Eq + Clone>(
    access: Access,
    limiter: &Gcra<K>,
    key: &K,
) -> Result<Standing, Refused> {
    use governor::clock::Clock as _;
    match limiter.check_key(key) {
        Ok(snapshot) => Ok(standing(
            access,
            snapshot.quota(),
            snapshot.remaining_burst_capacity(),
        )),
        Err(not_until) => {
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            Err(Refused {
                retry_after: ceil_secs(wait).max(1),
                standing: standing(access, not_until.quota(), 0),
            })
        }
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

    fn api(reads: (u32, u32), writes: (u32, u32)) -> ApiLimits {
        ApiLimits::new(&LimitsConfig {
            api_reads_per_minute: reads.0,
            api_reads_burst: reads.1,
            api_writes_per_minute: writes.0,
            api_writes_burst: writes.1,
            tracked_keys: 1_000,
            ..LimitsConfig::default()
        })
    }

    /// One request a minute after a burst of 3: the fourth at once is refused, however
    /// slow the machine running this (nothing refills within a test).
    #[test]
    fn api_budgets_are_per_address_per_account_and_per_kind() {
        let limits = api((1, 3), (1, 2));
        let a = IpAddr::from([198, 51, 100, 1]);
        let b = IpAddr::from([198, 51, 100, 2]);
        for left in [2, 1, 0] {
            let s = limits.check(Access::Read, a, None);
            assert_eq!(s.map(|s| s.remaining), Ok(left));
        }
        let refused = limits.check(Access::Read, a, None);
        let Err(refused) = refused else {
            panic!("a fourth read at once: {refused:?}");
        };
        assert!((1..=60).contains(&refused.retry_after), "{refused:?}");
        assert_eq!(refused.standing.policy_header(), "\"reads\";q=3;w=180");
        assert!(refused.standing.header().starts_with("\"reads\";r=0;t="));
        // Another address, and writes from the same one, are not spent.
        assert!(limits.check(Access::Read, b, None).is_ok());
        assert!(limits.check(Access::Write, a, None).is_ok());
        // An account's budget follows it across addresses.
        let user = Uuid::from_u128(7);
        for i in 0..2u8 {
            let ip = IpAddr::from([203, 0, 113, i]);
            assert!(limits.check(Access::Write, ip, Some(user)).is_ok());
        }
        assert!(limits
            .check(Access::Write, IpAddr::from([203, 0, 113, 9]), Some(user))
            .is_err());
        assert!(limits
            .check(Access::Write, IpAddr::from([203, 0, 113, 9]), None)
            .is_ok());
    }

    #[test]
    fn api_budgets_stay_bounded_under_a_flood_of_addresses() {
        let limits = api((600, 120), (120, 30));
        for i in 0u32..20_000 {
            let ip = IpAddr::from((0x0a00_0000 + i).to_be_bytes());
            assert!(limits.check(Access::Read, ip, None).is_ok());
        }
        assert!(limits.len() <= 1_000, "{} keys", limits.len());
        limits.retain_recent();
        assert!(limits.len() <= 1_000);
    }

    #[test]
    fn a_bounded_map_keeps_what_is_used_and_forgets_the_idle() {
        let map = BoundedMap::<u32, u32>::new(64);
        for i in 0..1_000 {
            map.with(i, |slot| *slot = Some(i));
            map.with(0, |slot| {
                if let Some(v) = slot {
                    *v += 1;
                }
            });
        }
        assert!(map.len() <= 64, "{}", map.len());
        assert_eq!(map.with(0, |slot| *slot), Some(1_000));
        map.retain(|v| *v > 990);
        assert!(map.len() <= 10);
        map.with(0, |slot| *slot = None);
        assert_eq!(map.with(0, |slot| *slot), None);
    }
}
