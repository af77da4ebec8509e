//! Builds and runs the server: opens the store and keys, recovers from a crash (re-queues
//! interrupted jobs, removes half-written packages), binds the listener (port 0 works;
//! `port()` tells which), and shuts down gracefully on SIGTERM/SIGINT: stop accepting,
//! finish in-flight requests, interrupt jobs back into the queue, flush progress and the
//! store.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{web, App};
use anyhow::Context;

use crate::api::{self, error};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, TlsMode};
use crate::jobs::JobQueue;
use crate::secrets::SigningKeys;
use crate::state::AppState;
use crate::store::Store;
use crate::stream::playlists::PlaybackCache;
use crate::stream::progress::ProgressRecorder;

pub struct Application {
    server: actix_web::dev::Server,
    port: u16,
    /// The HTTPS listener's port, when `tls.mode` is not `off`.
    https_port: Option<u16>,
    state: web::Data<AppState>,
    /// Bound in `build`, before the caller announces the port, so an operator command
    /// that starts as soon as the server says it listens finds the socket there.
    control: Option<tokio::net::UnixListener>,
    /// SIGHUP, caught in `build` for the same reason (`server::tls::catch_hangup`).
    hangup: Option<tokio::signal::unix::Signal>,
}

/// `[storage]` with a bucket: checks it answers before anything is served, so a wrong
/// endpoint, bucket, region or key stops start-up with the key named. On its own thread and
/// runtime with its own client (`build` runs inside the server's runtime, which must not
/// block), thrown away after.
fn probe_storage(config: &Config) -> anyhow::Result<()> {
    if config.storage.mode == crate::config::StorageMode::Local {
        return Ok(());
    }
    let storage =
        crate::storage::Storage::from_config(&config.storage).map_err(anyhow::Error::msg)?;
    let started = Instant::now();
    let outcome = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime
                    .block_on(storage.probe())
                    .map_err(|e| anyhow::anyhow!("storage: {e}"))
            })
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("storage: the bucket check panicked")))
    });
    if outcome.is_ok() {
        tracing::info!(
            bucket = %config.storage.bucket,
            endpoint = %config.storage.endpoint,
            took_ms = started.elapsed().as_millis() as u64,
            "storage: the bucket answers (list, put, read back, delete)"
        );
    }
    outcome
}

impl Application {
    pub fn build(config: Config) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        // The one rustls crypto provider of the process (ring): installed before any TLS
        // config is built, so no library can choose another.
        let _ = rustls::crypto::ring::default_provider().install_default();
        prepare_data_root(&config)?;
        let store = Store::open(&config.store_dir())?;
        let keys = SigningKeys::load_or_create(&config.keys_dir)?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let requeued = store.requeue_interrupted_jobs(clock.now())?;
        if !requeued.is_empty() {
            tracing::info!(
                count = requeued.len(),
                "re-queued jobs interrupted by the last shutdown or crash"
            );
        }
        crate::ingest::remove_stale_staging(&config);
        crate::runners::remove_orphan_staging(&config, &store, clock.now());
        backfill_analytics(&config, &store);

