//! The `risk_assessments` table: every screening decision with its reasons and the signals it
//! was made from (both JSON), so an agent sees why and a rule change can be replayed.

use crate::clock::Millis;
use crate::db::col;
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

/// A pre-fulfillment assessment with what later became of its order, borrowed from a
/// [`Packed`] period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replayable<'a> {
    /// The stored `Signals` JSON.
    pub signals: &'a str,
    /// The order's status now.
    pub status: &'a str,
    /// The order was rejected as fraud: an agent's "reject as fraud" leaves a block-list event
    /// (`block_listed`) on it.
    pub fraud: bool,
    /// The order has had a chargeback, whatever its status became since (won, refunded before
    /// it arrived).
    pub disputed: bool,
}

/// How many pre-fulfillment assessments were made since `since`, and the times of the first
/// and the last (read from their index alone).
pub async fn pre_fulfillment_span(
    pool: &AnyPool,
    since: Millis,
) -> Result<Option<(u64, Millis, Millis)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, MIN(created_at) AS first, MAX(created_at) AS last
         FROM risk_assessments WHERE stage = 'pre_fulfillment' AND created_at >= $1",
    )
    .bind(since)
    .fetch_one(pool)
    .await?;
    let n: i64 = col(&row, "n")?;
    let first: Option<Millis> = col(&row, "first")?;
    let last: Option<Millis> = col(&row, "last")?;
    Ok(first.zip(last).map(|(f, l)| (n.max(0) as u64, f, l)))
}

/// The pre-fulfillment assessments made from `from` up to (not including) `until`, with their
/// orders' fates, packed by the database into one text: one value to read instead of a row
/// per assessment (each of which cost more to hand over than to evaluate). Per assessment:
/// `{length}:{status}:{fraud}{disputed}{signals}`, the length of `signals` in characters, the
/// flags `0` or `1`.
///
/// Each assessment costs the database a few index probes: the period's assessments of this
/// stage by time (a partial index, migration 0016), the order by its key, and a block-list
/// event or a chargeback through small indexes of their own. The order is a subquery, not a
/// join: PostgreSQL otherwise hashes a scan of every order for each piece of the period. (An
/// assessment always has its order, by foreign key; without one it would drop out, as from
/// a join, its text being NULL.)
pub async fn pre_fulfillment_packed(
    pool: &AnyPool,
    from: Millis,
    until: Millis,
) -> Result<Packed, sqlx::Error> {
    let row = sqlx::query(
        "SELECT COALESCE(string_agg(
                    CAST(length(ra.signals) AS TEXT) || ':'
                    || (SELECT o.status FROM orders o WHERE o.id = ra.order_id) || ':'
                    || CASE WHEN EXISTS (SELECT 1 FROM order_events e
                                         WHERE e.order_id = ra.order_id AND e.kind = 'block_listed')
                            THEN '1' ELSE '0' END
                    || CASE WHEN EXISTS (SELECT 1 FROM disputes d WHERE d.order_id = ra.order_id)
                            THEN '1' ELSE '0' END
                    || ra.signals, ''), '') AS packed
         FROM risk_assessments ra
         WHERE ra.stage = 'pre_fulfillment' AND ra.created_at >= $1 AND ra.created_at < $2",
    )
    .bind(from)
    .bind(until)
    .fetch_one(pool)
    .await?;
    Ok(Packed(col(&row, "packed")?))
}

/// A period's assessments as [`pre_fulfillment_packed`] read them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Packed(String);

impl Packed {
    /// The assessments, borrowed; a malformed text ends with one error.
    pub fn rows(&self) -> impl Iterator<Item = Result<Replayable<'_>, sqlx::Error>> + '_ {
        let mut rest = self.0.as_str();
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            match unpack(rest) {
                Some((row, next)) => {
                    rest = next;
                    Some(Ok(row))
                }
                None => {
                    rest = "";
                    Some(Err(sqlx::Error::Decode(
                        "a packed pre-fulfillment assessment is malformed".into(),
                    )))
                }
            }
        })
    }
}

/// The first assessment of `text` and what follows it.
fn unpack(text: &str) -> Option<(Replayable<'_>, &str)> {
    let (length, rest) = text.split_once(':')?;
    let chars: usize = length.parse().ok()?;
    let (status, rest) = rest.split_once(':')?;
    let flag = |b: u8| match b {
        b'0' => Some(false),
        b'1' => Some(true),
        _ => None,
    };
    let (fraud, disputed) = match rest.as_bytes() {
        [f, d, ..] => (flag(*f)?, flag(*d)?),
        _ => return None,
    };
    let rest = &rest[2..];
    // The length is in characters: the byte offset after that many (stored JSON is ASCII but
    // for the odd list entry's reason).
    let end = match rest.as_bytes().get(..chars) {
        Some(head) if head.is_ascii() => chars,
        _ => match rest.char_indices().nth(chars) {
            Some((i, _)) => i,
            None if rest.chars().count() == chars => rest.len(),
            None => return None,
        },
    };
    let row = Replayable {
        signals: &rest[..end],
        status,
        fraud,
        disputed,
    };
    Some((row, &rest[end..]))
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

#[cfg(test)]
mod tests {
    use super::{unpack, Packed, Replayable};

    #[test]
    fn packed_assessments_unpack_whatever_their_signals_hold() {
        let packed = Packed(
            "2:delivered:00{}7:refunded:11{\"a\":1}5:rejected:10{\"é\"}0:disputed:01".into(),
        );
        let rows: Vec<_> = packed.rows().collect::<Result<_, _>>().unwrap();
        let row = |signals, status, fraud, disputed| Replayable {
            signals,
            status,
            fraud,
            disputed,
        };
        assert_eq!(
            rows,
            [
                row("{}", "delivered", false, false),
                row("{\"a\":1}", "refunded", true, true),
                row("{\"é\"}", "rejected", true, false),
                row("", "disputed", false, true),
            ]
        );
        // Text that does not follow the format is an error, never a miscount.
        for bad in [
            "9:delivered:00{}",
            "x:delivered:00{}",
            "2:delivered:2{}",
            "2:delivered",
        ] {
            assert!(unpack(bad).is_none(), "{bad}");
            assert!(Packed(bad.into()).rows().last().unwrap().is_err());
        }
        assert_eq!(Packed::default().rows().count(), 0);
    }
}
