//! `cinegate runner --origin URL --token T [--work-dir DIR] [--once] [--ca-file PEM]`: packages an
//! origin's queued jobs on this machine (docs/RUNNERS.md). A loop of: lease a job →
//! download its source (resumed with `Range`/`If-Range` after an interruption, checked
//! against the length and SHA-256 the lease gave) → package it with the same
//! `transcoder::package` and the origin's `[transcode]` options → upload every file to
//! the target the origin names for it (skipping what it already has) → complete. A task
//! of its own heartbeats with the progress every third of the lease; a 409 `lease_lost`
//! at any step stops the job and discards it. Ctrl-C or SIGTERM gives the job back
//! (`fail` with `retryable`) and exits.
//!
//! The film secret arrives in the lease answer and stays in memory: it is never written
//! to the work directory.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::runners::UploadTarget;

#[derive(Debug, Args)]
pub struct RunnerArgs {
    /// The origin's base URL (https://films.example.com; plain http only for loopback).
    #[arg(long)]
    pub origin: String,
    /// The runner token the origin's admin issued (or the environment variable
    /// CINEGATE_RUNNER_TOKEN, which keeps it out of the process list).
    #[arg(long)]
    pub token: Option<String>,
    /// Where sources and packages are kept while a job runs (default: a `cinegate-runner`
    /// directory in the system's temporary directory).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Package at most one job, then exit (exit at once when nothing is queued).
    #[arg(long)]
    pub once: bool,
    /// Seconds between lease requests while nothing is queued.
    #[arg(long, default_value_t = 5)]
    pub poll_seconds: u64,
    /// A PEM file of extra roots to trust for the origin's HTTPS (a private CA), besides
    /// the usual web roots.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
}

pub fn run(args: RunnerArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let token = match args.token.clone() {
        Some(t) => t,
        None => std::env::var("CINEGATE_RUNNER_TOKEN")
            .context("no runner token: pass --token or set CINEGATE_RUNNER_TOKEN")?,
    };
    let base = reqwest::Url::parse(&args.origin)
        .with_context(|| format!("--origin {:?} is not a URL", args.origin))?;
    let loopback = matches!(
        base.host_str(),
        Some("127.0.0.1" | "localhost" | "[::1]" | "::1")
    );
    if base.scheme() != "https" && !(base.scheme() == "http" && loopback) {
        bail!("--origin must be https:// (plain http only to a loopback address): the runner token and the film secrets travel on it");
    }
    let work = args
        .work_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("cinegate-runner"));
    create_private_dir(&work)?;
    let mut http = reqwest::Client::builder();
    if let Some(ca) = &args.ca_file {
        let pem =
            std::fs::read(ca).with_context(|| format!("reading --ca-file {}", ca.display()))?;
        let roots = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
            format!("--ca-file {} is not a PEM certificate bundle", ca.display())
        })?;
        if roots.is_empty() {
            bail!("--ca-file {} holds no certificate", ca.display());
        }
        for root in roots {
            http = http.add_root_certificate(root);
        }
    }
    let http = http
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("cinegate-runner/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let origin = Origin { base, token, http };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run_loop(origin, work, args))
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private", dir.display()))?;
    }
    Ok(())
}

/// Set by Ctrl-C or SIGTERM.
fn stop_signal(stop: Arc<AtomicBool>, cancel: Arc<AtomicBool>, wake: Arc<tokio::sync::Notify>) {
    tokio::spawn(async move {
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        tracing::info!("stopping: the job in hand goes back to the origin");
        stop.store(true, Ordering::SeqCst);
        cancel.store(true, Ordering::SeqCst);
        wake.notify_waiters();
    });
}

