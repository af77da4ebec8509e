//! Packaging jobs: persisted so a restart re-queues what was running.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{get, put, scan, update, Result, Store};

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

    /// At start-up: a job that was running when the process died goes back to the queue.
    pub fn requeue_interrupted_jobs(&self, now: i64) -> Result<Vec<Job>> {
        let mut requeued = Vec::new();
        for job in self.jobs()? {
            if job.state == JobState::Running {
                if let Some(j) = self.update_job(&job.id, |j| {
                    j.state = JobState::Queued;
                    j.progress = 0.0;
                    j.updated_at = now;
                })? {
                    requeued.push(j);
                }
            }
        }
        Ok(requeued)
    }
}
