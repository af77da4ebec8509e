//! cinegate's own credentials: short-lived access JWTs, rotating refresh tokens, one-time
//! login links, and the request extractors that put "signed in" and "admin" in handler
//! signatures; and sign-in through Google, Apple and Facebook (providers → identity →
//! account).

pub mod accounts;
pub mod apple;
pub mod extract;
pub mod facebook;
pub mod flows;
pub mod identity;
pub mod jwt;
pub mod oidc;
pub mod providers;
pub mod session;

pub use extract::{Admin, Viewer};