        let providers = Arc::new(
            crate::auth::providers::Providers::from_config(&config).map_err(anyhow::Error::msg)?,
        );
        let payments =
            Arc::new(crate::payments::Payments::from_config(&config).map_err(anyhow::Error::msg)?);
        if config.payments.dev.enabled {
            let local = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                .iter()
                .any(|p| config.public_url.starts_with(p));
            if local {
                tracing::warn!("payments.dev is enabled: checkouts approve without payment");
            } else {
                tracing::error!(
                    public_url = %config.public_url,
                    "payments.dev IS ENABLED ON A PUBLIC SERVER: ANYONE CAN UNLOCK ANY FILM WITHOUT PAYING. Set payments.dev.enabled = false."
                );
            }
        }
        if config.playback.segment_cache_bytes.is_some() {
            tracing::warn!(
                "playback.segment_cache_bytes is no longer used (segments are sent from the page cache with sendfile); remove it from the configuration"
            );
        }
        let notify = crate::notify::Notifications {
            senders: crate::notify::Senders::from_config(&config, &store)
                .map_err(anyhow::Error::msg)?,
            wake: Default::default(),
        };
        let storage = Arc::new(
            crate::storage::Storage::from_config(&config.storage).map_err(anyhow::Error::msg)?,
        );
        probe_storage(&config)?;
        crate::web::headers::configure(config.segment_origin().as_deref());
        let playback = Arc::new(PlaybackCache::default());
        let telemetry = Arc::new(crate::telemetry::Telemetry::new());
        let tls = Arc::new(crate::server::tls::TlsState::new(
            &config,
            telemetry.clone(),
        ));
        if config.tls.mode == TlsMode::Files {
            // At start a bad pair stops the server (it would serve nothing); later, a bad
            // replacement only keeps the old one.
            let loaded = crate::server::tls::load_files(
                &config.tls_path(&config.tls.cert_file),
                &config.tls_path(&config.tls.key_file),
            )
            .context("tls.cert_file / tls.key_file")?;
            tls.install(loaded);
        }
        let state = web::Data::new(AppState {
            tls: tls.clone(),
            jobs: JobQueue::new(
                store.clone(),
                config.clone(),
                playback.clone(),
                clock.clone(),
                telemetry.clone(),
                storage.clone(),
            ),
            storage,
            telemetry,
            progress: Arc::new(ProgressRecorder::new(store.clone(), &config.playback)),
            playback,
            keys,
            store,
            limits: crate::ratelimit::Limits::new(&config.limits),
            api_limits: crate::ratelimit::ApiLimits::new(&config.limits),
            token_addresses: crate::stream::sharing::TokenAddresses::new(
                &config.playback,
                config.limits.tracked_keys,
            ),
            trusted_proxies: crate::server::client::TrustedProxies::new(
                config.trusted_proxy_nets()?,
            ),
            providers,
            payments,
            order_locks: Default::default(),
            comment_limiter: crate::ratelimit::RateLimiter::new(config.limits.tracked_keys),
            config: config.clone(),
            clock,
            notify,
        });
        let _ = crate::ingest::expire_stale_uploads(&state.config, &state.store, state.clock.now());

