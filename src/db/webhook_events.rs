//! Provider events already seen: one row per (provider, event id), written in the transaction
//! that applies the event, so a replayed or concurrent copy finds it and does nothing.

use crate::clock::Millis;
use sqlx::AnyConnection;

/// Claims an event for this transaction. False when it was seen before (or is being applied
/// by a concurrent transaction, which this insert then waits for).
pub async fn claim(
    conn: &mut AnyConnection,
    provider: &str,
    event_id: &str,
    event_type: &str,
    order_id: &str,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO webhook_events (provider, event_id, event_type, order_id, received_at, outcome)
         VALUES ($1, $2, $3, $4, $5, 'processing') ON CONFLICT DO NOTHING",
    )
    .bind(provider)
    .bind(event_id)
    .bind(event_type)
    .bind(order_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What applying a claimed event came to (`paid`, `replay`, `unknown_order`, …).
pub async fn set_outcome(
    conn: &mut AnyConnection,
    provider: &str,
    event_id: &str,
    outcome: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE webhook_events SET outcome = $1 WHERE provider = $2 AND event_id = $3")
        .bind(outcome)
        .bind(provider)
        .bind(event_id)
        .execute(conn)
        .await?;
    Ok(())
}
