//! What happens once an order is paid: pre-fulfillment screening decides whether it is
//! queued for delivery, held for review, or blocked.

use crate::db::Tx;
use crate::startup::AppState;

pub async fn after_payment(
    _state: &AppState,
    _tx: &mut Tx,
    _order_id: &str,
    _late: bool,
    _now: i64,
) -> Result<(), sqlx::Error> {
    Ok(())
}

/// Pre-payment screening of a new order, inside its creating transaction. Returns the status
/// the order ends in: `awaiting_payment`, or `declined`.
pub async fn before_payment(
    _state: &AppState,
    _tx: &mut Tx,
    _order: &crate::db::orders::Order,
    _now: i64,
) -> Result<crate::domain::OrderStatus, sqlx::Error> {
    Ok(crate::domain::OrderStatus::AwaitingPayment)
}
