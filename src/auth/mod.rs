//! cinegate's own credentials: short-lived access JWTs and who they belong to (`access`,
//! which the `api` extractors call), rotating refresh tokens, one-time login links and
//! browser sessions; and sign-in through Google, Apple and Facebook (providers → identity →
//! account, orchestrated by `signin`). No HTTP types: the surfaces map `auth`'s errors.

pub mod access;
pub mod accounts;
pub mod apple;
pub mod facebook;
pub mod flows;
pub mod identity;
pub mod jwt;
pub mod oidc;
pub mod providers;
pub mod session;
pub mod signin;
