//! E-mail over SMTP (lettre). Placeholder until the mail channel lands.

use std::sync::Arc;

use super::{NotifyError, Sender};

/// The SMTP sender, when `[smtp]` is configured.
pub fn sender(_config: &crate::config::Config) -> Result<Option<Arc<dyn Sender>>, NotifyError> {
    Ok(None)
}
