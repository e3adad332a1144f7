//! The `fulfill_order` job: `queued → fulfilling → delivered`, exactly once in effect.
//!
//! Crash safety comes from two facts: the supplier's credit is idempotent by order id (a
//! repeat returns the first receipt), and each state change is a guarded transaction. A worker
//! that dies after crediting but before recording leaves the job leased; the next worker
//! credits again (a no-op) and records the delivery.

use crate::db::orders::{self, Order};
use crate::db::{events, Tx};
use crate::domain::{OrderStatus, TikTokUsername};
use crate::fulfillment::SupplierError;
use crate::jobs::{self, Job, JobError, NewJob};
use crate::orders::screening;
use crate::services::Services;

fn transient(e: SupplierError) -> JobError {
    match e {
        SupplierError::Transient(m) => JobError::Retry(m),
        SupplierError::Permanent(m) => JobError::Permanent(m),
    }
}

/// Starts delivering a just-queued order inside the caller's transaction (the screening that
/// allowed it): `queued → fulfilling`, with the fulfillment job claimed by the caller's worker
/// to run next (`jobs::Run::then_run`). Its commit is the screening's.
pub async fn start_now(
    run: &jobs::Run<'_>,
    tx: &mut Tx,
    order_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    if orders::transition(
        tx,
        order_id,
        OrderStatus::Queued,
        OrderStatus::Fulfilling,
        "system",
        DELIVERY_STARTED,
        now,
    )
    .await?
    {
        let job = NewJob {
            job: Job::FulfillOrder {
                order_id: order_id.into(),
                recheck_recipient: false,
            },
            dedupe_key: None,
            run_at: now,
        };
        run.then_run(tx, job, now).await?;
    }
    Ok(())
}

const DELIVERY_STARTED: &str = "Delivery started";

/// The job: `recheck_recipient` screens the order again first (a held-back delivery).
pub async fn run(
    state: &Services,
    run: &jobs::Run<'_>,
    order_id: &str,
    recheck_recipient: bool,
) -> Result<(), JobError> {
    let Some(order) = orders::by_id(state.db.pool(), order_id).await? else {
        return Err(JobError::Permanent(format!("no order {order_id}")));
    };
    let now = state.now_ms();
    if !start(state, &order, now).await? {
        return Ok(());
    }
    if let Some(hold) = reason_to_hold(state, &order, recheck_recipient, now).await? {
        return hold_before_credit(state, run, &order, hold, now).await;
    }
    let receipt = state
        .supplier
        .credit(&order.id, &order.tiktok_account_id, order.coins)
        .await
        .map_err(transient)?;
    record_delivery(state, run, &order, &receipt).await
}

/// Moves a queued order to `fulfilling`. True when this job is to deliver it: it moved, or it
/// was fulfilling already (resumed after a crash or a retry). False when someone else took
/// it, it was delivered already, or it is no longer ours to deliver (held, refunded…).
async fn start(state: &Services, order: &Order, now: i64) -> Result<bool, JobError> {
    match order.status {
        OrderStatus::Queued => {
            let mut tx = state.db.begin().await?;
            let moved = orders::transition(
                &mut tx,
                &order.id,
                OrderStatus::Queued,
                OrderStatus::Fulfilling,
                "system",
                DELIVERY_STARTED,
                now,
            )
            .await?;
            tx.commit().await?;
            Ok(moved)
        }
        OrderStatus::Fulfilling => Ok(true),
        _ => Ok(false),
    }
}

/// Why an order must go to review instead of being credited.
struct Hold {
    reasons: Vec<crate::risk::Reason>,
    signals: Option<crate::risk::Signals>,
    why: String,
}