        let listener = TcpListener::bind(config.listen)
            .with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr()?;
        let metrics_listener = config
            .metrics
            .listen
            .map(|a| TcpListener::bind(a).with_context(|| format!("binding metrics.listen {a}")))
            .transpose()?;
        if let Some(l) = &metrics_listener {
            tracing::info!(address = %l.local_addr()?, "/metrics is served on its own listener");
        }
        // The server plumbing (`server`: sendfile connections, graceful shutdown) around
        // the applications assembled here.
        let mut server = crate::server::Builder::new();
        if let Some(listener) = metrics_listener {
            let state = state.clone();
            server = server.plain("cinegate-metrics", listener, move || {
                metrics_app(state.clone())
            })?;
        }
        let mut https_port = None;
        let tls_on = config.tls.mode != TlsMode::Off;
        if tls_on {
            let listener = TcpListener::bind(config.tls.listen)
                .with_context(|| format!("binding tls.listen {}", config.tls.listen))?;
            https_port = Some(listener.local_addr()?.port());
            let hsts = (!config.tls.hsts_max_age.is_zero())
                .then(|| {
                    actix_web::http::header::HeaderValue::from_str(&format!(
                        "max-age={}",
                        config.tls.hsts_max_age.as_secs()
                    ))
                })
                .transpose()?;
            let tls_config = tls.server_config()?;
            let app_state = state.clone();
            server = server.tls("cinegate-https", listener, tls_config, hsts, move || {
                app(app_state.clone())
            })?;
        }
        let app_state = state.clone();
        let server = match https_port {
            Some(https_port) if config.tls.redirect => {
                let redirect = web::Data::new(crate::server::tls::Redirect {
                    https_port,
                    fallback_host: config.tls_domains().swap_remove(0),
                });
                let tls = web::Data::from(tls.clone());
                server.app("cinegate-http", listener, move || {
                    redirect_app(tls.clone(), redirect.clone())
                })?
            }
            _ => server.app("cinegate-http", listener, move || app(app_state.clone()))?,
        }
        .run();
        let socket = state.config.control_socket();
        let control = crate::control::bind(&socket)
            .inspect_err(|e| {
                tracing::warn!(error = %e, "operator socket unavailable; CLI commands need the server stopped")
            })
            .ok();
        Ok(Self {
            server,
            port: addr.port(),
            https_port,
            state,
            control,
            hangup: crate::server::tls::catch_hangup(),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn https_port(&self) -> Option<u16> {
        self.https_port
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let hangup = self.hangup;
        let state = self.state.clone();
        state.jobs.start();
        // Remote runners' lapsed leases go back to the queue (`runners`).
        let lease_sweeper = tokio::spawn(crate::runners::sweep_periodically(
            state.store.clone(),
            state.jobs.clone(),
            state.config.clone(),
            state.clock.clone(),
        ));
        let socket = state.config.control_socket();
        if let Some(listener) = self.control {
            tokio::spawn(crate::control::serve(listener, state.clone().into_inner()));
        }
        // Orders left open by a crash (captured at the provider, not granted here) are
        // settled with the provider as soon as the server is up, then every
        // `payments.reconcile_interval`.
        let (stop_reconciling, stop) = tokio::sync::watch::channel(false);
        let reconciler = tokio::spawn(reconcile_periodically(state.clone(), stop));
        let consumers = start_consumers(&state);
        let certificates = match state.config.tls.mode {
            TlsMode::Off => Some(tokio::spawn(crate::server::tls::ignore_hangup(
                "off", hangup,
            ))),
            TlsMode::Files => Some(tokio::spawn(crate::server::tls::watch_files(
                state.tls.clone(),
                state.config.clone(),
                hangup,
            ))),
            TlsMode::Acme => {
                tokio::spawn(crate::server::tls::ignore_hangup("acme", hangup));
                Some(tokio::spawn(crate::server::acme::run(
                    state.tls.clone(),
                    state.config.clone(),
                )))
            }
        };
        let notify_worker = crate::notify::worker::Worker {
            store: state.store.clone(),
            config: state.config.clone(),
            senders: state.notify.senders.clone(),
            clock: state.clock.clone(),
            wake: state.notify.wake.clone(),
            telemetry: state.telemetry.clone(),
        }
        .start();
        let flusher = {
            let state = state.clone();
            let consumer_names = consumers.names();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(state.config.playback.progress_flush_interval);
                let mut hourly = Instant::now();
                let mut minutely = Instant::now();
                loop {
                    tick.tick().await;
                    if minutely.elapsed() > Duration::from_secs(60) {
                        minutely = Instant::now();
                        // Keys whose budgets are full again, and tokens whose addresses all
                        // left the window: their memory back, off the request path.
                        state.api_limits.retain_recent();
                        state.token_addresses.prune(state.clock.now());
                    }
                    let progress = state.progress.clone();
                    match tokio::task::spawn_blocking(move || progress.flush()).await {
                        Ok(Err(e)) => tracing::error!(error = %e, "progress flush failed"),
                        Err(e) => tracing::error!(error = %e, "progress flush panicked"),
                        Ok(Ok(_)) => {}
                    }
                    if hourly.elapsed() > Duration::from_secs(3600) {
                        hourly = Instant::now();
                        // Scans of whole trees and file removals: off the runtime's threads.
                        let state = state.clone();
                        let consumer_names = consumer_names.clone();
                        let swept = tokio::task::spawn_blocking(move || {
                            let now = state.clock.now();
                            let _ = crate::ingest::expire_stale_uploads(
                                &state.config,
                                &state.store,
                                now,
                            );
                            if let Err(e) = state
                                .store
                                .sweep_signin(now, crate::auth::flows::FLOW_TTL_SECS)
                            {
                                tracing::warn!(error = %e, "sweeping sign-in records failed");
                            }
                            if let Err(e) = state.store.sweep_refresh_tokens(now) {
                                tracing::warn!(error = %e, "sweeping refresh tokens failed");
                            }
                            crate::events::prune(&state.store, &consumer_names, now);
                            crate::analytics::rollups::prune_seen(
                                &state.store,
                                &analytics_calendar(&state.config),
                                now,
                            );
                        })
                        .await;
                        if let Err(e) = swept {
                            tracing::error!(error = %e, "the hourly sweep panicked");
                        }
                    }
                }
            })
        };

        let handle = self.server.handle();
        let mut server = tokio::spawn(self.server);
        tokio::select! {
            result = &mut server => {
                result??;
            }
            _ = shutdown_signal() => {
                tracing::info!("shutting down: finishing in-flight requests");
                let _ = stop_reconciling.send(true);
                state.jobs.shutdown();
                handle.stop(true).await;
                let _ = server.await;
            }
        }
        let _ = stop_reconciling.send(true);
        if tokio::time::timeout(Duration::from_secs(5), reconciler)
            .await
            .is_err()
        {
            tracing::warn!("order reconciliation did not stop in time");
        }
        // Jobs were told to stop; give them a moment to record themselves as queued.
        let deadline = Instant::now() + Duration::from_secs(20);
        while state.jobs.busy() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        flusher.abort();
        lease_sweeper.abort();
        if let Some(task) = certificates {
            task.abort();
        }
        let flushed = state.progress.flush()?;
        // After the last flush, whose `Watched` events they may still apply.
        tokio::task::spawn_blocking(move || consumers.stop()).await?;
        // After the router: what it queued last is sent or stays queued for the next start.
        notify_worker.stop().await;
        state.store.flush()?;
        let _ = std::fs::remove_file(&socket);
        tracing::info!(progress_records = flushed, "stopped");
        Ok(())
    }
}

