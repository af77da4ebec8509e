//! The Prometheus metric families behind `/metrics`: one [`Telemetry`] built at start,
//! held in application state and handed to whatever counts (never a global recorder, like
//! the configuration). Not HTTP: surfaces render it, services count into it.
//!
//! Crate: `prometheus-client` (the Prometheus project's own Rust client). The other
//! candidate, `metrics-exporter-prometheus`, pulls rand 0.9 with its rand_core, rand_chacha
//! and getrandom beside the rand 0.8 the rest of the tree uses; this one adds three crates
//! and no duplicate. Every name gets the `cinegate_` prefix; counters end in `_total`.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// What kind of request an HTTP answer was for: few values, so the series stay few (a
/// film id or a path never becomes a label).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum RouteClass {
    /// `/api/v1/…` except the ones below.
    api,
    /// `/api/v1/admin/…` and the tus uploads.
    admin,
    /// `/hls/{token}/…m3u8`.
    playlist,
    /// `/hls/{token}/…ts`.
    segment,
    /// `/hls/{token}/keys/…`.
    key,
    /// HTML pages (viewer app, console, payer's return pages).
    page,
    /// Embedded static files.
    asset,
    /// `/healthz`, `/metrics`.
    health,
    /// Anything else (404s of unknown paths among them).
    other,
}

