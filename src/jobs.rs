//! The packaging queue: persisted jobs (see `store::jobs`) run on a bounded pool of
//! blocking threads, off the async runtime. Each job runs inside its own spawned task, so
//! a panic fails that job and nothing else. Progress is written to the store at most
//! once per percent; cancellation is cooperative through the packager's flag.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use uuid::Uuid;

use crate::clock::Clock;
use crate::config::Config;
use crate::ingest;
use crate::storage::Storage;
use crate::store::films::{PackageSummary, StoredCopy};
use crate::store::jobs::{Job, JobFailure, JobState, Lease, LeaseOwner};
use crate::store::{Store, StoreError};
use crate::stream::playlists::PlaybackCache;

/// Why a packaging job failed: the packager's own error, or the server's around it (the
/// film's secret, recording the finished package), kept typed for the log.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Package(#[from] transcoder::TranscodeError),
    #[error("loading the film secret: {0}")]
    Secret(#[from] crate::secrets::SecretsError),
    #[error("recording the package: {0}")]
    Record(StoreError),
    /// Refused before starting: packaging would bring the media file system below
    /// `disk.min_free_bytes`. Nothing was written.
    #[error(transparent)]
    NoSpace(#[from] crate::disk::LowSpace),
    /// The package could not be published to the bucket (`[storage]`); it stays on disk
    /// and a retry resumes the upload without packaging again.
    #[error("publishing to the bucket: {0}")]
    Storage(#[from] crate::storage::StorageError),
}

impl JobError {
    /// The stable code a failed job records (`io` for the server's own faults, as before
    /// they had a type).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Package(e) => e.code(),
            Self::Secret(_) | Self::Record(_) => "io",
            Self::NoSpace(_) => "insufficient_storage",
            Self::Storage(_) => "storage_unavailable",
        }
    }

    /// Whether the source film is at fault (the admin is told why), not the server.
    pub fn is_input_error(&self) -> bool {
        matches!(self, Self::Package(e) if e.is_input_error())
    }
}

pub struct JobQueue {
    store: Store,
    config: Arc<Config>,
    cache: Arc<PlaybackCache>,
    /// The time jobs and packages are stamped with.
    clock: Arc<dyn Clock>,
    wake: Notify,
    running: Mutex<HashMap<Uuid, Arc<AtomicBool>>>,
    shutting_down: AtomicBool,
    /// Serialises claiming so two workers never take the same job.
    claim: Mutex<()>,
    /// Where job run times are counted (`job_duration_seconds`).
    telemetry: Arc<crate::telemetry::Telemetry>,
    /// Where finished packages are published (`[storage]`).
    storage: Arc<Storage>,
}

impl JobQueue {
    pub fn new(
        store: Store,
        config: Arc<Config>,
        cache: Arc<PlaybackCache>,
        clock: Arc<dyn Clock>,
        telemetry: Arc<crate::telemetry::Telemetry>,
        storage: Arc<Storage>,
    ) -> Arc<Self> {
        Arc::new(Self {
            storage,
            store,
            config,
            cache,
            clock,
            telemetry,
            wake: Notify::new(),
            running: Mutex::new(HashMap::new()),
            shutting_down: AtomicBool::new(false),
            claim: Mutex::new(()),
        })
    }

    /// Starts the workers; jobs left running by a crash were re-queued by the caller.
    pub fn start(self: &Arc<Self>) {
        for _ in 0..self.config.transcode.workers {
            let queue = self.clone();
            tokio::spawn(async move { queue.worker().await });
        }
        if self.storage.is_remote() && !self.storage.keep_local() {
            let queue = self.clone();
            tokio::spawn(async move {
                loop {
                    let sweep = queue.clone();
                    let _ = tokio::task::spawn_blocking(move || sweep.sweep_moved_copies()).await;
                    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                }
            });
        }
    }