/// The event log's consumers (analytics rollups, the notification router), each on a
/// thread of its own from where it stopped.
fn start_consumers(state: &AppState) -> crate::events::Consumers {
    let mut consumers = crate::events::Consumers::new();
    start_analytics(state, &mut consumers);
    consumers.spawn(
        &state.store,
        crate::notify::router::Router::new(
            state.config.clone(),
            state.notify.senders.clone(),
            state.keys.access,
            state.notify.wake.clone(),
        ),
    );
    consumers
}

/// The days of `analytics.timezone`. Validated at start: an error here is a zone file
/// that went missing since, and UTC days are better than no analytics.
fn analytics_calendar(config: &crate::config::Config) -> crate::analytics::Calendar {
    crate::analytics::Calendar::new(&config.analytics.timezone).unwrap_or_else(|e| {
        tracing::error!(error = %e, "analytics.timezone: counting in UTC");
        crate::analytics::Calendar::utc()
    })
}

/// The analytics consumer's rules, from the configuration.
fn analytics_rollups(config: &Config) -> crate::analytics::Rollups {
    crate::analytics::Rollups::new(
        analytics_calendar(config),
        crate::analytics::Rules {
            completion_fraction: config.playback.unlock_fraction,
            preview_fraction: config.playback.preview_fraction,
        },
    )
}

/// The rollups computed from the stored records, once. Run by `build`, before the
/// listener takes a request or a job runs, so no event is logged while the records are
/// read and none is counted twice (the consumer starts after the log's last event).
fn backfill_analytics(config: &Config, store: &Store) {
    let started = Instant::now();
    match crate::analytics::backfill_once(store, &analytics_rollups(config)) {
        Ok(true) => tracing::info!(
            millis = started.elapsed().as_millis() as u64,
            "analytics rollups computed from the stored records (once)"
        ),
        Ok(false) => {}
        // The consumer still starts: new events count, and the next start tries again.
        Err(e) => tracing::error!(error = %e, "the analytics backfill failed"),
    }
}

/// The analytics rollups, kept by their consumer from where the backfill (or the last
/// run) left the cursor.
fn start_analytics(state: &AppState, consumers: &mut crate::events::Consumers) {
    consumers.spawn(&state.store, analytics_rollups(&state.config));
}

