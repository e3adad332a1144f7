//! Placing an order at checkout's confirm: the order is screened before payment (a decline
//! happens before anyone is charged, for every provider alike) and written with its decision
//! in one transaction. The store's confirm handler builds the order from the buyer's quote and
//! calls [`place`].

use crate::db::orders::{self, Order};
use crate::domain::ids;
use crate::domain::order_token::order_token;
use crate::orders::screening;
use crate::services::Services;

#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A concurrent double submit won, yet its order cannot be read back.
    #[error("order vanished after a conflict")]
    Vanished,
    /// Five order numbers in a row were taken.
    #[error("could not allocate an order number")]
    NoOrderNumber,
}

/// Screens and inserts `order` (status `awaiting_payment`), returning it with the status the
/// screening gave it; a double submit of the same quote returns the order the first one made.
pub async fn place(state: &Services, mut order: Order) -> Result<Order, PlaceError> {
    let now = order.created_at;
    let token = order_token(&state.secrets.cookie_key, &order.idempotency_key);
    let (assessment, signals) = screening::assess_new_order(state, &order, now).await?;
    for _ in 0..5 {
        let mut tx = state.db.begin().await?;
        match orders::insert(&mut tx, &order, &ids::token_hash(&token)).await {
            Ok(true) => {
                let decided =
                    screening::before_payment(state, &mut tx, &order, &assessment, &signals, now)
                        .await?;
                tx.commit().await?;
                order.status = decided;
                return Ok(order);
            }
            // A concurrent double submit won the race: use its order.
            Ok(false) => {
                tx.rollback().await?;
                return orders::by_idempotency_key(state.db.pool(), &order.idempotency_key)
                    .await?
                    .ok_or_else(|| PlaceError::Vanished);
            }
            // The 40-bit order number collided: draw another.
            Err(e) if crate::db::is_unique_violation(&e) => {
                tx.rollback().await?;
                order.order_number = ids::new_order_number();
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(PlaceError::NoOrderNumber)
}
