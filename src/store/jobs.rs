//! Packaging jobs: persisted so a restart re-queues what was running.

use std::cell::RefCell;

use super::Transact;
use serde::{Deserialize, Serialize};
use sled::transaction::ConflictableTransactionError::{self, Abort};
use sled::transaction::TransactionalTree;
use uuid::Uuid;

use super::{decode, get, keyed, pair, scan, Result, Store, StoreError};

type TxResult<T> = std::result::Result<T, ConflictableTransactionError<StoreError>>;

/// Marks the meta record saying `jobs_by_film` and `jobs_by_state` were built.
const JOBS_INDEXED: &str = "jobs_indexed";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Ready,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Ready | Self::Failed | Self::Cancelled)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobFailure {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: Uuid,
    pub film_id: Uuid,
    /// The source file, relative to the uploads directory.
    pub source: String,
    pub state: JobState,
    /// 0.0–1.0 of the source duration packaged.
    pub progress: f64,
    #[serde(default)]
    pub error: Option<JobFailure>,
    pub attempts: u32,
    pub created_at: i64,
    pub updated_at: i64,
    /// Who is packaging the job while it runs (`None` otherwise, and for records written
    /// before leases existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
}

/// A running job's lease: who holds it, the hash of its fencing token, until when, and
/// which attempt it is (`Job::attempts` when it was taken). The local worker's lease never
/// expires (a crash re-queues its jobs at start-up); a runner's lapses at `expires_at`
/// unless heartbeated, and the sweeper (`jobs::JobQueue::sweep_leases`) re-queues the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub owner: LeaseOwner,
    /// SHA-256 (hex) of the lease token handed to the runner; empty for the local worker.
    #[serde(default)]
    pub token_hash: String,
    /// Unix seconds; 0 for the local worker (no expiry).
    #[serde(default)]
    pub expires_at: i64,
    pub attempt: u32,
    /// When it was taken (Unix seconds): a runner job's run time for `/metrics`.
    #[serde(default)]
    pub taken_at: i64,
}

/// The holder of a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum LeaseOwner {
    /// This server's own worker pool.
    Local,
    /// A remote runner (`store::runners`), by id.
    Runner(Uuid),
}

impl Lease {
    /// A runner's lease that has not lapsed at `now`.
    pub fn is_live_runner_lease(&self, now: i64) -> bool {
        matches!(self.owner, LeaseOwner::Runner(_)) && self.expires_at > now
    }

    pub fn runner(&self) -> Option<Uuid> {
        match self.owner {
            LeaseOwner::Runner(id) => Some(id),
            LeaseOwner::Local => None,
        }
    }
}

impl Store {
    pub fn job(&self, id: &Uuid) -> Result<Option<Job>> {
        get(&self.jobs, "jobs", id.as_bytes())
    }

    /// Stores `job` (new, or over the record with its id) with its index entries.
    pub fn save_job(&self, job: &Job) -> Result<()> {
        (&self.jobs, &self.jobs_by_film, &self.jobs_by_state).transaction(
            |(jobs, by_film, by_state)| {
                // What the record replaces, for the index entries it leaves; one that does
                // not decode is overwritten, as a plain insert would.
                let old = jobs
                    .get(job.id.as_bytes())?
                    .and_then(|b| decode::<Job>("jobs", &b).ok());
                write_job(jobs, by_film, by_state, old.as_ref(), job)
            },
        )?;
        Ok(())
    }

    /// Applies `change` to the stored job atomically (retrying on concurrent writes).
    /// `Ok(None)`: no such job; an unreadable record is an error and is left as it is.
    pub fn update_job(&self, id: &Uuid, mut change: impl FnMut(&mut Job)) -> Result<Option<Job>> {
        self.change_job(id, |job| {
            change(job);
            true
        })
    }

    /// Every job, oldest first (ids are time-ordered).
    pub fn jobs(&self) -> Result<Vec<Job>> {
        scan(&self.jobs, "jobs", &[])
    }

