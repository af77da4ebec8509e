//! The one typed configuration: built-in defaults → `config.toml` → `CINEGATE_*`
//! environment variables (`__` between levels). Unknown keys and bad values stop start-up
//! with a message that names the key. Passed around in application state, never global.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// The URL viewers reach the server at (links printed by the CLI, playback URLs).
    pub public_url: String,
    /// Data root: the store, uploads, packaged films, the control socket.
    pub media_dir: PathBuf,
    /// Secrets root: signing key and per-film secrets (mode 0700/0600).
    pub keys_dir: PathBuf,
    /// Logging: `[log]`, or the filter alone as `log = "info"` (the older form).
    pub log: LogConfig,
    /// Proxies (CIDRs or addresses) whose `X-Forwarded-For` / `Forwarded` name the client
    /// for rate limits. Empty: trust none, every client is its TCP peer.
    #[serde(deserialize_with = "list_or_string")]
    pub trusted_proxies: Vec<String>,
    pub playback: PlaybackConfig,
    pub transcode: TranscodeConfig,
    pub upload: UploadConfig,
    pub auth: AuthConfig,
    pub cors: CorsConfig,
    pub limits: LimitsConfig,
    pub payments: PaymentsConfig,
    pub social: SocialConfig,
    pub metrics: MetricsConfig,
    pub push: PushConfig,
    /// Operator webhooks (`[[webhooks]]`), each signed with its own secret.
    pub webhooks: Vec<WebhookConfig>,
    pub analytics: AnalyticsConfig,
    pub smtp: SmtpConfig,
    pub notify: NotifyConfig,
    pub tls: TlsConfig,
    pub disk: DiskConfig,
    pub storage: StorageConfig,
    pub runners: RunnersConfig,
}

/// `[log]`. Also read from a bare string (`log = "info"`, `CINEGATE_LOG=warn`): the
/// filter, as every release before `[log]` took it.
#[derive(Debug, Clone, Serialize)]
pub struct LogConfig {
    /// tracing `EnvFilter` syntax: `info`, `warn`, `cinegate=debug,actix_web=info`.
    pub filter: String,
    pub format: LogFormat,
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event (colour only on a terminal).
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            filter: "info".into(),
            format: LogFormat::Text,
        }
    }
}

impl<'de> Deserialize<'de> for LogConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, default)]
        struct Table {
            filter: String,
            format: LogFormat,
        }
        impl Default for Table {
            fn default() -> Self {
                let LogConfig { filter, format } = LogConfig::default();
                Self { filter, format }
            }
        }
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = LogConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a log filter string or a [log] table")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<LogConfig, E> {
                Ok(LogConfig {
                    filter: v.to_string(),
                    ..LogConfig::default()
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<LogConfig, A::Error> {
                let t = Table::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(LogConfig {
                    filter: t.filter,
                    format: t.format,
                })
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `[tls]`: HTTPS served by cinegate itself (issue 19). Off by default: a proxy in front
/// terminates TLS, or the server is on loopback.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub mode: TlsMode,
    /// Address the HTTPS listener binds (with `mode` other than `off`).
    pub listen: SocketAddr,
    /// `files`: the certificate chain (PEM), relative to `keys_dir` or absolute.
    pub cert_file: PathBuf,
    /// `files`: its private key (PEM: PKCS#8, PKCS#1 or SEC1), relative to `keys_dir` or absolute.
    pub key_file: PathBuf,
    /// `files`: how often the files' modification times are checked (SIGHUP reloads at once).
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
    /// `acme`: names certified besides the host of `public_url`.
    pub domains: Vec<String>,
    /// `acme`: the CA's directory URL.
    pub acme_directory: String,
    /// `acme`: contact URLs for the account (`mailto:ops@example.com`).
    pub acme_contact: Vec<String>,
    /// `acme`: a PEM file of extra roots trusted for the directory's HTTPS (a test CA);
    /// empty: the usual web roots only.
    pub acme_root_file: PathBuf,
    /// `acme`: how the CA checks control of the names. Only `http-01` (answered on
    /// `listen`, which must be reachable on port 80).
    pub acme_challenge: String,
    /// `acme`: the fraction of a certificate's validity after which it is renewed.
    pub renew_after: f64,
    /// `Strict-Transport-Security` max-age on HTTPS answers; 0 sends none.
    #[serde(with = "humantime_serde")]
    pub hsts_max_age: Duration,
    /// Whether `listen` answers every request (but ACME challenges) with a 308 to HTTPS.
    pub redirect: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            mode: TlsMode::Off,
            listen: SocketAddr::from(([0, 0, 0, 0], 443)),
            cert_file: "tls/cert.pem".into(),
            key_file: "tls/key.pem".into(),
            reload_interval: Duration::from_secs(60),
            domains: Vec::new(),
            acme_directory: "https://acme-v02.api.letsencrypt.org/directory".into(),
            acme_contact: Vec::new(),
            acme_root_file: PathBuf::new(),
            acme_challenge: "http-01".into(),
            renew_after: 2.0 / 3.0,
            hsts_max_age: Duration::ZERO,
            redirect: true,
        }
    }
}

/// `[storage]`: where packaged films are served from (issue 20). `local`: the origin's disk,
/// as always. `s3`: an S3-compatible bucket (AWS S3, R2, Garage, MinIO, Ceph RGW) holds the
/// segments, posters and manifests, and the media playlists name the segments there; the
/// playlists and keys stay on the origin behind the playback token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub mode: StorageMode,
    /// The S3 API endpoint (`https://s3.eu-west-1.amazonaws.com`, `https://ACCOUNT.r2.cloudflarestorage.com`,
    /// `http://127.0.0.1:3900` for a Garage node).
    pub endpoint: String,
    /// The SigV4 signing region; must be the bucket's (Garage: its `s3_region`; R2: `auto`).
    pub region: String,
    pub bucket: String,
    /// Prefix of every object key (`cinegate/`); empty: the bucket's root.
    pub prefix: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// Path-style requests (`endpoint/bucket/key`): Garage, MinIO, Ceph; false: virtual-hosted
    /// (`bucket.endpoint/key`).
    pub path_style: bool,
    /// Base URL segments are fetched from by players: the CDN in front of the bucket, or the
    /// bucket's public (website) endpoint. Object keys are appended to it.
    pub public_base_url: String,
    /// Set: segment URLs are presigned GETs of the S3 endpoint valid this long (a private
    /// bucket), instead of `public_base_url`. At least `playback.token_ttl`, at most 7 days.
    #[serde(with = "humantime_serde::option")]
    pub presign_ttl: Option<Duration>,
    /// Whether segment files stay on the origin's disk once the bucket holds them.
    pub keep_local: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            mode: StorageMode::Local,
            endpoint: String::new(),
            region: "us-east-1".into(),
            bucket: String::new(),
            prefix: String::new(),
            access_key_id: String::new(),
            secret_access_key: Secret::default(),
            path_style: true,
            public_base_url: String::new(),
            presign_ttl: None,
            keep_local: false,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageMode {
    #[default]
    Local,
    S3,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain HTTP only.
    #[default]
    Off,
    /// A certificate and key from files.
    Files,
    /// Certificates from an ACME CA (Let's Encrypt by default).
    Acme,
}

/// `[disk]`: the local disk under `media_dir`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiskConfig {
    /// Uploads and packaging are refused while the data root's file system has less than
    /// this many bytes free, so a full disk never reaches the store.
    pub min_free_bytes: u64,
}

/// `[runners]`: packaging on other machines (`cinegate runner`, docs/RUNNERS.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunnersConfig {
    /// How long a runner's lease on a job lasts without a heartbeat; a runner heartbeats
    /// every third of it, and a job whose lease lapsed goes back to the queue.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
}

impl Default for RunnersConfig {
    fn default() -> Self {
        Self {
            lease_ttl: Duration::from_secs(60),
        }
    }
}

impl Default for DiskConfig {
    fn default() -> Self {
        Self {
            min_free_bytes: 1 << 30,
        }
    }
}

/// E-mail over SMTP. Off while `host` is empty: no mail is queued then.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// The SMTP server (relay) host name; empty: no e-mail.
    pub host: String,
    pub port: u16,
    /// `"starttls"` (upgrade on connect, required), `"tls"` (implicit TLS, usually port 465)
    /// or `"none"` (plain text: only to a loopback relay).
    pub security: String,
    /// Sign-in name; empty: no authentication.
    pub user: String,
    pub password: Secret,
    /// The sender, `"cinegate <films@example.com>"` or a bare address.
    pub from: String,
    /// Limit for one message's whole SMTP conversation.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 587,
            security: "starttls".into(),
            user: String::new(),
            password: Secret::default(),
            from: String::new(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// The notification outbox's delivery worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Deliveries sent at once.
    pub concurrency: usize,
    /// Backoff after a failed attempt n (from 0): a random wait up to
    /// min(retry_cap, retry_base × 2ⁿ) (full jitter), never less than a `Retry-After`.
    #[serde(with = "humantime_serde")]
    pub retry_base: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_cap: Duration,
    /// Attempts before a delivery goes to the dead letters.
    pub max_attempts: u32,
    /// At most one "dead letters" alert mail to the admins per this interval.
    #[serde(with = "humantime_serde")]
    pub dead_alert_interval: Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            retry_base: Duration::from_secs(5),
            retry_cap: Duration::from_secs(3600),
            max_attempts: 8,
            dead_alert_interval: Duration::from_secs(3600),
        }
    }
}

/// Analytics rollups (`analytics`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyticsConfig {
    /// The IANA time zone whose days the rollups count in (`UTC`, `Asia/Seoul`, …), read
    /// from the system's tzdb. Changing it later moves only the days counted from then on.
    pub timezone: String,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        Self {
            timezone: "UTC".into(),
        }
    }
}