impl RouteClass {
    /// The class of an answer to `path` with `status`, from the path's prefix and, under
    /// `/hls/`, its end: no allocation, and nothing of the path (a film id, a playback
    /// token) becomes a label. A 404 outside the API, playback and assets is `other`: the
    /// pages are a catch-all, so an unknown path would otherwise count as one.
    pub fn of(path: &str, status: u16) -> Self {
        if let Some(rest) = path.strip_prefix("/hls/") {
            return if rest.ends_with(".m3u8") {
                Self::playlist
            } else if rest.ends_with(".ts") {
                Self::segment
            } else if rest.contains("/keys/") {
                Self::key
            } else {
                Self::other
            };
        }
        if path.starts_with("/api/v1/admin/") || path == "/api/v1/admin" {
            Self::admin
        } else if path.starts_with("/api/") {
            Self::api
        } else if path.starts_with("/assets/") {
            Self::asset
        } else if path == "/healthz" || path == "/metrics" {
            Self::health
        } else if status == 404 {
            Self::other
        } else {
            Self::page
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub class: RouteClass,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabels {
    pub class: RouteClass,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// `queued`, `running`, `failed` (jobs); `pending`, `dead` (outbox).
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `done`, `failed`, `cancelled` (jobs).
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PaymentLabels {
    /// The provider's config name (`paypal`, `kakaopay`, `naverpay`, `dev`).
    pub provider: &'static str,
    /// `created`, `captured`, `failed`, `cancelled`, `refunded`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabels {
    /// `email`, `push`, `webhook`.
    pub channel: &'static str,
    /// `sent`, `retried`, `dead`, `dropped` (the recipient is gone).
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DomainLabels {
    pub domain: String,
}

type Seconds = Family<ClassLabels, Histogram, fn() -> Histogram>;
type JobSeconds = Family<OutcomeLabels, Histogram, fn() -> Histogram>;

/// Every family, registered once in `registry`. Clones of a family share its values.
pub struct Telemetry {
    pub registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Seconds,
    pub served_bytes: Family<ClassLabels, Counter>,
    pub segments_served: Counter,
    pub keys_served: Counter,
    pub gate_refusals: Counter,
    /// Distinct viewers whose player fetched a segment or key lately.
    pub active_viewers: Gauge,
    pub jobs: Family<StateLabels, Gauge>,
    pub job_duration: JobSeconds,
    pub payments: Family<PaymentLabels, Counter>,
    pub outbox: Family<StateLabels, Gauge>,
    pub deliveries: Family<ChannelLabels, Counter>,
    /// When each served certificate stops being valid (Unix seconds).
    pub certificate_expiry: Family<DomainLabels, Gauge<f64, AtomicU64>>,
    pub certificate_failures: Counter,
}

fn request_seconds() -> Histogram {
    // 0.5 ms … 16 s: a key answer is well under a millisecond, a page tens of ms.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

fn job_seconds() -> Histogram {
    // 10 s … ~11 h: a short clip to a 2-hour film on 2 cores.
    Histogram::new(exponential_buckets(10.0, 2.0, 13))
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cinegate");
        let t = Self {
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(request_seconds as fn() -> Histogram),
            served_bytes: Family::default(),
            segments_served: Counter::default(),
            keys_served: Counter::default(),
            gate_refusals: Counter::default(),
            active_viewers: Gauge::default(),
            jobs: Family::default(),
            job_duration: Family::new_with_constructor(job_seconds as fn() -> Histogram),
            payments: Family::default(),
            outbox: Family::default(),
            deliveries: Family::default(),
            certificate_expiry: Family::default(),
            certificate_failures: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP answers by route class and status",
            t.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from request to answer head, by route class",
            t.http_duration.clone(),
        );
        registry.register(
            "served_bytes",
            "Response body bytes sent, by route class",
            t.served_bytes.clone(),
        );
        registry.register(
            "segments_served",
            "HLS segments served",
            t.segments_served.clone(),
        );
        registry.register("keys_served", "HLS keys served", t.keys_served.clone());
        registry.register(
            "gate_refusals",
            "Segment or key requests refused by the preview gate",
            t.gate_refusals.clone(),
        );
        registry.register(
            "active_viewers",
            "Viewers whose player fetched a segment or key in the last 5 minutes",
            t.active_viewers.clone(),
        );
        registry.register("jobs", "Packaging jobs by state", t.jobs.clone());
        registry.register(
            "job_duration_seconds",
            "Packaging job run time, by outcome",
            t.job_duration.clone(),
        );
        registry.register(
            "payments",
            "Payment order outcomes by provider",
            t.payments.clone(),
        );
        registry.register(
            "outbox",
            "Notification deliveries waiting (pending) or given up (dead)",
            t.outbox.clone(),
        );
        registry.register(
            "deliveries",
            "Notification delivery attempts by channel and outcome",
            t.deliveries.clone(),
        );
        registry.register(
            "tls_certificate_expiry_timestamp_seconds",
            "When the served certificate for a domain expires (Unix time)",
            t.certificate_expiry.clone(),
        );
        registry.register(
            "tls_certificate_failures",
            "Failed certificate orders, renewals or reloads",
            t.certificate_failures.clone(),
        );
        // A family renders nothing until a label set is counted: the delivery outcomes
        // are a fixed set, so they show (as 0) from the start and a rate over them works
        // before the first failure.
        for channel in ["email", "push", "webhook"] {
            for outcome in ["sent", "retried", "dead", "dropped"] {
                let _ = t
                    .deliveries
                    .get_or_create(&ChannelLabels { channel, outcome });
            }
        }
        Self { registry, ..t }
    }

    /// One HTTP answer: its status, the time to its head, and the body bytes it sends
    /// (from its length, known before they go out: a segment leaves by sendfile(2)).
    pub fn http_answer(&self, class: RouteClass, status: u16, seconds: f64, bytes: u64) {
        self.http_requests
            .get_or_create(&HttpLabels { class, status })
            .inc();
        let class = ClassLabels { class };
        self.http_duration.get_or_create(&class).observe(seconds);
        if bytes > 0 {
            self.served_bytes.get_or_create(&class).inc_by(bytes);
        }
    }

    /// A payment order of `provider` reached `outcome` (counted on the transition, once).
    pub fn payment(&self, provider: &'static str, outcome: &'static str) {
        self.payments
            .get_or_create(&PaymentLabels { provider, outcome })
            .inc();
    }

    /// A notification delivery attempt over `channel` ended in `outcome`.
    pub fn delivery(&self, channel: &'static str, outcome: &'static str) {
        self.deliveries
            .get_or_create(&ChannelLabels { channel, outcome })
            .inc();
    }

    /// A packaging job ran `seconds` to `outcome` (`done`, `failed`, `cancelled`).
    pub fn job_finished(&self, outcome: &'static str, seconds: f64) {
        self.job_duration
            .get_or_create(&OutcomeLabels { outcome })
            .observe(seconds);
    }

    /// Sets the gauges `/metrics` computes when scraped: jobs by state, outbox depth, and
    /// the viewers active lately.
    pub fn set_scraped(
        &self,
        jobs: [(&'static str, usize); 3],
        outbox: [(&'static str, usize); 2],
        viewers: usize,
    ) {
        for (state, n) in jobs {
            self.jobs
                .get_or_create(&StateLabels { state })
                .set(gauge(n));
        }
        for (state, n) in outbox {
            self.outbox
                .get_or_create(&StateLabels { state })
                .set(gauge(n));
        }
        self.active_viewers.set(gauge(viewers));
    }

    /// The exposition text (OpenMetrics 1.0, which Prometheus reads).
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The content type of [`Telemetry::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_rendered_with_the_prefix() {
        let t = Telemetry::new();
        t.http_requests
            .get_or_create(&HttpLabels {
                class: RouteClass::segment,
                status: 200,
            })
            .inc();
        t.certificate_expiry
            .get_or_create(&DomainLabels {
                domain: "films.example".into(),
            })
            .set(1.8e9);
        let text = t.render().unwrap_or_default();
        assert!(
            text.contains("cinegate_http_requests_total{class=\"segment\",status=\"200\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "cinegate_tls_certificate_expiry_timestamp_seconds{domain=\"films.example\"} 1800000000"
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn route_classes_come_from_the_path_alone() {
        let t = "/hls/eyJ0b2tlbiI.c2ln";
        for (path, status, class) in [
            (&*format!("{t}/master.m3u8"), 200, RouteClass::playlist),
            (&format!("{t}/720p/index.m3u8"), 200, RouteClass::playlist),
            (&format!("{t}/720p/00012.ts"), 206, RouteClass::segment),
            (&format!("{t}/keys/12.key"), 200, RouteClass::key),
            (&format!("{t}/nothing"), 404, RouteClass::other),
            ("/api/v1/films", 200, RouteClass::api),
            ("/api/v1/admin/uploads/x", 204, RouteClass::admin),
            ("/api/v1/administrator", 404, RouteClass::api),
            ("/assets/app.css", 200, RouteClass::asset),
            ("/healthz", 200, RouteClass::health),
            ("/metrics", 401, RouteClass::health),
            ("/films/abc", 200, RouteClass::page),
            ("/no/such/page", 404, RouteClass::other),
        ] {
            assert_eq!(RouteClass::of(path, status), class, "{path} {status}");
        }
    }

    /// Every family with one sample, so each shows in the text.
    fn every_family_counted() -> Telemetry {
        let t = Telemetry::new();
        t.http_answer(RouteClass::segment, 200, 0.001, 10);
        t.segments_served.inc();
        t.keys_served.inc();
        t.gate_refusals.inc();
        t.set_scraped(
            [("queued", 1), ("running", 0), ("failed", 0)],
            [("pending", 0), ("dead", 0)],
            1,
        );
        t.job_finished("done", 60.0);
        t.payment("dev", "captured");
        t.delivery("email", "sent");
        t.certificate_expiry
            .get_or_create(&DomainLabels {
                domain: "films.example".into(),
            })
            .set(1.8e9);
        t.certificate_failures.inc();
        t
    }

    /// The sample names `/metrics` exposes (`…_total`, `…_bucket`, …) and the family
    /// names (from `# TYPE`).
    fn exposed_names(text: &str) -> std::collections::BTreeSet<String> {
        text.lines()
            .filter_map(|l| match l.strip_prefix("# TYPE ") {
                Some(t) => t.split(' ').next(),
                None if l.starts_with('#') => None,
                None => l.split(['{', ' ']).next(),
            })
            .map(str::to_string)
            .collect()
    }

    /// `docs/grafana-dashboard.json` queries only what `/metrics` exposes, covers every
    /// family, and takes its data source from a variable: it cannot drift from the code.
    #[test]
    fn the_dashboard_uses_only_exposed_metrics_and_shows_every_family() {
        let text = every_family_counted().render().unwrap_or_default();
        let exposed = exposed_names(&text);
        let families: Vec<&String> = exposed
            .iter()
            .filter(|n| text.contains(&format!("# TYPE {n} ")))
            .collect();
        assert_eq!(families.len(), 14, "{families:?}");

        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../docs/grafana-dashboard.json"))
                .unwrap_or_else(|e| panic!("docs/grafana-dashboard.json: {e}"));
        assert!(dashboard["schemaVersion"].as_u64().unwrap_or(0) >= 39);
        let variables = dashboard["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            variables.iter().any(|v| v["name"] == "datasource"
                && v["type"] == "datasource"
                && v["query"] == "prometheus"),
            "no Prometheus data source variable: {variables:?}"
        );
        let panels = dashboard["panels"].as_array().cloned().unwrap_or_default();
        let mut used = std::collections::BTreeSet::new();
        for panel in panels.iter().filter(|p| p["type"] != "row") {
            let title = panel["title"].as_str().unwrap_or_default();
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            assert!(!targets.is_empty(), "{title} has no query");
            for target in targets {
                let expr = target["expr"].as_str().unwrap_or_default();
                let names: Vec<&str> = expr
                    .match_indices("cinegate_")
                    .map(|(i, _)| {
                        let rest = &expr[i..];
                        let end = rest
                            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                            .unwrap_or(rest.len());
                        &rest[..end]
                    })
                    .collect();
                assert!(!names.is_empty(), "{title}: no cinegate metric in {expr}");
                for name in names {
                    assert!(
                        exposed.contains(name),
                        "{title}: {name} is not exposed by /metrics: {exposed:?}"
                    );
                    used.insert(
                        families
                            .iter()
                            .find(|f| name.starts_with(f.as_str()))
                            .map_or(name.to_string(), |f| f.to_string()),
                    );
                }
            }
        }
        for family in families {
            assert!(used.contains(family), "no panel shows {family}");
        }
    }
}
