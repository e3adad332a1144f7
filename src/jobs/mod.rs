//! The durable job queue: a table, not a process. A job is enqueued in the same transaction as
//! the state change that causes it, claimed with a short lease that its worker renews while it
//! runs (`renew`: a crashed worker's job is taken again seconds after its last renewal),
//! retried with exponential backoff and jitter, and marked dead after its last try. Handlers
//! must be idempotent: execution is at least once.
//!
//! What a job is: [`Job`], one enum of every kind (`job.rs`); who runs each kind: the one
//! `match` in `workers`; what a handler may do with the job it runs (finish it in its own
//! transaction, hand its worker the next step): [`Run`] (`run.rs`). The rows and their SQL:
//! `db::jobs`.

mod job;
mod run;

pub use job::Job;
pub use run::{CommitError, LeaseLost, Run};

use crate::clock::Millis;
use crate::db::{self, Db};
use rand::Rng;
use sqlx::AnyConnection;

/// What a job handler says about a failure.
#[derive(Debug, Clone)]
pub enum JobError {
    /// Try again after a backoff (until the last attempt).
    Retry(String),
    /// Retrying cannot help: dead at once.
    Permanent(String),
}

impl From<sqlx::Error> for JobError {
    fn from(e: sqlx::Error) -> Self {
        JobError::Retry(e.to_string())
    }
}

#[derive(Debug, Clone)]
pub struct NewJob {
    pub job: Job,
    /// At most one job ever per key (e.g. one fulfillment per order); `None` for no limit.
    pub dedupe_key: Option<String>,
    pub run_at: Millis,
}

/// A job row a worker has claimed. `payload` is as stored: `job()` reads it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub kind: String,
    pub payload: String,
    /// Including this one.
    pub attempts: u32,
    /// The end of the lease taken with the claim.
    pub lease_until: Millis,
}

impl Claimed {
    /// The typed job, or why the row cannot be one (which retrying cannot change).
    pub fn job(&self) -> Result<Job, JobError> {
        Job::decode(&self.kind, &self.payload).map_err(JobError::Permanent)
    }
}

/// Adds a job inside the caller's transaction. A duplicate `dedupe_key` is a no-op.
pub async fn enqueue(
    conn: &mut AnyConnection,
    job: NewJob,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let payload = job
        .job
        .payload()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    db::jobs::insert(
        conn,
        job.job.kind(),
        payload,
        job.dedupe_key,
        job.run_at,
        now,
    )
    .await
}

/// Takes the next due job (or one whose lease ended) for `worker`, leasing it until
/// `now + lease_ms`. Which job goes first: `db::jobs::claim_next`.
pub async fn claim(
    db: &Db,
    worker: &str,
    now: Millis,
    lease_ms: i64,
) -> Result<Option<Claimed>, sqlx::Error> {
    let lease_until = now + lease_ms;
    let Some(row) = db::jobs::claim_next(db, worker, now, lease_until).await? else {
        return Ok(None);
    };
    Ok(Some(Claimed {
        id: row.id,
        kind: row.kind,
        payload: row.payload,
        attempts: row.attempts as u32,
        lease_until,
    }))
}

/// Extends the lease of a job `worker` runs to `now + lease_ms`. False when the job is no
/// longer this worker's (its lease ran out and another worker took it, or it was finished):
/// the worker must stop, so the job's work is not done twice at once.
pub async fn renew(
    db: &Db,
    job_id: &str,
    worker: &str,
    now: Millis,
    lease_ms: i64,
) -> Result<bool, sqlx::Error> {
    db::jobs::renew_lease(db, job_id, worker, now, now + lease_ms).await
}

/// Marks a job done, if this worker still holds it.
pub async fn complete(
    conn: &mut AnyConnection,
    job: &Claimed,
    worker: &str,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    db::jobs::mark_done(conn, &job.id, worker, now).await
}

/// Schedules another try after a backoff, or marks the job dead. Returns true if dead.
pub async fn fail(
    conn: &mut AnyConnection,
    job: &Claimed,
    worker: &str,
    error: &str,
    retry_at: Option<Millis>,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let error: String = error.chars().take(1000).collect();
    match retry_at {
        Some(at) => {
            db::jobs::reschedule(conn, &job.id, worker, &error, at, now).await?;
            Ok(false)
        }
        None => {
            db::jobs::mark_dead(conn, &job.id, worker, &error, now).await?;
            Ok(true)
        }
    }
}

/// Exponential backoff with full jitter: a random delay up to `base * 2^(attempt-1)`, capped,
/// and never less than half of that (so retries do not bunch up at zero).
pub fn backoff_ms(attempt: u32, base_ms: u64, max_ms: u64) -> u64 {
    let exp = base_ms
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(30))
        .min(max_ms);
    rand::thread_rng().gen_range(exp / 2..=exp.max(1))
}

/// Whether no job is due at `now` and none is running: everything already asked of the queue
/// has happened. Tests and the screening evaluation wait for this instead of for time.
pub async fn is_idle(db: &Db, now: Millis) -> Result<bool, sqlx::Error> {
    Ok(!db::jobs::any_due_or_running(db, now).await?)
}

#[cfg(test)]
mod tests {
    use super::backoff_ms;

    #[test]
    fn backoff_grows_and_is_capped() {
        for _ in 0..100 {
            let first = backoff_ms(1, 1000, 60_000);
            assert!((500..=1000).contains(&first));
            let fifth = backoff_ms(5, 1000, 60_000);
            assert!((8000..=16000).contains(&fifth));
            let late = backoff_ms(40, 1000, 60_000);
            assert!((30_000..=60_000).contains(&late));
        }
    }
}
