//! Risk screening: facts about an order (`Signals`), pure rules over them (`rules`), and the
//! stored assessment an agent reads. Two stages: before payment (may decline before anyone is
//! charged) and before fulfillment (may hold for review or block).

pub mod backtest;
pub mod disposable;
pub mod lists;
pub mod rules;
pub mod settings;
pub mod signals;
pub mod surge;
pub mod traits;

pub use rules::{Assessment, Decision, Reason};
pub use settings::RiskSettings;
pub use signals::Signals;

use crate::clock::Millis;
use sqlx::AnyConnection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    PrePayment,
    PreFulfillment,
    /// The re-check just before crediting (the username may have changed hands).
    PreCredit,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::PrePayment => "pre_payment",
            Stage::PreFulfillment => "pre_fulfillment",
            Stage::PreCredit => "pre_credit",
        }
    }
}

/// Stores an assessment with the signals it was made from, in the caller's transaction.
pub async fn record(
    conn: &mut AnyConnection,
    order_id: &str,
    stage: Stage,
    assessment: &Assessment,
    signals: &Signals,
    now: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO risk_assessments (id, order_id, stage, score, decision, reasons, signals, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(crate::domain::ids::new_id())
    .bind(order_id)
    .bind(stage.as_str())
    .bind(assessment.score as i64)
    .bind(assessment.decision.as_str())
    .bind(serde_json::to_string(&assessment.reasons).unwrap_or_else(|_| "[]".into()))
    .bind(serde_json::to_string(signals).unwrap_or_else(|_| "{}".into()))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// An assessment as stored: `reasons` and `signals` are JSON, in whatever format the version
/// that wrote them used.
pub struct StoredAssessment {
    pub stage: String,
    pub score: i64,
    pub decision: String,
    pub reasons: String,
    pub signals: String,
    pub created_at: Millis,
}

/// Every assessment of an order, newest first.
pub async fn for_order(
    pool: &sqlx::AnyPool,
    order_id: &str,
) -> Result<Vec<StoredAssessment>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT stage, score, decision, reasons, signals, created_at FROM risk_assessments
         WHERE order_id = $1 ORDER BY created_at DESC, id DESC",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await?;
    use crate::db::col;
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

/// A one-line summary of an assessment for the audit trail.
pub fn summary(a: &Assessment) -> String {
    if a.reasons.is_empty() {
        return format!("Risk score {}: {} (no risk signals)", a.score, a.decision);
    }
    let codes: Vec<&str> = a.reasons.iter().map(|r| r.code.as_str()).collect();
    format!(
        "Risk score {}: {} ({})",
        a.score,
        a.decision,
        codes.join(", ")
    )
}
