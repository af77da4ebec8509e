//! What every surface (the JSON API, the operator socket, later the HTML pages) shares:
//! the configuration, the store, the keys and the domain services, built once by
//! `startup`. Above the domain modules and below the surfaces: nothing under `auth`,
//! `store`, `stream`, `payments`, `social`, `jobs` or `ingest` names it (`tests/layers.rs`).

use std::sync::Arc;

use crate::auth::signin::SignIn;
use crate::clock::Clock;
use crate::config::Config;
use crate::jobs::JobQueue;
use crate::payments::orders::{OrderLocks, OrderService};
use crate::ratelimit::{ApiLimits, Limits, RateLimiter};
use crate::secrets::SigningKeys;
use crate::server::client::TrustedProxies;
use crate::store::Store;
use crate::stream::access::Playback;
use crate::stream::playlists::PlaybackCache;
use crate::stream::progress::ProgressRecorder;

/// Everything a handler may need, shared across workers.
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub keys: SigningKeys,
    pub jobs: Arc<JobQueue>,
    pub progress: Arc<ProgressRecorder>,
    pub playback: Arc<PlaybackCache>,
    /// The Prometheus families (`telemetry`): what `/metrics` renders.
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    /// The per-minute budgets of the sign-in, token and webhook endpoints.
    pub limits: Limits,
    /// The general budgets of `/api/v1`, per client address and per account.
    pub api_limits: ApiLimits,
    /// The client addresses each playback token was used from (`playback.max_addresses_per_token`).
    pub token_addresses: crate::stream::sharing::TokenAddresses,
    /// Whose forwarding headers name the client those budgets count.
    pub trusted_proxies: TrustedProxies,
    pub providers: Arc<crate::auth::providers::Providers>,
    pub payments: Arc<crate::payments::Payments>,
    pub order_locks: OrderLocks,
    pub comment_limiter: RateLimiter<uuid::Uuid>,
    /// The wall-clock time every rule runs at (a `TestClock` in tests).
    pub clock: Arc<dyn Clock>,
    /// The notification channels and the delivery worker's wake-up.
    pub notify: crate::notify::Notifications,
    /// The served TLS certificate and its reload/renewal state (`[tls]`), for `/healthz`
    /// and the console.
    pub tls: Arc<crate::server::tls::TlsState>,
    /// Where packages are published and segments named (`[storage]`).
    pub storage: Arc<crate::storage::Storage>,
}

impl AppState {
    /// The order rules over this server's store, providers and locks, at the current time.
    pub fn orders(&self) -> OrderService<'_> {
        OrderService::new(
            &self.store,
            &self.payments,
            &self.order_locks,
            &self.telemetry,
            self.clock.now(),
        )
    }

    /// The playback rules (what a token may open, a film's playlists) over this server's
    /// store, playlist cache and keys.
    pub fn playback_access(&self) -> Playback<'_> {
        Playback::new(
            &self.store,
            &self.playback,
            &self.config,
            &self.keys.playback,
            &self.storage,
        )
    }

    /// The runner rules (tokens, leases, uploads, completion) over this server's store,
    /// queue and configuration, at the current time.
    pub fn runners(&self) -> crate::runners::Runners<'_> {
        crate::runners::Runners::new(&self.store, &self.jobs, &self.config, self.clock.now())
    }

    /// The sign-in rules over this server's store, auth configuration, providers and
    /// access token key.
    pub fn sign_in(&self) -> SignIn<'_> {
        SignIn::new(
            &self.store,
            &self.config.auth,
            &self.providers,
            &self.keys.access,
        )
    }
}
