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
}

impl JobError {
    /// The stable code a failed job records (`io` for the server's own faults, as before
    /// they had a type).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Package(e) => e.code(),
            Self::Secret(_) | Self::Record(_) => "io",
            Self::NoSpace(_) => "insufficient_storage",
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
}

impl JobQueue {
    pub fn new(
        store: Store,
        config: Arc<Config>,
        cache: Arc<PlaybackCache>,
        clock: Arc<dyn Clock>,
        telemetry: Arc<crate::telemetry::Telemetry>,
    ) -> Arc<Self> {
        Arc::new(Self {
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
                let message = if e.is_input_error() || matches!(e, JobError::NoSpace(_)) {
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
        let packaged =
            transcoder::package(&source, &out, &opts, &secret, &mut on_progress, cancel)?;
        let dir = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = dir_bytes(&out);
        if !self.record_package(&job.film_id, &dir, &packaged.manifest, bytes, None)? {
            // The film was deleted while packaging: drop the orphan package.
            let _ = std::fs::remove_dir_all(&out);
            return Err(JobError::Package(transcoder::TranscodeError::Cancelled));
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
                previous = f.package.as_ref().map(|p| p.dir.clone());
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
        if let Some(old) = previous.filter(|d| d != dir) {
            let _ = std::fs::remove_dir_all(ingest::film_dir(&self.config, film_id).join(old));
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
}
