//! HTTPS: the certificate the TLS listener serves, swapped in place while it runs.
//!
//! [`TlsState`] is rustls's certificate resolver: every handshake takes the current
//! [`CertifiedKey`], so a reload or a renewal is one pointer swap and needs no restart and
//! no new listener. `mode = "files"` reloads the PEM files on SIGHUP and when their
//! modification times change ([`watch_files`]); `mode = "acme"` is `server::acme`. A new
//! certificate that cannot be used (unreadable, unparsable, key not matching) is refused:
//! the old one stays, the log and the failure counter say why, and `/healthz` shows it.
//!
//! The one rustls crypto provider of the binary is ring: [`provider`] builds the server
//! config from it, and `startup` installs it as the process default so nothing else can
//! pick another.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::config::{Config, TlsMode};
use crate::telemetry::{DomainLabels, Telemetry};

/// What a certificate that could not be used went wrong with.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("the certificate: {0}")]
    Certificate(String),
    #[error("ACME: {0}")]
    Acme(String),
}

/// What `/healthz` and the console show of the served certificate.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TlsStatus {
    /// `off`, `files` or `acme`.
    pub mode: &'static str,
    /// The DNS names of the served certificate (or, before ACME issued one, the names
    /// ordered).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
    /// When the served certificate became valid (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<i64>,
    /// When the served certificate expires (Unix seconds); none before one is loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<i64>,
    /// Its serial number (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// The last failed reload, order or renewal, cleared by the next success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When that failure happened (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<i64>,
}

/// The served certificate and the state around it, shared by the TLS listener, the
/// reload/renewal task, the HTTP-01 route and `/healthz`.
pub struct TlsState {
    current: RwLock<Option<Arc<CertifiedKey>>>,
    status: Mutex<TlsStatus>,
    /// HTTP-01: token → key authorization, while an order is pending.
    challenges: RwLock<HashMap<String, String>>,
    telemetry: Arc<Telemetry>,
}

impl std::fmt::Debug for TlsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsState(…)")
    }
}

/// A certificate chain and its key, read and checked.
pub struct Loaded {
    pub key: Arc<CertifiedKey>,
    pub domains: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
    pub serial: String,
}

