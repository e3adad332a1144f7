//! Background work inside the server process: job workers, and the periodic sweeps. Every
//! instance runs them; the database (leases, guarded updates) keeps them from colliding.
//!
//! A worker renews the lease of the job it runs every `jobs.heartbeat_ms`, so leases can be
//! short and a crashed instance's jobs are taken over seconds later. A renewal that finds the
//! job taken by another worker stops this run at once (the other one does the work), and so
//! does one that cannot reach the database before the lease would run out.

use crate::jobs::{self, Claimed, Job, JobError};
use crate::services::Services;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub fn spawn(state: Arc<Services>, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    let instance = uuid::Uuid::new_v4().simple().to_string();
    let instance = &instance[..8];
    // Worker names are `{instance}-{n}`: the `locked_by` of the jobs this process runs.
    tracing::info!(
        instance,
        workers = state.settings.jobs.workers,
        "job workers started"
    );
    for n in 0..state.settings.jobs.workers {
        let worker = format!("{instance}-{n}");
        tasks.push(tokio::spawn(work(state.clone(), worker, shutdown.clone())));
    }
    tasks.push(tokio::spawn(sweep(state.clone(), shutdown.clone())));
    tasks.push(tokio::spawn(schedule_digests(
        state.clone(),
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(crate::retention::schedule(
        state.clone(),
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(reload_live_settings(state, shutdown)));
    tasks
}

async fn work(state: Arc<Services>, worker: String, mut shutdown: watch::Receiver<bool>) {
    let poll = Duration::from_millis(state.settings.jobs.poll_interval_ms.max(10));
    let lease_ms = state.settings.jobs.lease_seconds as i64 * 1000;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let claimed = jobs::claim(&state.db, &worker, state.now_ms(), lease_ms).await;
        match claimed {
            Ok(Some(job)) => {
                // Wake one idle worker for whatever else is due (it looks before it locks), so
                // a burst spreads over the workers without every one of them waking per job.
                state.jobs_ready.notify_one();
                // A job may hand this worker its order's next step, already claimed: run it
                // (and whatever it hands on) before claiming anything else.
                let mut next = std::collections::VecDeque::from([job]);
                while let Some(job) = next.pop_front() {
                    let more = run_one(&state, &worker, job).await;
                    for job in more.into_iter().rev() {
                        next.push_front(job);
                    }
                }
            }
            Ok(None) => {
                tokio::select! {
                    _ = state.jobs_ready.notified() => {}
                    _ = tokio::time::sleep(poll) => {}
                    _ = shutdown.changed() => return,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not claim a job");
                tokio::select! {
                    _ = tokio::time::sleep(poll * 4) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

/// Runs one claimed job and records its outcome. Returns the jobs it handed this worker to run
/// next (see `jobs::Run`).
#[tracing::instrument(name = "job", skip_all, fields(kind = %claimed.kind, id = %claimed.id, attempt = claimed.attempts))]
async fn run_one(state: &Services, worker: &str, claimed: Claimed) -> Vec<Claimed> {
    let started = std::time::Instant::now();
    let job = claimed.job();
    let lease_ms = state.settings.jobs.lease_seconds as i64 * 1000;
    let run = jobs::Run::new(&claimed, worker, lease_ms);
    let result = match &job {
        Ok(job) => match while_leased(state, worker, &claimed, dispatch(state, &run, job)).await {
            Some(result) => result,
            // Another worker has the job now: whatever it records is the outcome. What this
            // run handed on is leased to this worker too and is taken over the same way.
            None => return Vec::new(),
        },
        Err(unreadable) => {
            tracing::error!(error = ?unreadable, payload = %claimed.payload, "job payload does not parse: failing it for good");
            Err(unreadable.clone())
        }
    };
    let next = run.take_next();
    let kind = job.as_ref().map_or("unreadable", Job::kind);
    if result.is_ok() && run.finished() {
        // The handler committed the completion with its own effect.
        state.metrics.job_run(kind, "done", started.elapsed());
        return next;
    }
    let now = state.now_ms();
    let settings = &state.settings.jobs;
    let outcome: Result<&'static str, sqlx::Error> = async {
        let mut recorded = "done";
        let mut tx = state.db.begin().await?;
        match &result {
            Ok(()) => {
                jobs::complete(&mut tx, &claimed, worker, now).await?;
            }
            Err(err) => {
                let (message, retry) = match err {
                    JobError::Retry(m) => (m.as_str(), claimed.attempts < settings.max_attempts),
                    JobError::Permanent(m) => (m.as_str(), false),
                };
                let retry_at = retry.then(|| {
                    now + jobs::backoff_ms(
                        claimed.attempts,
                        settings.backoff_base_ms,
                        settings.backoff_max_ms,
                    ) as i64
                });
                let dead = jobs::fail(&mut tx, &claimed, worker, message, retry_at, now).await?;
                recorded = if dead { "dead" } else { "retry" };
                if dead {
                    tracing::error!(error = message, "job failed for the last time");
                    if let Ok(job) = &job {
                        on_dead(state, &mut tx, job, message, now).await?;
                    }
                } else {
                    tracing::warn!(error = message, "job failed; will retry");
                }
            }
        }
        tx.commit().await.map(|()| recorded)
    }
    .await;
    match outcome {
        Ok(recorded) => state.metrics.job_run(kind, recorded, started.elapsed()),
        // The lease runs out and another worker takes the job again: nothing is lost.
        Err(e) => tracing::error!(error = %e, "could not record a job's outcome"),
    }
    next
}

/// Runs `work` while renewing the job's lease. `None` when the lease was lost (another worker
/// took the job) or could not be renewed before its end: `work` is dropped at its next await,
/// so this run stops before it can commit anything more. A handler's steps are each guarded
/// (order states, the supplier's credit keyed by order), so one stopped half-way is finished
/// by the next run without doing anything twice.
async fn while_leased<F: std::future::Future>(
    state: &Services,
    worker: &str,
    claimed: &Claimed,
    work: F,
) -> Option<F::Output> {
    let settings = &state.settings.jobs;
    let every = Duration::from_millis(settings.heartbeat_ms);
    let lease_ms = settings.lease_seconds as i64 * 1000;
    let heartbeat = async {
        let mut leased_until = claimed.lease_until;
        loop {
            tokio::time::sleep(every).await;
            let now = state.now_ms();
            // A renewal stuck behind a busy database counts as failed after one interval, so
            // the check against the lease's end below is made in time.
            let renewed = match tokio::time::timeout(
                every,
                jobs::renew(&state.db, &claimed.id, worker, now, lease_ms),
            )
            .await
            {
                Ok(answer) => answer.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {every:?}")),
            };
            match renewed {
                Ok(true) => leased_until = now + lease_ms,
                Ok(false) => {
                    tracing::warn!("lease lost: another worker has this job; stopping this run");
                    return;
                }
                Err(e) => {
                    // Stop while the lease still holds, before anyone else may start the job.
                    if leased_until - state.now_ms() <= settings.heartbeat_ms as i64 {
                        tracing::warn!(error = %e, "could not renew the lease before its end; stopping this run");
                        return;
                    }
                    tracing::warn!(error = %e, "could not renew the lease; trying again");
                }
            }
        }
    };
    tokio::select! {
        // A finished run wins over a renewal that failed at the same moment: its outcome is
        // recorded only if the job is still this worker's (`jobs::complete`, `jobs::fail`).
        biased;
        out = work => Some(out),
        () = heartbeat => {
            state.metrics.job_lease_lost();
            None
        }
    }
}

/// Runs one job: every kind has its handler here, and the compiler checks that none is missed.
async fn dispatch(state: &Services, run: &jobs::Run<'_>, job: &Job) -> Result<(), JobError> {
    match job {
        Job::SandboxWebhook { url, body } => sandbox(state)?
            .deliver(&state.http, url, body)
            .await
            .map_err(JobError::Retry),
        Job::SandboxSettle {
            session_id,
            payment_id,
        } => sandbox(state)?
            .settle(session_id, payment_id)
            .await
            .map_err(JobError::from),
        Job::ScreenOrder { order_id, late } => {
            crate::orders::screening::screen(state, run, order_id, *late).await
        }
        Job::FulfillOrder {
            order_id,
            recheck_recipient,
        } => crate::orders::fulfillment::run(state, run, order_id, *recheck_recipient).await,
        Job::RefundOrder { order_id, reason } => {
            crate::orders::refunds::run_full_refund_job(state, order_id, reason).await
        }
        Job::SendEmail { email_id } => {
            crate::mail::send::send(&state.mail_context(), email_id, Some(run)).await
        }
        Job::StaffDigest { staff_id, from } => {
            crate::staff_digest::run(state, staff_id, *from).await
        }
        Job::PruneOldRecords { .. } => crate::retention::run(state).await,
    }
}

fn sandbox(state: &Services) -> Result<&crate::payments::sandbox::SandboxProvider, JobError> {
    state
        .sandbox
        .as_deref()
        .ok_or_else(|| JobError::Permanent("sandbox provider is off".into()))
}

/// A job's last try failed: whatever it was for must not be left hanging silently.
async fn on_dead(
    state: &Services,
    tx: &mut crate::db::Tx,
    job: &Job,
    message: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    tracing::error!(kind = job.kind(), error = message, "job is dead");
    match job {
        Job::FulfillOrder { order_id, .. } => {
            if let Some(order) = crate::db::orders::by_id_in(tx, order_id).await? {
                crate::orders::fulfillment::gave_up(state, tx, &order, message, now).await?;
            }
        }
        Job::RefundOrder { order_id, .. } | Job::ScreenOrder { order_id, .. } => {
            let detail = format!(
                "Needs attention: {} failed for good ({message})",
                job.kind().replace('_', " ")
            );
            crate::db::events::record(
                tx,
                order_id,
                now,
                "system",
                "needs_attention",
                None,
                None,
                &detail,
            )
            .await?;
        }
        Job::SendEmail { .. }
        | Job::SandboxWebhook { .. }
        | Job::SandboxSettle { .. }
        | Job::StaffDigest { .. }
        | Job::PruneOldRecords { .. } => {}
    }
    Ok(())
}

/// Periodic housekeeping: expire unpaid orders, forget idle rate-limit buckets.
/// Picks up risk rules and prices saved on another instance (the saving one reloads at once).
async fn reload_live_settings(state: Arc<Services>, mut shutdown: watch::Receiver<bool>) {
    let every = Duration::from_secs(state.settings.console.settings_reload_seconds.max(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if let Err(e) = state.live.reload_if_changed(&state.db).await {
            tracing::warn!(error = %e, "could not check for changed live settings");
        }
    }
}

/// Queues the staff notification digests that are due (every instance does; each digest is
/// queued once per staff member and period).
async fn schedule_digests(state: Arc<Services>, mut shutdown: watch::Receiver<bool>) {
    let every = Duration::from_secs(state.settings.notifications.check_seconds.max(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let settings = &state.settings.notifications;
        match crate::staff_digest::schedule_due(&state.db, settings, state.now_ms()).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(digests = n, "staff digests queued");
                state.jobs_ready.notify_one();
            }
            Err(e) => tracing::warn!(error = %e, "staff digest check failed"),
        }
    }
}

async fn sweep(state: Arc<Services>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut rounds: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        rounds += 1;
        match crate::orders::expiry::expire_due(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "expired unpaid orders"),
            Err(e) => tracing::warn!(error = %e, "expiry sweep failed"),
        }
        // Old records (rate-limit counts among them) are pruned by `retention`.
        if rounds.is_multiple_of(12) {
            match crate::mail::outbox::revive_dead_sends(state.db.pool(), state.now_ms()).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(emails = n, "retrying emails whose sending ran out of tries")
                }
                Err(e) => tracing::warn!(error = %e, "email revival sweep failed"),
            }
        }
    }
}
