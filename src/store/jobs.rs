//! Packaging jobs: persisted so a restart re-queues what was running.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{decode, get, put, scan, update, Result, Store, StoreError};

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
}

impl Store {
    pub fn job(&self, id: &Uuid) -> Result<Option<Job>> {
        get(&self.jobs, "jobs", id.as_bytes())
    }

    pub fn save_job(&self, job: &Job) -> Result<()> {
        put(&self.jobs, job.id.as_bytes(), job)
    }

    /// Applies `change` to the stored job atomically (retrying on concurrent writes).
    /// `Ok(None)`: no such job; an unreadable record is an error and is left as it is.
    pub fn update_job(&self, id: &Uuid, mut change: impl FnMut(&mut Job)) -> Result<Option<Job>> {
        update(&self.jobs, "jobs", id.as_bytes(), |job| {
            change(job);
            true
        })
    }

    /// Every job, oldest first (ids are time-ordered).
    pub fn jobs(&self) -> Result<Vec<Job>> {
        scan(&self.jobs, "jobs", &[])
    }

    pub fn jobs_for_film(&self, film: &Uuid) -> Result<Vec<Job>> {
        Ok(self
            .jobs()?
            .into_iter()
            .filter(|j| j.film_id == *film)
            .collect())
    }

    /// Like `update_job`, but `change` says whether it changed anything; nothing is
    /// written when it did not. For changes that depend on the job's state, decided on the
    /// record being written rather than on an earlier read.
    pub fn change_job(
        &self,
        id: &Uuid,
        change: impl FnMut(&mut Job) -> bool,
    ) -> Result<Option<Job>> {
        update(&self.jobs, "jobs", id.as_bytes(), change)
    }

    /// Every job that decodes, oldest first; each record that does not is handed to
    /// `unreadable` (hex key, error) and left as it is. For the queue itself (start-up
    /// requeue, claiming), which must keep working around one bad record; the admin list
    /// uses `jobs` and reports it.
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

    /// At start-up: a job that was running when the process died goes back to the queue.
    /// An unreadable job record is logged (tree and key) and left in place: one bad record
    /// must not keep the server from starting.
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
                if j.state != JobState::Running {
                    return false;
                }
                j.state = JobState::Queued;
                j.progress = 0.0;
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
