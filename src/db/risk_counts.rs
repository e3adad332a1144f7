//! The counts behind an order's risk signals (`risk::signals`): failed payments, velocity,
//! recipient funnel, earlier orders and rate-limit hits per key, read in one statement on one
//! index range scan per key. What they mean to the rules is the risk module's business.

use crate::clock::Millis;
use crate::db::col;
use sqlx::AnyConnection;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// Decline codes that mean fraud rather than an honest mistake (Stripe's names).
pub const FRAUD_DECLINE_CODES: &[&str] = &[
    "lost_card",
    "stolen_card",
    "fraudulent",
    "pickup_card",
    "restricted_card",
    "security_violation",
    "card_velocity_exceeded",
];

/// The order's keys the counts are taken over.
#[derive(Debug, Clone, Copy)]
pub struct Keys<'a> {
    pub order_id: &'a str,
    pub email: &'a str,
    pub client_ip: &'a str,
    pub tiktok_username: &'a str,
    /// Earlier paid orders are counted up to this many.
    pub prior_paid_cap: u32,
}

/// The counts, named as the statement names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Failed attempts on this order in the last hour (one per card and decline code).
    pub f1_order: u32,
    /// The same over 24 hours.
    pub f24_order: u32,
    /// Fraud declines on this order in 24 hours.
    pub fraud_order: u32,
    /// Failed attempts with the order's email, last hour.
    pub f1_email: u32,
    pub f24_email: u32,
    /// Distinct cards that failed with the email in the last hour.
    pub fc_email: u32,
    pub fraud_email: u32,
    /// Failures from the order's address (every attempt counts).
    pub f1_ip: u32,
    pub f24_ip: u32,
    pub fc_ip: u32,
    /// Failed attempts aimed at the order's TikTok username.
    pub f1_user: u32,
    pub f24_user: u32,
    pub fc_user: u32,
    pub fraud_user: u32,
    /// Distinct cards that paid the username in the last hour and 24 hours.
    pub r1_cards: u32,
    pub r24_cards: u32,
    /// Orders the worst card tried on this order failed on (last hour, 24 hours) and its fraud declines.
    pub f1_card: u32,
    pub f24_card: u32,
    pub fraud_card: u32,
    /// Orders for the username in 24 hours and their base-currency amount.
    pub v_user_n: u32,
    pub v_user_a: i64,
    /// Distinct emails that paid the username, and what they paid (last hour, 24 hours).
    pub r1_emails: u32,
    pub r24_emails: u32,
    pub r1_amount: i64,
    pub r24_amount: i64,
    /// When the first of the last hour's payments to the username was made.
    pub r_first: Option<i64>,
    /// Orders from the email in 24 hours and their amount.
    pub v_email_n: u32,
    pub v_email_a: i64,
    /// Orders from the address in 24 hours and their amount.
    pub v_ip_n: u32,
    pub v_ip_a: i64,
    /// Earlier paid orders from the email, up to `prior_paid_cap`.
    pub prior_paid: u32,
    /// 1 when a card that paid this order paid a delivered order before, with the same email.
    pub known_payer: u32,
    /// Requests from the address refused by a rate limit in the last hour.
    pub limited: u32,
}

fn n(row: &sqlx::any::AnyRow, name: &str) -> Result<u32, sqlx::Error> {
    Ok(col::<i64>(row, name)?.clamp(0, u32::MAX as i64) as u32)
}

