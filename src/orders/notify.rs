//! Telling the buyer: which email each event of an order causes.

use crate::db::orders::Order;
use crate::startup::AppState;

/// The buyer asked for their order link again.
pub async fn order_link_requested(_state: &AppState, order: &Order) -> Result<(), sqlx::Error> {
    tracing::info!(order = %order.order_number, "order look-up matched; the order link would be emailed to the buyer");
    Ok(())
}

// The emails below are written by the mail outbox (see `mail`); until it is wired in they
// leave a log line, so the call sites are already in the right transactions.

pub async fn payment_received(
    _state: &AppState,
    _tx: &mut crate::db::Tx,
    order: &Order,
    _now: i64,
) -> Result<(), sqlx::Error> {
    tracing::info!(order = %order.order_number, "email: payment received");
    Ok(())
}

pub async fn delivered(
    _state: &AppState,
    _tx: &mut crate::db::Tx,
    order: &Order,
    _now: i64,
) -> Result<(), sqlx::Error> {
    tracing::info!(order = %order.order_number, "email: coins delivered (receipt)");
    Ok(())
}

pub async fn held_for_review(
    _state: &AppState,
    _tx: &mut crate::db::Tx,
    order: &Order,
    _now: i64,
) -> Result<(), sqlx::Error> {
    tracing::info!(order = %order.order_number, "email: held for review");
    Ok(())
}

pub async fn cancelled_refunded(
    _state: &AppState,
    _tx: &mut crate::db::Tx,
    order: &Order,
    amount: crate::domain::Money,
    reason: &str,
    _now: i64,
) -> Result<(), sqlx::Error> {
    tracing::info!(order = %order.order_number, %amount, reason, "email: cancelled / refunded");
    Ok(())
}

pub async fn refund_requested(
    _state: &AppState,
    _tx: &mut crate::db::Tx,
    order: &Order,
    _now: i64,
) -> Result<(), sqlx::Error> {
    tracing::info!(order = %order.order_number, "email: refund request received");
    Ok(())
}

pub async fn refund_denied(
    _state: &AppState,
    _tx: &mut crate::db::Tx,
    order: &Order,
    message: &str,
    _now: i64,
) -> Result<(), sqlx::Error> {
    tracing::info!(order = %order.order_number, message, "email: refund request denied");
    Ok(())
}

pub async fn refund_completed(
    _state: &AppState,
    _tx: &mut crate::db::Tx,
    order: &Order,
    amount: crate::domain::Money,
    _now: i64,
) -> Result<(), sqlx::Error> {
    tracing::info!(order = %order.order_number, %amount, "email: refund completed");
    Ok(())
}

pub async fn support_reply(
    _state: &AppState,
    _tx: &mut crate::db::Tx,
    order: &Order,
    _body: &str,
    _now: i64,
) -> Result<(), sqlx::Error> {
    tracing::info!(order = %order.order_number, "email: support reply");
    Ok(())
}