/// The checks just before crediting: the username may have changed hands since checkout
/// (never credit a stranger), and a held-back order is screened again.
async fn reason_to_hold(
    state: &Services,
    order: &Order,
    recheck_recipient: bool,
    now: i64,
) -> Result<Option<Hold>, JobError> {
    let username = TikTokUsername::parse(&order.tiktok_username)
        .map_err(|e| JobError::Permanent(e.to_string()))?;
    let current = state
        .supplier
        .lookup_account(&username)
        .await
        .map_err(transient)?;
    let still_theirs = current
        .as_ref()
        .is_some_and(|a| a.account_id == order.tiktok_account_id);
    if !still_theirs {
        let why = match current {
            Some(_) => format!(
                "@{} now belongs to a different TikTok account than at checkout; held instead of crediting",
                order.tiktok_username
            ),
            None => format!("@{} no longer exists; held instead of crediting", order.tiktok_username),
        };
        let reason = crate::risk::Reason {
            code: "recipient_changed".into(),
            points: 0,
            force: Some(crate::risk::Decision::Review),
            sentence: format!("{why} (checked just before crediting)"),
        };
        return Ok(Some(Hold {
            reasons: vec![reason],
            signals: None,
            why,
        }));
    }
    // A held-back order (a new payer's large order): the screening runs again, since what
    // happened meanwhile — other payers for the same account, a wave of failures — counts.
    if recheck_recipient {
        let live = state.live.current();
        let signals = crate::risk::signals::gather(&state.db, &live.catalog, order, now).await?;
        let again = crate::risk::rules::evaluate(&signals, &live.risk);
        if again.decision != crate::risk::Decision::Allow {
            return Ok(Some(Hold {
                why: format!(
                    "Held at the check just before crediting: {}",
                    crate::risk::summary(&again)
                ),
                reasons: again.reasons,
                signals: Some(signals),
            }));
        }
    }
    Ok(None)
}

/// The supplier credited the coins: `fulfilling → delivered` with the receipt email, which
/// this worker sends next.
async fn record_delivery(
    state: &Services,
    run: &jobs::Run<'_>,
    order: &Order,
    receipt: &crate::fulfillment::CreditReceipt,
) -> Result<(), JobError> {
    let now = state.now_ms();
    let mut tx = state.db.begin().await?;
    let detail = format!(
        "{} coins credited to @{} (supplier ref {})",
        receipt.coins, order.tiktok_username, receipt.credit_ref
    );
    if orders::transition(
        &mut tx,
        &order.id,
        OrderStatus::Fulfilling,
        OrderStatus::Delivered,
        "supplier",
        &detail,
        now,
    )
    .await?
    {
        if let Some(send_job) = crate::orders::notify::delivered(state, &mut tx, order, now).await?
        {
            run.then_run_queued(&mut tx, &send_job, now).await?;
        }
    }
    run.commit(tx, now).await?;
    Ok(())
}

/// Moves a fulfilling order to review instead of crediting, with an assessment that says why
/// (the review queue shows the newest one), stored with `signals` (gathered here when the
/// caller has none).
async fn hold_before_credit(
    state: &Services,
    run: &jobs::Run<'_>,
    order: &Order,
    hold: Hold,
    now: i64,
) -> Result<(), JobError> {
    let Hold {
        reasons,
        signals,
        why,
    } = hold;
    let signals = match signals {
        Some(s) => s,
        None => {
            let live = state.live.current();
            crate::risk::signals::gather(&state.db, &live.catalog, order, now).await?
        }
    };
    let score = reasons.iter().map(|r| r.points).sum::<u32>().min(100);
    let assessment = crate::risk::Assessment {
        score,
        decision: crate::risk::Decision::Review,
        reasons,
    };
    let mut tx = state.db.begin().await?;
    if orders::transition(
        &mut tx,
        &order.id,
        OrderStatus::Fulfilling,
        OrderStatus::InReview,
        "system",
        &why,
        now,
    )
    .await?
    {
        crate::risk::record(
            &mut tx,
            &order.id,
            crate::risk::Stage::PreCredit,
            &assessment,
            &signals,
            now,
        )
        .await?;
        crate::orders::notify::held_for_review(state, &mut tx, order, now).await?;
    }
    run.commit(tx, now).await?;
    state.jobs_ready.notify_one();
    Ok(())
}

/// The last try failed: the order is `fulfillment_failed`, visible to support, and — unless
/// the operator turned it off — refunded in full at once, so nobody waits for coins that will
/// not come.
pub async fn gave_up(
    state: &Services,
    tx: &mut Tx,
    order: &Order,
    error: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let from = order.status;
    if !matches!(from, OrderStatus::Queued | OrderStatus::Fulfilling) {
        return Ok(());
    }
    let detail = format!("Delivery failed after every retry: {error}");
    if !orders::transition(
        tx,
        &order.id,
        from,
        OrderStatus::FulfillmentFailed,
        "system",
        &detail,
        now,
    )
    .await?
    {
        return Ok(());
    }
    if state.settings.fulfillment.auto_refund_on_failure {
        screening::queue_full_refund(tx, &order.id, "Coins could not be delivered", now).await?;
    } else {
        events::note(
            tx,
            &order.id,
            now,
            "system",
            "needs_attention",
            "Automatic refund is off: waiting for support",
        )
        .await?;
    }
    Ok(())
}
