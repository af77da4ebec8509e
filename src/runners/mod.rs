//! Remote packaging runners (issue 20): runner tokens (issue, list, revoke), and the
//! origin's side of the runner protocol — lease a queued job from the one queue the local
//! worker also claims from, heartbeat it, name where each file of the package goes, take
//! the uploads into a staging directory of the attempt, check the finished package and
//! record it through `JobQueue::record_package` (exactly as a local package is), or record
//! the failure. docs/RUNNERS.md describes the protocol.
//!
//! Every job call is fenced by the lease token: the job must be running under a lease
//! whose token hash matches and which has not lapsed, or the answer is `LeaseLost`. A
//! runner presumed dead (its lease swept, the job leased again) therefore cannot upload
//! into, or complete, the job any more.

pub mod lease;
pub mod tokens;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use uuid::Uuid;

use crate::config::{Config, TranscodeConfig};
use crate::jobs::JobQueue;
use crate::store::films::StoredCopy;
use crate::store::jobs::{Job, JobFailure, JobState, LeaseOwner};
use crate::store::runners::Runner;
use crate::store::{Store, StoreError};

pub use lease::{DeclaredFile, SourceInfo, UploadTarget};

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The runner token is unknown (never issued, or revoked).
    #[error("the runner token is not valid (revoked or never issued)")]
    Unauthorized,
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The lease token does not match the job's current lease, or the lease lapsed.
    #[error("this runner no longer holds the job's lease (it lapsed or the job was leased again, cancelled or finished)")]
    LeaseLost,
    #[error("{0}")]
    InvalidPath(String),
    /// The package the runner says is complete is not (a file missing, a size off, …).
    #[error("{0}")]
    Incomplete(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretsError),
    #[error(transparent)]
    NoSpace(#[from] crate::disk::LowSpace),
    #[error(transparent)]
    Job(#[from] crate::jobs::JobError),
}

pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunnerError {
    let context = context.into();
    move |source| RunnerError::Io { context, source }
}

/// What a runner gets when it takes a job: everything it needs to package it, once.
pub struct Grant {
    pub job: Job,
    pub attempt: u32,
    /// The fencing token (only its hash is stored).
    pub lease_token: String,
    pub lease_expires_at: i64,
    pub lease_ttl_seconds: u64,
    pub source: SourceInfo,
    /// The film secret the packager encrypts with, hex. Only here, only for this job.
    pub secret_hex: String,
    /// The origin's `[transcode]`: the runner packages with exactly these options.
    pub transcode: TranscodeConfig,
}

/// A runner as the admin sees it, with the job it holds now.
pub struct RunnerStatus {
    pub runner: Runner,
    pub job: Option<Job>,
}

/// The runner rules over this server's store, queue and configuration, at `now`.
pub struct Runners<'a> {
    store: &'a Store,
    jobs: &'a Arc<JobQueue>,
    config: &'a Config,
    now: i64,
}

impl<'a> Runners<'a> {
    pub fn new(store: &'a Store, jobs: &'a Arc<JobQueue>, config: &'a Config, now: i64) -> Self {
        Self {
            store,
            jobs,
            config,
            now,
        }
    }

    // --- tokens (admin) ---

