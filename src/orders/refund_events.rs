//! Refund outcomes reported by the provider.

use crate::db::{events, orders, Tx};
use crate::domain::{Money, OrderStatus};
use crate::payments::{EventKind, ProviderEvent};
use crate::startup::AppState;

pub async fn apply(
    _state: &AppState,
    tx: &mut Tx,
    order: &orders::Order,
    event: &ProviderEvent,
    now: i64,
) -> Result<(), sqlx::Error> {
    let d = &event.data;
    let amount = Money::from_minor(d.amount_minor, order.amount.currency());
    if event.kind == EventKind::RefundFailed {
        let why = d
            .failure_message
            .as_deref()
            .unwrap_or("the provider refused it");
        let detail = format!("Refund of {amount} failed: {why}");
        return events::record(
            tx,
            &order.id,
            now,
            "provider",
            "refund_failed",
            None,
            None,
            &detail,
        )
        .await;
    }
    sqlx::query(
        "UPDATE orders SET refunded_minor = refunded_minor + $1, updated_at = $2 WHERE id = $3",
    )
    .bind(d.amount_minor)
    .bind(now)
    .bind(&order.id)
    .execute(&mut **tx)
    .await?;
    events::record(
        tx,
        &order.id,
        now,
        "provider",
        "refund_succeeded",
        None,
        None,
        &format!("Refunded {amount}"),
    )
    .await?;
    let refunded = order.refunded_minor + d.amount_minor;
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
    Ok(())
}
