//! Screening around payment. Before payment, a new order may be declined before anyone is
//! charged. After payment, a `screen_order` job (enqueued with the paid transition) decides:
//! allow → `queued` and at once `fulfilling`, its fulfillment run next by the same worker
//! (`fulfillment::start_now`), review → `in_review`, block → `blocked` and a
//! full refund. Signals are gathered outside any write transaction, so a screening never
//! holds the database's write lock while it reads.

use crate::db::orders::{self, Order};
use crate::db::{events, Tx};
use crate::domain::OrderStatus;
use crate::jobs::{self, Job, JobError, NewJob};
use crate::risk::{self, Decision, Reason, Stage};
use crate::services::Services;

/// Called in the paid transition's transaction: queue the pre-fulfillment screening.
pub async fn after_payment(
    _state: &Services,
    tx: &mut Tx,
    order_id: &str,
    late: bool,
    now: i64,
) -> Result<(), sqlx::Error> {
    let job = NewJob {
        job: Job::ScreenOrder {
            order_id: order_id.into(),
            late,
        },
        dedupe_key: Some(format!("{}:{order_id}", Job::SCREEN_ORDER)),
        run_at: now,
    };
    jobs::enqueue(tx, job, now).await?;
    Ok(())
}

/// Pre-payment screening of an order about to be created (not yet in the database). Returns
/// the assessment and signals, to be stored with the order.
pub async fn assess_new_order(
    state: &Services,
    order: &Order,
    now: i64,
) -> Result<(risk::Assessment, risk::Signals), sqlx::Error> {
    let live = state.live.current();
    let mut signals = risk::signals::gather(&state.db, &live.catalog, order, now).await?;
    // The order itself is not written yet: count it in its own velocity.
    for v in [
        &mut signals.velocity_24h_username,
        &mut signals.velocity_24h_email,
        &mut signals.velocity_24h_ip,
    ] {
        v.orders += 1;
        v.amount_minor = v.amount_minor.saturating_add(order.base_amount_minor);
    }
    let assessment = risk::rules::evaluate(&signals, &live.risk);
    Ok((assessment, signals))
}

/// Stores the pre-payment assessment of a just-inserted order and declines it if blocked.
/// Only a block acts before payment: a review waits for the pre-fulfillment stage, which sees
/// the payment too.
pub async fn before_payment(
    state: &Services,
    tx: &mut Tx,
    order: &Order,
    assessment: &risk::Assessment,
    signals: &risk::Signals,
    now: i64,
) -> Result<OrderStatus, sqlx::Error> {
    risk::record(tx, &order.id, Stage::PrePayment, assessment, signals, now).await?;
    if assessment.decision != Decision::Block {
        return Ok(OrderStatus::AwaitingPayment);
    }
    tracing::warn!(order = %order.order_number, "{}", risk::summary(assessment));
    let _ = state;
    orders::transition(
        tx,
        &order.id,
        OrderStatus::AwaitingPayment,
        OrderStatus::Declined,
        "risk",
        &risk::summary(assessment),
        now,
    )
    .await?;
    Ok(OrderStatus::Declined)
}

