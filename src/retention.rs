//! Running for years: pruning what the shop need not keep. Finished jobs, rate-limit counts,
//! staff sign-in throttle records, ended staff sessions, used or expired staff links and the
//! bodies of old emails go once they are older than their `retention.*` age; orders,
//! payments, refunds, disputes, order events and the audit log are kept.
//!
//! Every instance looks each `retention.every_minutes` and queues one `prune_old_records` job
//! for the period (its dedupe key names the period, so only the first instance's is written);
//! a worker then prunes in batches of `retention.batch_size` rows, each its own short
//! statement (`db::retention`), with a pause between them so the shop's own writes are never
//! kept waiting. A run stops after `MAX_BATCHES` batches of one kind; the next period goes on
//! where it stopped, so a backlog (a first run on an old database) drains over a few runs
//! instead of in one long one.

use crate::clock::Millis;
use crate::config::{ConsoleSettings, RetentionSettings};
use crate::db::retention::{self as queries, Prunable};
use crate::db::Db;
use crate::jobs::{self, Job, JobError, NewJob};
use crate::services::Services;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Batches of one kind per run at most.
pub const MAX_BATCHES: u32 = 200;

/// Between two batches: long enough for a waiting writer to take SQLite's write lock.
const PAUSE: Duration = Duration::from_millis(5);

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// What one run removed, per kind, and in how many statements.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pruned {
    pub finished_jobs: u64,
    pub rate_limit_counts: u64,
    pub sign_in_records: u64,
    pub staff_sessions: u64,
    pub staff_links: u64,
    pub email_bodies: u64,
    pub batches: u32,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.finished_jobs
            + self.rate_limit_counts
            + self.sign_in_records
            + self.staff_sessions
            + self.staff_links
            + self.email_bodies
    }
}

/// `days` (or hours) before `now`, in milliseconds; the settings cap every age at ten years,
/// so this cannot overflow, and saturates if it ever could.
fn before(now: Millis, units: u64, unit_ms: i64) -> Millis {
    let age = i64::try_from(units)
        .unwrap_or(i64::MAX)
        .saturating_mul(unit_ms);
    now.saturating_sub(age)
}

/// Runs batches of `step` until one comes back short (nothing more is old) or the run's
/// batch budget is spent. Returns the rows affected.
async fn in_batches<F, Fut>(
    batch: u32,
    pruned: &mut Pruned,
    mut step: F,
) -> Result<u64, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, sqlx::Error>>,
{
    let mut total = 0;
    for _ in 0..MAX_BATCHES {
        let n = step().await?;
        pruned.batches += 1;
        total += n;
        if n < u64::from(batch) {
            break;
        }
        tokio::time::sleep(PAUSE).await;
    }
    Ok(total)
}

async fn delete_all(
    db: &Db,
    what: Prunable,
    cutoffs: &[Millis],
    batch: u32,
    pruned: &mut Pruned,
) -> Result<u64, sqlx::Error> {
    in_batches(batch, pruned, || {
        queries::delete_batch(db, what, cutoffs, batch)
    })
    .await
}

/// Prunes everything older than its age at `now`.
pub async fn prune(
    db: &Db,
    settings: &RetentionSettings,
    console: &ConsoleSettings,
    now: Millis,
) -> Result<Pruned, sqlx::Error> {
    let batch = settings.batch_size;
    let mut pruned = Pruned::default();
    let p = &mut pruned;
    p.finished_jobs = delete_all(
        db,
        queries::FINISHED_JOBS,
        &[before(now, settings.finished_jobs_days, DAY_MS)],
        batch,
        p,
    )
    .await?;
    p.rate_limit_counts = delete_all(
        db,
        queries::RATE_LIMIT_COUNTS,
        &[before(now, settings.rate_limit_hours, HOUR_MS)],
        batch,
        p,
    )
    .await?;
    for table in queries::SIGN_IN_RECORDS {
        p.sign_in_records += delete_all(
            db,
            table,
            &[before(now, settings.sign_in_records_days, DAY_MS)],
            batch,
            p,
        )
        .await?;
    }
    // A session ended at its idle or its absolute timeout; it goes `sessions_days` later.
    let keep = before(now, settings.sessions_days, DAY_MS);
    p.staff_sessions = delete_all(
        db,
        queries::STAFF_SESSIONS,
        &[
            before(keep, console.idle_timeout_minutes, 60_000),
            before(keep, console.absolute_timeout_hours, HOUR_MS),
        ],
        batch,
        p,
    )
    .await?;
    p.staff_links = delete_all(
        db,
        queries::STAFF_LINKS,
        &[before(now, settings.staff_links_days, DAY_MS)],
        batch,
        p,
    )
    .await?;
    let bodies_before = before(now, settings.email_bodies_days, DAY_MS);
    p.email_bodies = in_batches(batch, p, || {
        queries::delete_email_bodies(db, bodies_before, now, batch)
    })
    .await?;
    Ok(pruned)
}

/// The `prune_old_records` job.
pub async fn run(state: &Services) -> Result<(), JobError> {
    let settings = &state.settings;
    let pruned = prune(
        &state.db,
        &settings.retention,
        &settings.console,
        state.now_ms(),
    )
    .await?;
    if pruned.total() > 0 {
        tracing::info!(
            finished_jobs = pruned.finished_jobs,
            rate_limit_counts = pruned.rate_limit_counts,
            sign_in_records = pruned.sign_in_records,
            staff_sessions = pruned.staff_sessions,
            staff_links = pruned.staff_links,
            email_bodies = pruned.email_bodies,
            batches = pruned.batches,
            "pruned old records"
        );
    }
    Ok(())
}

/// Queues the pruning job of the period `now` falls in, unless an instance already has.
/// Returns whether this call queued it.
pub async fn schedule_due(
    db: &Db,
    settings: &RetentionSettings,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let every_ms = i64::try_from(settings.every_minutes)
        .unwrap_or(i64::MAX)
        .saturating_mul(60_000)
        .max(1);
    let period = now.div_euclid(every_ms);
    let mut conn = db.pool().acquire().await?;
    jobs::enqueue(
        &mut conn,
        NewJob {
            job: Job::PruneOldRecords { period },
            dedupe_key: Some(format!("{}:{period}", Job::PRUNE_OLD_RECORDS)),
            run_at: now,
        },
        now,
    )
    .await
}

/// The loop each instance runs: looks once a minute, from a minute after start, whether this
/// period's pruning is queued yet (a start is busy enough, and a shop restarted in a loop then
/// never prunes more than once a period either).
pub async fn schedule(state: Arc<Services>, mut shutdown: watch::Receiver<bool>) {
    const EVERY: Duration = Duration::from_secs(60);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + EVERY, EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        match schedule_due(&state.db, &state.settings.retention, state.now_ms()).await {
            Ok(true) => state.jobs_ready.notify_one(),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "could not queue the pruning of old records"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::before;

    #[test]
    fn ages_never_overflow() {
        assert_eq!(before(1_000, 1, 100), 900);
        assert_eq!(before(0, u64::MAX, super::DAY_MS), -i64::MAX);
    }
}