    /// A film's jobs, oldest first, through `jobs_by_film` (no scan of the other films').
    pub fn jobs_for_film(&self, film: &Uuid) -> Result<Vec<Job>> {
        let mut out = Vec::new();
        for key in self.jobs_by_film.scan_prefix(film.as_bytes()).keys() {
            let key = key?;
            if let Some(job) = get(&self.jobs, "jobs", &key[16..])? {
                out.push(job);
            }
        }
        Ok(out)
    }

    /// The ids of the jobs in `state`, oldest first, from `jobs_by_state` (no record is
    /// read). The queue claims from the head of the queued ones.
    pub fn job_ids_in(&self, state: JobState) -> Result<Vec<Uuid>> {
        self.jobs_by_state
            .scan_prefix([state_tag(state)])
            .keys()
            .map(|k| -> Result<Uuid> { Ok(Uuid::from_slice(&k?[1..]).unwrap_or_default()) })
            .collect()
    }

    /// Each film's newest job's state, read from the two job indexes' keys alone (no job
    /// record is decoded): for the console's films by state.
    pub fn newest_job_states(&self) -> Result<std::collections::HashMap<Uuid, JobState>> {
        let mut state_of = std::collections::HashMap::new();
        for key in self.jobs_by_state.iter().keys() {
            let key = key?;
            let state = match key.first() {
                Some(1) => JobState::Queued,
                Some(2) => JobState::Running,
                Some(3) => JobState::Ready,
                Some(4) => JobState::Failed,
                _ => JobState::Cancelled,
            };
            state_of.insert(Uuid::from_slice(&key[1..]).unwrap_or_default(), state);
        }
        // `film ‖ job`, jobs time-ordered: the last key of a film is its newest job.
        let mut newest = std::collections::HashMap::new();
        for key in self.jobs_by_film.iter().keys() {
            let key = key?;
            let film = Uuid::from_slice(&key[..16]).unwrap_or_default();
            let job = Uuid::from_slice(&key[16..]).unwrap_or_default();
            if let Some(state) = state_of.get(&job) {
                newest.insert(film, *state);
            }
        }
        Ok(newest)
    }

    /// How many jobs are in `state`: a count of index keys, no record is read.
    pub fn count_jobs(&self, state: JobState) -> Result<usize> {
        let mut n = 0;
        for key in self.jobs_by_state.scan_prefix([state_tag(state)]).keys() {
            key?;
            n += 1;
        }
        Ok(n)
    }

    /// Like `update_job`, but `change` says whether it changed anything; nothing is
    /// written when it did not. For changes that depend on the job's state, decided on the
    /// record being written rather than on an earlier read. The record and its index
    /// entries change in one transaction; `change` may run more than once, and runs
    /// inside the transaction, while sled holds every other store operation: it must be
    /// quick and must not call the store.
    pub fn change_job(
        &self,
        id: &Uuid,
        change: impl FnMut(&mut Job) -> bool,
    ) -> Result<Option<Job>> {
        // sled runs the transaction body as a `Fn` (it may retry it).
        let change = RefCell::new(change);
        let key = id.as_bytes();
        let outcome = (&self.jobs, &self.jobs_by_film, &self.jobs_by_state).transaction(
            |(jobs, by_film, by_state)| {
                let Some(current) = jobs.get(key)? else {
                    return Ok(None);
                };
                // An unreadable record is reported with its key and left as it is.
                let old: Job =
                    decode("jobs", &current).map_err(|e| Abort(keyed(e, key.as_slice())))?;
                let mut job = old.clone();
                if !(*change.borrow_mut())(&mut job) {
                    return Ok(Some(job));
                }
                write_job(jobs, by_film, by_state, Some(&old), &job)?;
                Ok(Some(job))
            },
        )?;
        Ok(outcome)
    }