async fn run_loop(origin: Origin, work: PathBuf, args: RunnerArgs) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let cancel = Arc::new(AtomicBool::new(false));
    let wake = Arc::new(tokio::sync::Notify::new());
    stop_signal(stop.clone(), cancel.clone(), wake.clone());
    tracing::info!(origin = %origin.base, work_dir = %work.display(), "runner started");
    let mut failures = 0u32;
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let grant = match origin.lease().await {
            Ok(g) => {
                failures = 0;
                g
            }
            Err(Call::Refused {
                status,
                code,
                message,
            }) if status == StatusCode::UNAUTHORIZED => {
                bail!("the origin refused the runner token ({code}: {message}); was it revoked?")
            }
            Err(e) => {
                failures += 1;
                let wait = Duration::from_secs((2u64 << failures.min(5)).min(60));
                tracing::warn!(error = %e, retry_in = ?wait, "could not reach the origin");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = wake.notified() => {}
                }
                continue;
            }
        };
        let Some(grant) = grant else {
            if args.once {
                tracing::info!("nothing is queued");
                return Ok(());
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(args.poll_seconds.max(1))) => {}
                _ = wake.notified() => {}
            }
            continue;
        };
        cancel.store(stop.load(Ordering::SeqCst), Ordering::SeqCst);
        let job_id = grant.job_id.clone();
        let end = run_job(&origin, grant, &work, &stop, &cancel).await;
        // The source and package are not kept: the next lease of this job may go to
        // another runner (a crash leaves them; a new lease of the same job resumes the
        // source download from them).
        let _ = std::fs::remove_dir_all(work.join(format!("job-{job_id}")));
        match end {
            Ok(End::Done) => tracing::info!(job = %job_id, "job complete"),
            Ok(End::Lost) => {
                tracing::warn!(job = %job_id, "lease lost: the job was discarded (the origin gave it to another runner, or cancelled it)")
            }
            Ok(End::Stopped) => {
                tracing::info!(job = %job_id, "job given back to the origin");
                return Ok(());
            }
            Ok(End::Failed) => tracing::warn!(job = %job_id, "job failed; reported to the origin"),
            Err(e) => {
                tracing::error!(job = %job_id, error = %format!("{e:#}"), "job abandoned; its lease will lapse and the origin queues it again")
            }
        }
        let _ = std::fs::remove_dir_all(work.join(format!("job-{job_id}")));
        if args.once {
            return Ok(());
        }
    }
}

/// How a job ended on this runner.
enum End {
    Done,
    /// The origin says the lease is gone: the work is discarded.
    Lost,
    /// Stopped by a signal; the job was given back.
    Stopped,
    /// The packager refused or failed; the origin recorded it.
    Failed,
}

#[derive(Deserialize)]
struct Grant {
    job_id: String,
    #[allow(dead_code)]
    film_id: String,
    attempt: u32,
    lease_token: String,
    heartbeat_seconds: u64,
    source: GrantSource,
    film_secret: String,
    transcode: crate::config::TranscodeConfig,
}

#[derive(Deserialize)]
struct GrantSource {
    url: String,
    length: u64,
    sha256: String,
}

#[derive(Deserialize)]
struct Targets {
    targets: Vec<UploadTarget>,
}

/// A call's failure: the origin's refusal (status and code), a lost lease, or no answer.
#[derive(Debug, thiserror::Error)]
enum Call {
    #[error("lease lost")]
    LeaseLost,
    #[error("{status} {code}: {message}")]
    Refused {
        status: StatusCode,
        code: String,
        message: String,
    },
    #[error("{0}")]
    Net(String),
}

impl From<reqwest::Error> for Call {
    fn from(e: reqwest::Error) -> Self {
        // Without the URL: nothing secret is in ours, but keep logs short.
        Call::Net(e.without_url().to_string())
    }
}

struct Origin {
    base: reqwest::Url,
    token: String,
    http: reqwest::Client,
}

impl Origin {
    fn url(&self, path: &str) -> Result<reqwest::Url, Call> {
        self.base
            .join(path)
            .map_err(|e| Call::Net(format!("bad URL {path:?}: {e}")))
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        lease: Option<&str>,
    ) -> Result<reqwest::RequestBuilder, Call> {
        let mut req = self
            .http
            .request(method, self.url(path)?)
            .bearer_auth(&self.token);
        if let Some(lease) = lease {
            req = req.header("Cinegate-Lease", lease);
        }
        Ok(req)
    }

    async fn send(req: reqwest::RequestBuilder) -> Result<reqwest::Response, Call> {
        let res = req.send().await?;
        if res.status().is_success() {
            return Ok(res);
        }
        let status = res.status();
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        let code = body["error"]["code"].as_str().unwrap_or("").to_string();
        if status == StatusCode::CONFLICT && code == "lease_lost" {
            return Err(Call::LeaseLost);
        }
        Err(Call::Refused {
            status,
            message: body["error"]["message"].as_str().unwrap_or("").to_string(),
            code,
        })
    }