fn mode_name(mode: TlsMode) -> &'static str {
    match mode {
        TlsMode::Off => "off",
        TlsMode::Files => "files",
        TlsMode::Acme => "acme",
    }
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The crypto provider of every rustls config in the binary.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsState {
    pub fn new(config: &Config, telemetry: Arc<Telemetry>) -> Self {
        let domains = match config.tls.mode {
            TlsMode::Acme => config.tls_domains(),
            _ => Vec::new(),
        };
        Self {
            current: RwLock::new(None),
            status: Mutex::new(TlsStatus {
                mode: mode_name(config.tls.mode),
                domains,
                ..TlsStatus::default()
            }),
            challenges: RwLock::new(HashMap::new()),
            telemetry,
        }
    }

    pub fn status(&self) -> TlsStatus {
        self.status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Serves `loaded` from the next handshake on.
    pub fn install(&self, loaded: Loaded) {
        match self.current.write() {
            Ok(mut c) => *c = Some(loaded.key),
            Err(p) => *p.into_inner() = Some(loaded.key),
        }
        for domain in &loaded.domains {
            self.telemetry
                .certificate_expiry
                .get_or_create(&DomainLabels {
                    domain: domain.clone(),
                })
                .set(loaded.not_after as f64);
        }
        tracing::info!(
            domains = ?loaded.domains,
            not_after = loaded.not_after,
            serial = %loaded.serial,
            "TLS certificate loaded"
        );
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        status.domains = loaded.domains;
        status.not_before = Some(loaded.not_before);
        status.not_after = Some(loaded.not_after);
        status.serial = Some(loaded.serial);
        status.last_error = None;
        status.last_error_at = None;
    }

    /// A reload, order or renewal failed: the served certificate stays.
    pub fn failed(&self, error: &TlsError) {
        tracing::error!(error = %error, "TLS certificate not updated; the served one stays");
        self.telemetry.certificate_failures.inc();
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        status.last_error = Some(error.to_string());
        status.last_error_at = Some(unix_now());
    }

    pub fn not_after(&self) -> Option<i64> {
        self.status().not_after
    }

    pub fn not_before(&self) -> Option<i64> {
        self.status().not_before
    }

    pub fn has_certificate(&self) -> bool {
        self.current.read().map(|c| c.is_some()).unwrap_or(false)
    }

    pub fn set_challenge(&self, token: String, key_authorization: String) {
        if let Ok(mut c) = self.challenges.write() {
            c.insert(token, key_authorization);
        }
    }

    pub fn clear_challenges(&self) {
        if let Ok(mut c) = self.challenges.write() {
            c.clear();
        }
    }

    /// The key authorization for an HTTP-01 token of a pending order.
    pub fn challenge(&self, token: &str) -> Option<String> {
        self.challenges.read().ok()?.get(token).cloned()
    }

    /// The rustls config of the HTTPS listener: ring, TLS 1.2 and 1.3, HTTP/1.1, and
    /// this state as the certificate resolver.
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Certificate(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl ResolvesServerCert for TlsState {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok()?.clone()
    }
}

/// Reads a PEM certificate chain and its key, checks that they belong together, and
/// reads the leaf's names, notAfter and serial.
pub fn load_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Loaded, TlsError> {
    let bad = |m: String| TlsError::Certificate(m);
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("the certificate PEM cannot be read: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(bad("the certificate file holds no certificate".into()));
    };
    let (domains, not_before, not_after, serial) = describe(leaf)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| bad(format!("the key PEM cannot be read: {e}")))?;
    let key = CertifiedKey::from_der(chain, key, &provider())
        .map_err(|e| bad(format!("the key does not fit the certificate: {e}")))?;
    Ok(Loaded {
        key: Arc::new(key),
        domains,
        not_before,
        not_after,
        serial,
    })
}

/// The DNS names (subjectAltName), notBefore and notAfter (Unix seconds) and serial (hex)
/// of `der`.
fn describe(der: &CertificateDer<'_>) -> Result<(Vec<String>, i64, i64, String), TlsError> {
    use x509_cert::der::Decode;
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::SubjectAltName;
    let cert = x509_cert::Certificate::from_der(der.as_ref())
        .map_err(|e| TlsError::Certificate(format!("not an X.509 certificate: {e}")))?;
    let tbs = &cert.tbs_certificate;
    let not_before = tbs.validity.not_before.to_unix_duration().as_secs() as i64;
    let not_after = tbs.validity.not_after.to_unix_duration().as_secs() as i64;
    let serial = hex::encode(tbs.serial_number.as_bytes());
    let mut domains = Vec::new();
    if let Ok(Some((_, san))) = tbs.get::<SubjectAltName>() {
        for name in san.0 {
            if let GeneralName::DnsName(n) = name {
                domains.push(n.to_string());
            }
        }
    }
    Ok((domains, not_before, not_after, serial))
}

/// Reads the `files` pair from disk.
pub fn load_files(cert: &Path, key: &Path) -> Result<Loaded, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| TlsError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    };
    let (cert_pem, key_pem) = (read(cert)?, read(key)?);
    load_pem(&cert_pem, &key_pem).map_err(|e| TlsError::File {
        path: cert.to_path_buf(),
        message: e.to_string(),
    })
}

