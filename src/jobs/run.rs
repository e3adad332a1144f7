//! The job a worker is running, as its handler sees it. A handler whose work ends in a
//! transaction finishes the job inside that transaction ([`Run::commit`]): the effect and the
//! job's completion are one commit, not two, and a run whose lease was lost commits nothing.
//! A handler may also hand its worker the order's next step ([`Run::then_run`],
//! [`Run::then_run_queued`]): that job is written already claimed by this worker, in the same
//! transaction, so the next step starts at once, with no claim to commit and no wait in the
//! queue. If the worker dies first, the lease runs out and any worker takes the job over, as
//! with any claimed job.

use super::{Claimed, NewJob};
use crate::clock::Millis;
use crate::db::{self, Tx};
use std::sync::Mutex;

pub struct Run<'a> {
    claimed: &'a Claimed,
    worker: &'a str,
    lease_ms: i64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The job's completion was committed by its handler.
    finished: bool,
    /// Claimed in the handler's open transaction: valid once it commits.
    pending_next: Vec<Claimed>,
    /// Committed: to be run by this worker next, in order.
    next: Vec<Claimed>,
}

/// The handler's transaction could not finish the job: it is no longer this worker's.
#[derive(Debug, thiserror::Error)]
#[error("the job's lease was lost to another worker; nothing was committed")]
pub struct LeaseLost;

impl From<LeaseLost> for super::JobError {
    fn from(e: LeaseLost) -> Self {
        // The other worker's run records the outcome; this one's error is only logged.
        super::JobError::Retry(e.to_string())
    }
}

/// What [`Run::commit`] can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    LeaseLost(#[from] LeaseLost),
}

impl From<CommitError> for super::JobError {
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::Database(e) => e.into(),
            CommitError::LeaseLost(e) => e.into(),
        }
    }
}

impl<'a> Run<'a> {
    pub fn new(claimed: &'a Claimed, worker: &'a str, lease_ms: i64) -> Self {
        Run {
            claimed,
            worker,
            lease_ms,
            state: Mutex::new(State::default()),
        }
    }

    pub fn claimed(&self) -> &Claimed {
        self.claimed
    }

    /// Writes `job` in `tx` as already claimed by this worker, to run right after this one.
    pub async fn then_run(&self, tx: &mut Tx, job: NewJob, now: Millis) -> Result<(), sqlx::Error> {
        let payload = job
            .job
            .payload()
            .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let lease_until = now + self.lease_ms;
        let id = crate::domain::ids::new_id();
        let kind = job.job.kind();
        let inserted = db::jobs::insert_claimed(
            tx,
            &id,
            kind,
            &payload,
            job.dedupe_key,
            self.worker,
            lease_until,
            now,
        )
        .await?;
        if inserted {
            self.lock().pending_next.push(Claimed {
                id,
                kind: kind.into(),
                payload,
                attempts: 1,
                lease_until,
            });
        }
        Ok(())
    }

    /// Claims for this worker, in `tx`, the pending job with `dedupe_key` that `tx` itself has
    /// just queued (an email written by the outbox, say), to run right after this one.
    pub async fn then_run_queued(
        &self,
        tx: &mut Tx,
        dedupe_key: &str,
        now: Millis,
    ) -> Result<(), sqlx::Error> {
        let lease_until = now + self.lease_ms;
        if let Some(row) =
            db::jobs::claim_pending_by_key(tx, dedupe_key, self.worker, now, lease_until).await?
        {
            self.lock().pending_next.push(Claimed {
                id: row.id,
                kind: row.kind,
                payload: row.payload,
                attempts: row.attempts as u32,
                lease_until,
            });
        }
        Ok(())
    }

    /// Marks the job done in `tx` and commits: one commit for the handler's effect and the
    /// job's completion. When the job is no longer this worker's, nothing is committed.
    pub async fn commit(&self, mut tx: Tx, now: Millis) -> Result<(), CommitError> {
        if !db::jobs::mark_done(&mut tx, &self.claimed.id, self.worker, now).await? {
            tx.rollback().await?;
            self.lock().pending_next.clear();
            return Err(LeaseLost.into());
        }
        let committed = tx.commit().await;
        let mut state = self.lock();
        let claimed = std::mem::take(&mut state.pending_next);
        committed?;
        state.finished = true;
        state.next.extend(claimed);
        Ok(())
    }

    /// Whether the handler committed the job's completion itself.
    pub fn finished(&self) -> bool {
        self.lock().finished
    }

    /// The jobs handed to this worker to run next (committed ones only).
    pub fn take_next(&self) -> Vec<Claimed> {
        std::mem::take(&mut self.lock().next)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is plain data that no panic leaves half-written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
