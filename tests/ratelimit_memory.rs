//! The rate limiters' memory bound, measured (issue 12, item 2: "100k distinct addresses
//! stay within a stated memory bound"): a counting global allocator sees every byte the
//! real limiter (`cinegate::ratelimit::Limits`, as the server builds it) allocates
//! while 100 000 and then 1 000 000 distinct client addresses hit one budget, and the live
//! heap growth must stay within `tracked_keys × BYTES_PER_KEY` plus a small constant, at the
//! end and at its peak. A key that keeps sending through the flood stays limited.
//!
//! Its own test binary: the allocator is process-wide, so nothing else may run here, and
//! the two tests take turns (`SERIAL`).

use std::alloc::System;
use std::net::IpAddr;
use std::sync::Mutex;

use cap::Cap;
use cinegate::config::LimitsConfig;
use cinegate::ratelimit::{Budget, Limits, BYTES_PER_KEY};

#[global_allocator]
static HEAP: Cap<System> = Cap::new(System, usize::MAX);

static SERIAL: Mutex<()> = Mutex::new(());

/// What the limiter's bookkeeping may add beyond its keys: 16 shards, each with two
/// (possibly empty) tables and a mutex, plus the test harness's own small allocations.
const SLACK: usize = 64 * 1024;

/// The `i`-th distinct client: IPv4 from 10.0.0.0 on, then IPv6 /64s (the key the server
/// makes for an IPv6 client), so that both kinds of key are counted.
fn client(i: u32) -> IpAddr {
    if i.is_multiple_of(2) {
        IpAddr::from((0x0a00_0000u32 + i).to_be_bytes())
    } else {
        let mut v6 = [0u8; 16];
        v6[..2].copy_from_slice(&[0x20, 0x01]);
        v6[2..6].copy_from_slice(&i.to_be_bytes());
        IpAddr::from(v6)
    }
}

/// Floods one budget of a limiter tracking `tracked_keys` keys with `distinct` addresses
/// in one minute, a hot address sending every 100th request; checks the heap growth.
fn flood(tracked_keys: usize, distinct: u32) {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    const HOT_BUDGET: u32 = 1_000;
    let cfg = LimitsConfig {
        token_failures_per_minute: HOT_BUDGET,
        tracked_keys,
        ..LimitsConfig::default()
    };
    let now = 60_000;
    let hot = IpAddr::from([192, 0, 2, 1]);
    let bound = tracked_keys * BYTES_PER_KEY + SLACK;

    let before = HEAP.allocated();
    let limits = Limits::new(&cfg);
    let (mut hot_sent, mut hot_refused) = (0u32, 0u32);
    for i in 0..distinct {
        let ok = limits.client(Budget::TokenFailures, client(i), now).is_ok();
        assert!(ok, "flood address {i} was refused at its first request");
        if i % 100 == 0 {
            hot_sent += 1;
            if limits.client(Budget::TokenFailures, hot, now).is_err() {
                hot_refused += 1;
            }
        }
    }
    let live = HEAP.allocated().saturating_sub(before);
    // The high-water mark catches a table and its successor alive together mid-resize. It
    // is the process's: both tests track the same number of keys, so whichever runs second
    // is held to the same bound by the first's peak too.
    let peak = HEAP.max_allocated().saturating_sub(before);
    eprintln!(
        "{distinct} addresses, tracked_keys {tracked_keys}: {live} bytes live, peak {peak} \
         ({:.1} / {:.1} bytes per tracked key; bound {BYTES_PER_KEY})",
        live as f64 / tracked_keys as f64,
        peak as f64 / tracked_keys as f64,
    );
    assert!(
        live <= bound,
        "{live} bytes live after {distinct} addresses; bound {bound}"
    );
    assert!(
        peak <= bound,
        "{peak} bytes at the peak of {distinct} addresses; bound {bound}"
    );
    // The hot address was counted through every rotation of the flood: past its budget
    // each of its requests was refused.
    assert_eq!(
        hot_refused,
        hot_sent.saturating_sub(HOT_BUDGET),
        "the hot address sent {hot_sent}"
    );
    // And a newcomer after the flood is limited too.
    let late = IpAddr::from([198, 51, 100, 7]);
    for _ in 0..HOT_BUDGET {
        assert!(limits.client(Budget::TokenFailures, late, now).is_ok());
    }
    assert!(limits.client(Budget::TokenFailures, late, now).is_err());
    drop(limits);
}

#[test]
fn a_hundred_thousand_addresses_stay_within_the_bound() {
    flood(100_000, 100_000);
}

#[test]
fn a_million_addresses_stay_within_the_default_bound() {
    // The default `tracked_keys` (100 000): ten times as many addresses as it tracks.
    flood(LimitsConfig::default().tracked_keys, 1_000_000);
}
