//! Staff notification digests: an email to a staff member listing the work that became
//! waiting since their last digest — held orders waiting longer than
//! `notifications.held_after_minutes`, new refund requests, support messages awaiting an
//! answer, dead jobs, screening (surge) events — at the interval and for the kinds they chose
//! on `/console/account/notifications`. Agents get none until they choose to; admins get them
//! by default (`notifications.admins_by_default`). An empty digest is not sent.
//!
//! Each instance looks every `notifications.check_seconds` ([`schedule_due`]) and queues one
//! `staff_digest` job per staff member and period, keyed `digest:{staff_id}:{period_start}`,
//! so several instances queue it once. The job ([`run`]) writes the email (same key) and moves
//! the staff member's covered time on in one transaction, guarded on its old value: a period
//! is covered exactly once, even by two workers that both hold the job after a lease ran out.

pub mod render;

use crate::clock::Millis;
use crate::config::NotificationSettings;
use crate::db::staff_digests::{self, Choice, Found};
use crate::db::Db;
use crate::jobs::{self, Job, JobError, NewJob};
use crate::mail::outbox::{self, Outgoing};
use crate::mail::Mailer;
use crate::services::Services;

/// The job kind that builds (and, when something waits, writes) one digest.
pub const JOB: &str = Job::STAFF_DIGEST;

/// A row stamped just before a period's end may commit a moment after it: a period is only
/// covered once this long has passed since it ended, so such a row is never skipped.
pub const SETTLE_MS: i64 = 60_000;

/// The choice of a staff member who has not made one: agents get nothing until they ask;
/// admins get every kind when the shop says so.
pub fn default_choice(settings: &NotificationSettings, is_admin: bool) -> Choice {
    Choice {
        enabled: is_admin && settings.admins_by_default,
        every_minutes: settings.default_every_minutes,
        held: true,
        refunds: true,
        support: true,
        dead_jobs: true,
        screening: true,
    }
}

/// The end of the last period (at `every_minutes` intervals, aligned to the Unix epoch in
/// UTC, so an hourly digest covers whole hours) that is fully over and settled at `now`.
pub fn covered_to(now: Millis, every_minutes: u64) -> Millis {
    let every = every_ms(every_minutes);
    let settled = now.saturating_sub(SETTLE_MS);
    settled - settled.rem_euclid(every)
}

fn every_ms(every_minutes: u64) -> i64 {
    // Settings bound the choices to a week; the row could hold anything, so clamp.
    i64::try_from(every_minutes.clamp(1, 10_080)).unwrap_or(1) * 60_000
}

/// The dedupe key of the digest (its job and its email) for one staff member and period.
pub fn dedupe_key(staff_id: &str, period_start: Millis) -> String {
    format!("digest:{staff_id}:{period_start}")
}

/// Queues the digest job of every staff member whose period is over. Safe to run on every
/// instance at once: a job per staff member and period start is queued at most once.
/// Returns how many were queued.
pub async fn schedule_due(
    db: &Db,
    settings: &NotificationSettings,
    now: Millis,
) -> Result<u64, sqlx::Error> {
    if settings.admins_by_default {
        staff_digests::adopt_for_admins(db.pool(), &default_choice(settings, true), now).await?;
    }
    let mut queued = 0;
    for stored in staff_digests::enabled(db.pool()).await? {
        let from = stored.covered_until;
        if covered_to(now, stored.choice.every_minutes) <= from {
            continue;
        }
        let key = dedupe_key(&stored.staff_id, from);
        let mut conn = db.pool().acquire().await?;
        let job = NewJob {
            job: Job::StaffDigest {
                staff_id: stored.staff_id.clone(),
                from,
            },
            dedupe_key: Some(key),
            run_at: now,
        };
        if jobs::enqueue(&mut conn, job, now).await? {
            queued += 1;
        }
    }
    Ok(queued)
}

/// What building a digest needs (no web state).
pub struct Deps<'a> {
    pub db: &'a Db,
    pub mailer: &'a Mailer,
    pub settings: &'a NotificationSettings,
    pub shop_name: &'a str,
    /// The console's links start here.
    pub base_url: &'a str,
    pub now: Millis,
}

impl<'a> Deps<'a> {
    pub fn of(state: &'a Services) -> Self {
        Deps {
            db: &state.db,
            mailer: &state.mailer,
            settings: &state.settings.notifications,
            shop_name: &state.settings.shop_name,
            base_url: &state.base_url,
            now: state.now_ms(),
        }
    }
}

/// The `staff_digest` job.
pub async fn run(state: &Services, staff_id: &str, from: Millis) -> Result<(), JobError> {
    build_and_queue(&Deps::of(state), staff_id, from).await?;
    Ok(())
}

/// What one run of the job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The digest was written to the outbox.
    Queued,
    /// Nothing waited: the period is covered and no email written.
    Empty,
    /// The period was already covered, or the staff member no longer wants digests.
    Skipped,
}

