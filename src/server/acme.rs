//! `tls.mode = "acme"`: certificates from an ACME CA (instant-acme, HTTP-01), renewed in
//! the background and swapped into [`TlsState`] without a restart.
//!
//! The account key and the certificate live in `keys_dir/acme/` (0700; files 0600,
//! written whole): `account.json` (the directory it belongs to and its credentials),
//! `cert.pem`, `key.pem` and `order.json` (the directory and names the certificate was
//! ordered for). A restart serves the cached certificate and orders a new one only when
//! it is due, or when the directory or the names changed. A certificate is renewed once
//! `tls.renew_after` of its validity has passed; a failed order is logged, counted, shown
//! in `/healthz` and retried after 10 s, doubling up to an hour.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType,
    HttpClient, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};

use super::tls::{load_pem, unix_now, write_private, TlsError, TlsState};
use crate::config::Config;

/// instant-acme's HTTP client: the binary's reqwest (rustls with ring), trusting the web
/// roots plus `tls.acme_root_file`'s, instead of its own hyper stack.
struct Client(reqwest::Client);

impl HttpClient for Client {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>>
    {
        let client = self.0.clone();
        Box::pin(async move {
            let other = |e: Box<dyn std::error::Error + Send + Sync>| instant_acme::Error::Other(e);
            let (parts, body) = req.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let url = parts.uri.to_string();
            let response = client
                .request(parts.method, url)
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| other(Box::new(e)))?;
            let mut builder = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let bytes = response.bytes().await.map_err(|e| other(Box::new(e)))?;
            let response = builder
                .body(http_body_util::Full::new(bytes))
                .map_err(instant_acme::Error::Http)?;
            Ok(BytesResponse::from(response))
        })
    }
}

fn acme_err(what: &str) -> impl Fn(instant_acme::Error) -> TlsError + '_ {
    move |e| TlsError::Acme(format!("{what}: {e}"))
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> TlsError + '_ {
    move |e| TlsError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: AccountCredentials,
}

#[derive(serde::Serialize, serde::Deserialize, PartialEq)]
struct StoredOrder {
    directory: String,
    domains: Vec<String>,
}

/// Where the ACME files live.
struct Cache {
    dir: PathBuf,
}

impl Cache {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), TlsError> {
        let path = self.path(name);
        write_private(&path, bytes).map_err(io_err(&path))
    }
}

/// The HTTP client for the directory: web roots plus the operator's extra roots.
fn client(config: &Config) -> Result<reqwest::Client, TlsError> {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("cinegate/", env!("CARGO_PKG_VERSION")));
    if !config.tls.acme_root_file.as_os_str().is_empty() {
        let path = config.tls_path(&config.tls.acme_root_file);
        let pem = std::fs::read(&path).map_err(io_err(&path))?;
        let roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| TlsError::File {
            path: path.clone(),
            message: format!("tls.acme_root_file: {e}"),
        })?;
        for root in roots {
            builder = builder.add_root_certificate(root);
        }
    }
    builder
        .build()
        .map_err(|e| TlsError::Acme(format!("HTTP client: {e}")))
}

/// Runs until the server stops: serves the cached certificate if it is still right, and
/// orders and renews.
pub async fn run(state: Arc<TlsState>, config: Arc<Config>) {
    let cache = Cache {
        dir: config.keys_dir.join("acme"),
    };
    if let Err(e) = crate::secrets::ensure_private_dir(&cache.dir) {
        state.failed(&TlsError::Acme(format!("{}: {e}", cache.dir.display())));
    }
    let wanted = StoredOrder {
        directory: config.tls.acme_directory.clone(),
        domains: config.tls_domains(),
    };
    if let Some(loaded) = cached(&cache, &wanted) {
        state.install(loaded);
    }
    let mut backoff = Duration::from_secs(10);
    loop {
        let wait = due_in(&state, &config);
        if !wait.is_zero() {
            tracing::info!(seconds = wait.as_secs(), "next ACME renewal check");
            tokio::time::sleep(wait).await;
            continue;
        }
        match order(&state, &config, &cache, &wanted).await {
            Ok(()) => backoff = Duration::from_secs(10),
            Err(e) => {
                state.clear_challenges();
                state.failed(&e);
                tracing::info!(seconds = backoff.as_secs(), "retrying the ACME order");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(3600));
            }
        }
    }
}

