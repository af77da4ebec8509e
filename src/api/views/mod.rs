//! The JSON bodies the API answers: one `Serialize` type per answer, built by the handlers
//! from store records and domain results. No record goes out whole: a view copies what its
//! client needs, so viewers get no edit histories or event logs, and nobody gets a job's
//! source path, a sign-in epoch or a provider's capture token.
//!
//! They live here, one file per area, rather than beside their handlers because several
//! handler modules answer the same shape (a job in the jobs list and in a film's admin view,
//! a checkout from a purchase and from a tip, a film's progress from the film and from
//! `/me/progress`): handler modules then depend on views and never on each other, and the
//! API's contract (the OpenAPI document to come) reads in one module. Field names are the
//! wire names; tests/server checks many of them.

pub mod account;
pub mod admin;
pub mod analytics;
pub mod catalogue;
pub mod csv;
pub mod enums;
pub mod health;
pub mod notifications;
pub mod orders;
pub mod runners;
pub mod social;
