//! The delivery worker: a tokio task that sends the outbox's due entries over their
//! channels, a bounded number at once. An entry leaves the outbox only when its provider
//! confirmed it (`Delivered`, flushed at once) or it is gone for good; a failure moves it
//! later (`backoff`), and past `notify.max_attempts` — or at once when it can never
//! succeed as it is — into the dead letters, with an alert mail to the admins at most once
//! per `notify.dead_alert_interval`. A crash mid-send leaves the entry queued: it is sent
//! again after the restart (at least once; never again once confirmed and flushed).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::router::{admin_addresses, now_ms};
use super::{backoff, messages, Outcome, Senders};
use crate::clock::Clock;
use crate::config::Config;
use crate::store::outbox::{Language, OutboxEntry};
use crate::store::{Store, StoreError};

/// The longest one attempt may take, whatever the channel's own timeout.
const ATTEMPT_LIMIT: Duration = Duration::from_secs(300);
/// The longest the worker sleeps without looking at the outbox (a missed wake-up, an
/// entry queued by another path).
const IDLE_WAIT: Duration = Duration::from_secs(5);
/// How long shutdown waits for the attempts in flight.
const STOP_GRACE: Duration = Duration::from_secs(5);
const DEAD_ALERT_KEY: &[u8] = b"notify:dead_alert_at";

/// What the worker works with.
#[derive(Clone)]
pub struct Worker {
    pub store: Store,
    pub config: Arc<Config>,
    pub senders: Senders,
    pub clock: Arc<dyn Clock>,
    pub wake: Arc<Notify>,
    /// Where delivery outcomes are counted (`deliveries_total`).
    pub telemetry: Arc<crate::telemetry::Telemetry>,
}

/// The running worker; `stop` ends it.
pub struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops taking entries and waits a moment for the attempts in flight (an attempt cut
    /// short stays queued and is sent after the restart).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(STOP_GRACE + Duration::from_secs(1), self.task)
            .await
            .is_err()
        {
            tracing::warn!("the notification worker did not stop in time");
        }
    }
}

type InFlight = Arc<Mutex<HashSet<Uuid>>>;

fn in_flight(set: &InFlight) -> HashSet<Uuid> {
    set.lock().map(|s| s.clone()).unwrap_or_default()
}

