//! cinegate's own credentials: short-lived access JWTs, rotating refresh tokens, one-time
//! login links, and the request extractors that put "signed in" and "admin" in handler
//! signatures.

pub mod extract;
pub mod jwt;
pub mod session;

pub use extract::{Admin, Viewer};
