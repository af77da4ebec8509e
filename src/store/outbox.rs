//! The notification outbox: what is to be delivered, rendered when its event was applied,
//! so a retry sends exactly what the first attempt would have. Secrets (SMTP password,
//! webhook keys, push credentials) never enter it: senders take them from the
//! configuration at send time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A mobile platform, as apps register it (`POST /api/v1/me/devices`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Ios,
    Android,
}

/// One message to one recipient over one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "channel", rename_all = "snake_case")]
pub enum Delivery {
    Email {
        to: String,
        subject: String,
        text: String,
        html: String,
        /// Set on mail that is not transactional (`List-Unsubscribe`).
        #[serde(default)]
        list_unsubscribe: Option<String>,
    },
    Push {
        user: Uuid,
        device: Uuid,
        platform: Platform,
        token: String,
        title: String,
        body: String,
        #[serde(default)]
        data: BTreeMap<String, String>,
    },
    Webhook {
        /// The configured endpoint's URL (its signing secret is looked up by it).
        url: String,
        /// The event's dotted name (`order.captured`).
        event: String,
        /// The exact JSON text sent and signed.
        body: String,
    },
}

impl Delivery {
    /// The channel's name, for logs, metrics and the dead-letter list.
    pub fn channel(&self) -> &'static str {
        match self {
            Delivery::Email { .. } => "email",
            Delivery::Push { .. } => "push",
            Delivery::Webhook { .. } => "webhook",
        }
    }
}
