//! The domain event log (`event_log`): every event a service emits, once, in the order
//! it was recorded, under a key from sled's persistent monotonic counter (`generate_id`,
//! u64 big-endian), so a consumer's position is one number that survives restarts.
//!
//! Consumers (analytics rollups, the notification router) each keep a cursor in `meta`
//! (`cursor:{name}` → the last id they applied) and advance it in the same transaction as
//! their effects (`advance_cursor`), so a crash between two events neither loses nor
//! applies one twice.

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use uuid::Uuid;

use super::{decode, encode, Result, Store, StoreError};

/// What happened, with what the consumers need to act on it without reading anything
/// that may have changed since (amounts, currencies, providers as they were).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    UserSignedUp {
        user: Uuid,
        provider: String,
    },
    FilmPublished {
        film: Uuid,
    },
    FilmUnpublished {
        film: Uuid,
    },
    PackagingFinished {
        film: Uuid,
        job: Uuid,
    },
    PackagingFailed {
        film: Uuid,
        job: Uuid,
        code: String,
        message: String,
    },
    /// A playback token was issued; `entitled` = the viewer may watch the whole film.
    PlaybackStarted {
        user: Uuid,
        film: Uuid,
        entitled: bool,
    },
    /// A playback token was refused on one more client address than
    /// `playback.max_addresses_per_token` allows (`addresses`, the refused one included);
    /// recorded once per token per `playback.address_window`. `token` is the token's id.
    PlaybackTokenShared {
        user: Uuid,
        film: Uuid,
        token: String,
        addresses: u32,
    },
    /// A viewer without the whole film was delivered the last preview segment (P − 1).
    PreviewBoundaryReached {
        user: Uuid,
        film: Uuid,
    },
    CheckoutStarted(OrderFacts),
    /// A purchase or a tip (`tip`) captured: a paid tip is this event with `tip: true`.
    OrderCaptured(OrderFacts),
    OrderRefunded(OrderFacts),
    OrderFailed {
        user: Uuid,
        film: Uuid,
        order: Uuid,
        provider: String,
        reason: String,
    },
    /// Reconciliation could not settle an order by itself: a person must look at it.
    OrderNeedsAttention {
        order: Uuid,
        reason: String,
    },
    CommentPosted {
        user: Uuid,
        film: Uuid,
        comment: Uuid,
    },
    CommentReported {
        user: Uuid,
        film: Uuid,
        comment: Uuid,
    },
    CommentHeld {
        user: Uuid,
        film: Uuid,
        comment: Uuid,
    },
    SupportGiven {
        user: Uuid,
        film: Uuid,
    },
    /// What one progress flush merged for one viewer and film: the segment indexes newly
    /// in the viewer's coverage, the media seconds delivered, and the coverage after it.
    /// Segment deliveries are never logged one by one.
    Watched {
        user: Uuid,
        film: Uuid,
        added: Vec<u32>,
        watch_seconds: f64,
        covered: u32,
        total: u32,
    },
}

impl Event {
    /// The dotted name operators and webhook receivers see (`order.captured`).
    pub fn name(&self) -> &'static str {
        match self {
            Event::UserSignedUp { .. } => "user.signed_up",
            Event::FilmPublished { .. } => "film.published",
            Event::FilmUnpublished { .. } => "film.unpublished",
            Event::PackagingFinished { .. } => "film.ready",
            Event::PackagingFailed { .. } => "film.failed",
            Event::PlaybackStarted { .. } => "playback.started",
            Event::PlaybackTokenShared { .. } => "playback.token_shared",
            Event::PreviewBoundaryReached { .. } => "playback.preview_boundary",
            Event::CheckoutStarted { .. } => "checkout.started",
            Event::OrderCaptured { .. } => "order.captured",
            Event::OrderRefunded { .. } => "order.refunded",
            Event::OrderFailed { .. } => "order.failed",
            Event::OrderNeedsAttention { .. } => "order.needs_attention",
            Event::CommentPosted { .. } => "comment.posted",
            Event::CommentReported { .. } => "comment.reported",
            Event::CommentHeld { .. } => "comment.held",
            Event::SupportGiven { .. } => "support.given",
            Event::Watched { .. } => "playback.watched",
        }
    }
}