    async fn lease(&self) -> Result<Option<Grant>, Call> {
        let res = Self::send(self.request(Method::POST, "/api/v1/runner/lease", None)?).await?;
        if res.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        Ok(Some(res.json().await?))
    }

    async fn post(
        &self,
        job: &Grant,
        what: &str,
        body: serde_json::Value,
    ) -> Result<reqwest::Response, Call> {
        let path = format!("/api/v1/runner/jobs/{}/{what}", job.job_id);
        Self::send(
            self.request(Method::POST, &path, Some(&job.lease_token))?
                .json(&body),
        )
        .await
    }
}

async fn run_job(
    origin: &Origin,
    grant: Grant,
    work: &Path,
    stop: &Arc<AtomicBool>,
    cancel: &Arc<AtomicBool>,
) -> anyhow::Result<End> {
    let span = tracing::info_span!("job", job = %grant.job_id, attempt = grant.attempt);
    let _enter = span.enter();
    tracing::info!("leased a job");
    let dir = work.join(format!("job-{}", grant.job_id));
    create_private_dir(&dir)?;
    let grant = Arc::new(grant);
    let secret = transcoder::FilmSecret::from_hex(&grant.film_secret)
        .map_err(|e| anyhow!("the lease's film secret: {e}"))?;
    // The lease's `[transcode]` through the origin's own parsing: the same options.
    let opts = crate::config::Config {
        transcode: grant.transcode.clone(),
        ..crate::config::Config::default()
    }
    .package_options()
    .map_err(|e| anyhow!("the origin's packaging options: {e}"))?;

    // The heartbeat, from its own task for the whole job: the progress in thousandths.
    let progress = Arc::new(AtomicU64::new(0));
    let lost = Arc::new(AtomicBool::new(false));
    let heartbeat = {
        let (origin_base, token, http) = (
            origin.base.clone(),
            origin.token.clone(),
            origin.http.clone(),
        );
        let (grant, progress, lost, cancel) = (
            grant.clone(),
            progress.clone(),
            lost.clone(),
            cancel.clone(),
        );
        tokio::spawn(async move {
            let origin = Origin {
                base: origin_base,
                token,
                http,
            };
            let every = Duration::from_secs(grant.heartbeat_seconds.max(1));
            loop {
                tokio::time::sleep(every).await;
                let p = progress.load(Ordering::Relaxed) as f64 / 1000.0;
                match origin
                    .post(&grant, "progress", json!({ "progress": p }))
                    .await
                {
                    Ok(_) => {}
                    Err(Call::LeaseLost) => {
                        lost.store(true, Ordering::SeqCst);
                        cancel.store(true, Ordering::SeqCst);
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed; retrying"),
                }
            }
        })
    };
    let outcome = job_steps(
        origin, &grant, &dir, &opts, &secret, &progress, stop, cancel, &lost,
    )
    .await;
    heartbeat.abort();
    match outcome {
        Err(Step::Call(Call::LeaseLost)) => Ok(End::Lost),
        _ if lost.load(Ordering::SeqCst) => Ok(End::Lost),
        Ok(()) => Ok(End::Done),
        Err(Step::Stopped) => {
            let body = json!({ "code": "runner_stopped", "message": "the runner stopped", "retryable": true });
            match origin.post(&grant, "fail", body).await {
                Ok(_) | Err(Call::LeaseLost) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not give the job back; its lease will lapse")
                }
            }
            Ok(End::Stopped)
        }
        Err(Step::Package(e)) => {
            let message = if e.is_input_error() {
                e.to_string()
            } else {
                format!("packaging failed on the runner: {e}")
            };
            let body = json!({ "code": e.code(), "message": message, "retryable": false });
            match origin.post(&grant, "fail", body).await {
                Ok(_) => Ok(End::Failed),
                Err(Call::LeaseLost) => Ok(End::Lost),
                Err(c) => Err(anyhow!("reporting the failure: {c}")),
            }
        }
        Err(Step::Call(c)) => Err(anyhow!("{c}")),
        Err(Step::Other(e)) => Err(e),
    }
}

