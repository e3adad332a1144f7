//! Replaying a proposed rule change over past orders before saving it: every pre-fulfillment
//! assessment keeps the `Signals` it was made from, so the proposed thresholds and weights can
//! be evaluated on exactly what the shop knew at the time, side by side with the current ones,
//! together with what later happened to those orders.

use super::rules::{evaluate, Decision};
use super::settings::RiskSettings;
use super::signals::Signals;
use crate::clock::Millis;
use crate::db::{col, Db};
use futures_util::TryStreamExt;

/// Counts for one setting: how many orders it would allow, review and block, and of each
/// group how many were later refunded, rejected by an agent, or rejected as fraud.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub decided: [u64; 3],
    pub refunded: [u64; 3],
    pub rejected: [u64; 3],
    pub fraud: [u64; 3],
}

impl Tally {
    fn add(&mut self, d: Decision, outcome: &Outcome) {
        let i = d as usize;
        self.decided[i] += 1;
        self.refunded[i] += outcome.refunded as u64;
        self.rejected[i] += outcome.rejected as u64;
        self.fraud[i] += outcome.fraud as u64;
    }

    pub fn allow(&self) -> u64 {
        self.decided[Decision::Allow as usize]
    }
    pub fn review(&self) -> u64 {
        self.decided[Decision::Review as usize]
    }
    pub fn block(&self) -> u64 {
        self.decided[Decision::Block as usize]
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    pub orders: u64,
    pub current: Tally,
    pub proposed: Tally,
    /// Orders whose decision the proposal changes.
    pub changed: u64,
    /// Assessments whose stored signals could not be read (skipped, and counted).
    pub unreadable: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Outcome {
    refunded: bool,
    rejected: bool,
    fraud: bool,
}

/// Replays `current` and `proposed` over the orders assessed before fulfillment since `since`.
pub async fn run(
    db: &Db,
    current: &RiskSettings,
    proposed: &RiskSettings,
    since: Millis,
) -> Result<Comparison, sqlx::Error> {
    // One pass over the period's assessments with each order's fate. An agent's "reject as
    // fraud" leaves a block-list event (`block_listed`) on the order; a chargeback counts the
    // same, whatever its order's status became since (won, refunded before it arrived). Rows
    // are streamed, so the database produces the next ones while this task decodes and
    // evaluates.
    let mut rows = sqlx::query(
        "SELECT ra.signals AS signals, o.status AS status,
                CASE WHEN EXISTS (SELECT 1 FROM order_events e WHERE e.order_id = o.id AND e.kind = 'block_listed')
                     THEN 1 ELSE 0 END AS fraud,
                CASE WHEN EXISTS (SELECT 1 FROM disputes d WHERE d.order_id = o.id)
                     THEN 1 ELSE 0 END AS disputed
         FROM risk_assessments ra JOIN orders o ON o.id = ra.order_id
         WHERE ra.stage = 'pre_fulfillment' AND ra.created_at >= $1",
    )
    .bind(since)
    .fetch(db.pool());
    let mut out = Comparison::default();
    while let Some(row) = rows.try_next().await? {
        let row = &row;
        let text: String = col(row, "signals")?;
        let Ok(signals) = serde_json::from_str::<Signals>(&text) else {
            out.unreadable += 1;
            continue;
        };
        let status: String = col(row, "status")?;
        let disputed = col::<i64>(row, "disputed")? > 0;
        let outcome = Outcome {
            refunded: matches!(status.as_str(), "refunded" | "partially_refunded"),
            // A chargeback is the issuer rejecting the order after the fact.
            rejected: disputed || matches!(status.as_str(), "rejected" | "disputed"),
            fraud: disputed || col::<i64>(row, "fraud")? > 0,
        };
        let now = evaluate(&signals, current).decision;
        let then = evaluate(&signals, proposed).decision;
        out.orders += 1;
        out.changed += (now != then) as u64;
        out.current.add(now, &outcome);
        out.proposed.add(then, &outcome);
    }
    Ok(out)
}
