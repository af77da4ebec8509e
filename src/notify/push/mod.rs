//! Mobile push: FCM HTTP v1 and APNs. Placeholder until the push channel lands.

use std::sync::Arc;

use super::{Delivery, NotifyError, Sender};
use crate::events::EventRecord;

/// The push sender, when `[push.fcm]` or `[push.apns]` is configured.
pub fn sender(
    _config: &crate::config::Config,
    _store: &crate::store::Store,
) -> Result<Option<Arc<dyn Sender>>, NotifyError> {
    Ok(None)
}

/// The push deliveries `event` calls for (one per device of each recipient).
pub fn deliveries(
    _config: &crate::config::Config,
    _store: &crate::store::Store,
    _event: &EventRecord,
) -> Result<Vec<Delivery>, crate::store::StoreError> {
    Ok(Vec::new())
}