    /// Removes a film's jobs with their index entries, in one transaction. A record that
    /// does not decode is left in place for the operator (and logged).
    pub(crate) fn delete_jobs_of_film(&self, film: &Uuid) -> Result<()> {
        let keys: Vec<sled::IVec> = self
            .jobs_by_film
            .scan_prefix(film.as_bytes())
            .keys()
            .collect::<std::result::Result<_, _>>()?;
        if keys.is_empty() {
            return Ok(());
        }
        (&self.jobs, &self.jobs_by_film, &self.jobs_by_state).transaction(
            |(jobs, by_film, by_state)| {
                for k in &keys {
                    let id = &k[16..];
                    let Some(bytes) = jobs.get(id)? else {
                        by_film.remove(k.clone())?;
                        continue;
                    };
                    match decode::<Job>("jobs", &bytes) {
                        Ok(job) => {
                            jobs.remove(id)?;
                            by_film.remove(k.clone())?;
                            by_state.remove(state_key(job.state, &job.id).as_slice())?;
                        }
                        Err(e) => {
                            tracing::warn!(tree = "jobs", key = %hex::encode(id), error = %e, "deleting a film: left an unreadable job record in place");
                        }
                    }
                }
                Ok(())
            },
        )?;
        Ok(())
    }

    /// Builds `jobs_by_film` and `jobs_by_state` from the jobs of a store written before
    /// they existed; once (a meta record says it ran). Clears and rebuilds, so a crash
    /// half-way just runs it again. An unreadable record is logged and left unindexed.
    pub(crate) fn index_jobs_once(&self) -> Result<()> {
        if self.meta.get(JOBS_INDEXED)?.is_some() {
            return Ok(());
        }
        self.jobs_by_film.clear()?;
        self.jobs_by_state.clear()?;
        let mut indexed = 0usize;
        for kv in self.jobs.iter() {
            let (k, v) = kv?;
            match decode::<Job>("jobs", &v) {
                Ok(job) => {
                    self.jobs_by_film
                        .insert(pair(&job.film_id, &job.id).as_slice(), &[])?;
                    self.jobs_by_state
                        .insert(state_key(job.state, &job.id).as_slice(), &[])?;
                    indexed += 1;
                }
                Err(e) => {
                    tracing::warn!(tree = "jobs", key = %hex::encode(&k), error = %e, "indexing jobs: skipped an unreadable job record (left in place)");
                }
            }
        }
        self.meta.insert(JOBS_INDEXED, &[1u8])?;
        if indexed > 0 {
            tracing::info!(
                jobs = indexed,
                "indexed the stored jobs by film and by state (once)"
            );
        }
        Ok(())
    }

    /// Every job that decodes, oldest first; each record that does not is handed to
    /// `unreadable` (hex key, error) and left as it is. For the start-up requeue, which
    /// must keep working around one bad record and must see every record, indexed or not
    /// (one written by hand or by an older cinegate); the admin list uses `jobs` and
    /// reports it.
    pub fn readable_jobs(&self, mut unreadable: impl FnMut(&str, &StoreError)) -> Result<Vec<Job>> {
        let mut out = Vec::new();
        for kv in self.jobs.iter() {
            let (key, bytes) = kv?;
            match decode::<Job>("jobs", &bytes) {
                Ok(job) => out.push(job),
                Err(e) => unreadable(&hex::encode(&key), &e),
            }
        }
        Ok(out)
    }

