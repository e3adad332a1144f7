//! Replaying a proposed rule change over past orders before saving it: every pre-fulfillment
//! assessment keeps the `Signals` it was made from, so the proposed thresholds and weights can
//! be evaluated on exactly what the shop knew at the time, side by side with the current ones,
//! together with what later happened to those orders.

use super::rules::{evaluate, Decision};
use super::settings::RiskSettings;
use super::signals::Signals;
use crate::clock::Millis;
use crate::db::{risk_assessments, Db};
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
    // One pass over the period's assessments with each order's fate, streamed: the database
    // produces the next rows while this task decodes and evaluates.
    let mut rows = std::pin::pin!(risk_assessments::pre_fulfillment_since(db.pool(), since));
    let mut out = Comparison::default();
    while let Some(row) = rows.try_next().await? {
        let Ok(signals) = serde_json::from_str::<Signals>(&row.signals) else {
            out.unreadable += 1;
            continue;
        };
        let status = row.status.as_str();
        // A chargeback is the issuer rejecting the order as fraud after the fact, whatever its
        // order's status became since.
        let outcome = Outcome {
            refunded: matches!(status, "refunded" | "partially_refunded"),
            rejected: row.disputed || matches!(status, "rejected" | "disputed"),
            fraud: row.disputed || row.fraud,
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
