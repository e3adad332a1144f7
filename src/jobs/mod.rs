//! The durable job queue: a table, not a process. A job is enqueued in the same transaction as
//! the state change that causes it, claimed with a short lease that its worker renews while it
//! runs (`renew`: a crashed worker's job is taken again seconds after its last renewal),
//! retried with exponential backoff and jitter, and marked dead after its last try. Handlers
//! must be idempotent: execution is at least once.
//!
//! What a job is: [`Job`], one enum of every kind (`job.rs`); who runs each kind: the one
//! `match` in `workers`.
//!
//! `run_at` is "when someone should next look at this job": for a pending job the time it may
//! run, for a running job the end of its lease. One index serves both.

mod job;

pub use job::Job;

use crate::clock::Millis;
use crate::db::{col, Backend, Db};
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
    let done = sqlx::query(
        "INSERT INTO jobs (id, kind, payload, dedupe_key, status, attempts, run_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'pending', 0, $5, $6, $6)
         ON CONFLICT DO NOTHING",
    )
    .bind(crate::domain::ids::new_id())
    .bind(job.job.kind())
    .bind(
        job.job
            .payload()
            .map_err(|e| sqlx::Error::Encode(Box::new(e)))?,
    )
    .bind(job.dedupe_key)
    .bind(job.run_at)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Takes the next due job (or one whose lease ended) for `worker`, leasing it until
/// `now + lease_ms`.
pub async fn claim(
    db: &Db,
    worker: &str,
    now: Millis,
    lease_ms: i64,
) -> Result<Option<Claimed>, sqlx::Error> {
    // A job whose lease ran out goes first: its worker died while running it, it was due
    // before anything pending now, and a crashed instance's work is to be taken over within
    // seconds even behind a backlog. Each branch is the front of one (status, run_at) index
    // range. On PostgreSQL, SKIP LOCKED lets many workers in many instances claim without
    // waiting on each other; SQLite has one writer at a time (BEGIN IMMEDIATE), so the plain
    // form is safe.
    let sql = match db.backend() {
        Backend::Postgres => {
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, run_at = $1, locked_by = $2, lease_until = $1, updated_at = $3
             WHERE id = COALESCE(
                 (SELECT id FROM jobs WHERE status = 'running' AND run_at <= $3 ORDER BY run_at LIMIT 1 FOR UPDATE SKIP LOCKED),
                 (SELECT id FROM jobs WHERE status = 'pending' AND run_at <= $3 ORDER BY run_at LIMIT 1 FOR UPDATE SKIP LOCKED))
             RETURNING id, kind, payload, attempts"
        }
        Backend::Sqlite => {
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, run_at = $1, locked_by = $2, lease_until = $1, updated_at = $3
             WHERE id = COALESCE(
                 (SELECT id FROM jobs WHERE status = 'running' AND run_at <= $3 ORDER BY run_at LIMIT 1),
                 (SELECT id FROM jobs WHERE status = 'pending' AND run_at <= $3 ORDER BY run_at LIMIT 1))
             RETURNING id, kind, payload, attempts"
        }
    };
    // An idle worker looks before it takes the write lock: with several workers per instance
    // polling, empty claims would otherwise queue for SQLite's single writer all day.
    let due: i64 = sqlx::query(
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM jobs WHERE status = 'pending' AND run_at <= $1)
                       OR EXISTS (SELECT 1 FROM jobs WHERE status = 'running' AND run_at <= $1)
                THEN 1 ELSE 0 END AS due",
    )
    .bind(now)
    .fetch_one(db.pool())
    .await
    .and_then(|r| col(&r, "due"))?;
    if due == 0 {
        return Ok(None);
    }
    let mut tx = db.begin().await?;
    let row = sqlx::query(sql)
        .bind(now + lease_ms)
        .bind(worker)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(Claimed {
        id: col(&row, "id")?,
        kind: col(&row, "kind")?,
        payload: col(&row, "payload")?,
        attempts: col::<i64>(&row, "attempts")? as u32,
        lease_until: now + lease_ms,
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
    let done = sqlx::query(
        "UPDATE jobs SET run_at = $1, lease_until = $1, updated_at = $2
         WHERE id = $3 AND locked_by = $4 AND status = 'running'",
    )
    .bind(now + lease_ms)
    .bind(now)
    .bind(job_id)
    .bind(worker)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether a job with this dedupe key was ever enqueued.
pub async fn exists_with_key(conn: &mut AnyConnection, key: &str) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE dedupe_key = $1")
        .bind(key)
        .fetch_one(conn)
        .await?;
    Ok(col::<i64>(&row, "n")? > 0)
}

/// Marks a job done, if this worker still holds it.
pub async fn complete(
    conn: &mut AnyConnection,
    job: &Claimed,
    worker: &str,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE jobs SET status = 'done', lease_until = NULL, updated_at = $1 WHERE id = $2 AND locked_by = $3 AND status = 'running'",
    )
    .bind(now)
    .bind(&job.id)
    .bind(worker)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
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
            sqlx::query(
                "UPDATE jobs SET status = 'pending', run_at = $1, lease_until = NULL, last_error = $2, updated_at = $3
                 WHERE id = $4 AND locked_by = $5 AND status = 'running'",
            )
            .bind(at)
            .bind(error)
            .bind(now)
            .bind(&job.id)
            .bind(worker)
            .execute(conn)
            .await?;
            Ok(false)
        }
        None => {
            sqlx::query(
                "UPDATE jobs SET status = 'dead', lease_until = NULL, last_error = $1, updated_at = $2
                 WHERE id = $3 AND locked_by = $4 AND status = 'running'",
            )
            .bind(error)
            .bind(now)
            .bind(&job.id)
            .bind(worker)
            .execute(conn)
            .await?;
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

/// How many jobs there are of each kind and status (for the metrics).
pub async fn count_by_kind_and_status(
    pool: &sqlx::AnyPool,
) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    let rows = sqlx::query("SELECT kind, status, COUNT(*) AS n FROM jobs GROUP BY kind, status")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| Ok((col(r, "kind")?, col(r, "status")?, col(r, "n")?)))
        .collect()
}