/// Builds the digest of `staff_id` for the period starting at `from` and writes it to the
/// outbox, covering the period, in one transaction.
#[tracing::instrument(name = "staff_digest", skip(deps))]
pub async fn build_and_queue(
    deps: &Deps<'_>,
    staff_id: &str,
    from: Millis,
) -> Result<Outcome, sqlx::Error> {
    let mut tx = deps.db.begin().await?;
    let Some(stored) = staff_digests::for_staff_in(&mut tx, staff_id).await? else {
        return Ok(Outcome::Skipped);
    };
    if stored.covered_until != from {
        return Ok(Outcome::Skipped);
    }
    let until = covered_to(deps.now, stored.choice.every_minutes);
    if until <= from {
        return Ok(Outcome::Skipped);
    }
    let staff = crate::db::staff::by_id(deps.db.pool(), staff_id).await?;
    let choice = stored.choice;
    let outcome = match staff {
        Some(member) if member.disabled_at.is_none() && choice.enabled => {
            let found = gather(&mut tx, deps.settings, &choice, from, until).await?;
            if found.is_empty() {
                Outcome::Empty
            } else {
                let digest = render::Digest::new(deps, &found, from, until);
                let rendered = digest
                    .render()
                    .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
                let key = dedupe_key(staff_id, from);
                let outgoing = Outgoing {
                    order_id: None,
                    kind: JOB,
                    dedupe_key: &key,
                    to: &member.email,
                    rendered: &rendered,
                };
                outbox::enqueue_rendered(&mut tx, deps.mailer, &outgoing, deps.now).await?;
                Outcome::Queued
            }
        }
        // Off, or the account is disabled: the period passes without a digest.
        _ => Outcome::Skipped,
    };
    if !staff_digests::advance(&mut tx, staff_id, from, until, deps.now).await? {
        // Someone else covered it between our read and now: theirs stands.
        tx.rollback().await?;
        return Ok(Outcome::Skipped);
    }
    tx.commit().await?;
    if outcome == Outcome::Queued {
        tracing::info!("staff digest queued");
    }
    Ok(outcome)
}

/// Every kind of waiting work the staff member chose, for one period.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Gathered {
    pub held: Found,
    pub refunds: Found,
    pub support: Found,
    pub dead_jobs: Found,
    pub screening: Found,
}

impl Gathered {
    pub fn is_empty(&self) -> bool {
        [
            &self.held,
            &self.refunds,
            &self.support,
            &self.dead_jobs,
            &self.screening,
        ]
        .iter()
        .all(|f| f.total == 0)
    }
}

async fn gather(
    conn: &mut sqlx::AnyConnection,
    settings: &NotificationSettings,
    choice: &Choice,
    from: Millis,
    until: Millis,
) -> Result<Gathered, sqlx::Error> {
    let limit = i64::from(settings.max_items);
    let held_after_ms = i64::try_from(settings.held_after_minutes)
        .unwrap_or(i64::MAX / 60_000)
        .saturating_mul(60_000);
    let mut g = Gathered::default();
    if choice.held {
        g.held = staff_digests::held_orders(conn, from, until, held_after_ms, limit).await?;
    }
    if choice.refunds {
        g.refunds = staff_digests::refund_requests(conn, from, until, limit).await?;
    }
    if choice.support {
        g.support = staff_digests::support_waiting(conn, from, until, limit).await?;
    }
    if choice.dead_jobs {
        g.dead_jobs = staff_digests::dead_jobs(conn, from, until, limit).await?;
    }
    if choice.screening {
        g.screening = staff_digests::screening_events(conn, from, until, limit).await?;
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn a_period_is_covered_once_it_is_over_and_settled() {
        let start = 1_800_000 * HOUR; // on an hour
        assert_eq!(covered_to(start + 30 * 60_000, 60), start);
        assert_eq!(covered_to(start + 30_000, 60), start - HOUR);
        // The hour ended, but not a minute ago yet.
        assert_eq!(covered_to(start + HOUR + 59_999, 60), start);
        assert_eq!(covered_to(start + HOUR + SETTLE_MS, 60), start + HOUR);
        // Daily digests cover whole UTC days.
        assert_eq!(covered_to(start + 25 * HOUR, 1440) % (24 * HOUR), 0);
    }

    #[test]
    fn agents_are_off_by_default_and_admins_follow_the_setting() {
        let mut s = NotificationSettings::default();
        assert!(!default_choice(&s, false).enabled);
        assert!(default_choice(&s, true).enabled);
        s.admins_by_default = false;
        assert!(!default_choice(&s, true).enabled);
        assert_eq!(default_choice(&s, true).every_minutes, 60);
    }

    #[test]
    fn silly_intervals_in_a_row_are_clamped() {
        assert_eq!(every_ms(0), 60_000);
        assert_eq!(every_ms(u64::MAX), 10_080 * 60_000);
    }
}