/// Prometheus `/metrics`. It always asks for the bearer token in `keys_dir/metrics.token`
/// (created on first start, 0600).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `/metrics` on this address only (e.g. `127.0.0.1:9100`, or a private
    /// interface Prometheus reaches); the main listener then answers 404 for it. Unset:
    /// `/metrics` is on the main listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlaybackConfig {
    /// How long a playback token opens playlists, segments and keys. Long enough to finish
    /// the longest film with pauses: players never refetch a VOD playlist.
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    /// Share of segments a non-buyer may watch: P = ceil(fraction × N).
    pub preview_fraction: f64,
    /// Coverage at which comments and support unlock.
    pub unlock_fraction: f64,
    /// How often buffered progress is written to the store.
    #[serde(with = "humantime_serde")]
    pub progress_flush_interval: Duration,
    /// Fastest believable playback, as a multiple of real time: a viewer earns this many
    /// media seconds of coverage per wall-clock second (plus `buffer_ahead`), and the unlock
    /// also needs `unlock_fraction × duration ÷ max_pace` seconds of watching.
    pub max_pace: f64,
    /// Media a player may fetch ahead of the playhead at once (its buffer): a burst of this
    /// much still counts. Also the longest silence counted as watching.
    #[serde(with = "humantime_serde")]
    pub buffer_ahead: Duration,
    /// Distinct client addresses (IPv6 by its /64, behind `trusted_proxies` the forwarded
    /// client) one playback token may be used from within `address_window`; a further
    /// address is refused 403 `token_shared`, so a bought stream's link cannot be handed
    /// around. A phone moving from Wi-Fi to mobile data is a second address.
    pub max_addresses_per_token: u32,
    /// How long an address counts against its token after its last request.
    #[serde(with = "humantime_serde")]
    pub address_window: Duration,
    /// No longer used (segments are sent from the page cache with sendfile); still accepted
    /// so that configs written for earlier versions load, with a warning at start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment_cache_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TranscodeConfig {
    /// HEIGHT:BITRATE pairs; rungs above the source are skipped.
    pub ladder: String,
    /// libx264 preset.
    pub preset: String,
    /// Target segment length in seconds.
    pub segment_seconds: f64,
    /// AAC bitrate, e.g. `128k`.
    pub audio_bitrate: String,
    /// `"abr"` (each rung at its ladder bitrate), `"crf"` (each rung at its quality
    /// target, capped by its ladder bitrate) or `"per-title"` (`crf` with each rung's
    /// target chosen per film to give `abr`'s picture).
    pub rate_control: String,
    /// Quality targets under `crf` (where `per-title` starts): a CRF for every rung and/or `HEIGHT:CRF` overrides
    /// (`crf = 21` or `crf = "21,360:20"`).
    #[serde(deserialize_with = "number_or_string")]
    pub crf: String,
    /// Packaging jobs run at once (each already uses every core: a thread per rung).
    pub workers: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadConfig {
    /// Largest accepted source file in bytes.
    pub max_bytes: u64,
    /// Unfinished tus uploads are removed after this long without activity.
    #[serde(with = "humantime_serde")]
    pub expire_after: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    #[serde(with = "humantime_serde")]
    pub access_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub refresh_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub login_link_ttl: Duration,
    /// Verified e-mails made admin when they sign in through a provider: an account created
    /// with one, or an account whose own verified e-mail is one (never a linked identity's).
    pub admins: Vec<String>,
    /// Where the app flow may send its one-time code (exact match).
    pub app_redirect_uris: Vec<String>,
    /// Lifetime of a browser session cookie.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Limit for each call to a provider (token, JWKS, Graph).
    #[serde(with = "humantime_serde")]
    pub provider_timeout: Duration,
    pub google: OidcProviderConfig,
    pub apple: AppleConfig,
    pub facebook: FacebookConfig,
}

/// A string that never shows in `Debug` output (config dumps, error reports).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(#[serde(deserialize_with = "string_or_number")] pub String);

/// Provider ids and secrets are strings, but many are all digits (Facebook app ids), and an
/// environment variable `CINEGATE_AUTH__FACEBOOK__APP_ID=1234` reaches serde as a number
/// (figment parses environment values). Numbers are accepted as their decimal text; a value
/// whose leading zeros matter must be quoted in the variable: `…_SECRET='"0123…"'`.
fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct Text;
    impl serde::de::Visitor<'_> for Text {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_string(Text)
}

/// A list, or one string of comma-separated items: `CINEGATE_TRUSTED_PROXIES=10.0.0.1,::1`
/// reads like `["10.0.0.1", "::1"]`.
fn list_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<String>),
        One(String),
    }
    Ok(match ListOrString::deserialize(d)? {
        ListOrString::List(v) => v,
        ListOrString::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

/// An OpenID Connect provider (Google). On when `client_id` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcProviderConfig {
    #[serde(deserialize_with = "string_or_number")]
    pub client_id: String,
    pub client_secret: Secret,
    /// Client ids of the mobile apps, also accepted as an ID token's audience.
    pub native_client_ids: Vec<String>,
    pub issuer: String,
    pub authorize_url: String,
    pub token_url: String,
    pub jwks_url: String,
}

impl Default for OidcProviderConfig {
    fn default() -> Self {
        Self {
            client_id: String::new(),
            client_secret: Secret::default(),
            native_client_ids: Vec::new(),
            issuer: "https://accounts.google.com".into(),
            authorize_url: "https://accounts.google.com/o/oauth2/v2/auth".into(),
            token_url: "https://oauth2.googleapis.com/token".into(),
            jwks_url: "https://www.googleapis.com/oauth2/v3/certs".into(),
        }
    }
}

/// Sign in with Apple. On when `client_id` (the Services ID) is set; its client secret is
/// an ES256 JWT signed with the `.p8` key in `private_key_file`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppleConfig {
    #[serde(deserialize_with = "string_or_number")]
    pub client_id: String,
    pub native_client_ids: Vec<String>,
    #[serde(deserialize_with = "string_or_number")]
    pub team_id: String,
    #[serde(deserialize_with = "string_or_number")]
    pub key_id: String,
    /// Relative to `keys_dir`, or absolute.
    pub private_key_file: PathBuf,
    pub issuer: String,
    pub authorize_url: String,
    pub token_url: String,
    pub jwks_url: String,
}

impl Default for AppleConfig {
    fn default() -> Self {
        Self {
            client_id: String::new(),
            native_client_ids: Vec::new(),
            team_id: String::new(),
            key_id: String::new(),
            private_key_file: "apple-signin.p8".into(),
            issuer: "https://appleid.apple.com".into(),
            authorize_url: "https://appleid.apple.com/auth/authorize".into(),
            token_url: "https://appleid.apple.com/auth/token".into(),
            jwks_url: "https://appleid.apple.com/auth/keys".into(),
        }
    }
}

/// Facebook Login (OAuth2 + Graph API, not OIDC). On when `app_id` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FacebookConfig {
    #[serde(deserialize_with = "string_or_number")]
    pub app_id: String,
    pub app_secret: Secret,
    pub authorize_url: String,
    pub token_url: String,
    pub graph_url: String,
}

impl Default for FacebookConfig {
    fn default() -> Self {
        Self {
            app_id: String::new(),
            app_secret: Secret::default(),
            authorize_url: "https://www.facebook.com/v19.0/dialog/oauth".into(),
            token_url: "https://graph.facebook.com/v19.0/oauth/access_token".into(),
            graph_url: "https://graph.facebook.com/v19.0".into(),
        }
    }
}

/// Comments and support.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SocialConfig {
    /// Comments containing one of these words (whole words, any case) are held for review.
    pub held_words: Vec<String>,
    /// Comments a user may post or edit per minute (together; admins are not limited).
    pub comments_per_minute: u32,
    /// Tips a viewer may add to their support: per currency, the smallest and largest
    /// amount in minor units. A currency not listed takes no tips.
    pub tips: Vec<TipBounds>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TipBounds {
    pub currency: String,
    pub min: u64,
    pub max: u64,
}

impl Default for SocialConfig {
    fn default() -> Self {
        Self {
            held_words: Vec::new(),
            comments_per_minute: 5,
            tips: vec![
                TipBounds {
                    currency: "USD".into(),
                    min: 100,
                    max: 10_000,
                },
                TipBounds {
                    currency: "EUR".into(),
                    min: 100,
                    max: 10_000,
                },
                TipBounds {
                    currency: "KRW".into(),
                    min: 1_000,
                    max: 100_000,
                },
            ],
        }
    }
}

/// Checkout providers. Each is on when its credentials are set (`dev` when `enabled`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentsConfig {
    /// Limit for each call to a payment provider.
    #[serde(with = "humantime_serde")]
    pub provider_timeout: Duration,
    /// An order the payer has not approved within this long is cancelled.
    #[serde(with = "humantime_serde")]
    pub order_ttl: Duration,
    /// How often open orders are settled with their providers (also once at start).
    #[serde(with = "humantime_serde")]
    pub reconcile_interval: Duration,
    /// Open orders (not yet paid, cancelled or past `order_ttl`) one user may have; a
    /// checkout past it is refused with 429 `too_many_open_orders`.
    pub max_open_orders: u32,
    pub dev: DevPaymentsConfig,
    pub paypal: PaypalConfig,
    pub kakaopay: KakaoPayConfig,
    pub naverpay: NaverPayConfig,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        Self {
            provider_timeout: Duration::from_secs(30),
            order_ttl: Duration::from_secs(3 * 3600),
            reconcile_interval: Duration::from_secs(3600),
            max_open_orders: 5,
            dev: DevPaymentsConfig::default(),
            paypal: PaypalConfig::default(),
            kakaopay: KakaoPayConfig::default(),
            naverpay: NaverPayConfig::default(),
        }
    }
}

