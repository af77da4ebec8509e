//! Notification preferences and the outbox's dead letters.

use serde::Serialize;
use uuid::Uuid;

use crate::store::outbox::{Delivery, NotificationPrefs, OutboxEntry};

/// `GET/PUT /api/v1/me/notifications`. Receipts, refund notices and tip thanks are
/// transactional: always sent, no switch.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PrefsView {
    pub new_films_email: bool,
    pub new_films_push: bool,
    pub language: &'static str,
    pub transactional_email: &'static str,
}

impl From<&NotificationPrefs> for PrefsView {
    fn from(p: &NotificationPrefs) -> Self {
        Self {
            new_films_email: p.new_films_email,
            new_films_push: p.new_films_push,
            language: p.language.as_str(),
            transactional_email: "always",
        }
    }
}

/// One dead letter: whom it was for and why it gave up; never a secret (none is stored).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeadLetterView {
    #[schema(value_type = String)]
    pub id: Uuid,
    pub channel: &'static str,
    /// The e-mail address, the webhook URL or the device id.
    pub recipient: String,
    /// The subject, the push title or the webhook event.
    pub summary: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: i64,
}

impl From<&OutboxEntry> for DeadLetterView {
    fn from(e: &OutboxEntry) -> Self {
        let (recipient, summary) = match &e.delivery {
            Delivery::Email { to, subject, .. } => (to.clone(), subject.clone()),
            Delivery::Push { device, title, .. } => (device.to_string(), title.clone()),
            Delivery::Webhook { url, event, .. } => (url.clone(), event.clone()),
        };
        Self {
            id: e.id,
            channel: e.delivery.channel(),
            recipient,
            summary,
            attempts: e.attempts,
            last_error: e.last_error.clone(),
            created_at: e.created_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeadLetterList {
    pub dead: Vec<DeadLetterView>,
}
