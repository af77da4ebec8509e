//! The doctor's network probes: each configured provider endpoint is reached as the server
//! would reach it. An `https` URL gets a `HEAD` (DNS, TCP, TLS with the same rustls and
//! roots as the server; any HTTP answer counts, even 404); SMTP a TCP connection (its TLS
//! depends on `smtp.security` and a greeting; the connection is what fails in practice).

use std::time::Duration;

use futures_util::future::join_all;

use crate::config::Config;

/// Where a provider is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Http(String),
    Tcp(String, u16),
}

/// A provider's endpoint, named for the output (`paypal`) and for the fix (the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub key: String,
    pub endpoint: Endpoint,
}

/// What a probe found: `error` is why it could not connect; `date` the answer's `Date`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub name: String,
    pub key: String,
    pub target: String,
    pub error: Option<String>,
    pub date: Option<jiff::Timestamp>,
}

/// The endpoints of what is configured (each provider is on when its id is set, as the
/// server decides); nothing for what is off.
pub fn provider_endpoints(config: &Config) -> Vec<Target> {
    let mut out = Vec::new();
    let mut http = |on: bool, name: &str, key: &str, url: &str| {
        if on {
            out.push(Target {
                name: name.into(),
                key: key.into(),
                endpoint: Endpoint::Http(url.into()),
            });
        }
    };
    let a = &config.auth;
    http(
        !a.google.client_id.is_empty(),
        "google",
        "auth.google.token_url",
        &a.google.token_url,
    );
    http(
        !a.apple.client_id.is_empty(),
        "apple",
        "auth.apple.token_url",
        &a.apple.token_url,
    );
    http(
        !a.facebook.app_id.is_empty(),
        "facebook",
        "auth.facebook.graph_url",
        &a.facebook.graph_url,
    );
    let p = &config.payments;
    http(
        !p.paypal.client_id.is_empty(),
        "paypal",
        "payments.paypal.api_url",
        &p.paypal.api_url,
    );
    http(
        !p.kakaopay.cid.is_empty(),
        "kakaopay",
        "payments.kakaopay.api_url",
        &p.kakaopay.api_url,
    );
    http(
        !p.naverpay.client_id.is_empty(),
        "naverpay",
        "payments.naverpay.api_url",
        &p.naverpay.api_url,
    );
    http(
        !config.push.fcm.project_id.is_empty(),
        "fcm",
        "push.fcm.base_url",
        &config.push.fcm.base_url,
    );
    http(
        !config.push.apns.team_id.is_empty(),
        "apns",
        "push.apns.base_url",
        &config.push.apns.base_url,
    );
    for (i, hook) in config.webhooks.iter().enumerate() {
        http(
            true,
            &format!("webhook {}", i + 1),
            &format!("webhooks[{i}].url"),
            &hook.url,
        );
    }
    if !config.smtp.host.is_empty() {
        out.push(Target {
            name: "smtp".into(),
            key: "smtp.host / smtp.port".into(),
            endpoint: Endpoint::Tcp(config.smtp.host.clone(), config.smtp.port),
        });
    }
    out
}

/// Probes every target concurrently, each within `timeout`.
pub fn probe_all(targets: &[Target], timeout: Duration) -> Vec<Probe> {
    if targets.is_empty() {
        return Vec::new();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return targets.iter().map(|t| failed(t, e.to_string())).collect(),
    };
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => return targets.iter().map(|t| failed(t, e.to_string())).collect(),
    };
    runtime.block_on(join_all(targets.iter().map(|t| probe(&client, t, timeout))))
}

fn failed(t: &Target, error: String) -> Probe {
    Probe {
        name: t.name.clone(),
        key: t.key.clone(),
        target: shown(&t.endpoint),
        error: Some(error),
        date: None,
    }
}

fn shown(e: &Endpoint) -> String {
    match e {
        // Scheme, host and port only: a webhook URL's path or query can be its secret.
        Endpoint::Http(url) => match reqwest::Url::parse(url) {
            Ok(u) => format!(
                "{}://{}{}",
                u.scheme(),
                u.host_str().unwrap_or(""),
                u.port().map(|p| format!(":{p}")).unwrap_or_default()
            ),
            Err(_) => "(not a URL)".into(),
        },
        Endpoint::Tcp(host, port) => format!("{host}:{port}"),
    }
}

async fn probe(client: &reqwest::Client, t: &Target, timeout: Duration) -> Probe {
    let mut out = failed(t, String::new());
    out.error = match &t.endpoint {
        Endpoint::Http(url) => match client.head(url).send().await {
            Ok(answer) => {
                out.date = answer
                    .headers()
                    .get(reqwest::header::DATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| {
                        jiff::fmt::rfc2822::DateTimeParser::new()
                            .parse_timestamp(v)
                            .ok()
                    });
                None
            }
            // The chain of causes: "connection refused", "dns error: …", "invalid peer
            // certificate: …" are in the sources, not the top line.
            Err(e) => Some(causes(&e.without_url())),
        },
        Endpoint::Tcp(host, port) => {
            match tokio::time::timeout(
                timeout,
                tokio::net::TcpStream::connect((host.as_str(), *port)),
            )
            .await
            {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!("no connection within {timeout:?}")),
            }
        }
    };
    out
}

fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
