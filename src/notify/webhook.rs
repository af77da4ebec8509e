//! Operator webhooks, signed with HMAC-SHA256. Placeholder until the webhook channel lands.

use std::sync::Arc;

use super::{Delivery, NotifyError, Sender};
use crate::events::EventRecord;

/// The webhook sender, when `[[webhooks]]` are configured.
pub fn sender(_config: &crate::config::Config) -> Result<Option<Arc<dyn Sender>>, NotifyError> {
    Ok(None)
}

/// The webhook deliveries `event` calls for (one per subscribed endpoint).
pub fn deliveries(_config: &crate::config::Config, _event: &EventRecord) -> Vec<Delivery> {
    Vec::new()
}