/// A provider that approves at once, for demos and tests. Never in production.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevPaymentsConfig {
    pub enabled: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaypalConfig {
    #[serde(deserialize_with = "string_or_number")]
    pub client_id: String,
    pub client_secret: Secret,
    /// `https://api-m.sandbox.paypal.com` while testing.
    pub api_url: String,
    /// The id PayPal gave the webhook pointing at `{public_url}/api/v1/payments/paypal/webhook`;
    /// empty: webhooks are refused.
    pub webhook_id: String,
    /// Currencies to offer through PayPal (it takes no KRW).
    pub currencies: Vec<String>,
}

impl Default for PaypalConfig {
    fn default() -> Self {
        Self {
            client_id: String::new(),
            client_secret: Secret::default(),
            api_url: "https://api-m.paypal.com".into(),
            webhook_id: String::new(),
            currencies: ["USD", "EUR", "GBP", "JPY", "CAD", "AUD"]
                .map(String::from)
                .to_vec(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KakaoPayConfig {
    pub secret_key: Secret,
    /// The merchant id (`TC0ONETIME` is Kakao's test id).
    pub cid: String,
    pub api_url: String,
}

impl Default for KakaoPayConfig {
    fn default() -> Self {
        Self {
            secret_key: Secret::default(),
            cid: String::new(),
            api_url: "https://open-api.kakaopay.com".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NaverPayConfig {
    #[serde(deserialize_with = "string_or_number")]
    pub client_id: String,
    pub client_secret: Secret,
    #[serde(deserialize_with = "string_or_number")]
    pub chain_id: String,
    #[serde(deserialize_with = "string_or_number")]
    pub partner_id: String,
    /// API host (`https://dev.apis.naver.com` for the sandbox).
    pub api_url: String,
    /// Where the payer is sent: `{payment_url}/{reserveId}`.
    pub payment_url: String,
}

impl Default for NaverPayConfig {
    fn default() -> Self {
        Self {
            client_id: String::new(),
            client_secret: Secret::default(),
            chain_id: String::new(),
            partner_id: String::new(),
            api_url: "https://apis.naver.com".into(),
            payment_url: "https://m.pay.naver.com/payments".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins allowed to call the API and `/hls/` from a browser (hls.js uses XHR).
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest JSON request body in bytes.
    pub json_body_bytes: usize,
    /// Browser sign-in (`/auth/{provider}/start`, the callback and `POST
    /// /auth/{provider}/link`): requests per minute per client address.
    pub auth_per_minute: u32,
    /// Native sign-in (`POST /api/v1/auth/{provider}/native`): requests per minute per
    /// client address.
    pub native_per_minute: u32,
    /// Failed attempts on the token endpoints (link, refresh, logout, exchange: unknown,
    /// invalid or expired tokens and codes) per minute per client address. Valid uses do
    /// not count here.
    pub token_failures_per_minute: u32,
    /// Refreshes and logouts per minute of one refresh-token family (one sign-in).
    pub refresh_family_per_minute: u32,
    /// PayPal webhook deliveries per minute per client address.
    pub webhook_per_minute: u32,
    /// Loads of the payer's pages (`/pay/{provider}/return`, `cancel`, `fail`) per minute
    /// per client address: each may call the provider.
    pub pay_per_minute: u32,
    /// The general budget of `/api/v1` reads (GET, HEAD): requests per minute, per client
    /// address and, separately, per signed-in account (GCRA: after the burst, one request
    /// every 60/N seconds). Not `/hls/`, not pages or assets.
    pub api_reads_per_minute: u32,
    /// Reads that may come at once before the per-minute pace applies.
    pub api_reads_burst: u32,
    /// The general budget of `/api/v1` writes (every other method), per minute, per client
    /// address and per account.
    pub api_writes_per_minute: u32,
    /// Writes that may come at once before the per-minute pace applies.
    pub api_writes_burst: u32,
    /// Distinct keys (client addresses, families, users) each budget tracks at once, at
    /// most `ratelimit::BYTES_PER_KEY` (64) bytes each; past it the longest idle are
    /// forgotten.
    pub tracked_keys: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: "http://127.0.0.1:8080".into(),
            media_dir: "media".into(),
            keys_dir: "keys".into(),
            log: LogConfig::default(),
            trusted_proxies: Vec::new(),
            playback: PlaybackConfig::default(),
            transcode: TranscodeConfig::default(),
            upload: UploadConfig::default(),
            auth: AuthConfig::default(),
            cors: CorsConfig::default(),
            limits: LimitsConfig::default(),
            payments: PaymentsConfig::default(),
            social: SocialConfig::default(),
            metrics: MetricsConfig::default(),
            push: PushConfig::default(),
            webhooks: Vec::new(),
            analytics: AnalyticsConfig::default(),
            smtp: SmtpConfig::default(),
            notify: NotifyConfig::default(),
            tls: TlsConfig::default(),
            disk: DiskConfig::default(),
            storage: StorageConfig::default(),
            runners: RunnersConfig::default(),
        }
    }
}

impl Default for PlaybackConfig {
    fn default() -> Self {
        Self {
            token_ttl: Duration::from_secs(8 * 3600),
            preview_fraction: 0.10,
            unlock_fraction: 0.90,
            progress_flush_interval: Duration::from_secs(1),
            max_pace: 4.0,
            buffer_ahead: Duration::from_secs(120),
            max_addresses_per_token: 3,
            address_window: Duration::from_secs(3600),
            segment_cache_bytes: None,
        }
    }
}

impl Default for TranscodeConfig {
    fn default() -> Self {
        Self {
            ladder: "1080:5000k,720:2800k,480:1400k,360:800k".into(),
            preset: "veryfast".into(),
            segment_seconds: 6.0,
            audio_bitrate: "128k".into(),
            rate_control: "abr".into(),
            crf: transcoder::DEFAULT_CRF.to_string(),
            workers: 1,
        }
    }
}

impl Default for UploadConfig {
    fn default() -> Self {
        Self {
            max_bytes: 20 * 1024 * 1024 * 1024,
            expire_after: Duration::from_secs(24 * 3600),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            login_link_ttl: Duration::from_secs(15 * 60),
            admins: Vec::new(),
            app_redirect_uris: Vec::new(),
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            provider_timeout: Duration::from_secs(10),
            google: OidcProviderConfig::default(),
            apple: AppleConfig::default(),
            facebook: FacebookConfig::default(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            json_body_bytes: 64 * 1024,
            auth_per_minute: 30,
            native_per_minute: 30,
            token_failures_per_minute: 30,
            refresh_family_per_minute: 10,
            webhook_per_minute: 120,
            pay_per_minute: 30,
            api_reads_per_minute: 600,
            api_reads_burst: 120,
            api_writes_per_minute: 120,
            api_writes_burst: 30,
            tracked_keys: 100_000,
        }
    }
}

// --- mobile push and operator webhooks (notify::push, notify::webhook) ---

/// Mobile push: each channel is on when its first key is set (`fcm.project_id`,
/// `apns.team_id`); devices of a platform whose channel is off get nothing.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    pub fcm: FcmConfig,
    pub apns: ApnsConfig,
}

/// Firebase Cloud Messaging, HTTP v1 API (Android).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FcmConfig {
    /// The Firebase project id; empty: FCM is off.
    #[serde(deserialize_with = "string_or_number")]
    pub project_id: String,
    /// The service account's JSON key (client_email, private_key, token_uri), relative to
    /// `keys_dir`, or absolute.
    pub service_account_file: PathBuf,
    /// Where `/v1/projects/{project_id}/messages:send` lives.
    pub base_url: String,
}

impl Default for FcmConfig {
    fn default() -> Self {
        Self {
            project_id: String::new(),
            service_account_file: "fcm-service-account.json".into(),
            base_url: "https://fcm.googleapis.com".into(),
        }
    }
}

/// The production APNs host; `environment = "development"` with this base URL uses the
/// sandbox host instead.
pub const APNS_PRODUCTION_URL: &str = "https://api.push.apple.com";
pub const APNS_SANDBOX_URL: &str = "https://api.sandbox.push.apple.com";

/// Apple Push Notification service over HTTP/2 with a token (.p8) key (iOS).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApnsConfig {
    /// The Apple developer team id; empty: APNs is off.
    #[serde(deserialize_with = "string_or_number")]
    pub team_id: String,
    #[serde(deserialize_with = "string_or_number")]
    pub key_id: String,
    /// The `.p8` signing key (ES256, PKCS#8 PEM), relative to `keys_dir`, or absolute.
    pub key_file: PathBuf,
    /// The app's bundle id (`apns-topic`).
    pub topic: String,
    pub base_url: String,
    /// `"production"` or `"development"` (the sandbox host when `base_url` is left at its
    /// default). Unset: production.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

impl Default for ApnsConfig {
    fn default() -> Self {
        Self {
            team_id: String::new(),
            key_id: String::new(),
            key_file: "apns-key.p8".into(),
            topic: String::new(),
            base_url: APNS_PRODUCTION_URL.into(),
            environment: None,
        }
    }
}

impl ApnsConfig {
    /// The host deliveries go to, after `environment`.
    pub fn effective_base_url(&self) -> &str {
        match self.environment.as_deref() {
            Some("development") if self.base_url == APNS_PRODUCTION_URL => APNS_SANDBOX_URL,
            _ => &self.base_url,
        }
    }
}

/// The events a webhook can subscribe to, by their dotted names.
pub const WEBHOOK_EVENTS: [&str; 5] = [
    "film.ready",
    "film.failed",
    "order.captured",
    "order.refunded",
    "comment.reported",
];

fn all_webhook_events() -> Vec<String> {
    WEBHOOK_EVENTS.map(String::from).to_vec()
}

/// One operator webhook endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// The HMAC-SHA256 key its deliveries are signed with (docs/WEBHOOKS.md).
    pub secret: Secret,
    /// The dotted event names it receives; default: all of `WEBHOOK_EVENTS`.
    #[serde(default = "all_webhook_events")]
    pub events: Vec<String>,
}

/// Whether `url`'s host is a loopback address (plain http is allowed only there).
pub fn is_loopback_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Config {
    fn validate_push_and_webhooks(&self) -> Result<(), ConfigError> {
        let bad = |key: &'static str, message: String| Err(ConfigError::Invalid { key, message });
        // Push providers' credentials travel with every request: TLS, except to a test
        // fake on loopback.
        let push_url = |key: &'static str, v: &str| {
            if v.starts_with("https://") || is_loopback_url(v) {
                Ok(())
            } else {
                bad(
                    key,
                    format!("{v:?} must be an https URL (plain http only to a loopback address)"),
                )
            }
        };
        let f = &self.push.fcm;
        if !f.project_id.is_empty() {
            if !f
                .project_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return bad(
                    "push.fcm.project_id",
                    format!("{:?} is not a Firebase project id", f.project_id),
                );
            }
            if f.service_account_file.as_os_str().is_empty() {
                return bad(
                    "push.fcm.service_account_file",
                    "is required when push.fcm.project_id is set".into(),
                );
            }
            push_url("push.fcm.base_url", &f.base_url)?;
        }
        let a = &self.push.apns;
        if !a.team_id.is_empty() {
            for (key, v) in [
                ("push.apns.key_id", &a.key_id),
                ("push.apns.topic", &a.topic),
            ] {
                if v.is_empty() {
                    return bad(key, "is required when push.apns.team_id is set".into());
                }
            }
            if a.key_file.as_os_str().is_empty() {
                return bad(
                    "push.apns.key_file",
                    "is required when push.apns.team_id is set".into(),
                );
            }
            if let Some(env) = a.environment.as_deref() {
                if env != "production" && env != "development" {
                    return bad(
                        "push.apns.environment",
                        format!("{env:?} must be \"production\" or \"development\""),
                    );
                }
            }
            push_url("push.apns.base_url", &a.base_url)?;
        }
        let mut seen = std::collections::HashSet::new();
        for w in &self.webhooks {
            if !(w.url.starts_with("https://") || w.url.starts_with("http://")) {
                return bad(
                    "webhooks.url",
                    format!("{:?} must be an http(s) URL", w.url),
                );
            }
            if !seen.insert(w.url.as_str()) {
                // Deliveries name their endpoint by URL (the secret is looked up by it).
                return bad("webhooks.url", format!("{:?} is listed twice", w.url));
            }
            if w.secret.0.len() < 16 {
                return bad(
                    "webhooks.secret",
                    format!("the secret of {:?} must be at least 16 characters", w.url),
                );
            }
            if w.events.is_empty() {
                return bad(
                    "webhooks.events",
                    format!("{:?} subscribes to nothing", w.url),
                );
            }
            for e in &w.events {
                if !WEBHOOK_EVENTS.contains(&e.as_str()) {
                    return bad(
                        "webhooks.events",
                        format!("{e:?} is not one of {}", WEBHOOK_EVENTS.join(", ")),
                    );
                }
            }
        }
        Ok(())
    }

    /// A push key file's path: relative to `keys_dir`, or absolute.
    pub fn key_path(&self, file: &Path) -> PathBuf {
        self.keys_dir.join(file)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(String),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

impl Config {
    /// Loads `explicit` if given (it must exist), else `./config.toml` if present, else
    /// only the built-in defaults; then applies `CINEGATE_*` variables and validates.
    pub fn load(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(explicit, Env::prefixed("CINEGATE_").split("__"))
    }

    fn load_from(explicit: Option<&Path>, env: Env) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match explicit {
            Some(path) => {
                if !path.is_file() {
                    return Err(ConfigError::Load(format!(
                        "{} does not exist",
                        path.display()
                    )));
                }
                figment = figment.merge(Toml::file_exact(path));
            }
            None if Path::new("config.toml").is_file() => {
                figment = figment.merge(Toml::file_exact("config.toml"));
            }
            None => {}
        }
        let config: Config = figment
            .merge(env)
            .extract()
            .map_err(|e| ConfigError::Load(describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate_notify(&self) -> Result<(), ConfigError> {
        let bad = |key: &'static str, message: String| Err(ConfigError::Invalid { key, message });
        let m = &self.smtp;
        if !m.host.is_empty() {
            match m.security.as_str() {
                "starttls" | "tls" => {}
                "none" => {
                    let loopback = m.host == "localhost"
                        || m.host
                            .parse::<std::net::IpAddr>()
                            .is_ok_and(|ip| ip.is_loopback());
                    if !loopback {
                        return bad(
                            "smtp.security",
                            format!(
                                "\"none\" (plain text) is only for a loopback host, not {:?}",
                                m.host
                            ),
                        );
                    }
                }
                other => {
                    return bad(
                        "smtp.security",
                        format!("{other:?} must be \"starttls\", \"tls\" or \"none\""),
                    )
                }
            }
            if m.port == 0 {
                return bad("smtp.port", "must be a port number".into());
            }
            if m.from.trim().is_empty() {
                return bad("smtp.from", "is required when smtp.host is set".into());
            }
            if m.from.parse::<lettre::message::Mailbox>().is_err() {
                return bad(
                    "smtp.from",
                    format!(
                        "{:?} is not an address (\"Name <a@example.com>\" or \"a@example.com\")",
                        m.from
                    ),
                );
            }
            if !m.user.is_empty() && m.password.0.is_empty() {
                return bad("smtp.password", "is required when smtp.user is set".into());
            }
            if m.timeout < Duration::from_secs(1) || m.timeout > Duration::from_secs(600) {
                return bad(
                    "smtp.timeout",
                    "must be between 1 second and 10 minutes".into(),
                );
            }
        }
        let n = &self.notify;
        if !(1..=64).contains(&n.concurrency) {
            return bad("notify.concurrency", "must be 1–64".into());
        }
        if n.retry_base < Duration::from_millis(10) {
            return bad("notify.retry_base", "must be at least 10 ms".into());
        }
        if n.retry_cap < n.retry_base || n.retry_cap > Duration::from_secs(7 * 24 * 3600) {
            return bad(
                "notify.retry_cap",
                "must be between notify.retry_base and 7 days".into(),
            );
        }
        if !(1..=100).contains(&n.max_attempts) {
            return bad("notify.max_attempts", "must be 1–100".into());
        }
        Ok(())
    }

    fn validate_payments(&self) -> Result<(), ConfigError> {
        let bad = |key: &'static str, message: String| Err(ConfigError::Invalid { key, message });
        let p = &self.payments;
        if p.provider_timeout < Duration::from_secs(1)
            || p.provider_timeout > Duration::from_secs(120)
        {
            return bad(
                "payments.provider_timeout",
                "must be between 1s and 2m".into(),
            );
        }
        if p.order_ttl < Duration::from_secs(60) {
            return bad("payments.order_ttl", "must be at least 1 minute".into());
        }
        if p.reconcile_interval < Duration::from_secs(1)
            || p.reconcile_interval > Duration::from_secs(24 * 3600)
        {
            return bad(
                "payments.reconcile_interval",
                "must be between 1s and 24h".into(),
            );
        }
        if !(1..=1000).contains(&p.max_open_orders) {
            return bad(
                "payments.max_open_orders",
                "must be between 1 and 1000".into(),
            );
        }
        let url = |key: &'static str, v: &str| {
            if v.starts_with("https://") || v.starts_with("http://") {
                Ok(())
            } else {
                bad(key, format!("{v:?} must be an http(s) URL"))
            }
        };
        if !p.paypal.client_id.is_empty() {
            if p.paypal.client_secret.0.is_empty() {
                return bad(
                    "payments.paypal.client_secret",
                    "is required when payments.paypal.client_id is set".into(),
                );
            }
            url("payments.paypal.api_url", &p.paypal.api_url)?;
            for c in &p.paypal.currencies {
                if !crate::money::is_currency_code(c) || c == "KRW" {
                    return bad(
                        "payments.paypal.currencies",
                        format!("{c:?} is not an ISO code PayPal takes"),
                    );
                }
            }
        }
        if !p.kakaopay.cid.is_empty() {
            if p.kakaopay.secret_key.0.is_empty() {
                return bad(
                    "payments.kakaopay.secret_key",
                    "is required when payments.kakaopay.cid is set".into(),
                );
            }
            url("payments.kakaopay.api_url", &p.kakaopay.api_url)?;
        }
        if !p.naverpay.client_id.is_empty() {
            for (key, v) in [
                (
                    "payments.naverpay.client_secret",
                    &p.naverpay.client_secret.0,
                ),
                ("payments.naverpay.chain_id", &p.naverpay.chain_id),
                ("payments.naverpay.partner_id", &p.naverpay.partner_id),
            ] {
                if v.is_empty() {
                    return bad(
                        key,
                        "is required when payments.naverpay.client_id is set".into(),
                    );
                }
            }
            url("payments.naverpay.api_url", &p.naverpay.api_url)?;
            url("payments.naverpay.payment_url", &p.naverpay.payment_url)?;
        }
        Ok(())
    }

    fn validate_sign_in(&self) -> Result<(), ConfigError> {
        let bad = |key: &'static str, message: String| Err(ConfigError::Invalid { key, message });
        let a = &self.auth;
        if a.session_ttl < Duration::from_secs(60) {
            return bad("auth.session_ttl", "must be at least 1 minute".into());
        }
        if a.provider_timeout < Duration::from_millis(100)
            || a.provider_timeout > Duration::from_secs(120)
        {
            return bad(
                "auth.provider_timeout",
                "must be between 100ms and 2m".into(),
            );
        }
        for email in &a.admins {
            if crate::store::users::normalize_email(email).is_none() {
                return bad("auth.admins", format!("{email:?} is not an e-mail address"));
            }
        }
        for uri in &a.app_redirect_uris {
            let ok = uri.split_once("://").is_some_and(|(scheme, rest)| {
                !scheme.is_empty()
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                    && !rest.contains(['?', '#'])
                    // Plain http only for loopback (development); apps use a custom scheme
                    // or an https universal link.
                    && (scheme != "http" || rest.starts_with("127.0.0.1"))
            });
            if !ok {
                return bad(
                    "auth.app_redirect_uris",
                    format!("{uri:?} must be scheme://… without query or fragment (custom scheme or https)"),
                );
            }
        }
        let url = |key: &'static str, v: &str| {
            if v.starts_with("https://") || v.starts_with("http://") {
                Ok(())
            } else {
                bad(key, format!("{v:?} must be an http(s) URL"))
            }
        };
        let g = &a.google;
        if !g.client_id.is_empty() {
            if g.client_secret.0.is_empty() {
                return bad(
                    "auth.google.client_secret",
                    "is required when auth.google.client_id is set".into(),
                );
            }
            url("auth.google.issuer", &g.issuer)?;
            url("auth.google.authorize_url", &g.authorize_url)?;
            url("auth.google.token_url", &g.token_url)?;
            url("auth.google.jwks_url", &g.jwks_url)?;
        }
        let ap = &a.apple;
        if !ap.client_id.is_empty() {
            if ap.team_id.is_empty() {
                return bad(
                    "auth.apple.team_id",
                    "is required when auth.apple.client_id is set".into(),
                );
            }
            if ap.key_id.is_empty() {
                return bad(
                    "auth.apple.key_id",
                    "is required when auth.apple.client_id is set".into(),
                );
            }
            url("auth.apple.issuer", &ap.issuer)?;
            url("auth.apple.authorize_url", &ap.authorize_url)?;
            url("auth.apple.token_url", &ap.token_url)?;
            url("auth.apple.jwks_url", &ap.jwks_url)?;
        }
        let f = &a.facebook;
        if !f.app_id.is_empty() {
            if f.app_secret.0.is_empty() {
                return bad(
                    "auth.facebook.app_secret",
                    "is required when auth.facebook.app_id is set".into(),
                );
            }
            url("auth.facebook.authorize_url", &f.authorize_url)?;
            url("auth.facebook.token_url", &f.token_url)?;
            url("auth.facebook.graph_url", &f.graph_url)?;
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &'static str, message: String| Err(ConfigError::Invalid { key, message });
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            return bad(
                "public_url",
                format!("{:?} must start with http:// or https://", self.public_url),
            );
        }
        if self.playback.token_ttl < Duration::from_secs(60) {
            return bad("playback.token_ttl", "must be at least 1 minute".into());
        }
        if !(0.0 < self.playback.preview_fraction && self.playback.preview_fraction < 1.0) {
            return bad(
                "playback.preview_fraction",
                "must be between 0 and 1".into(),
            );
        }
        if !(0.0 < self.playback.unlock_fraction && self.playback.unlock_fraction <= 1.0) {
            return bad(
                "playback.unlock_fraction",
                "must be above 0 and at most 1".into(),
            );
        }
        if let Err(e) = jiff::tz::TimeZone::get(&self.analytics.timezone) {
            return bad(
                "analytics.timezone",
                format!(
                    "{:?} is not a time zone of the system's database (an IANA name such as \"UTC\" or \"Asia/Seoul\"): {e}",
                    self.analytics.timezone
                ),
            );
        }
        if self.playback.progress_flush_interval.is_zero() {
            return bad(
                "playback.progress_flush_interval",
                "must be above zero".into(),
            );
        }
        if !(self.playback.max_pace.is_finite() && self.playback.max_pace >= 1.0) {
            return bad(
                "playback.max_pace",
                "must be a number of at least 1 (real time)".into(),
            );
        }
        if self.playback.buffer_ahead < Duration::from_secs(10)
            || self.playback.buffer_ahead > Duration::from_secs(3600)
        {
            return bad(
                "playback.buffer_ahead",
                "must be between 10 seconds and 1 hour".into(),
            );
        }
        if let Err(e) = self.package_options() {
            let key = match &e {
                PackageOptionError::Ladder(_) => "transcode.ladder",
                PackageOptionError::AudioBitrate(_) => "transcode.audio_bitrate",
                PackageOptionError::RateControl(_) => "transcode.rate_control",
                PackageOptionError::Crf(_) => "transcode.crf",
                PackageOptionError::Other(_) => "transcode",
            };
            return bad(key, e.to_string());
        }
        // 0: an origin that packages only on remote runners.
        if self.transcode.workers > 16 {
            return bad("transcode.workers", "must be 0–16".into());
        }
        if self.upload.max_bytes < 1024 * 1024 {
            return bad("upload.max_bytes", "must be at least 1 MiB".into());
        }
        if self.auth.access_ttl < Duration::from_secs(60)
            || self.auth.access_ttl > Duration::from_secs(24 * 3600)
        {
            return bad(
                "auth.access_ttl",
                "must be between 1 minute and 24 hours".into(),
            );
        }
        if self.auth.refresh_ttl <= self.auth.access_ttl {
            return bad(
                "auth.refresh_ttl",
                "must be longer than auth.access_ttl".into(),
            );
        }
        if self.auth.login_link_ttl < Duration::from_secs(60)
            || self.auth.login_link_ttl > Duration::from_secs(7 * 24 * 3600)
        {
            return bad(
                "auth.login_link_ttl",
                "must be between 1 minute and 7 days".into(),
            );
        }
        self.validate_sign_in()?;
        self.validate_payments()?;
        self.validate_notify()?;
        self.validate_push_and_webhooks()?;
        for origin in &self.cors.allowed_origins {
            if origin == "*"
                || !(origin.starts_with("http://") || origin.starts_with("https://"))
                || origin.ends_with('/')
            {
                return bad(
                    "cors.allowed_origins",
                    format!("{origin:?} must be an origin such as https://app.example.com (no wildcard, no path)"),
                );
            }
        }
        if self.limits.json_body_bytes < 1024 {
            return bad("limits.json_body_bytes", "must be at least 1024".into());
        }
        if self.social.comments_per_minute == 0 {
            return bad("social.comments_per_minute", "must be above zero".into());
        }
        for t in &self.social.tips {
            if !crate::money::is_currency_code(&t.currency) {
                return bad(
                    "social.tips",
                    format!("{:?} is not an ISO currency code", t.currency),
                );
            }
            if t.min == 0 || t.min > t.max {
                return bad(
                    "social.tips",
                    format!("{}: need 0 < min <= max", t.currency),
                );
            }
        }
        for (key, value) in [
            ("limits.auth_per_minute", self.limits.auth_per_minute),
            ("limits.native_per_minute", self.limits.native_per_minute),
            (
                "limits.token_failures_per_minute",
                self.limits.token_failures_per_minute,
            ),
            (
                "limits.refresh_family_per_minute",
                self.limits.refresh_family_per_minute,
            ),
            ("limits.webhook_per_minute", self.limits.webhook_per_minute),
            ("limits.pay_per_minute", self.limits.pay_per_minute),
            (
                "limits.api_reads_per_minute",
                self.limits.api_reads_per_minute,
            ),
            ("limits.api_reads_burst", self.limits.api_reads_burst),
            (
                "limits.api_writes_per_minute",
                self.limits.api_writes_per_minute,
            ),
            ("limits.api_writes_burst", self.limits.api_writes_burst),
        ] {
            if value == 0 {
                return bad(key, "must be above zero".into());
            }
        }
        if let Some(addr) = self.metrics.listen {
            if addr == self.listen && addr.port() != 0 {
                return bad(
                    "metrics.listen",
                    format!("{addr} is the main listener; give /metrics an address of its own or leave metrics.listen unset"),
                );
            }
        }
        if !(1..=64).contains(&self.playback.max_addresses_per_token) {
            return bad(
                "playback.max_addresses_per_token",
                "must be between 1 and 64".into(),
            );
        }
        if !(Duration::from_secs(60)..=Duration::from_secs(7 * 24 * 3600))
            .contains(&self.playback.address_window)
        {
            return bad(
                "playback.address_window",
                "must be between 1 minute and 7 days".into(),
            );
        }
        if !(1_000..=10_000_000).contains(&self.limits.tracked_keys) {
            return bad(
                "limits.tracked_keys",
                "must be between 1000 and 10000000".into(),
            );
        }
        self.trusted_proxy_nets()?;
        if tracing_subscriber::EnvFilter::try_new(&self.log.filter).is_err() {
            return bad(
                "log.filter",
                format!("{:?} is not a valid log filter", self.log.filter),
            );
        }
        self.validate_tls()?;
        self.validate_disk()?;
        self.validate_storage()?;
        self.validate_runners()?;
        Ok(())
    }

    /// `[tls]`: the files or the ACME settings its mode needs.
    fn validate_tls(&self) -> Result<(), ConfigError> {
        let bad = |key: &'static str, message: String| Err(ConfigError::Invalid { key, message });
        let t = &self.tls;
        if t.mode == TlsMode::Off {
            return Ok(());
        }
        if t.listen == self.listen && t.listen.port() != 0 {
            return bad(
                "tls.listen",
                format!(
                    "{} is also `listen`; HTTPS needs a port of its own",
                    t.listen
                ),
            );
        }
        if t.reload_interval < Duration::from_secs(1) {
            return bad("tls.reload_interval", "must be at least 1s".into());
        }
        if t.mode == TlsMode::Files {
            if t.cert_file.as_os_str().is_empty() {
                return bad(
                    "tls.cert_file",
                    "is required with tls.mode = \"files\"".into(),
                );
            }
            if t.key_file.as_os_str().is_empty() {
                return bad(
                    "tls.key_file",
                    "is required with tls.mode = \"files\"".into(),
                );
            }
            return Ok(());
        }
        if !t.acme_directory.starts_with("https://") {
            return bad(
                "tls.acme_directory",
                format!("{:?} must be an https:// URL", t.acme_directory),
            );
        }
        if t.acme_challenge != "http-01" {
            return bad(
                "tls.acme_challenge",
                format!("{:?} is not supported; use \"http-01\"", t.acme_challenge),
            );
        }
        if !(0.1..=0.95).contains(&t.renew_after) {
            return bad("tls.renew_after", "must be between 0.1 and 0.95".into());
        }
        if let Some(c) = t.acme_contact.iter().find(|c| !c.starts_with("mailto:")) {
            return bad("tls.acme_contact", format!("{c:?} must start with mailto:"));
        }
        for d in self.tls_domains() {
            let name_ok = !d.is_empty()
                && d.len() <= 253
                && d.parse::<std::net::IpAddr>().is_err()
                && d.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            if !name_ok {
                return bad(
                    "tls.domains",
                    format!("{d:?} is not a DNS name an ACME CA can certify (from public_url or tls.domains)"),
                );
            }
        }
        Ok(())
    }

    /// The names the ACME certificate covers: the host of `public_url`, then `tls.domains`.
    pub fn tls_domains(&self) -> Vec<String> {
        let rest = self
            .public_url
            .split_once("://")
            .map_or("", |(_, rest)| rest);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority
            .rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(authority, |(host, _)| host)
            .to_ascii_lowercase();
        let mut domains = vec![host];
        for d in &self.tls.domains {
            let d = d.trim().to_ascii_lowercase();
            if !domains.contains(&d) {
                domains.push(d);
            }
        }
        domains
    }

    /// A `[tls]` file path: relative to `keys_dir`, or absolute.
    pub fn tls_path(&self, file: &Path) -> PathBuf {
        self.keys_dir.join(file)
    }

    /// `[disk]`: every `min_free_bytes` is meaningful (0: refuse only what does not fit;
    /// above the disk's size: refuse every upload, which `cinegate doctor` reports), so
    /// nothing is refused here; figment already refuses a value that is not a byte count.
    fn validate_disk(&self) -> Result<(), ConfigError> {
        Ok(())
    }

    /// `[storage]` with `mode = "s3"`: what the bucket needs named, and a way for players
    /// to reach its segments. Whether the bucket answers is checked at start-up
    /// (`storage::Storage::probe`), which names the key at fault too.
    fn validate_storage(&self) -> Result<(), ConfigError> {
        let bad = |key: &'static str, message: String| Err(ConfigError::Invalid { key, message });
        let s = &self.storage;
        if s.mode == StorageMode::Local {
            return Ok(());
        }
        if !(s.endpoint.starts_with("http://") || s.endpoint.starts_with("https://"))
            || reqwest::Url::parse(&s.endpoint).is_err()
        {
            return bad(
                "storage.endpoint",
                format!("{:?} must be an http:// or https:// URL", s.endpoint),
            );
        }
        if s.region.trim().is_empty() {
            return bad(
                "storage.region",
                "is required with storage.mode = \"s3\"".into(),
            );
        }
        // S3's bucket naming rules (3–63 of lower-case letters, digits, dots and hyphens).
        let name_ok = (3..=63).contains(&s.bucket.len())
            && s.bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
        if !name_ok {
            return bad(
                "storage.bucket",
                format!(
                    "{:?} is not a bucket name (3 to 63 lower-case letters, digits, '.' or '-')",
                    s.bucket
                ),
            );
        }
        if s.prefix.starts_with('/') || s.prefix.contains("//") || s.prefix.contains("..") {
            return bad(
                "storage.prefix",
                format!(
                    "{:?} must be a relative key prefix such as \"cinegate/\"",
                    s.prefix
                ),
            );
        }
        if s.access_key_id.is_empty() {
            return bad(
                "storage.access_key_id",
                "is required with storage.mode = \"s3\"".into(),
            );
        }
        if s.secret_access_key.0.is_empty() {
            return bad(
                "storage.secret_access_key",
                "is required with storage.mode = \"s3\" (or CINEGATE_STORAGE__SECRET_ACCESS_KEY)"
                    .into(),
            );
        }
        match s.presign_ttl {
            Some(ttl) if ttl < self.playback.token_ttl => {
                return bad(
                    "storage.presign_ttl",
                    format!(
                        "must be at least playback.token_ttl ({}): players never refetch a VOD playlist, so a segment URL must outlive the token",
                        humantime_serde::re::humantime::format_duration(self.playback.token_ttl)
                    ),
                )
            }
            Some(ttl) if ttl > Duration::from_secs(7 * 24 * 3600) => {
                return bad(
                    "storage.presign_ttl",
                    "must be at most 7 days (the longest S3 presigned URL)".into(),
                )
            }
            Some(_) => {}
            None => {
                if !(s.public_base_url.starts_with("http://")
                    || s.public_base_url.starts_with("https://"))
                    || reqwest::Url::parse(&s.public_base_url).is_err()
                {
                    return bad(
                        "storage.public_base_url",
                        format!(
                            "{:?} must be the http(s) URL players fetch segments from (the CDN or the bucket's public endpoint), unless storage.presign_ttl is set",
                            s.public_base_url
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    /// `[runners]`: a lease long enough for a heartbeat to arrive (a runner sends one
    /// every third of it) and short enough that a dead runner's job comes back.
    fn validate_runners(&self) -> Result<(), ConfigError> {
        let ttl = self.runners.lease_ttl;
        if ttl < Duration::from_secs(2) || ttl > Duration::from_secs(3600) {
            return Err(ConfigError::Invalid {
                key: "runners.lease_ttl",
                message: "must be between 2 seconds and 1 hour".into(),
            });
        }
        Ok(())
    }

    /// Where players fetch segments from with `[storage] mode = "s3"`, as a web origin
    /// (`https://cdn.example.com`): the CDN, or with presigned URLs the S3 endpoint (the
    /// bucket's own host when virtual-hosted). `None` locally: segments come from here.
    pub fn segment_origin(&self) -> Option<String> {
        let s = &self.storage;
        if s.mode == StorageMode::Local {
            return None;
        }
        let (base, bucket_host) = match s.presign_ttl {
            Some(_) => (s.endpoint.as_str(), !s.path_style),
            None => (s.public_base_url.as_str(), false),
        };
        let url = reqwest::Url::parse(base).ok()?;
        let host = url.host_str()?;
        let host = if bucket_host {
            format!("{}.{host}", s.bucket)
        } else {
            host.to_string()
        };
        Some(match url.port() {
            Some(port) => format!("{}://{host}:{port}", url.scheme()),
            None => format!("{}://{host}", url.scheme()),
        })
    }

    /// `trusted_proxies` parsed: a CIDR (`10.0.0.0/8`, `fd00::/8`) or a single address.
    pub fn trusted_proxy_nets(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.trusted_proxies
            .iter()
            .map(|p| {
                let p = p.trim();
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| ConfigError::Invalid {
                        key: "trusted_proxies",
                        message: format!(
                            "{p:?} is not an address or CIDR such as 10.0.0.0/8 or ::1"
                        ),
                    })
            })
            .collect()
    }

    /// The packager's options from `[transcode]`.
    pub fn package_options(&self) -> Result<transcoder::PackageOptions, PackageOptionError> {
        let t = &self.transcode;
        let opts = transcoder::PackageOptions {
            ladder: transcoder::Rung::parse_ladder(&t.ladder)
                .map_err(|e| PackageOptionError::Ladder(e.to_string()))?,
            segment_seconds: t.segment_seconds,
            x264_preset: t.preset.clone(),
            audio_bitrate: transcoder::parse_bitrate(&t.audio_bitrate).ok_or_else(|| {
                PackageOptionError::AudioBitrate(format!(
                    "{:?} is not a bitrate such as 128k",
                    t.audio_bitrate
                ))
            })?,
            rate_control: transcoder::RateControl::parse(&t.rate_control)
                .map_err(|e| PackageOptionError::RateControl(e.to_string()))?,
            crf: transcoder::CrfTargets::parse(&t.crf)
                .map_err(|e| PackageOptionError::Crf(e.to_string()))?,
        };
        opts.validate()
            .map_err(|e| PackageOptionError::Other(e.to_string()))?;
        Ok(opts)
    }

    pub fn store_dir(&self) -> PathBuf {
        self.media_dir.join("store")
    }

    pub fn films_dir(&self) -> PathBuf {
        self.media_dir.join("films")
    }

    pub fn uploads_dir(&self) -> PathBuf {
        self.media_dir.join("uploads")
    }

    pub fn control_socket(&self) -> PathBuf {
        self.media_dir.join("cinegate.sock")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PackageOptionError {
    #[error("{0}")]
    Ladder(String),
    #[error("{0}")]
    AudioBitrate(String),
    #[error("{0}")]
    RateControl(String),
    #[error("{0}")]
    Crf(String),
    #[error("{0}")]
    Other(String),
}

/// A value written either as a number (`crf = 21`, or `CINEGATE_TRANSCODE__CRF=21`, which
/// figment reads as a number) or as a string (`crf = "21,360:20"`).
fn number_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrString {
        Int(i64),
        Float(f64),
        Text(String),
    }
    Ok(match NumberOrString::deserialize(d)? {
        NumberOrString::Int(n) => n.to_string(),
        NumberOrString::Float(n) => n.to_string(),
        NumberOrString::Text(t) => t,
    })
}

/// Figment's message names the key path and the source (file or env var); keep it whole.
fn describe(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;
    use figment::Jail;

    /// Loads in a jail (temporary cwd and environment) and returns the error text.
    fn load_error(jail: &mut Jail, toml: &str) -> String {
        let _ = jail.create_file("config.toml", toml);
        Config::load(None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn defaults_are_valid_without_a_file() {
        Jail::expect_with(|_| {
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
            assert_eq!(c.playback.token_ttl, Duration::from_secs(8 * 3600));
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_named() {
        Jail::expect_with(|jail| {
            let e = load_error(jail, "[playback]\ntoken_tll = \"1h\"\n");
            assert!(e.contains("token_tll"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_named() {
        Jail::expect_with(|jail| {
            let e = load_error(jail, "[playback]\npreview_fraction = 1.5\n");
            assert!(e.contains("playback.preview_fraction"), "{e}");
            let e = load_error(jail, "[analytics]\ntimezone = \"Mars/Olympus\"\n");
            assert!(e.contains("analytics.timezone"), "{e}");
            let e = load_error(jail, "[transcode]\nladder = \"720-1M\"\n");
            assert!(e.contains("transcode.ladder"), "{e}");
            let e = load_error(jail, "[transcode]\nrate_control = \"vbr\"\n");
            assert!(e.contains("transcode.rate_control"), "{e}");
            let e = load_error(jail, "[transcode]\ncrf = \"60\"\n");
            assert!(e.contains("transcode.crf"), "{e}");
            let e = load_error(jail, "[transcode]\ncrf = 52\n");
            assert!(e.contains("transcode.crf"), "{e}");
            let e = load_error(jail, "listen = \"nowhere\"\n");
            assert!(e.contains("listen"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_the_file_with_double_underscores() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "config.toml",
                "listen = \"127.0.0.1:9000\"\n[playback]\ntoken_ttl = \"3h 30m\"\n",
            )?;
            jail.set_env("CINEGATE_LISTEN", "127.0.0.1:9100");
            jail.set_env("CINEGATE_TRANSCODE__WORKERS", "2");
            jail.set_env("CINEGATE_TRANSCODE__RATE_CONTROL", "crf");
            jail.set_env("CINEGATE_TRANSCODE__CRF", "22,360:20");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            let opts = c.package_options().map_err(|e| e.to_string())?;
            assert_eq!(opts.rate_control, transcoder::RateControl::Crf);
            assert_eq!(
                (opts.crf.for_rung(1080), opts.crf.for_rung(360)),
                (22.0, 20.0)
            );
            jail.set_env("CINEGATE_TRANSCODE__CRF", "23");
            jail.set_env("CINEGATE_TRANSCODE__RATE_CONTROL", "per-title");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.transcode.crf, "23");
            assert_eq!(
                c.package_options().map_err(|e| e.to_string())?.rate_control,
                transcoder::RateControl::PerTitle
            );
            assert_eq!(c.listen.to_string(), "127.0.0.1:9100");
            assert_eq!(c.transcode.workers, 2);
            assert_eq!(c.playback.token_ttl, Duration::from_secs(3 * 3600 + 1800));
            jail.set_env("CINEGATE_PLAYBACK__NOPE", "1");
            let e = Config::load(None)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("nope"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn order_lifecycle_keys_are_validated_by_name() {
        Jail::expect_with(|jail| {
            let e = load_error(jail, "[payments]\nreconcile_interval = \"0s\"\n");
            assert!(e.contains("payments.reconcile_interval"), "{e}");
            let e = load_error(jail, "[payments]\nmax_open_orders = 0\n");
            assert!(e.contains("payments.max_open_orders"), "{e}");
            jail.create_file("config.toml", "")?;
            jail.set_env("CINEGATE_PAYMENTS__RECONCILE_INTERVAL", "15m");
            jail.set_env("CINEGATE_PAYMENTS__MAX_OPEN_ORDERS", "2");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.payments.reconcile_interval, Duration::from_secs(900));
            assert_eq!(c.payments.max_open_orders, 2);
            Ok(())
        });
    }

    #[test]
    fn pace_keys_are_validated_by_name_and_overridable() {
        Jail::expect_with(|jail| {
            let e = load_error(jail, "[playback]\nmax_pace = 0.5\n");
            assert!(e.contains("playback.max_pace"), "{e}");
            let e = load_error(jail, "[playback]\nbuffer_ahead = \"1s\"\n");
            assert!(e.contains("playback.buffer_ahead"), "{e}");
            jail.create_file("config.toml", "")?;
            jail.set_env("CINEGATE_PLAYBACK__MAX_PACE", "20");
            jail.set_env("CINEGATE_PLAYBACK__BUFFER_AHEAD", "10s");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.playback.max_pace, 20.0);
            assert_eq!(c.playback.buffer_ahead, Duration::from_secs(10));
            Ok(())
        });
    }

    #[test]
    fn runner_keys_are_validated_by_name_and_workers_may_be_zero() {
        Jail::expect_with(|jail| {
            let e = load_error(jail, "[runners]\nlease_ttl = \"1s\"\n");
            assert!(e.contains("runners.lease_ttl"), "{e}");
            let e = load_error(jail, "[runners]\nlease_ttl = \"2h\"\n");
            assert!(e.contains("runners.lease_ttl"), "{e}");
            let e = load_error(jail, "[runners]\nleasettl = \"1m\"\n");
            assert!(e.contains("leasettl"), "{e}");
            let e = load_error(jail, "[transcode]\nworkers = 17\n");
            assert!(e.contains("transcode.workers"), "{e}");
            jail.create_file("config.toml", "[transcode]\nworkers = 0\n")?;
            jail.set_env("CINEGATE_RUNNERS__LEASE_TTL", "3s");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.transcode.workers, 0);
            assert_eq!(c.runners.lease_ttl, Duration::from_secs(3));
            Ok(())
        });
    }

    #[test]
    fn an_explicit_file_must_exist() {
        let e = Config::load(Some(Path::new("/nonexistent/cinegate.toml")))
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("does not exist")));
    }

    #[test]
    fn storage_settings_are_checked_and_named() {
        let s3 = |c: &mut Config| {
            c.storage = StorageConfig {
                mode: StorageMode::S3,
                endpoint: "https://s3.eu-west-1.amazonaws.com".into(),
                region: "eu-west-1".into(),
                bucket: "my-films".into(),
                access_key_id: "AKIA1".into(),
                secret_access_key: Secret("s".into()),
                public_base_url: "https://cdn.example.com/films/".into(),
                ..StorageConfig::default()
            };
        };
        let with = |f: &dyn Fn(&mut Config)| {
            let mut c = Config::default();
            s3(&mut c);
            f(&mut c);
            c.validate()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(with(&|_| {}), "");
        type Change = dyn Fn(&mut Config);
        let cases: [(&Change, &str); 8] = [
            (
                &|c| c.storage.endpoint = "s3.example.com".into(),
                "storage.endpoint",
            ),
            (&|c| c.storage.region = " ".into(), "storage.region"),
            (&|c| c.storage.bucket = "My_Films".into(), "storage.bucket"),
            (&|c| c.storage.prefix = "/abs".into(), "storage.prefix"),
            (
                &|c| c.storage.access_key_id = String::new(),
                "storage.access_key_id",
            ),
            (
                &|c| c.storage.secret_access_key = Secret::default(),
                "storage.secret_access_key",
            ),
            (
                &|c| c.storage.public_base_url = String::new(),
                "storage.public_base_url",
            ),
            // Shorter than a playback token: a VOD player would lose its segments mid-film.
            (
                &|c| c.storage.presign_ttl = Some(Duration::from_secs(3600)),
                "storage.presign_ttl",
            ),
        ];
        for (change, key) in cases {
            let message = with(change);
            assert!(message.contains(key), "{key}: {message}");
        }
        // Presigned URLs need no public base; their origin is the endpoint's.
        let mut c = Config::default();
        s3(&mut c);
        assert_eq!(
            c.segment_origin().as_deref(),
            Some("https://cdn.example.com")
        );
        c.storage.public_base_url = String::new();
        c.storage.presign_ttl = Some(Duration::from_secs(9 * 3600));
        assert!(c.validate().is_ok());
        assert_eq!(
            c.segment_origin().as_deref(),
            Some("https://s3.eu-west-1.amazonaws.com")
        );
        c.storage.path_style = false;
        assert_eq!(
            c.segment_origin().as_deref(),
            Some("https://my-films.s3.eu-west-1.amazonaws.com")
        );
        assert_eq!(Config::default().segment_origin(), None);
    }

    #[test]
    fn tls_settings_are_checked_and_named() {
        let with = |f: &dyn Fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            c.validate()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(with(&|_| {}), "");
        let acme = |c: &mut Config| {
            c.tls.mode = TlsMode::Acme;
            c.public_url = "https://films.example".into();
        };
        assert_eq!(with(&acme), "");
        for (change, key) in [
            (
                &(|c: &mut Config| {
                    c.tls.mode = TlsMode::Files;
                    c.tls.listen = c.listen;
                }) as &dyn Fn(&mut Config),
                "tls.listen",
            ),
            (
                &|c: &mut Config| {
                    c.tls.mode = TlsMode::Files;
                    c.tls.cert_file = PathBuf::new();
                },
                "tls.cert_file",
            ),
            (
                &|c: &mut Config| {
                    acme(c);
                    c.tls.acme_challenge = "dns-01".into();
                },
                "tls.acme_challenge",
            ),
            (
                &|c: &mut Config| {
                    acme(c);
                    c.tls.acme_directory = "http://ca.example/dir".into();
                },
                "tls.acme_directory",
            ),
            (
                &|c: &mut Config| {
                    acme(c);
                    c.tls.renew_after = 1.0;
                },
                "tls.renew_after",
            ),
            (
                &|c: &mut Config| {
                    acme(c);
                    c.tls.acme_contact = vec!["ops@example.com".into()];
                },
                "tls.acme_contact",
            ),
            (
                &|c: &mut Config| {
                    acme(c);
                    c.public_url = "https://127.0.0.1:8443".into();
                },
                "tls.domains",
            ),
            (
                &|c: &mut Config| {
                    acme(c);
                    c.tls.domains = vec!["bad name.example".into()];
                },
                "tls.domains",
            ),
        ] {
            let e = with(change);
            assert!(e.contains(key), "{key}: {e}");
        }
        let mut c = Config::default();
        acme(&mut c);
        c.public_url = "https://Films.Example:8443/path".into();
        c.tls.domains = vec!["www.films.example".into(), "films.example".into()];
        assert_eq!(c.tls_domains(), ["films.example", "www.films.example"]);
    }

    #[test]
    fn the_shipped_config_toml_is_the_defaults() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let c = Config::load(Some(&shipped)).map_err(|e| e.to_string());
        assert!(c.is_ok(), "{c:?}");
        let from_file = serde_json::to_value(c.ok()).unwrap_or_default();
        let defaults = serde_json::to_value(Config::default()).unwrap_or_default();
        assert_eq!(from_file, defaults);
    }

    #[test]
    fn log_is_a_table_or_the_older_bare_filter() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("config.toml", "log = \"warn\"\n")?;
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.log.filter, "warn");
            assert_eq!(c.log.format, LogFormat::Text);
            jail.create_file("config.toml", "[log]\nformat = \"json\"\n")?;
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(
                (c.log.filter.as_str(), c.log.format),
                ("info", LogFormat::Json)
            );
            jail.set_env("CINEGATE_LOG", "debug");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.log.filter, "debug");
            Ok(())
        });
        Jail::expect_with(|jail| {
            let e = load_error(jail, "[log]\nformat = \"xml\"\n");
            assert!(e.contains("log") && e.contains("xml"), "{e}");
            let e = load_error(jail, "[log]\nfilter = \"=[\"\n");
            assert!(e.contains("log.filter"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn a_retired_key_still_loads() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "config.toml",
                "[playback]\nsegment_cache_bytes = 67108864\n",
            )?;
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.playback.segment_cache_bytes, Some(67108864));
            Ok(())
        });
    }

    #[test]
    fn sign_in_providers_are_validated_by_key_and_secrets_never_print() {
        Jail::expect_with(|jail| {
            let e = load_error(jail, "[auth.google]\nclient_id = \"web\"\n");
            assert!(e.contains("auth.google.client_secret"), "{e}");
            let e = load_error(jail, "[auth.facebook]\napp_id = \"1\"\n");
            assert!(e.contains("auth.facebook.app_secret"), "{e}");
            let e = load_error(jail, "[auth.apple]\nclient_id = \"svc\"\n");
            assert!(e.contains("auth.apple.team_id"), "{e}");
            let e = load_error(jail, "[auth]\napp_redirect_uris = [\"cinegate://x?y=1\"]\n");
            assert!(e.contains("auth.app_redirect_uris"), "{e}");
            let e = load_error(jail, "[auth]\nadmins = [\"nobody\"]\n");
            assert!(e.contains("auth.admins"), "{e}");

            jail.create_file("config.toml", "")?;
            jail.set_env("CINEGATE_AUTH__GOOGLE__CLIENT_ID", "web");
            jail.set_env("CINEGATE_AUTH__GOOGLE__CLIENT_SECRET", "s3cret-value");
            jail.set_env("CINEGATE_AUTH__ADMINS", "[\"boss@example.com\"]");
            // Facebook app ids are all digits; the environment hands figment a number.
            jail.set_env("CINEGATE_AUTH__FACEBOOK__APP_ID", "1234567890");
            jail.set_env("CINEGATE_AUTH__FACEBOOK__APP_SECRET", "\"0123\"");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.auth.facebook.app_id, "1234567890");
            assert_eq!(c.auth.facebook.app_secret.0, "0123");
            assert_eq!(c.auth.admins, ["boss@example.com"]);
            assert_eq!(c.auth.google.client_secret.0, "s3cret-value");
            let shown = format!("{c:?}");
            assert!(!shown.contains("s3cret-value"), "{shown}");
            Ok(())
        });
    }

    #[test]
    fn smtp_and_notify_keys_are_validated_by_name() {
        Jail::expect_with(|jail| {
            let smtp = |rest: &str| {
                format!("[smtp]\nhost = \"mail.example.com\"\nfrom = \"films@example.com\"\n{rest}")
            };
            let e = load_error(jail, &smtp("security = \"none\"\n"));
            assert!(e.contains("smtp.security") && e.contains("loopback"), "{e}");
            let e = load_error(jail, &smtp("security = \"ssl\"\n"));
            assert!(e.contains("smtp.security"), "{e}");
            let e = load_error(jail, "[smtp]\nhost = \"mail.example.com\"\n");
            assert!(e.contains("smtp.from"), "{e}");
            let e = load_error(jail, &smtp("user = \"films\"\n"));
            assert!(e.contains("smtp.password"), "{e}");
            let e = load_error(
                jail,
                "[smtp]\nhost = \"127.0.0.1\"\nfrom = \"not an address\"\nsecurity = \"none\"\n",
            );
            assert!(e.contains("smtp.from"), "{e}");
            let e = load_error(jail, "[notify]\nretry_base = \"10s\"\nretry_cap = \"1s\"\n");
            assert!(e.contains("notify.retry_cap"), "{e}");
            let e = load_error(jail, "[notify]\nmax_attempts = 0\n");
            assert!(e.contains("notify.max_attempts"), "{e}");
            // Plain text to a loopback relay is fine; the password never prints.
            jail.create_file(
                "config.toml",
                "[smtp]\nhost = \"127.0.0.1\"\nport = 25\nsecurity = \"none\"\nfrom = \"cinegate <films@example.com>\"\nuser = \"films\"\npassword = \"hunter2\"\n",
            )?;
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!((c.smtp.port, c.smtp.security.as_str()), (25, "none"));
            assert!(!format!("{c:?}").contains("hunter2"));
            Ok(())
        });
    }

    #[test]
    fn metrics_listen_is_validated_by_key() {
        Jail::expect_with(|jail| {
            let e = load_error(
                jail,
                "listen = \"127.0.0.1:9000\"\n[metrics]\nlisten = \"127.0.0.1:9000\"\n",
            );
            assert!(e.contains("metrics.listen"), "{e}");
            let e = load_error(jail, "[metrics]\nlisten = \"nowhere\"\n");
            assert!(e.contains("metrics.listen") || e.contains("listen"), "{e}");
            jail.create_file("config.toml", "")?;
            jail.set_env("CINEGATE_METRICS__LISTEN", "127.0.0.1:9100");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.metrics.listen.map(|a| a.port()), Some(9100));
            Ok(())
        });
    }

    #[test]
    fn push_and_webhook_keys_are_validated_by_name_and_read_from_the_environment() {
        Jail::expect_with(|jail| {
            let e = load_error(jail, "[push.apns]\nteam_id = \"T\"\n");
            assert!(e.contains("push.apns.key_id"), "{e}");
            let e = load_error(
                jail,
                "[push.apns]\nteam_id = \"T\"\nkey_id = \"K\"\ntopic = \"b\"\nbase_url = \"http://apns.example\"\n",
            );
            assert!(e.contains("push.apns.base_url"), "{e}");
            let e = load_error(jail, "[push.fcm]\nproject_id = \"a b\"\n");
            assert!(e.contains("push.fcm.project_id"), "{e}");
            let e = load_error(
                jail,
                "[[webhooks]]\nurl = \"https://h.example\"\nsecret = \"short\"\n",
            );
            assert!(e.contains("webhooks.secret"), "{e}");
            let e = load_error(
                jail,
                "[[webhooks]]\nurl = \"https://h.example\"\nsecret = \"0123456789abcdef\"\nevents = [\"film.published\"]\n",
            );
            assert!(e.contains("webhooks.events"), "{e}");

            jail.create_file("config.toml", "")?;
            jail.set_env(
                "CINEGATE_WEBHOOKS",
                "[{url=\"http://127.0.0.1:9/hook\",secret=\"0123456789abcdef\"}]",
            );
            jail.set_env("CINEGATE_PUSH__APNS__ENVIRONMENT", "development");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.webhooks.len(), 1);
            assert_eq!(c.webhooks[0].events, WEBHOOK_EVENTS.to_vec());
            assert_eq!(c.push.apns.effective_base_url(), APNS_SANDBOX_URL);
            assert!(!format!("{c:?}").contains("0123456789abcdef"));
            assert!(is_loopback_url("http://[::1]:80/x") && is_loopback_url("http://localhost/"));
            assert!(!is_loopback_url("http://127.0.0.1.example.com/"));
            Ok(())
        });
    }

    #[test]
    fn trusted_proxies_from_a_list_or_a_comma_separated_variable() {
        Jail::expect_with(|jail| {
            let e = load_error(jail, "trusted_proxies = [\"10.0.0.0/33\"]\n");
            assert!(e.contains("trusted_proxies"), "{e}");
            let e = load_error(jail, "[limits]\ntoken_failures_per_minute = 0\n");
            assert!(e.contains("limits.token_failures_per_minute"), "{e}");
            let e = load_error(jail, "[limits]\napi_writes_burst = 0\n");
            assert!(e.contains("limits.api_writes_burst"), "{e}");
            let e = load_error(jail, "[playback]\nmax_addresses_per_token = 0\n");
            assert!(e.contains("playback.max_addresses_per_token"), "{e}");
            let e = load_error(jail, "[playback]\naddress_window = \"10s\"\n");
            assert!(e.contains("playback.address_window"), "{e}");
            jail.create_file("config.toml", "trusted_proxies = [\"10.0.0.0/8\"]\n")?;
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.trusted_proxies, ["10.0.0.0/8"]);
            jail.set_env("CINEGATE_TRUSTED_PROXIES", "127.0.0.1/32, ::1");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            let nets = c.trusted_proxy_nets().map_err(|e| e.to_string())?;
            let shown: Vec<String> = nets.iter().map(|n| n.to_string()).collect();
            assert_eq!(shown, ["127.0.0.1/32", "::1/128"]);
            jail.set_env("CINEGATE_TRUSTED_PROXIES", "[\"192.168.0.0/16\"]");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.trusted_proxies, ["192.168.0.0/16"]);
            Ok(())
        });
    }
}