impl Worker {
    /// Starts the worker on the current tokio runtime.
    pub fn start(self) -> Running {
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(self.run(rx));
        Running { stop, task }
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        let limit = self.config.notify.concurrency.max(1);
        let permits = Arc::new(Semaphore::new(limit));
        let flying: InFlight = Arc::default();
        let mut tasks = JoinSet::new();
        loop {
            if *stop.borrow() {
                break;
            }
            while tasks.try_join_next().is_some() {}
            let free = permits.available_permits();
            let now = now_ms();
            let (due, next) = {
                let store = self.store.clone();
                let skip = in_flight(&flying);
                tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
                    let due = if free > 0 {
                        store.due_entries(now, free, &|id| skip.contains(id))?
                    } else {
                        Vec::new()
                    };
                    let mut skip = skip;
                    skip.extend(due.iter().map(|e| e.id));
                    let next = store.next_due(&|id| skip.contains(id))?;
                    Ok((due, next))
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
                .unwrap_or_else(|e| {
                    tracing::error!(error = %e, "reading the outbox failed");
                    (Vec::new(), None)
                })
            };
            for entry in due {
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    break;
                };
                if let Ok(mut f) = flying.lock() {
                    f.insert(entry.id);
                }
                let worker = self.clone();
                let flying = flying.clone();
                tasks.spawn(async move {
                    let id = entry.id;
                    worker.attempt(entry).await;
                    if let Ok(mut f) = flying.lock() {
                        f.remove(&id);
                    }
                    drop(permit);
                });
            }
            let wait = match next {
                Some(at) if permits.available_permits() > 0 => Duration::from_millis(
                    (at - now_ms()).clamp(0, IDLE_WAIT.as_millis() as i64) as u64,
                ),
                _ => IDLE_WAIT,
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
        }
        // Attempts in flight get a moment to finish and record their outcome.
        let _ = tokio::time::timeout(STOP_GRACE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        tasks.abort_all();
    }

    /// One attempt at `entry`, and what its outcome does to it.
    async fn attempt(&self, entry: OutboxEntry) {
        let outcome = match self.senders.of(&entry.delivery) {
            Some(sender) => tokio::time::timeout(ATTEMPT_LIMIT, sender.send(&entry.delivery))
                .await
                .unwrap_or_else(|_| Outcome::Retry {
                    after: None,
                    reason: "the attempt timed out".into(),
                }),
            // Configured when it was queued, not now: kept as a dead letter to retry once
            // the channel is back.
            None => Outcome::Failed {
                reason: format!("the {} channel is not configured", entry.delivery.channel()),
            },
        };
        let worker = self.clone();
        let channel = entry.delivery.channel();
        let done = tokio::task::spawn_blocking(move || worker.settle(&entry, &outcome)).await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(channel, error = %e, "recording a delivery's outcome failed")
            }
            Err(e) => {
                tracing::error!(channel, error = %e, "recording a delivery's outcome panicked")
            }
        }
    }

    /// Records `outcome` of an attempt at `entry` (blocking: sled).
    pub fn settle(&self, entry: &OutboxEntry, outcome: &Outcome) -> Result<(), StoreError> {
        let channel = entry.delivery.channel();
        match outcome {
            Outcome::Delivered => {
                self.store.mark_delivered(entry)?;
                // On disk before anything else happens: a confirmed delivery is never sent
                // again, even after a crash the next moment.
                self.store.flush()?;
                self.telemetry.delivery(channel, "sent");
                tracing::info!(channel, id = %entry.id, attempts = entry.attempts + 1, "delivered");
            }
            Outcome::Gone { reason } => {
                self.store.mark_delivered(entry)?;
                self.telemetry.delivery(channel, "dropped");
                tracing::info!(channel, id = %entry.id, reason, "recipient gone; delivery dropped");
            }
            Outcome::Retry { after, reason } => {
                let n = &self.config.notify;
                if entry.attempts.saturating_add(1) >= n.max_attempts {
                    self.dead(entry, reason)?;
                } else {
                    let wait = backoff::delay(
                        n.retry_base,
                        n.retry_cap,
                        entry.attempts,
                        *after,
                        &mut rand::thread_rng(),
                    );
                    let next = now_ms().saturating_add(wait.as_millis() as i64);
                    self.store.reschedule(entry, next, reason)?;
                    self.telemetry.delivery(channel, "retried");
                    tracing::warn!(channel, id = %entry.id, attempt = entry.attempts + 1, retry_in_ms = wait.as_millis() as u64, reason, "delivery failed; retrying");
                }
            }
            Outcome::Failed { reason } => self.dead(entry, reason)?,
        }
        Ok(())
    }

    fn dead(&self, entry: &OutboxEntry, reason: &str) -> Result<(), StoreError> {
        if !self.store.move_to_dead(entry, reason)? {
            return Ok(());
        }
        self.telemetry.delivery(entry.delivery.channel(), "dead");
        tracing::error!(channel = entry.delivery.channel(), id = %entry.id, attempts = entry.attempts + 1, reason, "delivery gave up: moved to the dead letters");
        self.alert_dead()
    }

    /// Mails the admins about the dead letters, at most once per interval.
    fn alert_dead(&self) -> Result<(), StoreError> {
        if self.senders.mail.is_none() {
            return Ok(());
        }
        let now = self.clock.now();
        let interval = self.config.notify.dead_alert_interval.as_secs() as i64;
        if !self.store.take_interval(DEAD_ALERT_KEY, now, interval)? {
            return Ok(());
        }
        let dead = self.store.dead_letters()?;
        let latest = dead.last();
        let mut rows = vec![("Dead letters", dead.len().to_string())];
        if let Some(e) = latest {
            rows.push(("Latest channel", e.delivery.channel().to_string()));
            rows.push(("Latest error", e.last_error.clone().unwrap_or_default()));
        }
        let mail = messages::admin_alert(
            "Notifications are failing".into(),
            "Deliveries gave up after their last attempt. Retry them from the console's System page once the cause is fixed.".into(),
            rows,
            format!("{}/admin/system", self.config.public_url.trim_end_matches('/')),
        );
        let at = now_ms();
        for to in admin_addresses(&self.store)? {
            if let Some(d) = mail.to(&to, Language::En, None) {
                self.store.enqueue(&OutboxEntry::new(d, now, at))?;
            }
        }
        self.wake.notify_one();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::outbox::Delivery;

    fn worker(store: &Store, max_attempts: u32) -> Worker {
        let mut config = Config::default();
        config.notify.max_attempts = max_attempts;
        Worker {
            store: store.clone(),
            config: Arc::new(config),
            senders: Senders::default(),
            clock: Arc::new(crate::clock::SystemClock),
            wake: Arc::default(),
            telemetry: Arc::default(),
        }
    }

    fn entry() -> OutboxEntry {
        OutboxEntry::new(
            Delivery::Webhook {
                url: "http://127.0.0.1:9/hook".into(),
                event: "order.captured".into(),
                body: "{}".into(),
            },
            1,
            now_ms(),
        )
    }

    fn retry(after: Option<Duration>) -> Outcome {
        Outcome::Retry {
            after,
            reason: "503".into(),
        }
    }

    #[test]
    fn outcomes_move_entries_as_the_rules_say() -> Result<(), StoreError> {
        let store = Store::temporary()?;
        let w = worker(&store, 3);
        let e = entry();
        store.enqueue(&e)?;
        // Retried with Retry-After as the least wait.
        w.settle(&e, &retry(Some(Duration::from_secs(60))))?;
        let queued = store.outbox_entries()?;
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].attempts, 1);
        assert!(queued[0].next_attempt_at >= now_ms() + 59_000);
        // The last allowed attempt fails: a dead letter.
        w.settle(&queued[0], &retry(None))?;
        let again = store.outbox_entries()?;
        w.settle(&again[0], &retry(None))?;
        assert!(store.outbox_entries()?.is_empty());
        assert_eq!(store.dead_letters()?.len(), 1);
        assert_eq!(store.dead_letters()?[0].attempts, 3);
        // Failed: dead at once; Gone: dropped; Delivered: removed.
        let f = entry();
        store.enqueue(&f)?;
        w.settle(
            &f,
            &Outcome::Failed {
                reason: "550".into(),
            },
        )?;
        assert_eq!(store.dead_letters()?.len(), 2);
        let g = entry();
        store.enqueue(&g)?;
        w.settle(
            &g,
            &Outcome::Gone {
                reason: "410".into(),
            },
        )?;
        let d = entry();
        store.enqueue(&d)?;
        w.settle(&d, &Outcome::Delivered)?;
        assert!(store.outbox_entries()?.is_empty());
        assert_eq!(store.dead_letters()?.len(), 2);
        assert_eq!(store.outbox_depth()?, (0, 2));
        // Each outcome counted once, by channel.
        let counted = |outcome| {
            w.telemetry
                .deliveries
                .get_or_create(&crate::telemetry::ChannelLabels {
                    channel: "webhook",
                    outcome,
                })
                .get()
        };
        assert_eq!(
            ["retried", "dead", "dropped", "sent"].map(counted),
            [2, 2, 1, 1]
        );
        Ok(())
    }

    struct Flaky(std::sync::atomic::AtomicUsize);
    impl super::super::Sender for Flaky {
        fn send<'a>(&'a self, _: &'a Delivery) -> futures_util::future::BoxFuture<'a, Outcome> {
            Box::pin(async move {
                if self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
                    retry(None)
                } else {
                    Outcome::Delivered
                }
            })
        }
    }

    #[tokio::test]
    async fn the_worker_retries_until_delivered_and_sends_once() -> Result<(), StoreError> {
        let store = Store::temporary()?;
        let mut w = worker(&store, 8);
        let mut config = Config::default();
        config.notify.retry_base = Duration::from_millis(10);
        config.notify.retry_cap = Duration::from_millis(50);
        w.config = Arc::new(config);
        let flaky = Arc::new(Flaky(Default::default()));
        w.senders.webhook = Some(flaky.clone());
        let running = w.clone().start();
        store.enqueue(&entry())?;
        w.wake.notify_one();
        let mut waited = 0;
        while !store.outbox_entries()?.is_empty() && waited < 5_000 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            waited += 20;
        }
        running.stop().await;
        assert!(store.outbox_entries()?.is_empty());
        assert_eq!(flaky.0.load(std::sync::atomic::Ordering::SeqCst), 3);
        Ok(())
    }
}
