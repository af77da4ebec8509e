//! The request-path counters behind `/metrics`. Not HTTP: the playback handlers count
//! here, `api::health` renders them, and any surface may count.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters updated on the request path (atomics only).
#[derive(Default)]
pub struct Metrics {
    pub requests: AtomicU64,
    pub segments_served: AtomicU64,
    pub keys_served: AtomicU64,
    pub gate_refusals: AtomicU64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