/// The `screen_order` job.
pub async fn screen(
    state: &Services,
    run: &jobs::Run<'_>,
    order_id: &str,
    late: bool,
) -> Result<(), JobError> {
    let Some(order) = orders::by_id(state.db.pool(), order_id).await? else {
        return Err(JobError::Permanent(format!("no order {order_id}")));
    };
    if order.status != OrderStatus::Paid {
        return Ok(()); // screened already
    }
    let now = state.now_ms();
    let live = state.live.current();
    let signals = risk::signals::gather(&state.db, &live.catalog, &order, now).await?;
    let mut assessment = risk::rules::evaluate(&signals, &live.risk);
    if late && assessment.decision == Decision::Allow {
        assessment.reasons.push(Reason {
            code: "paid_after_expiry".into(),
            points: 0,
            force: Some(Decision::Review),
            sentence: "The payment arrived after the order or its payment quote had expired".into(),
        });
        assessment.decision = Decision::Review;
    }
    let to = match assessment.decision {
        Decision::Allow => OrderStatus::Queued,
        Decision::Review => OrderStatus::InReview,
        Decision::Block => OrderStatus::Blocked,
    };
    let mut tx = state.db.begin().await?;
    if !orders::transition(
        &mut tx,
        &order.id,
        OrderStatus::Paid,
        to,
        "risk",
        &risk::summary(&assessment),
        now,
    )
    .await?
    {
        tx.rollback().await?;
        return Ok(());
    }
    risk::record(
        &mut tx,
        &order.id,
        Stage::PreFulfillment,
        &assessment,
        &signals,
        now,
    )
    .await?;
    match to {
        OrderStatus::Queued if risk::rules::holds_back(&signals, &live.risk) => {
            let minutes = live.risk.holdback.minutes;
            queue_held_back_fulfillment(&mut tx, &order.id, now, minutes).await?
        }
        // Delivery starts in this transaction and this worker runs it next: no commit of
        // its own for the claim or the start, and no wait in the queue behind other work.
        OrderStatus::Queued => {
            crate::orders::fulfillment::start_now(run, &mut tx, &order.id, now).await?
        }
        OrderStatus::Blocked => {
            queue_full_refund(&mut tx, &order.id, "Blocked by screening", now).await?
        }
        // Plain and reassuring: nothing about why.
        OrderStatus::InReview => {
            crate::orders::notify::held_for_review(state, &mut tx, &order, now).await?
        }
        _ => {}
    }
    run.commit(tx, now).await?;
    state.jobs_ready.notify_one();
    Ok(())
}

/// Queues delivery (an agent's approval and a retry call this too). Callers enqueue it in the
/// same transaction as the guarded move to `queued`, which is what makes it one job per move.
pub async fn queue_fulfillment(tx: &mut Tx, order_id: &str, now: i64) -> Result<(), sqlx::Error> {
    let job = NewJob {
        job: Job::FulfillOrder {
            order_id: order_id.into(),
            recheck_recipient: false,
        },
        dedupe_key: None,
        run_at: now,
    };
    jobs::enqueue(tx, job, now).await?;
    Ok(())
}

/// Queues delivery `minutes` from now, asking the fulfillment to look at the recipient again
/// first (a new payer's large order: see `risk.holdback`).
pub async fn queue_held_back_fulfillment(
    tx: &mut Tx,
    order_id: &str,
    now: i64,
    minutes: u32,
) -> Result<(), sqlx::Error> {
    let job = NewJob {
        job: Job::FulfillOrder {
            order_id: order_id.into(),
            recheck_recipient: true,
        },
        dedupe_key: None,
        run_at: now + i64::from(minutes) * 60_000,
    };
    jobs::enqueue(tx, job, now).await?;
    events::note(tx, order_id, now, "system", "delivery_scheduled", &format!("Delivery starts in {minutes} minutes: a first large order from this payer waits briefly"))
    .await?;
    Ok(())
}

/// The dedupe key of an order's one full refund job.
pub fn full_refund_key(order_id: &str) -> String {
    format!("{}:{order_id}:full", Job::REFUND_ORDER)
}

/// Queues a refund of everything not yet refunded. One full refund per order.
pub async fn queue_full_refund(
    tx: &mut Tx,
    order_id: &str,
    why: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let job = NewJob {
        job: Job::RefundOrder {
            order_id: order_id.into(),
            reason: why.into(),
        },
        dedupe_key: Some(full_refund_key(order_id)),
        run_at: now,
    };
    if jobs::enqueue(tx, job, now).await? {
        events::note(
            tx,
            order_id,
            now,
            "system",
            "refund_queued",
            &format!("Full refund queued: {why}"),
        )
        .await?;
    }
    Ok(())
}