    /// Issues a runner token for `name`: the record and the token, which is shown once.
    pub fn issue(&self, name: &str) -> Result<(Runner, String), RunnerError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(RunnerError::InvalidInput(
                "name must be 1–100 characters, without control characters".into(),
            ));
        }
        let token = tokens::new_runner_token();
        let hash = tokens::hash(&token);
        let runner = Runner {
            id: crate::store::new_id(),
            name: name.to_string(),
            token_hash: hex::encode(hash),
            created_at: self.now,
            last_seen_at: None,
        };
        self.store.insert_runner(&runner, &hash)?;
        tracing::info!(runner = %runner.id, name = %runner.name, "runner token issued");
        Ok((runner, token))
    }

    /// Every runner, oldest first, each with the job it holds now. Reads the running
    /// jobs (few) rather than every job.
    pub fn list(&self) -> Result<Vec<RunnerStatus>, RunnerError> {
        let mut held = std::collections::HashMap::new();
        for id in self.store.job_ids_in(JobState::Running)? {
            if let Ok(Some(job)) = self.store.job(&id) {
                if let Some(runner) = job.lease.as_ref().and_then(|l| l.runner()) {
                    held.insert(runner, job);
                }
            }
        }
        Ok(self
            .store
            .runners()?
            .into_iter()
            .map(|runner| RunnerStatus {
                job: held.remove(&runner.id),
                runner,
            })
            .collect())
    }

    /// Revokes a runner: its token answers 401 from now on, and the job it holds goes back
    /// to the queue at once (its lease cleared, so nothing it still sends is taken).
    /// Returns the jobs re-queued; `NotFound` for an unknown runner.
    pub fn revoke(&self, id: &Uuid) -> Result<Vec<Job>, RunnerError> {
        if !self.store.delete_runner(id)? {
            return Err(RunnerError::NotFound("runner"));
        }
        let requeued = self.jobs.requeue_leases(|l| l.runner() == Some(*id))?;
        for job in &requeued {
            self.drop_staging(job);
        }
        tracing::info!(runner = %id, requeued = requeued.len(), "runner token revoked");
        Ok(requeued)
    }

    // --- the runner protocol ---

    /// The runner a bearer token belongs to.
    pub fn authenticate(&self, token: &str) -> Result<Runner, RunnerError> {
        if !token.starts_with(tokens::RUNNER_PREFIX) {
            return Err(RunnerError::Unauthorized);
        }
        self.store
            .runner_by_token(&tokens::hash(token))?
            .ok_or(RunnerError::Unauthorized)
    }

    /// Notes that the runner was heard from (lease, heartbeat, completion); at most one
    /// write every few seconds per runner, however often an idle runner polls.
    fn seen(&self, runner: &Runner) {
        if runner.last_seen_at.is_some_and(|t| self.now - t < 5) {
            return;
        }
        if let Err(e) = self.store.touch_runner(&runner.id, self.now) {
            tracing::warn!(runner = %runner.id, error = %e, "could not note the runner's last contact");
        }
    }

    fn ttl(&self) -> i64 {
        i64::try_from(self.config.runners.lease_ttl.as_secs()).unwrap_or(60)
    }

    /// Takes the oldest queued job for `runner`, or `None` when nothing is queued.
    /// Blocking (it may hash the source the first time): call it off the runtime.
    pub fn lease(&self, runner: &Runner) -> Result<Option<Grant>, RunnerError> {
        self.seen(runner);
        let token = tokens::new_lease_token();
        let expires = self.now + self.ttl();
        let Some(job) = self.jobs.claim(
            LeaseOwner::Runner(runner.id),
            tokens::hash_hex(&token),
            expires,
        )?
        else {
            return Ok(None);
        };
        let attempt = job
            .lease
            .as_ref()
            .map(|l| l.attempt)
            .unwrap_or(job.attempts);
        let prepared = (|| -> Result<(SourceInfo, String), RunnerError> {
            let source = lease::source_info(&self.source_path(&job))?;
            let secret = crate::secrets::film_secret(&self.config.keys_dir, &job.film_id)?;
            Ok((source, secret.to_hex()))
        })();
        let (source, secret_hex) = match prepared {
            Ok(p) => p,
            Err(e) => {
                // The job cannot be handed out (its source is gone): it fails here, as
                // it would on the local worker, rather than going round the queue.
                tracing::warn!(job = %job.id, error = %e, "could not prepare a leased job");
                self.end(
                    &job.id,
                    JobState::Failed,
                    Some(failure(
                        "io",
                        "the origin could not read the job's source; see its log",
                    )),
                )?;
                return Err(e);
            }
        };
        tracing::info!(job = %job.id, film = %job.film_id, runner = %runner.id, attempt, "job leased to a runner");
        Ok(Some(Grant {
            attempt,
            lease_token: token,
            lease_expires_at: expires,
            lease_ttl_seconds: self.config.runners.lease_ttl.as_secs(),
            source,
            secret_hex,
            transcode: self.config.transcode.clone(),
            job,
        }))
    }

    /// The job, if `runner` holds its current lease with `lease_token` and it has not
    /// lapsed; `LeaseLost` otherwise (`NotFound` for no such job).
    pub fn leased(
        &self,
        runner: &Runner,
        job_id: &Uuid,
        lease_token: &str,
    ) -> Result<Job, RunnerError> {
        let job = self
            .store
            .job(job_id)?
            .ok_or(RunnerError::NotFound("job"))?;
        if holds(&job, runner, lease_token, self.now) {
            Ok(job)
        } else {
            Err(RunnerError::LeaseLost)
        }
    }

    /// The source file of a job, for a runner holding its lease.
    pub fn source_path(&self, job: &Job) -> PathBuf {
        self.config.uploads_dir().join(&job.source)
    }

    /// A heartbeat with the runner's progress: extends the lease by `runners.lease_ttl`.
    /// Returns the new expiry.
    pub fn heartbeat(
        &self,
        runner: &Runner,
        job_id: &Uuid,
        lease_token: &str,
        progress: f64,
    ) -> Result<i64, RunnerError> {
        if !(0.0..=1.0).contains(&progress) {
            return Err(RunnerError::InvalidInput(
                "progress must be between 0 and 1".into(),
            ));
        }
        self.seen(runner);
        let expires = self.now + self.ttl();
        let mut held = false;
        self.store
            .change_job(job_id, |j| {
                held = holds(j, runner, lease_token, self.now);
                if !held {
                    return false;
                }
                if let Some(l) = j.lease.as_mut() {
                    l.expires_at = expires;
                }
                j.progress = (progress * 1000.0).round() / 1000.0;
                j.updated_at = self.now;
                true
            })?
            .ok_or(RunnerError::NotFound("job"))?;
        if !held {
            return Err(RunnerError::LeaseLost);
        }
        Ok(expires)
    }

    /// The staging directory of a job's attempt: `films/{film}/pkg-{job}-a{attempt}.part`.
    fn staging_dir(&self, job: &Job, attempt: u32) -> PathBuf {
        crate::ingest::film_dir(self.config, &job.film_id)
            .join(format!("{}.part", package_name(job, attempt)))
    }

    fn attempt_of(job: &Job) -> u32 {
        job.lease
            .as_ref()
            .map(|l| l.attempt)
            .unwrap_or(job.attempts)
    }

    /// Where each declared file of the package goes, and whether the origin already has
    /// it at the declared size (a restarted upload sends only the others).
    pub fn upload_targets(
        &self,
        runner: &Runner,
        job_id: &Uuid,
        lease_token: &str,
        files: &[DeclaredFile],
    ) -> Result<Vec<UploadTarget>, RunnerError> {
        let job = self.leased(runner, job_id, lease_token)?;
        let attempt = Self::attempt_of(&job);
        let storage = self.jobs.storage();
        if storage.is_remote() {
            return self.bucket_targets(&job, attempt, files);
        }
        let staging = self.staging_dir(&job, attempt);
        files
            .iter()
            .map(|f| {
                let rel = lease::check_path(&f.path)?;
                let present = std::fs::metadata(staging.join(&rel))
                    .map(|m| m.is_file() && m.len() == f.size)
                    .unwrap_or(false);
                Ok(upload_target(&job, attempt, &f.path, present))
            })
            .collect()
    }

    /// `[storage] mode = "s3"`: each file goes straight to the bucket, under the attempt's
    /// own package prefix (`films/{film}/pkg-{job}-a{n}/`, which nothing names until
    /// `complete` has checked every object), by a presigned PUT: runners hold no bucket
    /// credentials, and a runner presumed dead can only write into its own attempt's
    /// prefix. What the bucket already holds at the declared size is `present` (one
    /// listing), so a restarted upload sends only the rest.
    fn bucket_targets(
        &self,
        job: &Job,
        attempt: u32,
        files: &[DeclaredFile],
    ) -> Result<Vec<UploadTarget>, RunnerError> {
        let storage = self.jobs.storage();
        let prefix = storage.package_key(&job.film_id, &package_name(job, attempt));
        let have = self.bucket_listing(&prefix)?;
        let mut keys = Vec::with_capacity(files.len());
        for f in files {
            // Checked like an upload to the origin; the key uses the declared `/` form.
            lease::check_path(&f.path)?;
            keys.push(format!("{prefix}{}", f.path));
        }
        // Long enough for the whole upload of a long film on a slow link, and no longer:
        // the URL is a bearer right to write that object.
        let ttl = (self.config.runners.lease_ttl * 60).max(std::time::Duration::from_secs(3600));
        let urls = crate::jobs::block_on(storage.presign_as(reqwest::Method::PUT, &keys, ttl))?
            .map_err(crate::jobs::JobError::from)?;
        Ok(files
            .iter()
            .zip(urls)
            .map(|(f, url)| UploadTarget {
                path: f.path.clone(),
                present: have.get(&f.path) == Some(&f.size),
                method: "PUT".into(),
                url,
                headers: crate::storage::Storage::object_headers(&f.path),
                origin_credentials: false,
            })
            .collect())
    }

    /// The objects under `prefix` (a package's), by path relative to it, with their sizes.
    fn bucket_listing(&self, prefix: &str) -> Result<BTreeMap<String, u64>, RunnerError> {
        let listed = crate::jobs::block_on(self.jobs.storage().list(prefix))?
            .map_err(crate::jobs::JobError::from)?;
        Ok(listed
            .into_iter()
            .filter_map(|(key, size)| Some((key.strip_prefix(prefix)?.to_string(), size)))
            .collect())
    }

    /// Checks an upload of `path` for the job's attempt and names where its bytes go:
    /// the caller writes them to `tmp`, then `lease::Upload::commit`s.
    pub fn begin_upload(
        &self,
        runner: &Runner,
        job_id: &Uuid,
        lease_token: &str,
        path: &str,
        length: Option<u64>,
    ) -> Result<lease::Upload, RunnerError> {
        let rel = lease::check_path(path)?;
        let job = self.leased(runner, job_id, lease_token)?;
        if let Some(n) = length {
            if n > lease::MAX_FILE_BYTES {
                return Err(RunnerError::InvalidInput(format!(
                    "a package file is at most {} bytes",
                    lease::MAX_FILE_BYTES
                )));
            }
            crate::disk::ensure_room(self.config, n)?;
        }
        let staging = self.staging_dir(&job, Self::attempt_of(&job));
        lease::Upload::new(&staging, &rel)
    }

    /// What the origin holds of the attempt's upload so far (path, size).
    pub fn uploaded(
        &self,
        runner: &Runner,
        job_id: &Uuid,
        lease_token: &str,
    ) -> Result<Vec<DeclaredFile>, RunnerError> {
        let job = self.leased(runner, job_id, lease_token)?;
        Ok(lease::list_files(
            &self.staging_dir(&job, Self::attempt_of(&job)),
        ))
    }

    /// The runner says the package is uploaded. The origin checks every file (each
    /// declared one present at its declared size, nothing else there, the manifest read
    /// and every file it names present), moves the staging directory into place as
    /// `pkg-{job}-a{attempt}`, records it through `JobQueue::record_package` and marks
    /// the job ready. Nothing is published unless all of that held.
    pub fn complete(
        &self,
        runner: &Runner,
        job_id: &Uuid,
        lease_token: &str,
        files: &[DeclaredFile],
    ) -> Result<Job, RunnerError> {
        self.seen(runner);
        let job = self.leased(runner, job_id, lease_token)?;
        let attempt = Self::attempt_of(&job);
        let name = package_name(&job, attempt);
        let dir = crate::ingest::film_dir(self.config, &job.film_id).join(&name);
        let (manifest, stored) = if self.jobs.storage().is_remote() {
            self.check_bucket_package(&job, &name, &dir, files)?
        } else {
            let staging = self.staging_dir(&job, attempt);
            let manifest = lease::check_package(&staging, files)?;
            if dir.exists() {
                let _ = std::fs::remove_dir_all(&dir);
            }
            std::fs::rename(&staging, &dir).map_err(io("moving the package into place"))?;
            lease::sync_dir(dir.parent());
            (manifest, None)
        };
        // Fenced once more, now that the package is in place: a lease lost meanwhile
        // (revoked, cancelled) leaves the package unrecorded and removed.
        if let Err(e) = self.leased(runner, job_id, lease_token) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        let bytes = files.iter().map(|f| f.size).sum();
        let in_bucket = stored.is_some();
        if !self
            .jobs
            .record_package(&job.film_id, &name, &manifest, bytes, stored)?
        {
            // The film was deleted while the runner packaged it.
            let _ = std::fs::remove_dir_all(&dir);
            self.end(job_id, JobState::Cancelled, None)?;
            return Err(RunnerError::NotFound("film"));
        }
        let done = self.end(job_id, JobState::Ready, None)?;
        self.count(&job, "done");
        self.drop_staging(&job);
        if in_bucket {
            // Earlier attempts' objects (a runner that died mid-upload) belong to nothing.
            for earlier in 1..attempt {
                let name = package_name(&job, earlier);
                let _ =
                    crate::jobs::block_on(self.jobs.storage().delete_package(&job.film_id, &name));
            }
        }
        crate::events::record(
            self.store,
            self.now,
            crate::events::Event::PackagingFinished {
                film: job.film_id,
                job: job.id,
            },
        );
        tracing::info!(job = %job.id, film = %job.film_id, runner = %runner.id, attempt, "package from a runner recorded");
        Ok(done)
    }

    /// The runner gives the job up. `retryable` (the runner is stopping, its disk is full,
    /// …): the job goes back to the queue. Otherwise it fails with the runner's code and
    /// message, recorded like a local failure (the console shows them, an event is logged).
    pub fn fail(
        &self,
        runner: &Runner,
        job_id: &Uuid,
        lease_token: &str,
        code: &str,
        message: &str,
        retryable: bool,
    ) -> Result<Job, RunnerError> {
        let code_ok = !code.is_empty()
            && code.len() <= 64
            && code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !code_ok {
            return Err(RunnerError::InvalidInput(
                "code must be 1–64 characters of a-z, 0-9 and _".into(),
            ));
        }
        let message: String = message
            .chars()
            .filter(|c| !c.is_control())
            .take(500)
            .collect();
        self.seen(runner);
        let job = self.leased(runner, job_id, lease_token)?;
        self.drop_staging(&job);
        if retryable {
            tracing::info!(job = %job.id, runner = %runner.id, code, "a runner gave a job back");
            return self.end(job_id, JobState::Queued, None);
        }
        tracing::warn!(job = %job.id, runner = %runner.id, code, message = %message, "packaging failed on a runner");
        let done = self.end(job_id, JobState::Failed, Some(failure(code, &message)))?;
        self.count(&job, "failed");
        crate::events::record(
            self.store,
            self.now,
            crate::events::Event::PackagingFailed {
                film: job.film_id,
                job: job.id,
                code: code.to_string(),
                message,
            },
        );
        Ok(done)
    }

    /// The run's time since the lease was taken, into `job_duration_seconds`.
    fn count(&self, job: &Job, outcome: &'static str) {
        if let Some(l) = job.lease.as_ref().filter(|l| l.taken_at > 0) {
            self.jobs
                .count_finished(outcome, (self.now - l.taken_at).max(0) as f64);
        }
    }

    /// Ends a job's run (its lease cleared). A queued job wakes the local worker.
    fn end(
        &self,
        id: &Uuid,
        state: JobState,
        error: Option<JobFailure>,
    ) -> Result<Job, RunnerError> {
        let job = self
            .store
            .update_job(id, |j| {
                j.state = state;
                j.progress = match state {
                    JobState::Ready => 1.0,
                    JobState::Queued => 0.0,
                    _ => j.progress,
                };
                j.lease = None;
                j.error = error.clone();
                j.updated_at = self.now;
            })?
            .ok_or(RunnerError::NotFound("job"))?;
        if state == JobState::Queued {
            self.jobs.notify();
        }
        Ok(job)
    }

    /// Removes the staging directories of every attempt of a job (a lapsed runner's
    /// uploads, or what a finished attempt left).
    /// `complete` with the package in the bucket: every declared object there at its size
    /// (one listing of the attempt's prefix), nothing undeclared, and the manifest — fetched
    /// with the poster into `dir` on the origin, which renders playlists and the catalogue
    /// from them — naming only what is there.
    fn check_bucket_package(
        &self,
        job: &Job,
        name: &str,
        dir: &Path,
        files: &[DeclaredFile],
    ) -> Result<(transcoder::Manifest, Option<StoredCopy>), RunnerError> {
        let storage = self.jobs.storage();
        let prefix = storage.package_key(&job.film_id, name);
        let have = self.bucket_listing(&prefix)?;
        if !have.contains_key(transcoder::MANIFEST_FILE) {
            return Err(RunnerError::Incomplete(format!(
                "{} was not uploaded",
                transcoder::MANIFEST_FILE
            )));
        }
        if dir.exists() {
            let _ = std::fs::remove_dir_all(dir);
        }
        std::fs::create_dir_all(dir).map_err(io("creating the package directory"))?;
        let fetch = |file: &str| -> Result<(), RunnerError> {
            crate::jobs::block_on(storage.fetch_to(&format!("{prefix}{file}"), &dir.join(file)))?
                .map_err(crate::jobs::JobError::from)?;
            Ok(())
        };
        let checked = fetch(transcoder::MANIFEST_FILE)
            .and_then(|()| lease::check_listing(files, &have, dir))
            .and_then(|manifest| {
                if !manifest.poster.is_empty() {
                    fetch(&manifest.poster)?;
                }
                Ok(manifest)
            });
        let manifest = match checked {
            Ok(manifest) => manifest,
            Err(e) => {
                let _ = std::fs::remove_dir_all(dir);
                return Err(e);
            }
        };
        let stored = StoredCopy {
            stored_at: self.now,
            objects: have.len(),
            bytes: have.values().sum(),
        };
        Ok((manifest, Some(stored)))
    }

    fn drop_staging(&self, job: &Job) {
        let film = crate::ingest::film_dir(self.config, &job.film_id);
        let prefix = format!("pkg-{}-a", job.id);
        let Ok(entries) = std::fs::read_dir(&film) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) && name.ends_with(".part") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// The lease sweep: jobs whose runner stopped heartbeating go back to the queue, and
    /// what their attempts uploaded is removed.
    pub fn sweep(&self) -> Result<Vec<Job>, RunnerError> {
        let requeued = self.jobs.sweep_leases(self.now)?;
        for job in &requeued {
            tracing::warn!(job = %job.id, film = %job.film_id, "a runner's lease lapsed; the job is queued again");
            self.drop_staging(job);
        }
        Ok(requeued)
    }
}

