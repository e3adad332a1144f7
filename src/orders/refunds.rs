//! Refunds, all through one path: a row in `refunds` (pending) written in the same transaction
//! that decides the refund, then the provider is asked with that row's id as idempotency key,
//! and its `refund.succeeded` / `refund.failed` webhook settles the row exactly once. Money
//! already asked for counts against what may still be refunded, so two agents, or an agent and
//! a replayed webhook, can never refund more than was paid.

use crate::db::orders::{self, Order};
use crate::db::refunds::{self as rows, Refund, RefundRequest};
use crate::db::{events, Tx};
use crate::domain::{Money, OrderStatus};
use crate::jobs::JobError;
use crate::payments::{ProviderError, RefundOutcome, RefundRequest as ProviderRefund};
use crate::services::Services;

#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    #[error("This order has no payment to refund.")]
    NotPaid,
    /// The card issuer is already returning the money: a refund would pay it back twice.
    #[error("This payment is disputed with the card issuer, who is returning it to the buyer; it cannot also be refunded.")]
    Disputed,
    #[error("Nothing is left to refund on this order.")]
    NothingLeft,
    #[error("The amount must be more than zero and at most {max}.")]
    Amount { max: String },
    #[error("Someone else has already decided this request.")]
    AlreadyDecided,
    #[error("There is no such refund request.")]
    NoSuchRequest,
    /// Nothing was decided: the database failed (a server error, not the agent's or buyer's).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Equal when the same refusal; a database error equals nothing (it carries no value to
/// compare), so tests can compare outcomes.
impl PartialEq for RefundError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (RefundError::Database(_), _) | (_, RefundError::Database(_)) => false,
            (RefundError::Amount { max: a }, RefundError::Amount { max: b }) => a == b,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

/// What a buyer's refund request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// Recorded.
    New(RefundRequest),
    /// The order has an open request already: this one.
    AlreadyOpen(RefundRequest),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// The provider accepted it; its webhook will confirm.
    Pending,
    /// The provider refused or could not be reached: shown to the agent, retryable.
    Failed(String),
}

/// What may still be refunded: paid, minus refunded, minus refunds under way.
pub async fn refundable(tx: &mut Tx, order: &Order) -> Result<Money, sqlx::Error> {
    let pending = rows::pending_minor(tx, &order.id).await?;
    Ok(left_to_refund(order, pending))
}

/// Paid, minus refunded, minus `pending_minor` asked for and not yet settled; never below zero.
pub fn left_to_refund(order: &Order, pending_minor: i64) -> Money {
    let left = order
        .amount
        .minor()
        .saturating_sub(order.refunded_minor)
        .saturating_sub(pending_minor)
        .max(0);
    Money::from_minor(left, order.amount.currency())
}

/// Writes the pending refund inside the caller's transaction, after checking the amount.
async fn reserve(
    tx: &mut Tx,
    order: &Order,
    amount: Money,
    refund: &Refund,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let inserted = rows::insert_refund(tx, refund).await?;
    if inserted {
        let detail = format!(
            "Refund of {amount} asked from the payment provider (by {})",
            refund.created_by
        );
        events::note(
            tx,
            &order.id,
            now,
            &refund.created_by,
            "refund_requested",
            &detail,
        )
        .await?;
    }
    Ok(inserted)
}

/// Asks the provider for a reserved refund and records a refusal.
async fn ask_provider(
    state: &Services,
    order: &Order,
    refund: &Refund,
) -> Result<Started, sqlx::Error> {
    let Some(session_id) = order.provider_session_id.clone() else {
        return Ok(Started::Failed("the order has no payment session".into()));
    };
    let payment_ref = {
        let mut conn = state.db.pool().acquire().await?;
        crate::db::disputes::settled_payment_ref(&mut conn, &order.id).await?
    };
    let request = ProviderRefund {
        session_id,
        order_reference: order.id.clone(),
        payment_ref,
        amount: Money::from_minor(refund.amount_minor, order.amount.currency()),
        idempotency_key: refund.id.clone(),
    };
    let outcome = state.provider.refund(&request).await;
    let now = state.now_ms();
    let failure = match outcome {
        Ok(RefundOutcome::Pending { refund_id }) => {
            let mut tx = state.db.begin().await?;
            rows::set_provider_id(&mut tx, &refund.id, &refund_id, now).await?;
            tx.commit().await?;
            return Ok(Started::Pending);
        }
        Ok(RefundOutcome::Failed { reason }) => reason,
        Err(ProviderError::Unavailable(e)) => {
            format!("the payment provider could not be reached ({e})")
        }
        Err(ProviderError::Refused(e)) => e,
    };
    let mut tx = state.db.begin().await?;
    settle_failed(&mut tx, order, refund, &failure, now).await?;
    tx.commit().await?;
    Ok(Started::Failed(failure))
}

