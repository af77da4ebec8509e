//! cinegate: a self-hosted pay-per-view film server. See `docs/ARCHITECTURE.md`.

pub mod analytics;
pub mod api;
pub mod auth;
pub mod catalogue;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod events;
pub mod ingest;
pub mod jobs;
pub mod money;
pub mod notify;
pub mod ops;
pub mod overview;
pub mod payments;
pub mod ratelimit;
pub mod secrets;
pub mod server;
pub mod social;
pub mod startup;
pub mod state;
pub mod store;
pub mod stream;
pub mod telemetry;
pub mod web;