/// An order as it was when its event happened: whose, for which film, through which
/// provider, how much, and whether it is a tip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderFacts {
    pub user: Uuid,
    pub film: Uuid,
    pub order: Uuid,
    pub provider: String,
    pub amount: u64,
    pub currency: String,
    pub tip: bool,
}

/// One logged event: its position in the log, when it happened (Unix seconds, the
/// service's clock) and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub id: u64,
    pub at: i64,
    pub event: Event,
}

fn cursor_key(consumer: &str) -> Vec<u8> {
    format!("cursor:{consumer}").into_bytes()
}

/// Inside a consumer's transaction (which must include `meta`): moves its cursor to `id`.
pub fn advance_cursor(
    meta: &TransactionalTree,
    consumer: &str,
    id: u64,
) -> std::result::Result<(), ConflictableTransactionError<StoreError>> {
    meta.insert(cursor_key(consumer), &id.to_be_bytes())?;
    Ok(())
}

/// Inside a transaction that includes `event_log`: logs `event` under `id` (from
/// `Store::with_event_id`, whose lock the transaction runs under), so the event is written
/// exactly when the change it reports is.
pub fn append_in(
    log: &TransactionalTree,
    id: u64,
    at: i64,
    event: Event,
) -> std::result::Result<(), ConflictableTransactionError<StoreError>> {
    log.insert(&id.to_be_bytes(), encode(&EventRecord { id, at, event }))?;
    Ok(())
}

impl Store {
    /// Runs `write` (a transaction that logs with `append_in`) with the next event id,
    /// holding the log's append lock until it returns: ids become visible in the order
    /// they are given, so no consumer moves its cursor past an id whose event is not
    /// written yet (and would then never see it). Unused ids are harmless gaps.
    pub fn with_event_id<T>(&self, write: impl FnOnce(u64) -> Result<T>) -> Result<T> {
        let _order = self.event_order.lock().unwrap_or_else(|p| p.into_inner());
        write(self.event_id_floor + self.db.generate_id()?)
    }

    /// Appends an event to the log and returns its id. One sled insert (no disk wait)
    /// under the append lock: cheap enough for any request path.
    pub fn append_event(&self, at: i64, event: Event) -> Result<u64> {
        self.with_event_id(|id| {
            let record = EventRecord { id, at, event };
            self.event_log.insert(id.to_be_bytes(), encode(&record))?;
            Ok(id)
        })
    }

    /// Up to `limit` events after `after` (all from the start for `None`), oldest first.
    /// An unreadable record is an error naming the tree: the consumer stops there rather
    /// than skip an event silently.
    pub fn events_after(&self, after: Option<u64>, limit: usize) -> Result<Vec<EventRecord>> {
        let start = after.map_or(0, |a| a.saturating_add(1));
        self.event_log
            .range(start.to_be_bytes()..)
            .take(limit)
            .map(|kv| {
                let (_, v) = kv?;
                decode("event_log", &v)
            })
            .collect()
    }

