//! Integration tests of the HTTP server: the real `cinegate` binary on loopback, driven by
//! independent clients (the ffmpeg CLI as the HLS player, Python's `m3u8` and `tuspy`).
//! Issue 3, "Tests". Python peers: `pip install -r tests/peers/requirements.txt`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod analytics;
mod api_docs;
mod auth;
mod backup;
mod browser_smoke;
mod console;
mod console_films;
mod console_moderation;
mod console_orders;
mod disk;
mod doctor;
mod garage;
mod generated_client;
mod hardening;
mod harness;
mod ingest;
mod install;
mod limits;
mod metrics;
mod notify_mail;
mod oauth;
mod openapi;
mod payment_peers;
mod payments;
mod peers;
mod playback;
mod push;
mod ratelimit;
mod recovery;
mod runners;
mod schemathesis;
mod social;
mod storage;
mod storage_browser;
mod tls;
mod viewer;
mod viewer_player;
mod viewer_social;
mod webhooks;