/// The queue of one job kind as the metrics show it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindStats {
    pub kind: String,
    /// Waiting for their time (retries in backoff included) or due.
    pub pending: i64,
    pub running: i64,
    pub dead: i64,
    /// Due now and not taken: pending jobs whose time has come, and running ones whose lease
    /// ran out.
    pub due: i64,
    /// When the oldest of those became due.
    pub oldest_due_at: Option<Millis>,
}

/// The queue per kind at `now` (finished jobs left out). `run_at` is when a pending job may
/// run and when a running job's lease ends, so "due" is `run_at <= now` for both.
pub async fn queue_stats(pool: &sqlx::AnyPool, now: Millis) -> Result<Vec<KindStats>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT kind,
                SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END) AS pending,
                SUM(CASE WHEN status = 'running' THEN 1 ELSE 0 END) AS running,
                SUM(CASE WHEN status = 'dead' THEN 1 ELSE 0 END) AS dead,
                SUM(CASE WHEN status IN ('pending', 'running') AND run_at <= $1 THEN 1 ELSE 0 END) AS due,
                MIN(CASE WHEN status IN ('pending', 'running') AND run_at <= $1 THEN run_at END) AS oldest_due_at
         FROM jobs WHERE status IN ('pending', 'running', 'dead') GROUP BY kind",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(KindStats {
                kind: col(r, "kind")?,
                pending: col(r, "pending")?,
                running: col(r, "running")?,
                dead: col(r, "dead")?,
                due: col(r, "due")?,
                oldest_due_at: col(r, "oldest_due_at")?,
            })
        })
        .collect()
}

/// How many jobs wait (pending or running) and how many are dead, for the dashboard.
pub async fn waiting_and_dead(pool: &sqlx::AnyPool) -> Result<(i64, i64), sqlx::Error> {
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM jobs WHERE status IN ('pending', 'running')) AS waiting,
                (SELECT COUNT(*) FROM jobs WHERE status = 'dead') AS dead",
    )
    .fetch_one(pool)
    .await?;
    Ok((col(&row, "waiting")?, col(&row, "dead")?))
}

/// Whether no job is due at `now` and none is running: everything already asked of the queue
/// has happened. Tests and the screening evaluation wait for this instead of for time.
pub async fn is_idle(db: &Db, now: Millis) -> Result<bool, sqlx::Error> {
    let busy: i64 = sqlx::query(
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM jobs WHERE status = 'pending' AND run_at <= $1)
                       OR EXISTS (SELECT 1 FROM jobs WHERE status = 'running')
                THEN 1 ELSE 0 END AS busy",
    )
    .bind(now)
    .fetch_one(db.pool())
    .await
    .and_then(|r| col(&r, "busy"))?;
    Ok(busy == 0)
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