    /// Where `consumer` stands: the id of the last event it applied.
    pub fn event_cursor(&self, consumer: &str) -> Result<Option<u64>> {
        Ok(self
            .meta
            .get(cursor_key(consumer))?
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes)))
    }

    /// Moves `consumer`'s cursor outside a transaction: for consumers whose effect is
    /// idempotent or nothing at all for that event.
    pub fn set_event_cursor(&self, consumer: &str, id: u64) -> Result<()> {
        self.meta.insert(cursor_key(consumer), &id.to_be_bytes())?;
        Ok(())
    }

    /// Wakes whoever waits on it when an event is appended (sled's subscription).
    pub fn watch_events(&self) -> sled::Subscriber {
        self.event_log.watch_prefix(Vec::<u8>::new())
    }

    /// The id of the newest event, if any.
    pub fn last_event_id(&self) -> Result<Option<u64>> {
        Ok(self
            .event_log
            .last()?
            .and_then(|(k, _)| k.as_ref().try_into().ok().map(u64::from_be_bytes)))
    }

    /// Removes the events every consumer has applied and that are older than `before`
    /// (Unix seconds); returns how many. The log is kept for a while after it is applied
    /// so an operator can read what happened.
    pub fn prune_events(&self, consumers: &[&str], before: i64) -> Result<usize> {
        let mut done = u64::MAX;
        for c in consumers {
            done = done.min(self.event_cursor(c)?.unwrap_or(0));
        }
        let mut removed = 0;
        for kv in self.event_log.range(..=done.to_be_bytes()) {
            let (k, v) = kv?;
            let record: EventRecord = decode("event_log", &v)?;
            if record.at >= before {
                break;
            }
            self.event_log.remove(k)?;
            removed += 1;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Transact;

    #[test]
    fn events_come_back_in_order_after_a_cursor() -> Result<()> {
        let store = Store::temporary()?;
        let film = Uuid::nil();
        let a = store.append_event(10, Event::FilmPublished { film })?;
        let b = store.append_event(11, Event::FilmUnpublished { film })?;
        assert!(b > a);
        let all = store.events_after(None, 10)?;
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].event, Event::FilmPublished { film });
        assert_eq!(store.events_after(Some(a), 10)?[0].id, b);
        assert!(store.events_after(Some(b), 10)?.is_empty());
        Ok(())
    }

    #[test]
    fn an_event_written_in_a_transaction_is_never_overtaken() -> Result<()> {
        let store = Store::temporary()?;
        let film = Uuid::nil();
        let tx_started = std::sync::Barrier::new(2);
        std::thread::scope(|s| -> Result<()> {
            let slow = s.spawn(|| {
                store.with_event_id(|id| {
                    tx_started.wait();
                    // The other thread's append waits here for this write.
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    (&store.event_log,)
                        .transaction(|(log,)| append_in(log, id, 1, Event::FilmPublished { film }))
                        .map_err(StoreError::from)?;
                    Ok(id)
                })
            });
            tx_started.wait();
            // Waits for the slow write's lock, so it is given the later id.
            let later = store.append_event(2, Event::FilmUnpublished { film })?;
            let first = slow
                .join()
                .unwrap_or_else(|_| Err(StoreError::Conflict("panicked".into())))?;
            assert!(first < later);
            Ok(())
        })?;
        // Whatever a consumer read, it read the earlier id first.
        let all = store.events_after(None, 10)?;
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].event, Event::FilmPublished { film });
        Ok(())
    }

    #[test]
    fn a_cursor_moves_with_the_consumers_transaction() -> Result<()> {
        let store = Store::temporary()?;
        assert_eq!(store.event_cursor("x")?, None);
        (&store.meta,)
            .transaction(|(meta,)| advance_cursor(meta, "x", 7))
            .map_err(StoreError::from)?;
        assert_eq!(store.event_cursor("x")?, Some(7));
        Ok(())
    }

    #[test]
    fn pruning_keeps_what_a_consumer_has_not_applied() -> Result<()> {
        let store = Store::temporary()?;
        let film = Uuid::nil();
        let a = store.append_event(1, Event::FilmPublished { film })?;
        store.append_event(2, Event::FilmPublished { film })?;
        store.set_event_cursor("one", a)?;
        store.set_event_cursor("two", u64::MAX)?;
        assert_eq!(store.prune_events(&["one", "two"], 100)?, 1);
        assert_eq!(store.events_after(None, 10)?.len(), 1);
        Ok(())
    }

    #[test]
    fn the_wire_form_names_the_type() {
        let e = Event::SupportGiven {
            user: Uuid::nil(),
            film: Uuid::nil(),
        };
        let v = serde_json::to_value(&e).unwrap_or_default();
        assert_eq!(v["type"], "support_given");
        assert_eq!(e.name(), "support.given");
        // An order's facts sit beside the tag, as the other variants' fields do.
        let e = Event::OrderCaptured(OrderFacts {
            user: Uuid::nil(),
            film: Uuid::nil(),
            order: Uuid::nil(),
            provider: "dev".into(),
            amount: 499,
            currency: "USD".into(),
            tip: false,
        });
        let v = serde_json::to_value(&e).unwrap_or_default();
        assert_eq!(
            (v["type"].as_str(), v["amount"].as_u64()),
            (Some("order_captured"), Some(499))
        );
        assert_eq!(serde_json::from_value::<Event>(v).ok(), Some(e));
    }
}