    /// `cinegate storage migrate`: publishes every package still served from the origin's
    /// disk to the bucket, then flips its record (one write per film) so new playlists
    /// name the bucket. Playlists fetched before the flip name the origin, whose segment
    /// files stay until `sweep_moved_copies` finds every token of that time expired, so a
    /// viewer watching through the move is not interrupted. A film repackaged meanwhile
    /// keeps its new package; a film that fails is reported and left local (run it
    /// again: uploads resume). Blocking.
    pub fn move_to_bucket(&self) -> Result<MoveReport, JobError> {
        if !self.storage.is_remote() {
            return Err(JobError::Storage(crate::storage::StorageError::Bucket {
                key: "storage.mode",
                message:
                    "there is no bucket to move packages to; set [storage] mode = \"s3\" first"
                        .into(),
            }));
        }
        let mut report = MoveReport::default();
        for film in self.store.films().map_err(JobError::Record)? {
            let Some(package) = film.package.as_ref().filter(|p| p.stored.is_none()) else {
                continue;
            };
            let dir = ingest::film_dir(&self.config, &film.id).join(&package.dir);
            let published = match block_on(self.storage.publish(&film.id, &package.dir, &dir))? {
                Ok(published) => published,
                Err(e) => {
                    tracing::warn!(film = %film.id, error = %e, "storage migrate: film left local");
                    report.failed.push(format!("{}: {e}", film.id));
                    continue;
                }
            };
            let now = self.clock.now();
            let mut flipped = false;
            self.store
                .update_film(&film.id, |f| {
                    if let Some(p) = f.package.as_mut().filter(|p| p.dir == package.dir) {
                        p.stored = Some(StoredCopy {
                            stored_at: now,
                            objects: published.objects,
                            bytes: published.bytes,
                        });
                        flipped = true;
                    }
                })
                .map_err(JobError::Record)?;
            self.cache.invalidate(&film.id);
            if flipped {
                report.films += 1;
                report.objects += published.objects;
                report.bytes += published.bytes;
                tracing::info!(film = %film.id, objects = published.objects, bytes = published.bytes, "storage migrate: film moved to the bucket");
            } else {
                // Repackaged or deleted while it was copied: the copy is nobody's.
                let _ = block_on(self.storage.delete_package(&film.id, &package.dir));
            }
        }
        Ok(report)
    }

    /// Removes the local segment files of packages the bucket holds (`keep_local = false`)
    /// once no playlist naming them can still be played: a playback token lives
    /// `playback.token_ttl`, and the last one issued before the bucket copy was confirmed
    /// expires that long after it. Run every minute; the number of packages cleared.
    pub fn sweep_moved_copies(&self) -> usize {
        let Ok(films) = self.store.films() else {
            return 0;
        };
        let grace = self.config.playback.token_ttl.as_secs() as i64;
        let now = self.clock.now();
        let mut cleared = 0;
        for film in films {
            let Some(package) = film.package else {
                continue;
            };
            let Some(stored) = package.stored else {
                continue;
            };
            if now < stored.stored_at + grace {
                continue;
            }
            let dir = ingest::film_dir(&self.config, &film.id).join(&package.dir);
            let has_segments = std::fs::read_dir(&dir)
                .map(|mut d| d.any(|e| e.is_ok_and(|e| e.path().is_dir())))
                .unwrap_or(false);
            if has_segments {
                remove_segment_files(&dir);
                cleared += 1;
                tracing::info!(film = %film.id, "local segment files removed: the bucket serves them");
            }
        }
        cleared
    }

