//! Unpaid orders expire after the configured time.

use crate::db::orders;
use crate::domain::OrderStatus;
use crate::services::Services;

/// Expires every order past its payment deadline. Each order is its own transaction with its
/// event; an order paid in the meantime is left alone by the status guard.
pub async fn expire_due(state: &Services) -> Result<usize, sqlx::Error> {
    let now = state.now_ms();
    let mut expired = 0;
    loop {
        let ids = orders::due_to_expire(state.db.pool(), now, 100).await?;
        if ids.is_empty() {
            return Ok(expired);
        }
        let batch = ids.len();
        for id in ids {
            let mut tx = state.db.begin().await?;
            let moved = orders::transition(
                &mut tx,
                &id,
                OrderStatus::AwaitingPayment,
                OrderStatus::Expired,
                "system",
                "Not paid in time",
                now,
            )
            .await?;
            tx.commit().await?;
            expired += moved as usize;
        }
        if batch < 100 {
            return Ok(expired);
        }
    }
}