fn mtimes(paths: &[&Path]) -> Vec<Option<SystemTime>> {
    paths
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// `mode = "files"`: reloads the pair on SIGHUP and when a modification time changes
/// (checked every `tls.reload_interval`). Runs until the server stops.
pub async fn watch_files(
    state: Arc<TlsState>,
    config: Arc<Config>,
    mut hup: Option<tokio::signal::unix::Signal>,
) {
    let cert = config.tls_path(&config.tls.cert_file);
    let key = config.tls_path(&config.tls.key_file);
    let mut seen = mtimes(&[&cert, &key]);
    if hup.is_none() {
        tracing::warn!("no SIGHUP handler: TLS files reload on change only");
    }
    let mut tick = tokio::time::interval(config.tls.reload_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let signalled = tokio::select! {
            _ = tick.tick() => false,
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
        };
        let now = mtimes(&[&cert, &key]);
        if !signalled && now == seen {
            continue;
        }
        seen = now;
        // A certificate and its key are rarely replaced in one step: a moment for the
        // second file, so the pair is read whole.
        if !signalled {
            tokio::time::sleep(Duration::from_millis(200)).await;
            seen = mtimes(&[&cert, &key]);
        }
        let (c, k) = (cert.clone(), key.clone());
        match tokio::task::spawn_blocking(move || load_files(&c, &k)).await {
            Ok(Ok(loaded)) => state.install(loaded),
            Ok(Err(e)) => state.failed(&e),
            Err(e) => state.failed(&TlsError::Certificate(format!("reload panicked: {e}"))),
        }
    }
}

/// SIGHUP caught from now on: registered while the server is built, before it says it
/// listens, so a `systemctl reload` (or a test) right after start never meets the
/// signal's default action, which ends the process. `None` if it cannot be caught.
pub fn catch_hangup() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .inspect_err(|e| tracing::warn!(error = %e, "SIGHUP cannot be caught"))
        .ok()
}

/// Every mode but `files`: SIGHUP (`systemctl reload`) has nothing to reload, and its
/// default action would end the process, so it is caught and said in the log.
pub async fn ignore_hangup(mode: &'static str, hup: Option<tokio::signal::unix::Signal>) {
    let Some(mut hup) = hup else {
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!(tls.mode = mode, "SIGHUP: nothing to reload");
    }
}

/// Where the plain listener sends its requests when TLS is on.
pub struct Redirect {
    /// The HTTPS listener's port (left out of the URL when 443).
    pub https_port: u16,
    /// The host of `public_url`, for a request without a usable `Host`.
    pub fallback_host: String,
}

/// 308 to the same host, path and query over HTTPS (308 keeps the method and body).
pub async fn redirect(req: HttpRequest, to: web::Data<Redirect>) -> HttpResponse {
    let host = req
        .headers()
        .get(actix_web::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(host_of)
        .unwrap_or(&to.fallback_host);
    let port = match to.https_port {
        443 => String::new(),
        p => format!(":{p}"),
    };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    HttpResponse::PermanentRedirect()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("https://{host}{port}{path}"),
        ))
        .finish()
}

/// The host of a `Host` header without its port; `None` unless it is a plain DNS name,
/// IPv4 or bracketed IPv6 address (nothing a client could smuggle into `Location`).
fn host_of(header: &str) -> Option<&str> {
    let host = if header.starts_with('[') {
        &header[..=header.find(']')?]
    } else {
        header.split(':').next()?
    };
    let ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    ok.then_some(host)
}

/// `GET /.well-known/acme-challenge/{token}`: the key authorization of a pending HTTP-01
/// challenge, 404 for any other token.
pub async fn challenge(token: web::Path<String>, tls: web::Data<TlsState>) -> HttpResponse {
    match tls.challenge(&token) {
        Some(answer) => HttpResponse::Ok()
            .content_type("application/octet-stream")
            .body(answer),
        None => HttpResponse::NotFound().finish(),
    }
}

/// Writes `bytes` to `path` owner-only (0600): a temporary file, fsync, rename, so a
/// crash leaves the old file or the new one.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    // The rename itself survives a crash once the directory is synced.
    match path.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redirect_host_is_the_requests_without_its_port() {
        assert_eq!(host_of("films.example:80"), Some("films.example"));
        assert_eq!(host_of("films.example"), Some("films.example"));
        assert_eq!(host_of("[::1]:8080"), Some("[::1]"));
        assert_eq!(host_of("evil.example/path"), None);
        assert_eq!(host_of(""), None);
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        let e = load_pem(b"not pem", b"not pem")
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("holds no certificate")),
            "{e:?}"
        );
    }
}
