//! The `refund_order` job: asks the provider to refund what is left of an order's payment.
//! The provider's `refund.succeeded` webhook then moves the order to `refunded`.

use crate::db::{events, orders};
use crate::domain::Money;
use crate::payments::{ProviderError, RefundOutcome, RefundRequest};
use crate::startup::AppState;
use crate::workers::JobError;

pub async fn run(state: &AppState, payload: &serde_json::Value) -> Result<(), JobError> {
    let order_id = payload["order_id"].as_str().unwrap_or_default();
    let reason = payload["reason"].as_str().unwrap_or("refund");
    let Some(order) = orders::by_id(state.db.pool(), order_id).await? else {
        return Err(JobError::Permanent(format!("no order {order_id}")));
    };
    let Some(session_id) = order.provider_session_id.clone() else {
        return Err(JobError::Permanent(
            "the order has no payment to refund".into(),
        ));
    };
    let left = order.amount.minor() - order.refunded_minor;
    if left <= 0 {
        return Ok(());
    }
    let amount = Money::from_minor(left, order.amount.currency());
    let request = RefundRequest {
        session_id,
        amount,
        // Same key for the same remainder: a retried job never refunds twice.
        idempotency_key: format!("{}:full:{}", order.id, order.refunded_minor),
    };
    let now = state.now_ms();
    match state.provider.refund(&request).await {
        Ok(RefundOutcome::Pending { refund_id }) => {
            let mut tx = state.db.begin().await?;
            let detail = format!("Refund of {amount} requested from the payment provider ({reason}; ref {refund_id})");
            events::record(
                &mut tx,
                &order.id,
                now,
                "system",
                "refund_requested",
                None,
                None,
                &detail,
            )
            .await?;
            crate::orders::notify::cancelled_refunded(state, &mut tx, &order, amount, reason, now)
                .await?;
            tx.commit().await?;
            Ok(())
        }
        Ok(RefundOutcome::Failed { reason: why }) => {
            let mut tx = state.db.begin().await?;
            events::record(
                &mut tx,
                &order.id,
                now,
                "provider",
                "refund_failed",
                None,
                None,
                &format!("Refund of {amount} refused: {why}"),
            )
            .await?;
            tx.commit().await?;
            Err(JobError::Permanent(why))
        }
        Err(ProviderError::Unavailable(e)) => Err(JobError::Retry(e)),
        Err(ProviderError::Refused(e)) => Err(JobError::Permanent(e)),
    }
}