/// Why the steps of a job stopped.
enum Step {
    Call(Call),
    Stopped,
    Package(transcoder::TranscodeError),
    Other(anyhow::Error),
}

impl From<Call> for Step {
    fn from(c: Call) -> Self {
        Step::Call(c)
    }
}

impl From<anyhow::Error> for Step {
    fn from(e: anyhow::Error) -> Self {
        Step::Other(e)
    }
}

#[allow(clippy::too_many_arguments)]
async fn job_steps(
    origin: &Origin,
    grant: &Arc<Grant>,
    dir: &Path,
    opts: &transcoder::PackageOptions,
    secret: &transcoder::FilmSecret,
    progress: &Arc<AtomicU64>,
    stop: &Arc<AtomicBool>,
    cancel: &Arc<AtomicBool>,
    lost: &Arc<AtomicBool>,
) -> Result<(), Step> {
    let check = || -> Result<(), Step> {
        if lost.load(Ordering::SeqCst) {
            return Err(Step::Call(Call::LeaseLost));
        }
        if stop.load(Ordering::SeqCst) {
            return Err(Step::Stopped);
        }
        Ok(())
    };
    let source = dir.join("source");
    download(origin, grant, dir, &source, &check).await?;
    check()?;

    // Package, off the runtime, with the origin's options.
    let out = dir.join("pkg");
    if out.exists() {
        std::fs::remove_dir_all(&out).context("removing an earlier package")?;
    }
    let bar = super::packaging_bar(std::io::stderr().is_terminal());
    tracing::info!("packaging");
    let packaged = {
        let (source, out, opts, secret) =
            (source.clone(), out.clone(), opts.clone(), secret.clone());
        let (progress, cancel, bar) = (progress.clone(), cancel.clone(), bar.clone());
        tokio::task::spawn_blocking(move || {
            let mut logged = 0u64;
            let mut on_progress = |f: f64| {
                let thousandths = (f.clamp(0.0, 1.0) * 1000.0) as u64;
                progress.store(thousandths, Ordering::Relaxed);
                bar.set_position(thousandths);
                // Plain lines when there is no bar: every 10%.
                if bar.is_hidden() && thousandths / 100 > logged {
                    logged = thousandths / 100;
                    tracing::info!(percent = logged * 10, "packaging");
                }
            };
            transcoder::package(&source, &out, &opts, &secret, &mut on_progress, &cancel)
        })
        .await
        .map_err(|e| Step::Other(anyhow!("the packager panicked: {e}")))?
    };
    bar.finish_and_clear();
    match packaged {
        Ok(_) => {}
        Err(transcoder::TranscodeError::Cancelled) => {
            check()?;
            return Err(Step::Stopped);
        }
        Err(e) => return Err(Step::Package(e)),
    }
    check()?;
    progress.store(1000, Ordering::Relaxed);

    // Upload what the origin does not have yet, where it says.
    let files = crate::runners::lease::list_files(&out);
    let targets: Targets = origin
        .post(grant, "uploads", json!({ "files": files }))
        .await?
        .json()
        .await
        .map_err(Call::from)?;
    let todo: Vec<&UploadTarget> = targets.targets.iter().filter(|t| !t.present).collect();
    tracing::info!(
        files = files.len(),
        sending = todo.len(),
        "uploading the package"
    );
    for target in todo {
        check()?;
        upload(origin, grant, &out, target).await?;
    }
    check()?;
    origin
        .post(grant, "complete", json!({ "files": files }))
        .await?;
    Ok(())
}