    /// Where packages are published (`[storage]`): runners' packages go there too.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub fn notify(&self) {
        self.wake.notify_waiters();
        self.wake.notify_one();
    }

    async fn worker(self: Arc<Self>) {
        loop {
            if self.shutting_down.load(Ordering::Relaxed) {
                return;
            }
            match self.claim_next() {
                Ok(Some(job)) => {
                    let queue = self.clone();
                    let id = job.id;
                    let outcome = tokio::task::spawn_blocking(move || queue.run(job)).await;
                    if let Err(e) = outcome {
                        tracing::error!(job = %id, error = %e, "a packaging job panicked");
                        let _ = self.finish(
                            &id,
                            JobState::Failed,
                            Some(failure("internal", "the packager crashed; retry the job")),
                        );
                    }
                    self.running
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&id);
                }
                Ok(None) => {
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not read the job queue");
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                }
            }
        }
    }

    /// Claims the oldest queued job for the local worker, from the head of the store's
    /// queued index (no scan of the other jobs). Its lease never expires: a crash
    /// re-queues it at start-up.
    pub fn claim_next(&self) -> Result<Option<Job>, StoreError> {
        self.claim(LeaseOwner::Local, String::new(), 0)
    }

    /// Claims the oldest queued job for `owner` (the local worker or a remote runner) from
    /// the one queued index: both take jobs the same way. The job is `Running` under a new
    /// lease (attempt = its attempts counted, token hash, expiry; a runner's lapses unless
    /// heartbeated, see `sweep_leases`).
    pub fn claim(
        &self,
        owner: LeaseOwner,
        token_hash: String,
        expires_at: i64,
    ) -> Result<Option<Job>, StoreError> {
        let _guard = self.claim.lock().unwrap_or_else(|p| p.into_inner());
        let local = owner == LeaseOwner::Local;
        for id in self.store.job_ids_in(JobState::Queued)? {
            if local {
                let flag = Arc::new(AtomicBool::new(false));
                self.running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, flag);
            }
            // Claimed only if still queued when written: a cancel may have come since the
            // index was read, and a cancelled job must not run.
            let claimed = self.store.change_job(&id, |j| {
                if j.state != JobState::Queued {
                    return false;
                }
                j.state = JobState::Running;
                j.progress = 0.0;
                j.error = None;
                j.attempts += 1;
                j.lease = Some(Lease {
                    owner,
                    token_hash: token_hash.clone(),
                    expires_at,
                    attempt: j.attempts,
                    taken_at: self.clock.now(),
                });
                j.updated_at = self.clock.now();
                true
            });
            match claimed {
                Ok(Some(j))
                    if j.state == JobState::Running
                        && j.lease
                            .as_ref()
                            .is_some_and(|l| l.owner == owner && l.token_hash == token_hash) =>
                {
                    return Ok(Some(j))
                }
                outcome => {
                    if local {
                        self.running
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&id);
                    }
                    match outcome {
                        // One unreadable record (logged at start-up) must not stop the
                        // whole queue.
                        Err(e @ StoreError::Corrupt { .. }) => {
                            tracing::debug!(error = %e, "queue: skipped an unreadable job record");
                        }
                        other => {
                            other?;
                        }
                    }
                }
            }
        }
        Ok(None)
    }

    /// Puts back in the queue every running job whose lease `lapsed` says is gone (the
    /// runner's lease expired, or its runner was revoked): the lease cleared, so the
    /// lapsed holder's token answers `lease_lost` from now on; the next claim counts a new
    /// attempt. The local worker's jobs are never touched here. Returns the jobs re-queued.
    pub fn requeue_leases(&self, lapsed: impl Fn(&Lease) -> bool) -> Result<Vec<Job>, StoreError> {
        let mut requeued = Vec::new();
        for id in self.store.job_ids_in(JobState::Running)? {
            let outcome = self.store.change_job(&id, |j| {
                let gone = j.state == JobState::Running
                    && j.lease
                        .as_ref()
                        .is_some_and(|l| l.owner != LeaseOwner::Local && lapsed(l));
                if !gone {
                    return false;
                }
                j.state = JobState::Queued;
                j.progress = 0.0;
                j.lease = None;
                j.updated_at = self.clock.now();
                true
            });
            match outcome {
                Ok(Some(j)) if j.state == JobState::Queued => requeued.push(j),
                Ok(_) => {}
                Err(e @ StoreError::Corrupt { .. }) => {
                    tracing::debug!(error = %e, "lease sweep: skipped an unreadable job record");
                }
                Err(e) => return Err(e),
            }
        }
        if !requeued.is_empty() {
            self.notify();
        }
        Ok(requeued)
    }

    /// Counts a job run that ended elsewhere (a remote runner's) in `job_duration_seconds`,
    /// as the local worker's runs are.
    pub fn count_finished(&self, outcome: &'static str, seconds: f64) {
        self.telemetry.job_finished(outcome, seconds);
    }

    /// The lease sweep: jobs whose runner stopped heartbeating by `now` go back to the
    /// queue.
    pub fn sweep_leases(&self, now: i64) -> Result<Vec<Job>, StoreError> {
        self.requeue_leases(|l| l.expires_at <= now)
    }

    /// Runs one claimed job to its end (blocking).
    pub fn run(&self, job: Job) {
        let span = tracing::info_span!("package", job = %job.id, film = %job.film_id);
        let _enter = span.enter();
        tracing::info!("packaging started");
        let started = std::time::Instant::now();
        let cancel = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&job.id)
            .cloned()
            .unwrap_or_default();
        let result = self.package(&job, &cancel);
        // Run time by how it ended; a job interrupted by shutdown runs again, so it is not
        // an outcome.
        let ended = match &result {
            Ok(()) => Some("done"),
            Err(JobError::Package(transcoder::TranscodeError::Cancelled))
                if self.shutting_down.load(Ordering::Relaxed) =>
            {
                None
            }
            Err(JobError::Package(transcoder::TranscodeError::Cancelled)) => Some("cancelled"),
            Err(_) => Some("failed"),
        };
        if let Some(outcome) = ended {
            self.telemetry
                .job_finished(outcome, started.elapsed().as_secs_f64());
        }
        let outcome = match result {
            Ok(()) => {
                tracing::info!("packaging finished");
                let done = self.finish(&job.id, JobState::Ready, None);
                if done.is_ok() {
                    crate::events::record(
                        &self.store,
                        self.clock.now(),
                        crate::events::Event::PackagingFinished {
                            film: job.film_id,
                            job: job.id,
                        },
                    );
                }
                done
            }
            Err(JobError::Package(transcoder::TranscodeError::Cancelled))
                if self.shutting_down.load(Ordering::Relaxed) =>
            {
                tracing::info!("packaging interrupted by shutdown; the job stays queued");
                self.finish(&job.id, JobState::Queued, None)
            }
            Err(JobError::Package(transcoder::TranscodeError::Cancelled)) => {
                self.finish(&job.id, JobState::Cancelled, None)
            }
            Err(e) => {
                tracing::warn!(error = %e, "packaging failed");
                // Low space is the operator's to fix and says so (the console shows it).
                // So is a bucket that refuses the package (the message names the key).
                let message = if e.is_input_error()
                    || matches!(e, JobError::NoSpace(_) | JobError::Storage(_))
                {
                    e.to_string()
                } else {
                    "packaging failed on the server; see the logs".into()
                };
                let done =
                    self.finish(&job.id, JobState::Failed, Some(failure(e.code(), &message)));
                if done.is_ok() {
                    crate::events::record(
                        &self.store,
                        self.clock.now(),
                        crate::events::Event::PackagingFailed {
                            film: job.film_id,
                            job: job.id,
                            code: e.code().to_string(),
                            message,
                        },
                    );
                }
                done
            }
        };
        if let Err(e) = outcome {
            tracing::error!(error = %e, "could not record the job outcome");
        }
    }

    fn package(&self, job: &Job, cancel: &AtomicBool) -> Result<(), JobError> {
        let opts = self
            .config
            .package_options()
            // Validated at start: failing here is the server's fault, not the film's.
            .map_err(|e| transcoder::TranscodeError::Internal(e.to_string()))?;
        let source = self.config.uploads_dir().join(&job.source);
        // Refused before a byte is written: a package is of the order of its source (the
        // renditions of a ladder are each smaller than it), so the source's size above the
        // floor is asked for. The job fails with `insufficient_storage` rather than staying
        // queued: a queued job would be claimed again at once and spin, and a failed one is
        // visible in the console with its message and a Retry button.
        let needed = std::fs::metadata(&source).map(|m| m.len()).unwrap_or(0);
        crate::disk::ensure_room(&self.config, needed)?;
        let secret = crate::secrets::film_secret(&self.config.keys_dir, &job.film_id)?;
        let out = ingest::package_dir(&self.config, &job.film_id, &job.id);
        // A whole package from an earlier attempt whose publish to the bucket failed: the
        // packager renames its directory into place only when complete, so a manifest in it
        // means every file is there; the publish resumes and skips what the bucket has.
        let resume = self.storage.is_remote() && out.join(transcoder::MANIFEST_FILE).is_file();
        let manifest = match resume.then(|| transcoder::Manifest::load(&out)) {
            Some(Ok(manifest)) => {
                tracing::info!(
                    "the package is on disk from an earlier attempt; resuming its upload"
                );
                manifest
            }
            _ => {
                if out.exists() {
                    // A finished package from an earlier attempt whose outcome was not recorded.
                    let _ = std::fs::remove_dir_all(&out);
                }
                let mut last = 0.0f64;
                let mut on_progress = |f: f64| {
                    if f - last >= 0.01 || f >= 1.0 {
                        last = f;
                        let _ = self.store.update_job(&job.id, |j| {
                            j.progress = (f * 1000.0).round() / 1000.0;
                            j.updated_at = self.clock.now();
                        });
                    }
                };
                transcoder::package(&source, &out, &opts, &secret, &mut on_progress, cancel)?
                    .manifest
            }
        };
        let dir = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = dir_bytes(&out);
        let stored = if self.storage.is_remote() {
            let started = std::time::Instant::now();
            let published = block_on(self.storage.publish(&job.film_id, &dir, &out))??;
            tracing::info!(
                objects = published.objects,
                bytes = published.bytes,
                took_ms = started.elapsed().as_millis() as u64,
                "package published to the bucket"
            );
            Some(StoredCopy {
                stored_at: self.clock.now(),
                objects: published.objects,
                bytes: published.bytes,
            })
        } else {
            None
        };
        if !self.record_package(&job.film_id, &dir, &manifest, bytes, stored.clone())? {
            // The film was deleted while packaging: drop the orphan package, here and in
            // the bucket.
            let _ = std::fs::remove_dir_all(&out);
            if stored.is_some() {
                let _ = block_on(self.storage.delete_package(&job.film_id, &dir));
            }
            return Err(JobError::Package(transcoder::TranscodeError::Cancelled));
        }
        if stored.is_some() && !self.storage.keep_local() {
            // Nothing asks the origin for these segments any more: the playlists name the
            // bucket's copies from now on.
            remove_segment_files(&out);
        }
        Ok(())
    }

    /// Makes the package in `films/{film}/{dir}` the film's, whoever packaged it (a local
    /// worker or a runner): the film record names it (and is published if it was waiting
    /// for it), its cached playlists are dropped, and the package it replaces is removed.
    /// `false` when the film was deleted meanwhile (the caller drops the orphan package).
    pub fn record_package(
        &self,
        film_id: &Uuid,
        dir: &str,
        manifest: &transcoder::Manifest,
        bytes: u64,
        stored: Option<StoredCopy>,
    ) -> Result<bool, JobError> {
        let mut previous = None;
        let updated = self
            .store
            .update_film(film_id, |f| {
                previous = f
                    .package
                    .as_ref()
                    .map(|p| (p.dir.clone(), p.stored.is_some()));
                f.package = Some(PackageSummary {
                    dir: dir.to_string(),
                    duration: manifest.duration,
                    segments: manifest.segment_count(),
                    renditions: manifest.renditions.iter().map(|r| r.name.clone()).collect(),
                    packaged_at: self.clock.now(),
                    bytes,
                    stored: stored.clone(),
                });
                if f.publish_when_ready {
                    f.published = true;
                    f.publish_when_ready = false;
                }
                f.updated_at = self.clock.now();
            })
            .map_err(JobError::Record)?;
        if updated.is_none() {
            return Ok(false);
        }
        self.cache.invalidate(film_id);
        if let Some((old, in_bucket)) = previous.filter(|(d, _)| d != dir) {
            let _ = std::fs::remove_dir_all(ingest::film_dir(&self.config, film_id).join(&old));
            if in_bucket {
                let deleted = block_on(self.storage.delete_package(film_id, &old))
                    .and_then(|r| r.map_err(JobError::from));
                if let Err(e) = deleted {
                    tracing::warn!(film = %film_id, package = %old, error = %e, "could not delete the replaced package's objects; delete them by hand");
                }
            }
        }
        Ok(true)
    }

    fn finish(
        &self,
        id: &Uuid,
        state: JobState,
        error: Option<JobFailure>,
    ) -> Result<(), StoreError> {
        self.store.update_job(id, |j| {
            j.state = state;
            if state == JobState::Ready {
                j.progress = 1.0;
            }
            if state == JobState::Queued {
                j.progress = 0.0;
            }
            j.lease = None;
            j.error = error.clone();
            j.updated_at = self.clock.now();
        })?;
        Ok(())
    }

    /// Cancels a queued or running job. Returns the job as it now stands.
    ///
    /// Decided on the record being written, with no read before it: a job claimed by a
    /// worker after such a read would be marked cancelled while it runs; and an
    /// unreadable record meets `store::update` here, which reports it and leaves it.
    pub fn cancel(&self, id: &Uuid) -> Result<Option<Job>, StoreError> {
        let job = self.store.change_job(id, |j| {
            // A runner's job is cancelled here and now: its lease goes with it, so the
            // runner's next heartbeat is refused (`lease_lost`) and it stops.
            let remote = j.state == JobState::Running
                && j.lease
                    .as_ref()
                    .is_some_and(|l| l.owner != LeaseOwner::Local);
            if j.state != JobState::Queued && !remote {
                return false;
            }
            j.state = JobState::Cancelled;
            j.lease = None;
            j.updated_at = self.clock.now();
            true
        })?;
        if let Some(job) = job.as_ref().filter(|j| j.state == JobState::Running) {
            if let Some(flag) = self
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&job.id)
            {
                flag.store(true, Ordering::Relaxed);
            }
        }
        Ok(job)
    }

    /// Deletes a film, for both surfaces: its jobs cancelled (a running one stops at its
    /// next frame), the record and everything keyed by it removed, its cached playlists
    /// dropped, then its files. Record first, then invalidate: a playback load that takes
    /// its ticket after the invalidation re-reads the film and must find it gone
    /// (`PlaybackCache::load_current`). Blocking (the deletion walks the film's grants,
    /// progress and jobs): call it off the runtime's threads.
    pub fn delete_film(&self, film: &Uuid) -> Result<(), StoreError> {
        for job in self.store.jobs_for_film(film)? {
            self.cancel(&job.id)?;
        }
        self.store.delete_film(film)?;
        self.cache.invalidate(film);
        ingest::remove_film_files(&self.config, film);
        if self.storage.is_remote() {
            // Every package of the film, whether or not it was ever recorded (a publish
            // cut short leaves objects no record names).
            match block_on(self.storage.delete_film(film)) {
                Ok(Ok(n)) => {
                    tracing::info!(film = %film, objects = n, "deleted the film's objects from the bucket")
                }
                Ok(Err(e)) => {
                    tracing::warn!(film = %film, error = %e, "could not delete the film's objects from the bucket; delete films/{film}/ there by hand")
                }
                Err(e) => {
                    tracing::warn!(film = %film, error = %e, "could not delete the film's objects from the bucket")
                }
            }
        }
        Ok(())
    }

    /// Puts a failed or cancelled job back in the queue.
    pub fn retry(&self, id: &Uuid) -> Result<Option<Job>, StoreError> {
        let updated = self.store.change_job(id, |j| {
            if !matches!(j.state, JobState::Failed | JobState::Cancelled) {
                return false;
            }
            j.state = JobState::Queued;
            j.progress = 0.0;
            j.error = None;
            j.updated_at = self.clock.now();
            true
        })?;
        self.notify();
        Ok(updated)
    }

    /// Graceful shutdown: stop claiming, interrupt running jobs (they return to the queue).
    pub fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        for flag in self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            flag.store(true, Ordering::Relaxed);
        }
        self.wake.notify_waiters();
    }

    /// True while any job is running (shutdown waits for them to wind down).
    pub fn busy(&self) -> bool {
        !self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }
}