/// Every count for the order's keys as of `now`, in one statement.
pub async fn counts(
    conn: &mut AnyConnection,
    k: &Keys<'_>,
    now: Millis,
) -> Result<Counts, sqlx::Error> {
    let h1 = now - HOUR;
    let d1 = now - DAY;
    // One range scan per key, on its (key, created_at) index, each computing every count
    // that key feeds with conditional aggregates: a key's rows are read once, not once per
    // count. The card scope looks at the worst card tried on this order (none for a new
    // order): webhooks arrive in any order, so "the latest card" is not a fact the shop
    // knows. A failure is counted once per card and decline code, so a buyer retrying one
    // card is one failure, not five.
    let row = sqlx::query(sqlx::AssertSqlSafe(cast_parameters(&format!(
        "SELECT * FROM
          (SELECT COUNT(DISTINCT CASE WHEN {failed} AND created_at > $5 THEN {attempt} END) AS f1_order,
                  COUNT(DISTINCT CASE WHEN {failed} AND created_at > $6 THEN {attempt} END) AS f24_order,
                  COUNT(CASE WHEN {failed} AND failure_code IN ({fraud}) THEN 1 END) AS fraud_order
           FROM payments WHERE order_id = $1) AS o,
          (SELECT COUNT(DISTINCT CASE WHEN created_at > $5 THEN {attempt} END) AS f1_email,
                  COUNT(DISTINCT {attempt}) AS f24_email,
                  COUNT(DISTINCT CASE WHEN created_at > $5 THEN card_fingerprint END) AS fc_email,
                  COUNT(CASE WHEN failure_code IN ({fraud}) THEN 1 END) AS fraud_email
           FROM payments WHERE email = $2 AND status = 'failed' AND created_at > $6) AS e,
          (SELECT COUNT(CASE WHEN created_at > $5 THEN 1 END) AS f1_ip,
                  COUNT(*) AS f24_ip,
                  COUNT(DISTINCT CASE WHEN created_at > $5 THEN card_fingerprint END) AS fc_ip
           FROM payments WHERE client_ip = $3 AND status = 'failed' AND created_at > $6) AS i,
          (SELECT COUNT(DISTINCT CASE WHEN {failed} AND created_at > $5 THEN {attempt} END) AS f1_user,
                  COUNT(DISTINCT CASE WHEN {failed} THEN {attempt} END) AS f24_user,
                  COUNT(DISTINCT CASE WHEN {failed} AND created_at > $5 THEN card_fingerprint END) AS fc_user,
                  COUNT(CASE WHEN {failed} AND failure_code IN ({fraud}) THEN 1 END) AS fraud_user,
                  COUNT(DISTINCT CASE WHEN {succeeded} AND created_at > $5 THEN card_fingerprint END) AS r1_cards,
                  COUNT(DISTINCT CASE WHEN {succeeded} THEN card_fingerprint END) AS r24_cards
           FROM payments WHERE tiktok_username = $4 AND created_at > $6) AS u,
          (SELECT COALESCE(MAX(c1), 0) AS f1_card, COALESCE(MAX(c24), 0) AS f24_card, COALESCE(MAX(cf), 0) AS fraud_card
           FROM (SELECT COUNT(DISTINCT CASE WHEN f.created_at > $5 THEN f.order_id END) AS c1,
                        COUNT(DISTINCT f.order_id) AS c24,
                        COUNT(CASE WHEN f.failure_code IN ({fraud}) THEN 1 END) AS cf
                 FROM (SELECT DISTINCT card_fingerprint AS fp FROM payments WHERE order_id = $1 AND card_fingerprint IS NOT NULL) AS mine
                 JOIN payments f ON f.card_fingerprint = mine.fp
                 WHERE {f_failed} AND f.created_at > $6
                 GROUP BY mine.fp) AS per_card) AS c,
          (SELECT COUNT(CASE WHEN created_at > $6 THEN 1 END) AS v_user_n,
                  CAST(COALESCE(SUM(CASE WHEN created_at > $6 THEN base_amount_minor END), 0) AS BIGINT) AS v_user_a,
                  COUNT(DISTINCT CASE WHEN paid_at > $5 THEN email END) AS r1_emails,
                  COUNT(DISTINCT CASE WHEN paid_at > $6 THEN email END) AS r24_emails,
                  CAST(COALESCE(SUM(CASE WHEN paid_at > $5 THEN base_amount_minor END), 0) AS BIGINT) AS r1_amount,
                  CAST(COALESCE(SUM(CASE WHEN paid_at > $6 THEN base_amount_minor END), 0) AS BIGINT) AS r24_amount,
                  MIN(CASE WHEN paid_at > $5 THEN paid_at END) AS r_first
           FROM orders WHERE tiktok_username = $4 AND created_at > $8) AS ou,
          (SELECT COUNT(*) AS v_email_n, CAST(COALESCE(SUM(base_amount_minor), 0) AS BIGINT) AS v_email_a
           FROM orders WHERE email = $2 AND created_at > $6) AS oe,
          (SELECT COUNT(*) AS v_ip_n, CAST(COALESCE(SUM(base_amount_minor), 0) AS BIGINT) AS v_ip_a
           FROM orders WHERE client_ip = $3 AND created_at > $6) AS oi,
          (SELECT COUNT(*) AS prior_paid FROM (SELECT 1 FROM orders WHERE email = $2 AND paid_at IS NOT NULL AND id <> $1 LIMIT $7) AS p) AS pp,
          (SELECT COUNT(*) AS known_payer FROM (SELECT 1 FROM payments mine
                                 WHERE mine.order_id = $1 AND {mine_succeeded} AND mine.card_fingerprint IS NOT NULL
                                   AND EXISTS (SELECT 1 FROM payments earlier JOIN orders e ON e.id = earlier.order_id
                                               WHERE earlier.card_fingerprint = mine.card_fingerprint
                                                 AND {earlier_succeeded} AND earlier.email = $2
                                                 AND earlier.order_id <> $1 AND e.status = 'delivered')
                                 LIMIT 1) AS k) AS kp,
          (SELECT CAST(COALESCE(SUM(hits), 0) AS BIGINT) AS limited FROM rate_limit_counts WHERE client_ip = $3 AND window_start > $5 - 60000) AS rl",
        attempt = "COALESCE(card_fingerprint, id) || ':' || COALESCE(failure_code, '')",
        failed = "status = 'failed'",
        succeeded = "status = 'succeeded'",
        // Status tests the planner cannot turn into a scan of every successful payment
        // (`payments_status_created`): the order and card indexes are the narrow ones.
        f_failed = "CASE WHEN f.status = 'failed' THEN 1 ELSE 0 END = 1",
        earlier_succeeded = "CASE WHEN earlier.status = 'succeeded' THEN 1 ELSE 0 END = 1",
        mine_succeeded = "CASE WHEN mine.status = 'succeeded' THEN 1 ELSE 0 END = 1",
        fraud = FRAUD_DECLINE_CODES
            .iter()
            .map(|c| format!("'{c}'"))
            .collect::<Vec<_>>()
            .join(", "),
    ))))
    .bind(k.order_id)
    .bind(k.email)
    .bind(k.client_ip)
    .bind(k.tiktok_username)
    .bind(h1)
    .bind(d1)
    .bind(i64::from(k.prior_paid_cap))
    // Orders are paid before they expire, so a paid order of the last day was created within
    // a day and the order's expiry before it: this keeps the recipient counts on the
    // (username, created_at) index.
    .bind(d1 - RECIPIENT_LOOKBACK_SLACK)
    .fetch_one(conn)
    .await?;
    Ok(Counts {
        f1_order: n(&row, "f1_order")?,
        f24_order: n(&row, "f24_order")?,
        fraud_order: n(&row, "fraud_order")?,
        f1_email: n(&row, "f1_email")?,
        f24_email: n(&row, "f24_email")?,
        fc_email: n(&row, "fc_email")?,
        fraud_email: n(&row, "fraud_email")?,
        f1_ip: n(&row, "f1_ip")?,
        f24_ip: n(&row, "f24_ip")?,
        fc_ip: n(&row, "fc_ip")?,
        f1_user: n(&row, "f1_user")?,
        f24_user: n(&row, "f24_user")?,
        fc_user: n(&row, "fc_user")?,
        fraud_user: n(&row, "fraud_user")?,
        r1_cards: n(&row, "r1_cards")?,
        r24_cards: n(&row, "r24_cards")?,
        f1_card: n(&row, "f1_card")?,
        f24_card: n(&row, "f24_card")?,
        fraud_card: n(&row, "fraud_card")?,
        v_user_n: n(&row, "v_user_n")?,
        v_user_a: col(&row, "v_user_a")?,
        r1_emails: n(&row, "r1_emails")?,
        r24_emails: n(&row, "r24_emails")?,
        r1_amount: col(&row, "r1_amount")?,
        r24_amount: col(&row, "r24_amount")?,
        r_first: col(&row, "r_first")?,
        v_email_n: n(&row, "v_email_n")?,
        v_email_a: col(&row, "v_email_a")?,
        v_ip_n: n(&row, "v_ip_n")?,
        v_ip_a: col(&row, "v_ip_a")?,
        prior_paid: n(&row, "prior_paid")?,
        known_payer: n(&row, "known_payer")?,
        limited: n(&row, "limited")?,
    })
}

