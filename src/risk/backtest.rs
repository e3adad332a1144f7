//! Replaying a proposed rule change over past orders before saving it: every pre-fulfillment
//! assessment keeps the `Signals` it was made from, so the proposed thresholds and weights can
//! be evaluated on exactly what the shop knew at the time, side by side with the current ones,
//! together with what later happened to those orders.

use super::rules::{evaluate, Decision};
use super::settings::RiskSettings;
use super::signals::Signals;
use crate::clock::Millis;
use crate::db::risk_assessments::{self, Packed};
use crate::db::Db;
use futures_util::{StreamExt, TryStreamExt};
use std::sync::Arc;

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

/// Assessments per piece of the period: the database packs a piece into one value
/// (`risk_assessments::pre_fulfillment_packed`) of about 1 MB.
const PIECE: u64 = 2_000;

/// Pieces read at once, each on a pooled connection of its own (at most a quarter of the pool,
/// so the shop keeps the rest): the database reads one while another is decoded and evaluated
/// on a blocking thread, and on several cores they run side by side.
const AT_ONCE: u32 = 4;

impl Comparison {
    fn merge(mut self, other: Comparison) -> Comparison {
        self.orders += other.orders;
        self.changed += other.changed;
        self.unreadable += other.unreadable;
        for (t, o) in [
            (&mut self.current, other.current),
            (&mut self.proposed, other.proposed),
        ] {
            for i in 0..3 {
                t.decided[i] += o.decided[i];
                t.refunded[i] += o.refunded[i];
                t.rejected[i] += o.rejected[i];
                t.fraud[i] += o.fraud[i];
            }
        }
        self
    }
}

/// Replays `current` and `proposed` over the orders assessed before fulfillment since `since`.
pub async fn run(
    db: &Db,
    current: &RiskSettings,
    proposed: &RiskSettings,
    since: Millis,
) -> Result<Comparison, sqlx::Error> {
    let Some((count, first, last)) =
        risk_assessments::pre_fulfillment_span(db.pool(), since).await?
    else {
        return Ok(Comparison::default());
    };
    // Pieces of equal time; the last one open, so what is assessed meanwhile counts too.
    let pieces = count.div_ceil(PIECE).clamp(1, 4_096) as i64;
    let step = (last - first) / pieces + 1;
    let at_once = (db.pool().options().get_max_connections() / 4).clamp(1, AT_ONCE) as usize;
    let settings = Arc::new([current.clone(), proposed.clone()]);
    let replays = (0..pieces).map(|i| {
        let from = first + i * step;
        let until = if i + 1 == pieces {
            Millis::MAX
        } else {
            from + step
        };
        replay(db, settings.clone(), from, until)
    });
    futures_util::stream::iter(replays)
        .buffer_unordered(at_once)
        .try_fold(Comparison::default(), |all, piece| async move {
            Ok(all.merge(piece))
        })
        .await
}

/// One piece of the period: read in one value, then decoded and evaluated on a blocking thread
/// (a piece takes milliseconds of CPU, which would stall the caller's other tasks).
async fn replay(
    db: &Db,
    settings: Arc<[RiskSettings; 2]>,
    from: Millis,
    until: Millis,
) -> Result<Comparison, sqlx::Error> {
    let packed = risk_assessments::pre_fulfillment_packed(db.pool(), from, until).await?;
    match tokio::task::spawn_blocking(move || evaluate_all(&packed, &settings)).await {
        Ok(result) => result,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

fn evaluate_all(
    packed: &Packed,
    [current, proposed]: &[RiskSettings; 2],
) -> Result<Comparison, sqlx::Error> {
    let mut out = Comparison::default();
    for row in packed.rows() {
        let row = row?;
        let Ok(signals) = serde_json::from_str::<Signals>(row.signals) else {
            out.unreadable += 1;
            continue;
        };
        // A chargeback is the issuer rejecting the order as fraud after the fact, whatever its
        // order's status became since.
        let outcome = Outcome {
            refunded: matches!(row.status, "refunded" | "partially_refunded"),
            rejected: row.disputed || matches!(row.status, "rejected" | "disputed"),
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
