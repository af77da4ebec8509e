//! `GET /healthz`.

use serde::Serialize;

#[derive(Serialize)]
pub struct Health {
    /// Always `ok`: an unhealthy server answers an error instead.
    pub status: &'static str,
    /// The HTTPS certificate: mode, names, validity, and the last failed reload or
    /// renewal; absent with `tls.mode = "off"` (the answer is then what it always was). A
    /// failure does not turn the answer into an error: the server still serves (the old
    /// certificate), so monitors read `tls.last_error` and the expiry instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::server::tls::TlsStatus>,
}
