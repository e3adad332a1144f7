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
use crate::db::risk_assessments::{self, StoredAssessment};
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
    let stored = StoredAssessment {
        stage: stage.as_str().into(),
        score: assessment.score as i64,
        decision: assessment.decision.as_str().into(),
        reasons: serde_json::to_string(&assessment.reasons).unwrap_or_else(|_| "[]".into()),
        signals: serde_json::to_string(signals).unwrap_or_else(|_| "{}".into()),
        created_at: now,
    };
    risk_assessments::insert(conn, order_id, &stored).await
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
