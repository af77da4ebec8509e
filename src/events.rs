//! Domain events: services record what happened (`record`), consumers apply the log in
//! order on threads of their own (`Consumers::spawn`). The request path pays one sled
//! insert and never waits on a consumer; a consumer that fails on an event retries it
//! after a pause and never skips it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub use crate::store::events::{Event, EventRecord, OrderFacts};
use crate::store::{Store, StoreError};

/// Records `event` at `at`. A store failure is logged, never returned: losing an
/// analytics or notification event must not fail the purchase or comment it follows.
pub fn record(store: &Store, at: i64, event: Event) {
    if let Err(err) = store.append_event(at, event) {
        tracing::warn!(error = %err, "a domain event could not be recorded");
    }
}

/// What a consumer does with each event, in log order. It must move its cursor
/// (`store::events::advance_cursor`, or `Store::set_event_cursor` when its effect is
/// idempotent or nothing) in the same transaction as its effect.
pub trait Consumer: Send + 'static {
    /// The cursor's name in `meta` (`cursor:{name}`).
    fn name(&self) -> &'static str;
    /// Applies one event and moves the cursor past it.
    fn apply(&mut self, store: &Store, event: &EventRecord) -> Result<(), StoreError>;
}

/// The consumer threads of one server; `stop` ends them after the event in hand.
pub struct Consumers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    names: Vec<&'static str>,
}

/// How long applied events stay in the log for an operator to read (then `prune`).
pub const KEEP_APPLIED_SECS: i64 = 30 * 24 * 3600;

/// How long a consumer waits before retrying an event it failed on.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// How long a consumer sleeps with nothing to do before looking again (the subscription
/// wakes it on every append; this bounds a missed wake-up).
const IDLE_WAIT: Duration = Duration::from_millis(500);

impl Consumers {
    pub fn new() -> Self {
        Self {
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            names: Vec::new(),
        }
    }

    /// The names of the consumers started, whose cursors bound what `prune` removes.
    pub fn names(&self) -> Vec<&'static str> {
        self.names.clone()
    }

    /// Starts `consumer` on a thread of its own, from its cursor.
    pub fn spawn(&mut self, store: &Store, mut consumer: impl Consumer) {
        let store = store.clone();
        let stop = self.stop.clone();
        let name = consumer.name();
        self.names.push(name);
        let spawned = std::thread::Builder::new()
            .name(format!("events-{name}"))
            .spawn(move || {
                let mut wake = store.watch_events();
                while !stop.load(Ordering::Relaxed) {
                    match drain(&store, &mut consumer, &stop) {
                        Ok(0) => {
                            // Woken by an append or the idle bound, whichever comes first.
                            let _ = wake.next_timeout(IDLE_WAIT);
                        }
                        Ok(_) => {}
                        Err(err) => {
                            tracing::error!(consumer = name, error = %err, "event consumer failed; retrying");
                            std::thread::sleep(RETRY_PAUSE);
                        }
                    }
                }
            });
        match spawned {
            Ok(handle) => self.threads.push(handle),
            Err(err) => {
                tracing::error!(consumer = name, error = %err, "event consumer did not start")
            }
        }
    }

    /// Stops every consumer and waits for them.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

impl Default for Consumers {
    fn default() -> Self {
        Self::new()
    }
}

/// Applies every event after the consumer's cursor; returns how many.
fn drain(
    store: &Store,
    consumer: &mut impl Consumer,
    stop: &AtomicBool,
) -> Result<usize, StoreError> {
    let mut applied = 0;
    loop {
        let batch = store.events_after(store.event_cursor(consumer.name())?, 256)?;
        if batch.is_empty() {
            return Ok(applied);
        }
        for event in &batch {
            if stop.load(Ordering::Relaxed) {
                return Ok(applied);
            }
            consumer.apply(store, event)?;
            applied += 1;
        }
    }
}

/// Removes events that every consumer in `names` applied more than
/// `KEEP_APPLIED_SECS` before `now`; an error is logged (the hourly sweep).
pub fn prune(store: &Store, names: &[&'static str], now: i64) {
    match store.prune_events(names, now - KEEP_APPLIED_SECS) {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "pruned applied events from the log"),
        Err(err) => tracing::warn!(error = %err, "pruning the event log failed"),
    }
}

/// Applies every event after `consumer`'s cursor on the calling thread (tests, backfill).
pub fn catch_up(store: &Store, consumer: &mut impl Consumer) -> Result<usize, StoreError> {
    drain(store, consumer, &AtomicBool::new(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    struct Count(usize);
    impl Consumer for Count {
        fn name(&self) -> &'static str {
            "count"
        }
        fn apply(&mut self, store: &Store, event: &EventRecord) -> Result<(), StoreError> {
            self.0 += 1;
            store.set_event_cursor(self.name(), event.id)
        }
    }

    #[test]
    fn a_consumer_applies_each_event_once_across_restarts() -> Result<(), StoreError> {
        let store = Store::temporary()?;
        let film = Uuid::nil();
        record(&store, 1, Event::FilmPublished { film });
        record(&store, 2, Event::FilmUnpublished { film });
        let mut c = Count(0);
        assert_eq!(catch_up(&store, &mut c)?, 2);
        // A new consumer of the same name starts where the last one stopped.
        record(&store, 3, Event::FilmPublished { film });
        let mut again = Count(0);
        assert_eq!(catch_up(&store, &mut again)?, 1);
        Ok(())
    }

    #[test]
    fn a_spawned_consumer_is_woken_by_an_append() -> Result<(), StoreError> {
        let store = Store::temporary()?;
        let mut consumers = Consumers::new();
        consumers.spawn(&store, Count(0));
        let id = store.append_event(1, Event::FilmPublished { film: Uuid::nil() })?;
        let mut waited = Duration::ZERO;
        while store.event_cursor("count")? != Some(id) {
            assert!(
                waited < Duration::from_secs(10),
                "the consumer never applied it"
            );
            std::thread::sleep(Duration::from_millis(20));
            waited += Duration::from_millis(20);
        }
        consumers.stop();
        Ok(())
    }
}
