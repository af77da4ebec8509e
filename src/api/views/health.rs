//! `GET /healthz`.

use serde::Serialize;

#[derive(Serialize)]
pub struct Health {
    /// Always `ok`: an unhealthy server answers an error instead.
    pub status: &'static str,
}
