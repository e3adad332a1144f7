//! The append-only audit trail of orders.

use crate::clock::Millis;
use crate::db::col;
use crate::domain::OrderStatus;
use sqlx::{AnyConnection, AnyPool};

#[derive(Debug, Clone)]
pub struct OrderEvent {
    pub at: Millis,
    pub actor: String,
    pub kind: String,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub detail: String,
}

#[allow(clippy::too_many_arguments)]
pub async fn record(
    conn: &mut AnyConnection,
    order_id: &str,
    at: Millis,
    actor: &str,
    kind: &str,
    from: Option<OrderStatus>,
    to: Option<OrderStatus>,
    detail: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO order_events (id, order_id, at, actor, kind, from_status, to_status, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(crate::domain::ids::new_id())
    .bind(order_id)
    .bind(at)
    .bind(actor)
    .bind(kind)
    .bind(from.map(|s| s.as_str()))
    .bind(to.map(|s| s.as_str()))
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(())
}

/// An event that is not a status change (a payment attempt, a refund, a note): `record`
/// without from and to.
pub async fn note(
    conn: &mut AnyConnection,
    order_id: &str,
    at: Millis,
    actor: &str,
    kind: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    record(conn, order_id, at, actor, kind, None, None, detail).await
}

pub async fn for_order(pool: &AnyPool, order_id: &str) -> Result<Vec<OrderEvent>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT at, actor, kind, from_status, to_status, detail FROM order_events WHERE order_id = $1 ORDER BY at, id",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(OrderEvent {
                at: col(r, "at")?,
                actor: col(r, "actor")?,
                kind: col(r, "kind")?,
                from_status: col(r, "from_status")?,
                to_status: col(r, "to_status")?,
                detail: col(r, "detail")?,
            })
        })
        .collect()
}
