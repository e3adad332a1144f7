//! What support decides about an order: approve or reject a held order (optionally as fraud,
//! which also block-lists the buyer), retry a failed delivery, resend the receipt, add a note.
//! Each decision is one transaction: the guarded state change with its audit event (actor
//! `staff:{email}`) and its follow-up job. When two agents decide at once, the status guard
//! lets exactly one through; the other gets `Outcome::AlreadyMoved` and nothing happens.

use crate::db::orders::{self, Order};
use crate::db::risk_lists::{self as lists, NewEntry};
use crate::db::{audit, events, notes, Tx};
use crate::domain::risk_list::{List, ListKind};
use crate::domain::OrderStatus;
use crate::orders::screening;
use crate::services::Services;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// The order was not in the state the action needs (someone else acted first).
    AlreadyMoved {
        status: OrderStatus,
    },
    /// A retry was refused: the order is being (or was) refunded.
    RefundUnderWay,
    NotFound,
}

async fn current_status(tx: &mut Tx, order_id: &str) -> Result<Outcome, sqlx::Error> {
    Ok(match orders::by_id_in(tx, order_id).await? {
        Some(o) => Outcome::AlreadyMoved { status: o.status },
        None => Outcome::NotFound,
    })
}

/// A decision's start: `in_review → to` in a new transaction, which the caller goes on with;
/// or, when the order was not held (someone else decided first), what it is now.
enum Decided {
    Moved(Tx),
    Not(Outcome),
}

async fn leave_review(
    state: &Services,
    order_id: &str,
    to: OrderStatus,
    actor: &str,
    detail: &str,
    now: i64,
) -> Result<Decided, sqlx::Error> {
    let mut tx = state.db.begin().await?;
    let from = OrderStatus::InReview;
    if orders::transition(&mut tx, order_id, from, to, actor, detail, now).await? {
        return Ok(Decided::Moved(tx));
    }
    let outcome = current_status(&mut tx, order_id).await?;
    tx.rollback().await?;
    Ok(Decided::Not(outcome))
}

/// A decision's end: the agent's action in the audit log, committed, the workers woken.
async fn done(
    state: &Services,
    mut tx: Tx,
    actor: &str,
    action: &str,
    order_id: &str,
    detail: &str,
    now: i64,
) -> Result<Outcome, sqlx::Error> {
    audit::order_action(&mut tx, actor, action, order_id, detail, now).await?;
    tx.commit().await?;
    state.jobs_ready.notify_one();
    Ok(Outcome::Done)
}

/// `in_review → queued`, with its fulfillment job.
pub async fn approve(
    state: &Services,
    order_id: &str,
    actor: &str,
    note: &str,
) -> Result<Outcome, sqlx::Error> {
    let now = state.now_ms();
    let detail = if note.is_empty() {
        "Approved after review".to_owned()
    } else {
        format!("Approved after review: {note}")
    };
    let mut tx =
        match leave_review(state, order_id, OrderStatus::Queued, actor, &detail, now).await? {
            Decided::Moved(tx) => tx,
            Decided::Not(outcome) => return Ok(outcome),
        };
    screening::queue_fulfillment(&mut tx, order_id, now).await?;
    done(state, tx, actor, "order_approved", order_id, &detail, now).await
}

/// `in_review → rejected` and a full refund (one per order, whatever happens; the refund job
/// emails the buyer when the provider accepts it). As fraud, the order's card fingerprints,
/// email and TikTok username also go on the block list, signed by the agent.
pub async fn reject(
    state: &Services,
    order_id: &str,
    actor: &str,
    reason: &str,
    fraud: bool,
) -> Result<Outcome, sqlx::Error> {
    let now = state.now_ms();
    let detail = match (fraud, reason.is_empty()) {
        (true, _) => format!("Rejected as fraud: {reason}"),
        (false, true) => "Rejected after review".to_owned(),
        (false, false) => format!("Rejected after review: {reason}"),
    };
    let to = OrderStatus::Rejected;
    let mut tx = match leave_review(state, order_id, to, actor, &detail, now).await? {
        Decided::Moved(tx) => tx,
        Decided::Not(outcome) => return Ok(outcome),
    };
    screening::queue_full_refund(&mut tx, order_id, &detail, now).await?;
    if fraud {
        if let Some(order) = orders::by_id_in(&mut tx, order_id).await? {
            block_buyer(&mut tx, &order, actor, reason, now).await?;
        }
    }
    let action = if fraud {
        "order_rejected_fraud"
    } else {
        "order_rejected"
    };
    done(state, tx, actor, action, order_id, &detail, now).await
}

async fn block_buyer(
    tx: &mut Tx,
    order: &Order,
    actor: &str,
    reason: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let why = format!("Fraud on order {}: {reason}", order.order_number);
    block_buyer_because(tx, order, actor, &why, now).await
}

