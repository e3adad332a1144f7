//! The `jobs` table: the queue's rows and the statements that move them. What the statuses
//! mean, leases, backoff and retries live in `jobs/`; this file only reads and writes.
//!
//! `run_at` is "when someone should next look at this job": for a pending job the time it may
//! run, for a running job the end of its lease. One index serves both.

use crate::clock::Millis;
use crate::db::{col, Backend, Db};
use sqlx::AnyConnection;

/// A row just claimed: as stored, `attempts` counting this claim.
#[derive(Debug, Clone)]
pub struct ClaimedRow {
    pub id: String,
    pub kind: String,
    pub payload: String,
    pub attempts: i64,
}

/// Inserts a pending job inside the caller's transaction. A duplicate `dedupe_key` is a no-op
/// (false).
pub async fn insert(
    conn: &mut AnyConnection,
    kind: &str,
    payload: String,
    dedupe_key: Option<String>,
    run_at: Millis,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO jobs (id, kind, payload, dedupe_key, status, attempts, run_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'pending', 0, $5, $6, $6)
         ON CONFLICT DO NOTHING",
    )
    .bind(crate::domain::ids::new_id())
    .bind(kind)
    .bind(payload)
    .bind(dedupe_key)
    .bind(run_at)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

fn claimed_row(row: &sqlx::any::AnyRow) -> Result<ClaimedRow, sqlx::Error> {
    Ok(ClaimedRow {
        id: col(row, "id")?,
        kind: col(row, "kind")?,
        payload: col(row, "payload")?,
        attempts: col(row, "attempts")?,
    })
}

/// Inserts a job already running for `worker` until `lease_until`, inside the caller's
/// transaction (a handler handing its worker the next step: `jobs::Run::then_run`). A
/// duplicate `dedupe_key` is a no-op (false).
#[allow(clippy::too_many_arguments)]
pub async fn insert_claimed(
    conn: &mut AnyConnection,
    id: &str,
    kind: &str,
    payload: &str,
    dedupe_key: Option<String>,
    worker: &str,
    lease_until: Millis,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO jobs (id, kind, payload, dedupe_key, status, attempts, run_at, locked_by, lease_until, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'running', 1, $5, $6, $5, $7, $7)
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(kind)
    .bind(payload)
    .bind(dedupe_key)
    .bind(lease_until)
    .bind(worker)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Claims for `worker`, inside the caller's transaction, the pending job with this dedupe key.
pub async fn claim_pending_by_key(
    conn: &mut AnyConnection,
    dedupe_key: &str,
    worker: &str,
    now: Millis,
    lease_until: Millis,
) -> Result<Option<ClaimedRow>, sqlx::Error> {
    let row = sqlx::query(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, run_at = $1, locked_by = $2, lease_until = $1, updated_at = $3
         WHERE dedupe_key = $4 AND status = 'pending'
         RETURNING id, kind, payload, attempts",
    )
    .bind(lease_until)
    .bind(worker)
    .bind(now)
    .bind(dedupe_key)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(claimed_row).transpose()
}

/// Marks the next due job (or one whose lease ended) running for `worker` until
/// `lease_until`, and returns it.
pub async fn claim_next(
    db: &Db,
    worker: &str,
    now: Millis,
    lease_until: Millis,
) -> Result<Option<ClaimedRow>, sqlx::Error> {
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
        .bind(lease_until)
        .bind(worker)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await?;
    row.as_ref().map(claimed_row).transpose()
}

/// Moves the lease end of a job `worker` runs to `lease_until`. False when the job is no
/// longer this worker's.
pub async fn renew_lease(
    db: &Db,
    job_id: &str,
    worker: &str,
    now: Millis,
    lease_until: Millis,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE jobs SET run_at = $1, lease_until = $1, updated_at = $2
         WHERE id = $3 AND locked_by = $4 AND status = 'running'",
    )
    .bind(lease_until)
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

/// Marks a running job done, if `worker` still holds it (true).
pub async fn mark_done(
    conn: &mut AnyConnection,
    job_id: &str,
    worker: &str,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE jobs SET status = 'done', lease_until = NULL, updated_at = $1 WHERE id = $2 AND locked_by = $3 AND status = 'running'",
    )
    .bind(now)
    .bind(job_id)
    .bind(worker)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Puts a running job `worker` holds back to pending until `run_at`, with its last error.
pub async fn reschedule(
    conn: &mut AnyConnection,
    job_id: &str,
    worker: &str,
    error: &str,
    run_at: Millis,
    now: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE jobs SET status = 'pending', run_at = $1, lease_until = NULL, last_error = $2, updated_at = $3
         WHERE id = $4 AND locked_by = $5 AND status = 'running'",
    )
    .bind(run_at)
    .bind(error)
    .bind(now)
    .bind(job_id)
    .bind(worker)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks a running job `worker` holds dead, with its last error.
pub async fn mark_dead(
    conn: &mut AnyConnection,
    job_id: &str,
    worker: &str,
    error: &str,
    now: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE jobs SET status = 'dead', lease_until = NULL, last_error = $1, updated_at = $2
         WHERE id = $3 AND locked_by = $4 AND status = 'running'",
    )
    .bind(error)
    .bind(now)
    .bind(job_id)
    .bind(worker)
    .execute(conn)
    .await?;
    Ok(())
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

/// Whether some job is due at `now` or running.
pub async fn any_due_or_running(db: &Db, now: Millis) -> Result<bool, sqlx::Error> {
    let busy: i64 = sqlx::query(
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM jobs WHERE status = 'pending' AND run_at <= $1)
                       OR EXISTS (SELECT 1 FROM jobs WHERE status = 'running')
                THEN 1 ELSE 0 END AS busy",
    )
    .bind(now)
    .fetch_one(db.pool())
    .await
    .and_then(|r| col(&r, "busy"))?;
    Ok(busy == 1)
}