async fn settle_failed(
    tx: &mut Tx,
    order: &Order,
    refund: &Refund,
    failure: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    if !rows::settle(tx, &refund.id, "failed", Some(failure), now).await? {
        return Ok(());
    }
    let amount = Money::from_minor(refund.amount_minor, order.amount.currency());
    events::note(
        tx,
        &order.id,
        now,
        "provider",
        "refund_failed",
        &format!("Refund of {amount} failed: {failure}"),
    )
    .await?;
    if let Some(request) = &refund.request_id {
        rows::set_status(tx, request, &["approved"], "failed", None, None, now).await?;
    }
    Ok(())
}

/// A buyer asks for a refund. Only for paid orders; one open request per order.
pub async fn request(
    state: &Services,
    order: &Order,
    reason: &str,
    message: &str,
) -> Result<Requested, RefundError> {
    if !order.status.is_paid() {
        return Err(RefundError::NotPaid);
    }
    if order.status == OrderStatus::Disputed {
        return Err(RefundError::Disputed);
    }
    let now = state.now_ms();
    let r = RefundRequest {
        id: crate::domain::ids::new_id(),
        order_id: order.id.clone(),
        reason: reason.into(),
        message: message.into(),
        status: "open".into(),
        decided_by: None,
        decision_message: None,
        created_at: now,
        updated_at: now,
    };
    let result: Result<bool, sqlx::Error> = async {
        let mut tx = state.db.begin().await?;
        match rows::insert(&mut tx, &r).await {
            Ok(()) => {}
            Err(e) if crate::db::is_unique_violation(&e) => {
                tx.rollback().await?;
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
        let detail = format!("Refund requested: {}", rows::reason_label(reason));
        events::note(&mut tx, &order.id, now, "buyer", "refund_request", &detail).await?;
        crate::orders::notify::refund_requested(state, &mut tx, order, now).await?;
        tx.commit().await?;
        Ok(true)
    }
    .await;
    if result? {
        return Ok(Requested::New(r));
    }
    // The open one, to show the buyer.
    let open = rows::for_order(state.db.pool(), &order.id)
        .await?
        .into_iter()
        .rev()
        .find(|x| matches!(x.status.as_str(), "open" | "approved" | "failed"));
    open.map(Requested::AlreadyOpen)
        .ok_or(RefundError::NoSuchRequest)
}

/// An agent approves a request, in full (`amount = None`) or in part. Concurrent approvals of
/// the same request: exactly one wins; the rest get `AlreadyDecided`.
pub async fn approve(
    state: &Services,
    request_id: &str,
    amount: Option<Money>,
    staff: &str,
) -> Result<Started, RefundError> {
    let Some(req) = rows::by_id(state.db.pool(), request_id).await? else {
        return Err(RefundError::NoSuchRequest);
    };
    let now = state.now_ms();
    let mut tx = state.db.begin().await?;
    // Read inside the transaction: amounts move when refunds settle.
    let checked = match orders::by_id_in(&mut tx, &req.order_id).await? {
        None => Err(RefundError::NoSuchRequest),
        Some(order) => allowed_amount(&mut tx, &order, amount)
            .await
            .map(|amount| (order, amount)),
    };
    let (order, amount) = match checked {
        Ok(checked) => checked,
        Err(e) => {
            tx.rollback().await?;
            return Err(e);
        }
    };
    let from = ["open", "failed"];
    if !rows::set_status(&mut tx, &req.id, &from, "approved", Some(staff), None, now).await? {
        tx.rollback().await?;
        return Err(RefundError::AlreadyDecided);
    }
    let refund = Refund {
        id: format!("rf_{}", uuid::Uuid::now_v7().simple()),
        order_id: order.id.clone(),
        request_id: Some(req.id.clone()),
        amount_minor: amount.minor(),
        currency: amount.currency().code().into(),
        status: "pending".into(),
        provider_refund_id: None,
        failure: None,
        created_by: staff.into(),
        created_at: now,
    };
    reserve(&mut tx, &order, amount, &refund, now).await?;
    crate::db::audit::order_action(
        &mut tx,
        staff,
        "refund_approved",
        &order.id,
        &format!("Refund request approved: {amount}"),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(ask_provider(state, &order, &refund).await?)
}

/// The amount an approval refunds (all that is left when `asked` is `None`), or why the order
/// cannot be refunded that much.
async fn allowed_amount(
    tx: &mut Tx,
    order: &Order,
    asked: Option<Money>,
) -> Result<Money, RefundError> {
    if !order.status.is_paid() {
        return Err(RefundError::NotPaid);
    }
    if order.status == OrderStatus::Disputed {
        return Err(RefundError::Disputed);
    }
    let left = refundable(tx, order).await?;
    if left.minor() == 0 {
        return Err(RefundError::NothingLeft);
    }
    let amount = asked.unwrap_or(left);
    if amount.currency() != order.amount.currency()
        || amount.minor() <= 0
        || amount.minor() > left.minor()
    {
        return Err(RefundError::Amount {
            max: left.to_string(),
        });
    }
    Ok(amount)
}

/// An agent denies a request with a message to the buyer.
pub async fn deny(
    state: &Services,
    request_id: &str,
    staff: &str,
    message: &str,
) -> Result<(), RefundError> {
    let Some(req) = rows::by_id(state.db.pool(), request_id).await? else {
        return Err(RefundError::NoSuchRequest);
    };
    let Some(order) = orders::by_id(state.db.pool(), &req.order_id).await? else {
        return Err(RefundError::NoSuchRequest);
    };
    let now = state.now_ms();
    let mut tx = state.db.begin().await?;
    if !rows::set_status(
        &mut tx,
        &req.id,
        &["open", "failed"],
        "denied",
        Some(staff),
        Some(message),
        now,
    )
    .await?
    {
        return Err(RefundError::AlreadyDecided);
    }
    events::note(
        &mut tx,
        &order.id,
        now,
        staff,
        "refund_denied",
        &format!("Refund request denied: {message}"),
    )
    .await?;
    crate::orders::notify::refund_denied(state, &mut tx, &order, message, now).await?;
    crate::db::audit::order_action(
        &mut tx,
        staff,
        "refund_denied",
        &order.id,
        &format!("Refund request denied: {message}"),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The `refund_order` job: refunds everything left after a block, a rejection or a failed
/// delivery. Its refund id is fixed per order and remainder, so a retried job asks again with
/// the same idempotency key and never refunds twice.
pub async fn run_full_refund_job(
    state: &Services,
    order_id: &str,
    reason: &str,
) -> Result<(), JobError> {
    let Some(order) = orders::by_id(state.db.pool(), order_id).await? else {
        return Err(JobError::Permanent(format!("no order {order_id}")));
    };
    if order.status == OrderStatus::Disputed {
        return Err(JobError::Permanent(RefundError::Disputed.to_string()));
    }
    let now = state.now_ms();
    let refund_id = format!("auto_{}_{}", order.id, order.refunded_minor);
    let mut tx = state.db.begin().await?;
    let existing = rows::refund_by_id(&mut tx, &refund_id).await?;
    let refund = match existing {
        Some(r) if r.status == "failed" => {
            return Err(JobError::Permanent(
                r.failure.unwrap_or_else(|| "refund failed".into()),
            ))
        }
        Some(r) => r,
        None => {
            let left = refundable(&mut tx, &order).await?;
            if left.minor() == 0 {
                return Ok(());
            }
            let refund = Refund {
                id: refund_id,
                order_id: order.id.clone(),
                request_id: None,
                amount_minor: left.minor(),
                currency: left.currency().code().into(),
                status: "pending".into(),
                provider_refund_id: None,
                failure: None,
                created_by: "system".into(),
                created_at: now,
            };
            reserve(&mut tx, &order, left, &refund, now).await?;
            let amount = left;
            crate::orders::notify::cancelled_refunded(state, &mut tx, &order, amount, reason, now)
                .await?;
            refund
        }
    };
    tx.commit().await?;
    match ask_provider(state, &order, &refund).await? {
        Started::Pending => Ok(()),
        Started::Failed(why) => Err(JobError::Permanent(why)),
    }
}

/// A `refund.succeeded` or `refund.failed` event, in the webhook's transaction.
pub async fn on_provider_event(
    state: &Services,
    tx: &mut Tx,
    order: &Order,
    event: &crate::payments::ProviderEvent,
    now: i64,
) -> Result<(), sqlx::Error> {
    use crate::payments::EventKind;
    let d = &event.data;
    let ours = match d.reference.as_deref() {
        Some(id) => rows::refund_by_id(tx, id).await?,
        None => rows::refund_by_provider_id(tx, &d.object_id).await?,
    };
    if event.kind == EventKind::RefundFailed {
        let why = d
            .failure_message
            .clone()
            .unwrap_or_else(|| "the provider refused it".into());
        return match ours {
            Some(refund) => settle_failed(tx, order, &refund, &why, now).await,
            None => {
                let amount = Money::from_minor(d.amount_minor, order.amount.currency());
                let detail = format!("Refund of {amount} failed: {why}");
                events::note(tx, &order.id, now, "provider", "refund_failed", &detail).await
            }
        };
    }
    if let Some(refund) = &ours {
        // Settled before (the same refund reported again under another event id): nothing to add.
        if !settle_succeeded(tx, refund, now).await? {
            return Ok(());
        }
    }
    returned(
        state,
        tx,
        order,
        d.amount_minor,
        ours.is_some_and(|r| r.request_id.is_some()),
        now,
    )
    .await
}

/// Marks our refund succeeded, and its buyer's request refunded. False when it was settled
/// before.
async fn settle_succeeded(tx: &mut Tx, refund: &Refund, now: i64) -> Result<bool, sqlx::Error> {
    if !rows::settle(tx, &refund.id, "succeeded", None, now).await? {
        return Ok(false);
    }
    if let Some(request) = &refund.request_id {
        let from = ["approved", "failed"];
        rows::set_status(tx, request, &from, "refunded", None, None, now).await?;
    }
    Ok(true)
}

/// Money went back to the buyer: added to what the order refunded, noted, the order moved to
/// (partially) refunded, and the buyer told when they had asked for it.
async fn returned(
    state: &Services,
    tx: &mut Tx,
    order: &Order,
    amount_minor: i64,
    buyer_asked: bool,
    now: i64,
) -> Result<(), sqlx::Error> {
    let amount = Money::from_minor(amount_minor, order.amount.currency());
    orders::add_refunded(tx, &order.id, amount_minor, now).await?;
    let detail = format!("Refunded {amount}");
    events::note(tx, &order.id, now, "provider", "refund_succeeded", &detail).await?;
    // Checked: the amount comes from outside (a signed webhook, but still not ours).
    let refunded = order.refunded_minor.saturating_add(amount_minor);
    let to = if refunded >= order.amount.minor() {
        OrderStatus::Refunded
    } else {
        OrderStatus::PartiallyRefunded
    };
    if order.status != to && order.status.can_move_to(to) {
        orders::transition(
            tx,
            &order.id,
            order.status,
            to,
            "provider",
            &format!("{amount} returned to the buyer"),
            now,
        )
        .await?;
    }
    if buyer_asked {
        crate::orders::notify::refund_completed(state, tx, order, amount, now).await?;
    }
    Ok(())
}