    /// At start-up: a job that was running when the process died goes back to the queue,
    /// unless a remote runner holds it under a lease that has not lapsed: that runner is
    /// still packaging it, and its lease token must stay good (the sweeper re-queues it if
    /// the lease lapses). An unreadable job record is logged (tree and key) and left in
    /// place: one bad record must not keep the server from starting.
    pub fn requeue_interrupted_jobs(&self, now: i64) -> Result<Vec<Job>> {
        let warn = |key: &str, e: &StoreError| {
            tracing::warn!(tree = "jobs", key, error = %e, "start-up: skipped an unreadable job record (left in place)");
        };
        let mut requeued = Vec::new();
        for job in self.readable_jobs(warn)? {
            if job.state != JobState::Running {
                continue;
            }
            let outcome = self.change_job(&job.id, |j| {
                if j.state != JobState::Running
                    || j.lease
                        .as_ref()
                        .is_some_and(|l| l.is_live_runner_lease(now))
                {
                    return false;
                }
                j.state = JobState::Queued;
                j.progress = 0.0;
                j.lease = None;
                j.updated_at = now;
                true
            });
            match outcome {
                Ok(Some(j)) if j.state == JobState::Queued => requeued.push(j),
                Ok(_) => {}
                // `update` already named the key in the error.
                Err(e @ StoreError::Corrupt { .. }) => {
                    tracing::warn!(tree = "jobs", error = %e, "start-up: could not re-queue an unreadable job (left in place)");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(requeued)
    }
}

/// The first byte of a `jobs_by_state` key. Stored on disk: never renumber.
fn state_tag(state: JobState) -> u8 {
    match state {
        JobState::Queued => 1,
        JobState::Running => 2,
        JobState::Ready => 3,
        JobState::Failed => 4,
        JobState::Cancelled => 5,
    }
}

/// `state tag ‖ job id`: the key of `jobs_by_state`.
fn state_key(state: JobState, id: &Uuid) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = state_tag(state);
    key[1..].copy_from_slice(id.as_bytes());
    key
}

/// Writes `job` over `old` (what the record held, if it decoded) and moves its index
/// entries with it, inside the caller's transaction, so the indexes never disagree with
/// the records. The new entries are written even when unchanged, which also repairs an
/// entry missing for a record written behind the store's back.
fn write_job(
    jobs: &TransactionalTree,
    by_film: &TransactionalTree,
    by_state: &TransactionalTree,
    old: Option<&Job>,
    job: &Job,
) -> TxResult<()> {
    // Unlike `encode`, an encoding failure here is an error, never an empty record.
    let bytes = serde_json::to_vec(job).map_err(|e| {
        Abort(StoreError::Corrupt {
            tree: "jobs",
            message: format!("key {}: cannot encode: {e}", hex::encode(job.id.as_bytes())),
        })
    })?;
    if let Some(old) = old {
        if old.film_id != job.film_id {
            by_film.remove(pair(&old.film_id, &old.id).as_slice())?;
        }
        if old.state != job.state || old.id != job.id {
            by_state.remove(state_key(old.state, &old.id).as_slice())?;
        }
    }
    jobs.insert(job.id.as_bytes().as_slice(), bytes)?;
    by_film.insert(pair(&job.film_id, &job.id).as_slice(), &[])?;
    by_state.insert(state_key(job.state, &job.id).as_slice(), &[])?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::new_id;

    pub(crate) fn job(film: Uuid, state: JobState) -> Job {
        Job {
            id: new_id(),
            film_id: film,
            source: "f/source".into(),
            state,
            progress: 0.0,
            error: None,
            attempts: 0,
            created_at: 1,
            updated_at: 1,
            lease: None,
        }
    }

    fn ids(jobs: &[Job]) -> Vec<Uuid> {
        jobs.iter().map(|j| j.id).collect()
    }

    /// Every index entry, as (tree, key): what must match the records exactly.
    fn entries(store: &Store) -> Result<Vec<(&'static str, Vec<u8>)>> {
        let mut out = Vec::new();
        for (name, tree) in [
            ("jobs_by_film", &store.jobs_by_film),
            ("jobs_by_state", &store.jobs_by_state),
        ] {
            for k in tree.iter().keys() {
                out.push((name, k?.to_vec()));
            }
        }
        Ok(out)
    }

    #[test]
    fn the_indexes_follow_saves_changes_and_deletes() -> Result<()> {
        let store = Store::temporary()?;
        let (a, b) = (new_id(), new_id());
        let (a1, a2, b1) = (
            job(a, JobState::Queued),
            job(a, JobState::Queued),
            job(b, JobState::Queued),
        );
        for j in [&a1, &a2, &b1] {
            store.save_job(j)?;
        }
        assert_eq!(ids(&store.jobs_for_film(&a)?), [a1.id, a2.id]);
        assert_eq!(ids(&store.jobs_for_film(&b)?), [b1.id]);
        assert!(store.jobs_for_film(&new_id())?.is_empty());
        assert_eq!(store.job_ids_in(JobState::Queued)?, [a1.id, a2.id, b1.id]);

        // A change moves the job between states; the film entry stays.
        store.change_job(&a1.id, |j| {
            j.state = JobState::Running;
            true
        })?;
        assert_eq!(store.job_ids_in(JobState::Queued)?, [a2.id, b1.id]);
        assert_eq!(store.job_ids_in(JobState::Running)?, [a1.id]);
        assert_eq!(store.count_jobs(JobState::Running)?, 1);
        // A change that changes nothing writes nothing.
        store.change_job(&a2.id, |j| {
            j.state = JobState::Failed;
            false
        })?;
        assert_eq!(store.count_jobs(JobState::Queued)?, 2);
        assert_eq!(store.count_jobs(JobState::Failed)?, 0);
        // A save over an existing record moves its entry too.
        store.save_job(&Job {
            state: JobState::Failed,
            ..a2.clone()
        })?;
        assert_eq!(store.job_ids_in(JobState::Queued)?, [b1.id]);
        assert_eq!(store.job_ids_in(JobState::Failed)?, [a2.id]);
        store.update_job(&b1.id, |j| j.state = JobState::Ready)?;
        assert_eq!(store.count_jobs(JobState::Queued)?, 0);
        assert_eq!(store.count_jobs(JobState::Ready)?, 1);
        // One entry per job in each index, whatever happened to it.
        assert_eq!(entries(&store)?.len(), 6);

        store.delete_jobs_of_film(&a)?;
        assert!(store.jobs_for_film(&a)?.is_empty());
        assert!(store.job(&a1.id)?.is_none() && store.job(&a2.id)?.is_none());
        assert_eq!(store.count_jobs(JobState::Running)?, 0);
        assert_eq!(store.count_jobs(JobState::Failed)?, 0);
        assert_eq!(ids(&store.jobs_for_film(&b)?), [b1.id]);
        assert_eq!(entries(&store)?.len(), 2);
        Ok(())
    }

    /// A store written before the indexes: they are built from its jobs at open, once,
    /// and match what the same jobs saved through the store would have made; an
    /// unreadable record is skipped and left in place.
    #[test]
    fn the_indexes_are_built_once_for_an_old_store() -> Result<()> {
        let store = Store::temporary()?;
        let film = new_id();
        let (queued, failed) = (job(film, JobState::Queued), job(film, JobState::Failed));
        store.save_job(&queued)?;
        store.save_job(&failed)?;
        let expected = entries(&store)?;
        // What an older cinegate left: the records, no index, no marker.
        store.jobs_by_film.clear()?;
        store.jobs_by_state.clear()?;
        store.meta.remove(JOBS_INDEXED)?;
        let unreadable = new_id();
        let bytes: &[u8] = br#"{"id":"schema-2","state":"queued"}"#;
        store.jobs.insert(unreadable.as_bytes(), bytes)?;

        store.index_jobs_once()?;
        assert_eq!(entries(&store)?, expected);
        assert_eq!(ids(&store.jobs_for_film(&film)?), [queued.id, failed.id]);
        assert_eq!(store.job_ids_in(JobState::Queued)?, [queued.id]);
        assert_eq!(
            store.jobs.get(unreadable.as_bytes())?.as_deref(),
            Some(bytes),
            "the unreadable record was changed or deleted"
        );

        // Once: a record slipped in behind the store's back is not indexed at the next
        // open, but its next change indexes it.
        let late = job(film, JobState::Queued);
        store.jobs.insert(
            late.id.as_bytes(),
            serde_json::to_vec(&late).unwrap_or_default(),
        )?;
        store.index_jobs_once()?;
        assert_eq!(store.count_jobs(JobState::Queued)?, 1, "ran twice");
        store.update_job(&late.id, |j| j.progress = 0.5)?;
        assert_eq!(store.job_ids_in(JobState::Queued)?, [queued.id, late.id]);
        Ok(())
    }

    #[test]
    fn an_unreadable_job_is_left_by_film_deletion() -> Result<()> {
        let store = Store::temporary()?;
        let film = new_id();
        let (good, bad) = (job(film, JobState::Ready), job(film, JobState::Queued));
        store.save_job(&good)?;
        store.save_job(&bad)?;
        let bytes: &[u8] = br#"{"id":"schema-2"}"#;
        store.jobs.insert(bad.id.as_bytes(), bytes)?;
        store.delete_jobs_of_film(&film)?;
        assert!(store.job(&good.id)?.is_none());
        assert_eq!(store.jobs.get(bad.id.as_bytes())?.as_deref(), Some(bytes));
        Ok(())
    }
}
