//! The notification service: the router (a consumer of the event log) turns events into
//! outbox deliveries, and the delivery worker sends each over its channel with retries.
//! Channels are `Sender`s: e-mail (`mail`), mobile push (`push`), operator webhooks
//! (`webhook`).

pub mod backoff;
pub mod http;
pub mod mail;
pub mod messages;
pub mod push;
pub mod router;
pub mod unsubscribe;
pub mod webhook;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

pub use crate::store::outbox::{Delivery, Language, NotificationPrefs, OutboxEntry, Platform};

/// What one attempt at a delivery came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The provider confirmed it: never sent again.
    Delivered,
    /// Try again later; `after` is the provider's `Retry-After` when it gave one.
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// The recipient is gone for good (an unregistered device token, a 410): the
    /// delivery is dropped, and the sender has already removed what is gone.
    Gone { reason: String },
    /// It will never succeed as it is (a refused message, bad credentials): straight to
    /// the dead letters, where an admin can retry it after fixing the cause.
    Failed { reason: String },
}

/// One delivery channel.
pub trait Sender: Send + Sync {
    fn send<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Outcome>;
}

/// Why a channel could not be set up from the configuration (named by its key).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("{key}: {message}")]
    Config { key: &'static str, message: String },
}

/// The configured channels; `None` where a channel is not configured (its deliveries are
/// not created).
#[derive(Clone, Default)]
pub struct Senders {
    pub mail: Option<Arc<dyn Sender>>,
    pub push: Option<Arc<dyn Sender>>,
    pub webhook: Option<Arc<dyn Sender>>,
}

impl Senders {
    pub fn from_config(
        config: &crate::config::Config,
        store: &crate::store::Store,
    ) -> Result<Self, NotifyError> {
        Ok(Self {
            mail: mail::sender(config)?,
            push: push::sender(config, store)?,
            webhook: webhook::sender(config)?,
        })
    }

    /// The sender of `delivery`'s channel.
    pub fn of(&self, delivery: &Delivery) -> Option<&Arc<dyn Sender>> {
        match delivery {
            Delivery::Email { .. } => self.mail.as_ref(),
            Delivery::Push { .. } => self.push.as_ref(),
            Delivery::Webhook { .. } => self.webhook.as_ref(),
        }
    }
}

/// What the surfaces share with the notification service: the configured channels and
/// the worker's wake-up (an entry queued or retried is tried at once).
#[derive(Clone, Default)]
pub struct Notifications {
    pub senders: Senders,
    pub wake: Arc<tokio::sync::Notify>,
}

impl Notifications {
    /// Dead letter `id` back in the outbox with its attempts reset, tried at once. `None`
    /// when there is no such dead letter.
    pub fn retry_dead(
        &self,
        store: &crate::store::Store,
        id: &uuid::Uuid,
    ) -> Result<Option<OutboxEntry>, crate::store::StoreError> {
        let entry = store.retry_dead(id, router::now_ms())?;
        if entry.is_some() {
            self.wake.notify_one();
        }
        Ok(entry)
    }
}
