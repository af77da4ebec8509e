//! The first start with analytics computes the rollups from the records already stored
//! (orders, purchases, progress, users, supports) through the same `Plan`s the events
//! make, then puts the consumer's cursor at the log's newest event, so nothing counts
//! twice.
//!
//! What the records cannot tell, and so differs from the incremental path:
//! - preview starts (and with them `converted`, the preview viewers who bought): no
//!   record keeps that a preview token was issued; left at zero;
//! - preview completions: a progress record covering the preview's last segment counts
//!   for a viewer who has neither a purchase nor a grant now (one who bought after
//!   finishing the preview is not counted; a refunded buyer who watched as a buyer is);
//! - the day of viewing: a progress record keeps only its last update, so a viewer's
//!   first segment, completion, watch time and activity all count on that day (unique
//!   viewers per day become one day per viewer and film). Totals over a range holding
//!   both days agree; per-day figures may not.
//!
//! Sign-ups, checkouts, purchases, refunds, revenue, tips and supports keep their own
//! timestamps and agree exactly; so does the retention curve (coverage bitmaps).

use super::rollups::{Rollups, NAME};
use crate::events::Event;
use crate::store::orders::OrderState;
use crate::store::{Store, StoreError};
use crate::stream::gate;

/// Runs the backfill unless it ran before (`meta` `analytics_backfilled`); returns
/// whether it ran.
pub fn backfill_once(store: &Store, rollups: &Rollups) -> Result<bool, StoreError> {
    if store.analytics_backfilled()? {
        return Ok(false);
    }
    let last = store.last_event_id()?;
    // A backfill cut short by a crash left partial counts: start from nothing.
    store.clear_analytics()?;
    let apply = |at: i64, event: Event| -> Result<(), StoreError> {
        match rollups.plan(at, &event) {
            Some(plan) => store.apply_analytics(&plan, None),
            None => Ok(()),
        }
    };
    for user in store.users()? {
        apply(
            user.created_at,
            Event::UserSignedUp {
                user: user.id,
                provider: String::new(),
            },
        )?;
    }
    for o in store.orders()? {
        let facts = o.facts();
        apply(o.created_at, Event::CheckoutStarted(facts.clone()))?;
        for e in &o.events {
            let event = match e.state {
                OrderState::Captured => Event::OrderCaptured(facts.clone()),
                OrderState::Refunded => Event::OrderRefunded(facts.clone()),
                _ => continue,
            };
            apply(e.at, event)?;
        }
    }
    for (film, user, support) in store.all_supports()? {
        apply(support.at, Event::SupportGiven { user, film })?;
    }
    for (user, film, record) in store.all_progress()? {
        let added: Vec<u32> = (0..record.total)
            .filter(|&i| {
                record
                    .covered
                    .get(i / 8)
                    .is_some_and(|b| b & (1 << (i % 8)) != 0)
            })
            .map(|i| i as u32)
            .collect();
        if added.is_empty() && record.watch_seconds <= 0.0 {
            continue;
        }
        let boundary = gate::preview_segments(record.total, rollups.rules.preview_fraction);
        let reached = boundary < record.total && added.contains(&(boundary as u32 - 1));
        apply(
            record.updated_at,
            Event::Watched {
                user,
                film,
                covered: added.len() as u32,
                added,
                watch_seconds: record.watch_seconds,
                total: record.total as u32,
            },
        )?;
        if reached && gate::entitlement(store, &user, &film)? == gate::Entitlement::Preview {
            apply(
                record.updated_at,
                Event::PreviewBoundaryReached { user, film },
            )?;
        }
    }
    store.finish_analytics_backfill(NAME, last)?;
    Ok(true)
}