/// The statement's parameters wrapped in casts: `$1`–`$4` are text, `$5`–`$8` integers.
///
/// SQLite compares a bare parameter with the literals of partial indexes (`WHERE status =
/// 'failed'`) while planning, and then marks the statement to be planned again whenever that
/// parameter's value changes, which is every order: a quarter of the scoring time went to
/// re-preparing. A cast is an expression, not a parameter, so the plan is made once; the
/// indexes are used as before, and PostgreSQL reads the casts as type hints.
fn cast_parameters(sql: &str) -> String {
    (1..=8).fold(sql.to_owned(), |out, n| {
        let ty = if n <= 4 { "TEXT" } else { "BIGINT" };
        out.replace(&format!("${n}"), &format!("CAST(${n} AS {ty})"))
    })
}

/// How far before the 24-hour window a paid order may have been created (its expiry, with
/// room to spare), so that the recipient counts can range over `created_at`.
const RECIPIENT_LOOKBACK_SLACK: i64 = DAY;

#[cfg(test)]
mod tests {
    use super::cast_parameters;

    #[test]
    fn every_parameter_is_cast_once() {
        assert_eq!(
            cast_parameters("a = $1 AND b > $5 - 60000 LIMIT $7"),
            "a = CAST($1 AS TEXT) AND b > CAST($5 AS BIGINT) - 60000 LIMIT CAST($7 AS BIGINT)"
        );
    }
}