/// At start-up: removes the staging directories (`films/*/pkg-{job}-a{n}.part`) of runner
/// attempts that can no longer complete — the job is not running under a runner's lease
/// any more (it lapsed while the server was down, was re-queued, finished or is gone).
/// A live lease's directory is kept: its runner may still be uploading. Blocking.
pub fn remove_orphan_staging(config: &Config, store: &Store, now: i64) {
    for (name, path) in crate::ingest::film_entries(config) {
        let Some(rest) = name
            .strip_prefix("pkg-")
            .and_then(|r| r.strip_suffix(".part"))
        else {
            continue;
        };
        let Some((job, attempt)) = rest.rsplit_once("-a") else {
            continue;
        };
        let live = crate::store::parse_id(job)
            .and_then(|id| store.job(&id).ok().flatten())
            .is_some_and(|j| {
                j.state == JobState::Running
                    && j.lease.as_ref().is_some_and(|l| {
                        l.is_live_runner_lease(now) && attempt == l.attempt.to_string()
                    })
            });
        if !live {
            tracing::info!(dir = %path.display(), "removing a runner's unfinished upload");
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// Whether `runner` holds `job`'s lease with `lease_token`, unexpired at `now`.
fn holds(job: &Job, runner: &Runner, lease_token: &str, now: i64) -> bool {
    job.state == JobState::Running
        && job.lease.as_ref().is_some_and(|l| {
            l.owner == LeaseOwner::Runner(runner.id)
                && l.expires_at > now
                && tokens::matches(lease_token, &l.token_hash)
        })
}

/// The package directory a runner's attempt becomes: `pkg-{job}-a{attempt}`.
fn package_name(job: &Job, attempt: u32) -> String {
    format!("pkg-{}-a{attempt}", job.id)
}

/// Where a runner uploads one file of a job's attempt with the package on the origin's
/// disk: the origin's own `PUT /api/v1/runner/jobs/{job}/files/{path}` (relative to the
/// origin; the runner sends its runner token and lease token with it: `origin_credentials`),
/// which stages it under `films/{film}/pkg-{job}-a{attempt}.part/` (the attempt read from the
/// lease there). With `[storage] mode = "s3"`, `Runners::upload_targets` names presigned
/// bucket PUTs instead (`bucket_targets`).
pub fn upload_target(job: &Job, _attempt: u32, path: &str, present: bool) -> UploadTarget {
    UploadTarget {
        path: path.to_string(),
        present,
        method: "PUT".into(),
        url: format!("/api/v1/runner/jobs/{}/files/{path}", job.id),
        headers: Vec::new(),
        origin_credentials: true,
    }
}

fn failure(code: &str, message: &str) -> JobFailure {
    JobFailure {
        code: code.to_string(),
        message: message.to_string(),
    }
}

/// Runs the lease sweep every third of `runners.lease_ttl` (at least every second) until
/// the process ends; off the runtime's threads.
pub async fn sweep_periodically(
    store: Store,
    jobs: Arc<JobQueue>,
    config: Arc<Config>,
    clock: Arc<dyn crate::clock::Clock>,
) {
    let every = (config.runners.lease_ttl / 3).max(std::time::Duration::from_secs(1));
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let (store, jobs, config, now) = (store.clone(), jobs.clone(), config.clone(), clock.now());
        let swept =
            tokio::task::spawn_blocking(move || Runners::new(&store, &jobs, &config, now).sweep())
                .await;
        match swept {
            Ok(Err(e)) => tracing::error!(error = %e, "the lease sweep failed"),
            Err(e) => tracing::error!(error = %e, "the lease sweep panicked"),
            Ok(Ok(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::jobs::Lease;

    /// Start-up keeps the staging directory of a live runner lease's attempt and removes
    /// every other attempt's (a lapsed lease, an older attempt, a job gone).
    #[test]
    fn start_up_removes_only_staging_no_live_lease_can_complete(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let root = tempfile::tempdir()?;
        let config = Config {
            media_dir: root.path().join("media"),
            ..Config::default()
        };
        let store = Store::temporary()?;
        let film = crate::store::new_id();
        let runner = crate::store::new_id();
        let job = |expires_at: i64, attempt: u32| Job {
            id: crate::store::new_id(),
            film_id: film,
            source: "f/source".into(),
            state: JobState::Running,
            progress: 0.5,
            error: None,
            attempts: attempt,
            created_at: 1,
            updated_at: 1,
            lease: Some(Lease {
                owner: LeaseOwner::Runner(runner),
                token_hash: "00".into(),
                expires_at,
                attempt,
                taken_at: 1,
            }),
        };
        let (live, lapsed) = (job(200, 2), job(50, 1));
        store.save_job(&live)?;
        store.save_job(&lapsed)?;
        let dir = crate::ingest::film_dir(&config, &film);
        let names = [
            format!("pkg-{}-a2.part", live.id),
            format!("pkg-{}-a1.part", live.id),
            format!("pkg-{}-a1.part", lapsed.id),
            format!("pkg-{}-a1.part", crate::store::new_id()),
            format!("pkg-{}-a2", live.id),
        ];
        for n in &names {
            std::fs::create_dir_all(dir.join(n))?;
        }
        remove_orphan_staging(&config, &store, 100);
        let left: Vec<bool> = names.iter().map(|n| dir.join(n).exists()).collect();
        assert_eq!(left, [true, false, false, false, true]);
        Ok(())
    }
}
