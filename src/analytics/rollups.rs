//! The `analytics` consumer: turns each logged event into a `Plan` (which counters of
//! which film and day it moves) and applies it with its cursor in one transaction.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::calendar::{month_of, Calendar};
use crate::events::{Consumer, Event, EventRecord};
use crate::store::analytics::{milestone, DayRollup, Plan};
use crate::store::{Store, StoreError};

/// The consumer's name: its cursor is `meta` `cursor:analytics`.
pub const NAME: &str = "analytics";

/// How many days the unique-viewer marks are kept: an event applied later than this
/// after its day (a consumer stopped for a week) may count its viewer twice that day.
pub const SEEN_DAYS: i32 = 7;

/// Removes the unique-viewer marks older than `SEEN_DAYS` before `now`; an error is
/// logged (the hourly sweep).
pub fn prune_seen(store: &Store, calendar: &Calendar, now: i64) {
    match store.prune_analytics_seen(calendar.day_of(now) - SEEN_DAYS) {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "pruned old unique-viewer marks"),
        Err(err) => tracing::warn!(error = %err, "pruning unique-viewer marks failed"),
    }
}

/// What the rollups need from the playback rules.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// A viewer with this share of a film's segments completed it (`playback.unlock_fraction`,
    /// 90% by default: the same bar that unlocks a film watched through).
    pub completion_fraction: f64,
    /// `playback.preview_fraction`: where the preview ends (the backfill's preview ends).
    pub preview_fraction: f64,
}

pub struct Rollups {
    pub calendar: Calendar,
    pub rules: Rules,
}

impl Rollups {
    pub fn new(calendar: Calendar, rules: Rules) -> Self {
        Self { calendar, rules }
    }

    /// What `event` at `at` changes; `None` for events analytics does not count.
    pub fn plan(&self, at: i64, event: &Event) -> Option<Plan> {
        let day = self.calendar.day_of(at);
        let mut plan = Plan {
            day,
            month: month_of(day),
            ..Plan::default()
        };
        let money = |provider: &str, currency: &str, amount: i64| {
            let mut by_currency = BTreeMap::new();
            by_currency.insert(currency.to_string(), amount);
            let mut revenue = BTreeMap::new();
            revenue.insert(provider.to_string(), by_currency);
            revenue
        };
        let signed = |amount: u64| i64::try_from(amount).unwrap_or(i64::MAX);
        match event {
            Event::UserSignedUp { .. } => {
                plan.film = Uuid::nil();
                plan.counts.new_users = 1;
            }
            Event::PlaybackStarted {
                user,
                film,
                entitled: false,
            } => {
                (plan.film, plan.user) = (*film, Some(*user));
                plan.milestones = milestone::PREVIEW_START;
            }
            Event::PreviewBoundaryReached { user, film } => {
                (plan.film, plan.user) = (*film, Some(*user));
                plan.milestones = milestone::PREVIEW_END;
            }
            Event::CheckoutStarted(o) if !o.tip => {
                (plan.film, plan.user) = (o.film, Some(o.user));
                plan.counts.checkouts = 1;
                plan.milestones = milestone::CHECKOUT;
            }
            Event::OrderCaptured(o) => {
                (plan.film, plan.user) = (o.film, Some(o.user));
                plan.counts.revenue = money(&o.provider, &o.currency, signed(o.amount));
                if o.tip {
                    plan.counts.tips = 1;
                    plan.counts
                        .tip_amounts
                        .insert(o.currency.clone(), signed(o.amount));
                } else {
                    plan.counts.purchases = 1;
                    plan.milestones = milestone::BOUGHT;
                }
            }
            Event::OrderRefunded(o) => {
                (plan.film, plan.user) = (o.film, Some(o.user));
                plan.counts.refunds = 1;
                plan.counts.revenue = money(&o.provider, &o.currency, -signed(o.amount));
            }
            Event::SupportGiven { user, film } => {
                (plan.film, plan.user) = (*film, Some(*user));
                plan.counts.supports = 1;
            }
            Event::Watched {
                user,
                film,
                added,
                watch_seconds,
                covered,
                total,
            } => {
                (plan.film, plan.user) = (*film, Some(*user));
                plan.active = true;
                plan.milestones = milestone::VIEWER;
                if *total > 0
                    && f64::from(*covered) / f64::from(*total) + 1e-9
                        >= self.rules.completion_fraction
                {
                    plan.milestones |= milestone::COMPLETED;
                }
                plan.counts = DayRollup {
                    watch_seconds: watch_seconds.max(0.0),
                    ..DayRollup::default()
                };
                plan.added = added.clone();
                plan.segments = *total;
            }
            _ => return None,
        }
        Some(plan)
    }
}

impl Consumer for Rollups {
    fn name(&self) -> &'static str {
        NAME
    }

    fn apply(&mut self, store: &Store, record: &EventRecord) -> Result<(), StoreError> {
        match self.plan(record.at, &record.event) {
            Some(plan) => store.apply_analytics(&plan, Some((NAME, record.id))),
            None => store.set_event_cursor(NAME, record.id),
        }
    }
}