/// How long until the served certificate is due for renewal (zero: now). The validity
/// starts at notBefore; the check wakes at least daily.
fn due_in(state: &TlsState, config: &Config) -> Duration {
    let (Some(not_before), Some(not_after)) = (state.not_before(), state.not_after()) else {
        return Duration::ZERO;
    };
    let lifetime = (not_after - not_before).max(0) as f64;
    let due = not_before + (lifetime * config.tls.renew_after) as i64;
    let left = due - unix_now();
    if left <= 0 {
        Duration::ZERO
    } else {
        Duration::from_secs(left as u64).min(Duration::from_secs(86_400))
    }
}

/// The cached certificate, if it was ordered from this directory for these names and
/// can be read.
fn cached(cache: &Cache, wanted: &StoredOrder) -> Option<super::tls::Loaded> {
    let meta: StoredOrder =
        serde_json::from_slice(&std::fs::read(cache.path("order.json")).ok()?).ok()?;
    if &meta != wanted {
        tracing::info!(
            "the cached ACME certificate is for other names or another CA; ordering a new one"
        );
        return None;
    }
    let cert = std::fs::read(cache.path("cert.pem")).ok()?;
    let key = std::fs::read(cache.path("key.pem")).ok()?;
    load_pem(&cert, &key)
        .inspect_err(|e| tracing::warn!(error = %e, "the cached ACME certificate cannot be used"))
        .ok()
}

/// The account for this directory: the cached one, or a new one (then cached).
async fn account(config: &Config, cache: &Cache) -> Result<Account, TlsError> {
    let http =
        || -> Result<Box<dyn HttpClient>, TlsError> { Ok(Box::new(Client(client(config)?))) };
    let directory = &config.tls.acme_directory;
    let path = cache.path("account.json");
    if let Ok(bytes) = std::fs::read(&path) {
        match serde_json::from_slice::<StoredAccount>(&bytes) {
            Ok(stored) if &stored.directory == directory => {
                return Account::builder_with_http(http()?)
                    .from_credentials(stored.credentials)
                    .await
                    .map_err(acme_err("restoring the account"));
            }
            Ok(_) => tracing::info!("the cached ACME account is another CA's; creating one"),
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "unreadable ACME account; creating one")
            }
        }
    }
    let contact: Vec<&str> = config.tls.acme_contact.iter().map(String::as_str).collect();
    let (account, credentials) = Account::builder_with_http(http()?)
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            directory.clone(),
            None,
        )
        .await
        .map_err(acme_err("creating the account"))?;
    let stored = StoredAccount {
        directory: directory.clone(),
        credentials,
    };
    let json = serde_json::to_vec(&stored).map_err(|e| TlsError::Acme(e.to_string()))?;
    cache.write("account.json", &json)?;
    tracing::info!(account = account.id(), "ACME account created");
    Ok(account)
}

/// One order: HTTP-01 for every name, finalize, fetch, cache, serve.
async fn order(
    state: &TlsState,
    config: &Config,
    cache: &Cache,
    wanted: &StoredOrder,
) -> Result<(), TlsError> {
    tracing::info!(domains = ?wanted.domains, directory = %wanted.directory, "ordering a certificate");
    let account = account(config, cache).await?;
    let identifiers: Vec<Identifier> = wanted
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(acme_err("new order"))?;
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(acme_err("authorization"))?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => {
                return Err(TlsError::Acme(format!(
                    "authorization is {other:?}, not pending"
                )))
            }
        }
        let mut challenge = authz
            .challenge(ChallengeType::Http01)
            .ok_or_else(|| TlsError::Acme("the CA offers no http-01 challenge".into()))?;
        state.set_challenge(
            challenge.token.clone(),
            challenge.key_authorization().as_str().to_owned(),
        );
        challenge
            .set_ready()
            .await
            .map_err(acme_err("challenge ready"))?;
    }
    let retries = RetryPolicy::new().timeout(Duration::from_secs(90));
    let status = order
        .poll_ready(&retries)
        .await
        .map_err(acme_err("waiting for validation"))?;
    if status != OrderStatus::Ready {
        let detail = order
            .state()
            .error
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default();
        return Err(TlsError::Acme(format!(
            "the order is {status:?}, not ready {detail}"
        )));
    }
    let key_pem = order.finalize().await.map_err(acme_err("finalize"))?;
    let cert_pem = order
        .poll_certificate(&retries)
        .await
        .map_err(acme_err("fetching the certificate"))?;
    state.clear_challenges();
    let loaded = load_pem(cert_pem.as_bytes(), key_pem.as_bytes())?;
    cache.write("key.pem", key_pem.as_bytes())?;
    cache.write("cert.pem", cert_pem.as_bytes())?;
    let meta = serde_json::to_vec(wanted).map_err(|e| TlsError::Acme(e.to_string()))?;
    cache.write("order.json", &meta)?;
    state.install(loaded);
    Ok(())
}