/// Puts the order's card fingerprints, email and TikTok username on the block list with `why`,
/// and leaves a `block_listed` event on the order (backtests count such orders as fraud).
pub async fn block_buyer_because(
    tx: &mut Tx,
    order: &Order,
    actor: &str,
    why: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut values: Vec<(ListKind, String)> = crate::db::payments::card_fingerprints(tx, &order.id)
        .await?
        .into_iter()
        .map(|f| (ListKind::CardFingerprint, f))
        .collect();
    values.push((ListKind::Email, order.email.clone()));
    values.push((ListKind::TiktokUsername, order.tiktok_username.clone()));
    let mut listed = Vec::new();
    for (kind, value) in values {
        if !lists::is_blocked(tx, kind, &value, now).await? {
            lists::add(
                tx,
                NewEntry {
                    list: List::Block,
                    kind,
                    value: &value,
                    reason: why,
                    added_by: actor,
                    expires_at: None,
                },
                now,
            )
            .await?;
        }
        listed.push(kind.describe());
    }
    events::note(
        tx,
        &order.id,
        now,
        actor,
        "block_listed",
        &format!("Block-listed the buyer's {}", listed.join(", ")),
    )
    .await
}

/// `fulfillment_failed → queued` with a new fulfillment job — unless a refund is under way.
pub async fn retry_fulfillment(
    state: &Services,
    order_id: &str,
    actor: &str,
) -> Result<Outcome, sqlx::Error> {
    let now = state.now_ms();
    let mut tx = state.db.begin().await?;
    let Some(order) = orders::by_id_in(&mut tx, order_id).await? else {
        tx.rollback().await?;
        return Ok(Outcome::NotFound);
    };
    let refund_queued =
        crate::db::jobs::exists_with_key(&mut tx, &screening::full_refund_key(order_id)).await?;
    if order.status == OrderStatus::FulfillmentFailed && (refund_queued || order.refunded_minor > 0)
    {
        tx.rollback().await?;
        return Ok(Outcome::RefundUnderWay);
    }
    if !orders::transition(
        &mut tx,
        order_id,
        OrderStatus::FulfillmentFailed,
        OrderStatus::Queued,
        actor,
        "Delivery retried by support",
        now,
    )
    .await?
    {
        tx.rollback().await?;
        return Ok(Outcome::AlreadyMoved {
            status: order.status,
        });
    }
    screening::queue_fulfillment(&mut tx, order_id, now).await?;
    let detail = "Delivery retried by support";
    done(state, tx, actor, "delivery_retried", order_id, detail, now).await
}

/// Sends the receipt of a delivered order again.
pub async fn resend_receipt(
    state: &Services,
    order_id: &str,
    actor: &str,
) -> Result<Outcome, sqlx::Error> {
    let now = state.now_ms();
    let mut tx = state.db.begin().await?;
    let Some(order) = orders::by_id_in(&mut tx, order_id).await? else {
        tx.rollback().await?;
        return Ok(Outcome::NotFound);
    };
    if order.status != OrderStatus::Delivered {
        tx.rollback().await?;
        return Ok(Outcome::AlreadyMoved {
            status: order.status,
        });
    }
    events::note(
        &mut tx,
        order_id,
        now,
        actor,
        "receipt_resent",
        &format!("Receipt sent again to {}", order.email),
    )
    .await?;
    // The receipt row is unique per order: send that same email again (same Message-ID, so
    // mail clients thread it with the first) by clearing its sent mark and queueing a send.
    match crate::db::emails::receipt_of(&mut tx, order_id).await? {
        Some(email_id) => {
            crate::db::emails::mark_unsent(&mut tx, &email_id).await?;
            let job = crate::jobs::NewJob {
                job: crate::jobs::Job::SendEmail { email_id },
                dedupe_key: None,
                run_at: now,
            };
            crate::jobs::enqueue(&mut tx, job, now).await?;
        }
        None => {
            crate::orders::notify::delivered(state, &mut tx, &order, now).await?;
        }
    }
    done(
        state,
        tx,
        actor,
        "receipt_resent",
        order_id,
        "Receipt sent again",
        now,
    )
    .await
}

/// Sends one of the order's emails again (any kind, sent or still queued), with an event in
/// the order's timeline.
pub async fn resend_email(
    state: &Services,
    order_id: &str,
    email_id: &str,
    actor: &str,
) -> Result<Outcome, sqlx::Error> {
    let now = state.now_ms();
    let mut tx = state.db.begin().await?;
    if !crate::mail::outbox::requeue(&mut tx, order_id, email_id, now).await? {
        tx.rollback().await?;
        return Ok(Outcome::NotFound);
    }
    let detail = format!("Email {email_id} queued to be sent again");
    events::note(&mut tx, order_id, now, actor, "email_resent", &detail).await?;
    done(state, tx, actor, "email_resent", order_id, &detail, now).await
}

/// An internal note, also in the order's timeline.
pub async fn add_note(
    state: &Services,
    order_id: &str,
    actor: &str,
    body: &str,
) -> Result<Outcome, sqlx::Error> {
    let now = state.now_ms();
    let mut tx = state.db.begin().await?;
    if orders::by_id_in(&mut tx, order_id).await?.is_none() {
        tx.rollback().await?;
        return Ok(Outcome::NotFound);
    }
    notes::add(&mut tx, order_id, actor, body, now).await?;
    let short: String = body.chars().take(120).collect();
    let detail = if short.len() < body.len() {
        format!("Note: {short}…")
    } else {
        format!("Note: {short}")
    };
    events::note(&mut tx, order_id, now, actor, "note_added", &detail).await?;
    done(state, tx, actor, "note_added", order_id, &detail, now).await
}