/// One file to its target, retried a few times when the network fails.
async fn upload(
    origin: &Origin,
    grant: &Grant,
    out: &Path,
    target: &UploadTarget,
) -> Result<(), Step> {
    let rel = crate::runners::lease::check_path(&target.path)
        .map_err(|e| Step::Other(anyhow!("the origin named a bad path: {e}")))?;
    let bytes = tokio::fs::read(out.join(rel))
        .await
        .with_context(|| format!("reading {}", target.path))?;
    let method = Method::from_bytes(target.method.as_bytes())
        .map_err(|_| Step::Other(anyhow!("the origin named method {:?}", target.method)))?;
    let mut tries = 0;
    loop {
        tries += 1;
        let mut req = if target.origin_credentials {
            origin.request(method.clone(), &target.url, Some(&grant.lease_token))?
        } else {
            // A third party's URL (a presigned object-store PUT): no credentials of ours.
            let url = reqwest::Url::parse(&target.url)
                .map_err(|e| Step::Other(anyhow!("bad upload URL: {e}")))?;
            origin.http.request(method.clone(), url)
        };
        for (k, v) in &target.headers {
            req = req.header(k, v);
        }
        match Origin::send(req.body(bytes.clone())).await {
            Ok(_) => return Ok(()),
            Err(Call::Net(e)) if tries < 4 => {
                tracing::warn!(file = %target.path, error = %e, "upload failed; retrying");
                tokio::time::sleep(Duration::from_secs(tries)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The source into `dir/source`: resumed from `source.part` with `Range` and `If-Range`
/// (the ETag kept in `source.etag`), then checked against the lease's length and SHA-256.
async fn download(
    origin: &Origin,
    grant: &Grant,
    dir: &Path,
    source: &Path,
    check: &dyn Fn() -> Result<(), Step>,
) -> Result<(), Step> {
    if source.exists() {
        if verify(source, grant.source.length, &grant.source.sha256).await? {
            return Ok(());
        }
        std::fs::remove_file(source).context("removing a stale source")?;
    }
    let part = dir.join("source.part");
    let etag_file = dir.join("source.etag");
    let mut tries = 0u32;
    loop {
        check()?;
        tries += 1;
        match fetch(origin, grant, &part, &etag_file, check).await {
            Ok(()) => break,
            Err(Step::Call(Call::Net(e))) if tries < 6 => {
                tracing::warn!(error = %e, "source download interrupted; resuming");
                tokio::time::sleep(Duration::from_secs(u64::from(tries))).await;
            }
            Err(e) => return Err(e),
        }
    }
    if !verify(&part, grant.source.length, &grant.source.sha256).await? {
        let _ = std::fs::remove_file(&part);
        return Err(Step::Other(anyhow!(
            "the downloaded source is not the one the lease describes (length or SHA-256 differ)"
        )));
    }
    std::fs::rename(&part, source).context("renaming the source into place")?;
    Ok(())
}

async fn fetch(
    origin: &Origin,
    grant: &Grant,
    part: &Path,
    etag_file: &Path,
    check: &dyn Fn() -> Result<(), Step>,
) -> Result<(), Step> {
    use tokio::io::AsyncWriteExt;
    let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let etag = std::fs::read_to_string(etag_file).ok();
    if have == grant.source.length && have > 0 {
        return Ok(());
    }
    let mut req = origin.request(Method::GET, &grant.source.url, Some(&grant.lease_token))?;
    let resuming = have > 0 && have < grant.source.length && etag.is_some();
    if resuming {
        req = req
            .header("Range", format!("bytes={have}-"))
            .header("If-Range", etag.clone().unwrap_or_default());
    }
    let mut res = Origin::send(req).await?;
    let append = res.status() == StatusCode::PARTIAL_CONTENT;
    if resuming && append {
        tracing::info!(from = have, "resuming the source download");
    }
    if let Some(tag) = res.headers().get("etag").and_then(|v| v.to_str().ok()) {
        std::fs::write(etag_file, tag).context("keeping the source's ETag")?;
    }
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(part)
        .await
        .context("opening source.part")?;
    while let Some(chunk) = res.chunk().await.map_err(Call::from)? {
        file.write_all(&chunk)
            .await
            .context("writing source.part")?;
        check()?;
    }
    file.sync_all().await.context("syncing source.part")?;
    Ok(())
}

/// Whether `file` has the length and SHA-256 the lease gave (read off the runtime).
async fn verify(file: &Path, length: u64, sha256: &str) -> Result<bool, Step> {
    let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    if len != length {
        return Ok(false);
    }
    let file = file.to_path_buf();
    let hash = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        let mut f = std::fs::File::open(&file).context("opening the source")?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut f, &mut hasher).context("hashing the source")?;
        Ok(hex::encode(hasher.finalize()))
    })
    .await
    .map_err(|e| Step::Other(anyhow!("hashing the source: {e}")))??;
    Ok(hash == sha256)
}