/// Makes the data root owner-only whatever the operator's umask, before anything is
/// written: e-mails, orders and comments live in the store, and secrets in `keys_dir`.
/// For `serve`, and for the operator commands that open the store themselves.
///
/// The process umask becomes 077, so every file created from here on — sled's files
/// (including the snapshots it writes later), uploads, packages, the operator socket —
/// is created without group or other bits, with no window between create and chmod.
/// Directories an older version created with looser bits are tightened (and logged):
/// `media_dir` and its top directories, and everything in the store and `keys_dir` (small
/// trees); the films and uploads below a 0700 `media_dir` are out of others' reach.
pub fn prepare_data_root(config: &Config) -> anyhow::Result<()> {
    rustix::process::umask(rustix::fs::Mode::RWXG | rustix::fs::Mode::RWXO);
    for dir in [
        config.media_dir.clone(),
        config.films_dir(),
        config.uploads_dir(),
        config.store_dir(),
        config.keys_dir.clone(),
        config.keys_dir.join("films"),
    ] {
        crate::secrets::ensure_private_dir(&dir)?;
    }
    #[cfg(unix)]
    for tree in [config.store_dir(), config.keys_dir.clone()] {
        crate::secrets::make_tree_private(&tree)?;
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn cors(config: &Config) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
        .allowed_headers([
            "authorization",
            "content-type",
            "range",
            "tus-resumable",
            "upload-length",
            "upload-offset",
            "upload-metadata",
            "x-file-name",
        ])
        .expose_headers([
            "location",
            "content-length",
            "content-range",
            "upload-offset",
            "upload-length",
            "tus-resumable",
            "tus-version",
            "tus-extension",
            "tus-max-size",
            "cinegate-job-id",
            "x-request-id",
            "retry-after",
            "ratelimit",
            "ratelimit-policy",
        ])
        .max_age(3600);
    for origin in &config.cors.allowed_origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// Reconciles orders at once, then every `payments.reconcile_interval`, until `stop`.
/// A pass interrupted by `stop` ends at its next wait for a provider: each order's change
/// is one store write, and an order it did not reach is still open for the next start.
async fn reconcile_periodically(
    state: web::Data<AppState>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(state.config.payments.reconcile_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        tokio::select! {
            _ = reconcile(&state) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn reconcile(state: &AppState) {
    match state.orders().reconcile().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(changed = n, "orders reconciled with their providers"),
        Err(e) => tracing::warn!(error = %e, "order reconciliation failed"),
    }
}

/// Access log with a request id, and the HTTP metrics (`telemetry`: answers by route
/// class and status, time to the answer's head, body bytes). `/hls/` paths are logged with
/// the token's id, never the token. Query strings are left out (login links carry tokens
/// there). The id is a per-process random prefix and a counter: unique, and cheap on the
/// segment hot path; the log line itself is only built when `info` is enabled. The id is
/// also a span field, so every event logged while the request is handled carries it (in
/// the JSON log format, under `span`).
async fn access_log(
    req: ServiceRequest,
    next: actix_web::middleware::Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    use tracing::Instrument;
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let started = Instant::now();
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = format!("{:08x}{n:08x}", PREFIX.get_or_init(rand::random::<u32>));
    let logged = tracing::enabled!(tracing::Level::INFO).then(|| {
        (
            req.method().to_string(),
            crate::stream::token::redact_path(req.path()),
        )
    });
    let telemetry = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.telemetry.clone());
    let span = tracing::info_span!("request", request_id = %id);
    let mut res = next.call(req).instrument(span.clone()).await?;
    if let Some(t) = telemetry {
        // Counted from the answer's length: a segment's body is a sendfile(2) of the
        // file, which is not wrapped (and a HEAD answer sends no body).
        let bytes = if res.request().method() == actix_web::http::Method::HEAD {
            0
        } else {
            body_bytes(&res)
        };
        let status = res.status().as_u16();
        t.http_answer(
            crate::telemetry::RouteClass::of(res.request().path(), status),
            status,
            started.elapsed().as_secs_f64(),
            bytes,
        );
    }
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&id) {
        res.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("x-request-id"),
            value,
        );
    }
    if let Some((method, path)) = logged {
        let _entered = span.enter();
        tracing::info!(
            %method,
            %path,
            status = res.status().as_u16(),
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
    }
    Ok(res)
}

/// The length of an answer's body: its own when known, else its `Content-Length` (a
/// sendfile body sets that header and reports no size of its own).
fn body_bytes<B: MessageBody>(res: &ServiceResponse<B>) -> u64 {
    match res.response().body().size() {
        actix_web::body::BodySize::Sized(n) => n,
        _ => res
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    }
}

/// The `metrics.listen` listener's application: `/metrics` and nothing else.
fn metrics_app(
    state: web::Data<AppState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(state)
        .wrap(actix_web::middleware::from_fn(access_log))
        .configure(api::configure_metrics)
        .default_service(web::to(|| async {
            Err::<actix_web::HttpResponse, _>(error::ApiError::not_found("route"))
        }))
}

/// The whole application: routes, extractor settings, CORS and the access log.
fn app(
    state: web::Data<AppState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(state.clone())
        .app_data(
            web::JsonConfig::default()
                .limit(state.config.limits.json_body_bytes)
                .error_handler(error::json_error),
        )
        .app_data(web::QueryConfig::default().error_handler(error::query_error))
        .app_data(
            web::FormConfig::default()
                .limit(state.config.limits.json_body_bytes)
                .error_handler(error::form_error),
        )
        .app_data(web::PathConfig::default().error_handler(error::path_error))
        .wrap(actix_web::middleware::from_fn(
            crate::web::headers::html_answers,
        ))
        .wrap(cors(&state.config))
        .wrap(actix_web::middleware::from_fn(access_log))
        .configure(api::configure)
        .configure(crate::web::configure)
        .configure(|cfg| {
            // HTTP-01 answers on `listen` when it is not redirecting (`tls.redirect = false`).
            if state.config.tls.mode == TlsMode::Acme {
                cfg.app_data(web::Data::from(state.tls.clone())).route(
                    "/.well-known/acme-challenge/{token}",
                    web::get().to(crate::server::tls::challenge),
                );
            }
        })
        .default_service(web::to(|| async {
            Err::<actix_web::HttpResponse, _>(error::ApiError::not_found("route"))
        }))
}

/// The plain listener's application with TLS on: ACME's HTTP-01 answers, and a 308 to
/// HTTPS for everything else.
fn redirect_app(
    tls: web::Data<crate::server::tls::TlsState>,
    redirect: web::Data<crate::server::tls::Redirect>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(tls)
        .app_data(redirect)
        .route(
            "/.well-known/acme-challenge/{token}",
            web::get().to(crate::server::tls::challenge),
        )
        .default_service(web::to(crate::server::tls::redirect))
}
