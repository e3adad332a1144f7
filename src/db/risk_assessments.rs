//! The `risk_assessments` table: every screening decision with its reasons and the signals it
//! was made from (both JSON), so an agent sees why and a rule change can be replayed.

use crate::clock::Millis;
use crate::db::col;
use futures_util::{Stream, StreamExt};
use sqlx::{AnyConnection, AnyPool};

/// An assessment as stored: `reasons` and `signals` are JSON, in whatever format the version
/// that wrote them used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAssessment {
    pub stage: String,
    pub score: i64,
    pub decision: String,
    pub reasons: String,
    pub signals: String,
    pub created_at: Millis,
}

/// Stores an assessment in the caller's transaction.
pub async fn insert(
    conn: &mut AnyConnection,
    order_id: &str,
    a: &StoredAssessment,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO risk_assessments (id, order_id, stage, score, decision, reasons, signals, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(crate::domain::ids::new_id())
    .bind(order_id)
    .bind(&a.stage)
    .bind(a.score)
    .bind(&a.decision)
    .bind(&a.reasons)
    .bind(&a.signals)
    .bind(a.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Every assessment of an order, newest first.
pub async fn for_order(
    pool: &AnyPool,
    order_id: &str,
) -> Result<Vec<StoredAssessment>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT stage, score, decision, reasons, signals, created_at FROM risk_assessments
         WHERE order_id = $1 ORDER BY created_at DESC, id DESC",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredAssessment {
                stage: col(r, "stage")?,
                score: col(r, "score")?,
                decision: col(r, "decision")?,
                reasons: col(r, "reasons")?,
                signals: col(r, "signals")?,
                created_at: col(r, "created_at")?,
            })
        })
        .collect()
}

/// A pre-fulfillment assessment with what later became of its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayable {
    /// The stored `Signals` JSON.
    pub signals: String,
    /// The order's status now.
    pub status: String,
    /// The order was rejected as fraud: an agent's "reject as fraud" leaves a block-list event
    /// (`block_listed`) on it.
    pub fraud: bool,
    /// The order has had a chargeback, whatever its status became since (won, refunded before
    /// it arrived).
    pub disputed: bool,
}

/// The pre-fulfillment assessments made since `since`, streamed, so the database produces
/// the next rows while the caller decodes and evaluates.
pub fn pre_fulfillment_since(
    pool: &AnyPool,
    since: Millis,
) -> impl Stream<Item = Result<Replayable, sqlx::Error>> + '_ {
    sqlx::query(
        "SELECT ra.signals AS signals, o.status AS status,
                CASE WHEN EXISTS (SELECT 1 FROM order_events e WHERE e.order_id = o.id AND e.kind = 'block_listed')
                     THEN 1 ELSE 0 END AS fraud,
                CASE WHEN EXISTS (SELECT 1 FROM disputes d WHERE d.order_id = o.id)
                     THEN 1 ELSE 0 END AS disputed
         FROM risk_assessments ra JOIN orders o ON o.id = ra.order_id
         WHERE ra.stage = 'pre_fulfillment' AND ra.created_at >= $1",
    )
    .bind(since)
    .fetch(pool)
    .map(|row| {
        let row = row?;
        Ok(Replayable {
            signals: col(&row, "signals")?,
            status: col(&row, "status")?,
            fraud: col::<i64>(&row, "fraud")? > 0,
            disputed: col::<i64>(&row, "disputed")? > 0,
        })
    })
}

/// Screening decisions made since `since`, per stage and decision.
pub async fn decisions_since(
    pool: &AnyPool,
    since: Millis,
) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT stage, decision, COUNT(*) AS n FROM risk_assessments WHERE created_at >= $1
         GROUP BY stage, decision",
    )
    .bind(since)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((col(r, "stage")?, col(r, "decision")?, col(r, "n")?)))
        .collect()
}