fn failure(code: &str, message: &str) -> JobFailure {
    JobFailure {
        code: code.to_string(),
        message: message.to_string(),
    }
}

/// The bytes of the files under `dir` (a package: one level of rendition directories), for
/// the console's disk figures; what cannot be read counts as 0.
/// What `JobQueue::move_to_bucket` did.
#[derive(Debug, Default, serde::Serialize)]
pub struct MoveReport {
    pub films: usize,
    pub objects: usize,
    pub bytes: u64,
    /// Films left local, with why.
    pub failed: Vec<String>,
}

/// Runs `future` to its end from a blocking thread: the runtime's when there is one (a
/// job runs on its blocking pool), else a small one of its own (`cinegate ingest` with no
/// server packages on a plain thread).
pub fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, JobError> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => Ok(handle.block_on(future)),
        Err(_) => Ok(tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| JobError::Package(transcoder::TranscodeError::Internal(e.to_string())))?
            .block_on(future)),
    }
}

/// Removes the segment files of a package directory (its rendition directories), keeping
/// the manifest and poster the origin renders playlists and the catalogue from.
pub fn remove_segment_files(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(film: Uuid) -> Job {
        Job {
            id: crate::store::new_id(),
            film_id: film,
            source: "f/source".into(),
            state: JobState::Queued,
            progress: 0.0,
            error: None,
            attempts: 0,
            created_at: 1,
            updated_at: 1,
            lease: None,
        }
    }

    /// Cancel, claim and retry decide on the record they write: a cancelled job is never
    /// claimed, a running one is only flagged, and retry re-queues only what ended.
    #[test]
    fn cancel_claim_and_retry_follow_the_stored_state() -> Result<(), StoreError> {
        let store = Store::temporary()?;
        let queue = JobQueue::new(
            store.clone(),
            Arc::new(Config::default()),
            Arc::new(PlaybackCache::default()),
            Arc::new(crate::clock::SystemClock),
            Default::default(),
            Arc::new(Storage::local()),
        );
        let job = queued(crate::store::new_id());
        store.save_job(&job)?;

        let cancelled = queue.cancel(&job.id)?.map(|j| j.state);
        assert_eq!(cancelled, Some(JobState::Cancelled));
        assert!(queue.claim_next()?.is_none(), "a cancelled job was claimed");

        let retried = queue.retry(&job.id)?.map(|j| j.state);
        assert_eq!(retried, Some(JobState::Queued));
        let claimed = queue.claim_next()?.map(|j| (j.state, j.attempts));
        assert_eq!(claimed, Some((JobState::Running, 1)));
        // Retry leaves a running job alone; cancel only raises its flag.
        let still = queue.retry(&job.id)?.map(|j| j.state);
        assert_eq!(still, Some(JobState::Running));
        let running = queue.cancel(&job.id)?.map(|j| j.state);
        assert_eq!(running, Some(JobState::Running));
        let flagged = queue
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&job.id)
            .is_some_and(|f| f.load(Ordering::Relaxed));
        assert!(flagged, "the running job's cancel flag was not raised");

        assert!(queue.cancel(&crate::store::new_id())?.is_none());
        Ok(())
    }

    /// The queue claims from the queued index, oldest first, and a queued job whose
    /// record no longer decodes is skipped rather than stopping the queue.
    #[test]
    fn claim_takes_the_oldest_queued_and_skips_an_unreadable_one() -> Result<(), StoreError> {
        let store = Store::temporary()?;
        let queue = JobQueue::new(
            store.clone(),
            Arc::new(Config::default()),
            Arc::new(PlaybackCache::default()),
            Arc::new(crate::clock::SystemClock),
            Default::default(),
            Arc::new(Storage::local()),
        );
        let film = crate::store::new_id();
        let (broken, first, second) = (queued(film), queued(film), queued(film));
        for j in [&broken, &first, &second] {
            store.save_job(j)?;
        }
        let unreadable: &[u8] = br#"{"id":"schema-2","state":"queued"}"#;
        store.jobs.insert(broken.id.as_bytes(), unreadable)?;
        assert_eq!(queue.claim_next()?.map(|j| j.id), Some(first.id));
        assert_eq!(queue.claim_next()?.map(|j| j.id), Some(second.id));
        assert!(queue.claim_next()?.is_none());
        assert_eq!(
            store.jobs.get(broken.id.as_bytes())?.as_deref(),
            Some(unreadable)
        );
        Ok(())
    }

    /// A runner's lease lapses unless heartbeated: the sweep re-queues its job (lease
    /// cleared) and the next claim counts a new attempt; the local worker's lease is never
    /// swept; start-up re-queues the local worker's job and a lapsed runner's, but not a
    /// runner's whose lease is still good.
    #[test]
    fn runner_leases_lapse_into_the_queue_and_survive_a_restart_while_live(
    ) -> Result<(), StoreError> {
        let store = Store::temporary()?;
        let queue = JobQueue::new(
            store.clone(),
            Arc::new(Config::default()),
            Arc::new(PlaybackCache::default()),
            Arc::new(crate::clock::SystemClock),
            Default::default(),
            Arc::new(Storage::local()),
        );
        let film = crate::store::new_id();
        let (local, remote) = (queued(film), queued(film));
        store.save_job(&local)?;
        store.save_job(&remote)?;
        let runner = LeaseOwner::Runner(crate::store::new_id());
        let mine = queue
            .claim_next()?
            .ok_or(StoreError::Conflict("no job".into()))?;
        assert_eq!(mine.id, local.id);
        assert_eq!(
            mine.lease.as_ref().map(|l| l.owner),
            Some(LeaseOwner::Local)
        );
        let theirs = queue
            .claim(runner, "ab".into(), 100)?
            .ok_or(StoreError::Conflict("no job".into()))?;
        assert_eq!(theirs.id, remote.id);
        assert_eq!(
            theirs.lease.as_ref().map(|l| (l.attempt, l.expires_at)),
            Some((1, 100))
        );
        assert!(
            queue.claim(runner, "cd".into(), 100)?.is_none(),
            "nothing else queued"
        );

        // Not lapsed yet: nothing moves; start-up leaves the live runner lease alone.
        assert!(queue.sweep_leases(99)?.is_empty());
        let requeued = store.requeue_interrupted_jobs(99)?;
        assert_eq!(
            requeued.iter().map(|j| j.id).collect::<Vec<_>>(),
            [local.id]
        );
        assert_eq!(
            store.job(&remote.id)?.map(|j| j.state),
            Some(JobState::Running)
        );

        // Lapsed: back in the queue with the lease gone; the next claim is attempt 2.
        let swept = queue.sweep_leases(100)?;
        assert_eq!(swept.iter().map(|j| j.id).collect::<Vec<_>>(), [remote.id]);
        assert!(swept[0].lease.is_none() && swept[0].state == JobState::Queued);
        // The local job, queued again above, is taken first (oldest), then the runner's.
        let _ = queue.claim_next()?;
        let again = queue
            .claim(runner, "ef".into(), 200)?
            .ok_or(StoreError::Conflict("no job".into()))?;
        assert_eq!(again.id, remote.id);
        assert_eq!(again.lease.as_ref().map(|l| l.attempt), Some(2));
        // The local worker's lease is never swept, however late.
        assert!(queue
            .sweep_leases(i64::MAX)?
            .iter()
            .all(|j| j.id != local.id));
        // A lapsed runner lease is re-queued at start-up too.
        store.save_job(&Job {
            lease: again.lease.clone().map(|mut l| {
                l.expires_at = 150;
                l
            }),
            ..again.clone()
        })?;
        let requeued = store.requeue_interrupted_jobs(151)?;
        assert!(requeued.iter().any(|j| j.id == remote.id));
        // Cancelling a runner's running job ends it at once (its lease with it).
        let _ = queue.claim(runner, "gh".into(), 1_000)?;
        let cancelled = queue
            .cancel(&remote.id)?
            .ok_or(StoreError::Conflict("gone".into()))?;
        assert_eq!(cancelled.state, JobState::Cancelled);
        assert!(cancelled.lease.is_none());
        Ok(())
    }

    #[test]
    fn a_job_failure_is_the_films_only_when_the_packager_says_so() {
        let input = JobError::Package(transcoder::TranscodeError::NoVideo);
        assert!(input.is_input_error());
        assert_eq!(input.code(), "no_video");
        let store = JobError::Record(StoreError::Corrupt {
            tree: "films",
            message: "bad".into(),
        });
        assert!(!store.is_input_error());
        assert_eq!(store.code(), "io");
        assert!(store.to_string().starts_with("recording the package: "));
        let internal = JobError::Package(transcoder::TranscodeError::Internal("x".into()));
        assert!(!internal.is_input_error());
    }

    /// A job about to start below the disk floor fails with `insufficient_storage` and a
    /// message the console shows, and writes nothing: no package directory, no secret.
    #[test]
    fn a_job_below_the_disk_floor_fails_before_writing() -> Result<(), Box<dyn std::error::Error>> {
        let root = tempfile::tempdir()?;
        let mut config = Config {
            media_dir: root.path().join("media"),
            keys_dir: root.path().join("keys"),
            ..Config::default()
        };
        config.disk.min_free_bytes = u64::MAX;
        let config = Arc::new(config);
        let store = Store::temporary()?;
        let queue = JobQueue::new(
            store.clone(),
            config.clone(),
            Arc::new(PlaybackCache::default()),
            Arc::new(crate::clock::SystemClock),
            Default::default(),
            Arc::new(Storage::local()),
        );
        let film = crate::store::new_id();
        store.save_job(&queued(film))?;
        let job = queue.claim_next()?.ok_or("no job claimed")?;
        queue.run(job.clone());
        let done = store.job(&job.id)?.ok_or("job gone")?;
        assert_eq!(done.state, JobState::Failed);
        let error = done.error.ok_or("no error recorded")?;
        assert_eq!(error.code, "insufficient_storage");
        assert!(
            error.message.contains("disk.min_free_bytes"),
            "{}",
            error.message
        );
        assert!(!ingest::package_dir(&config, &film, &job.id).exists());
        assert!(!crate::secrets::film_secret_path(&config.keys_dir, &film).exists());
        Ok(())
    }

    /// After `storage migrate`, a package's local segments stay while a playback token
    /// issued before the move may still be played (`playback.token_ttl`), then go; the
    /// manifest and poster stay; a package not in the bucket is never touched.
    #[test]
    fn moved_packages_lose_their_local_segments_after_the_grace(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let root = tempfile::tempdir()?;
        let config = Arc::new(Config {
            media_dir: root.path().join("media"),
            keys_dir: root.path().join("keys"),
            ..Config::default()
        });
        let grace = config.playback.token_ttl.as_secs() as i64;
        let store = Store::temporary()?;
        let clock = Arc::new(crate::clock::TestClock::new(1_000));
        let queue = JobQueue::new(
            store.clone(),
            config.clone(),
            Arc::new(PlaybackCache::default()),
            clock.clone(),
            Default::default(),
            Arc::new(Storage::local()),
        );
        let mut dirs = Vec::new();
        for stored in [true, false] {
            let mut film = crate::ingest::new_film("F".into(), String::new(), Vec::new(), 1);
            film.package = Some(PackageSummary {
                dir: "pkg-1".into(),
                duration: 6.0,
                segments: 1,
                renditions: vec!["360".into()],
                packaged_at: 1,
                bytes: 0,
                stored: stored.then_some(StoredCopy {
                    stored_at: 1_000,
                    objects: 3,
                    bytes: 3,
                }),
            });
            store.save_film(&film)?;
            let dir = ingest::film_dir(&config, &film.id).join("pkg-1");
            std::fs::create_dir_all(dir.join("360"))?;
            std::fs::write(dir.join("360/00000.ts"), b"ts")?;
            std::fs::write(dir.join("manifest.json"), b"{}")?;
            dirs.push(dir);
        }
        clock.set(1_000 + grace - 1);
        assert_eq!(queue.sweep_moved_copies(), 0);
        assert!(
            dirs[0].join("360/00000.ts").exists(),
            "removed within the grace"
        );
        clock.set(1_000 + grace);
        assert_eq!(queue.sweep_moved_copies(), 1);
        assert!(!dirs[0].join("360").exists());
        assert!(dirs[0].join("manifest.json").exists());
        assert!(
            dirs[1].join("360/00000.ts").exists(),
            "a local package lost its segments"
        );
        assert_eq!(queue.sweep_moved_copies(), 0);
        Ok(())
    }
}
