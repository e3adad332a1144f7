//! The facts behind an order's risk signals (`risk::signals`), read in one statement: failed
//! payments, velocity, recipient funnel, earlier orders and rate-limit hits per key (one index
//! range scan per key), the block and allow list entries that match the order, and the surge
//! response in force. What they mean to the rules is the risk module's business.

use crate::clock::Millis;
use crate::db::orders::Order;
use crate::db::{col, Backend, Db};
use crate::domain::risk_list::{normalise, List, ListHit, ListKind};

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

/// The facts, named as the statement names them.
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
    /// Block and allow list entries in force that match the order (its email, email domain,
    /// IP, TikTok username or a card tried on it), oldest first.
    pub list_hits: Vec<ListHit>,
    /// The surge response in force, if any: why it engaged and what it tightened (JSON)…
    pub surge_detail: Option<String>,
    pub surge_tightened: Option<String>,
    /// …and the card prefixes tried on the order, comma-separated.
    pub surge_bins: Option<String>,
}

fn n(row: &sqlx::any::AnyRow, name: &str) -> Result<u32, sqlx::Error> {
    Ok(col::<i64>(row, name)?.clamp(0, u32::MAX as i64) as u32)
}

/// Every fact about `order` as of `now`, in one statement. Earlier paid orders are counted up
/// to `prior_paid_cap`; `surge_kind` is the kind of `screening_events` row that is the surge
/// response.
pub async fn counts(
    db: &Db,
    order: &Order,
    prior_paid_cap: u32,
    surge_kind: &'static str,
    now: Millis,
) -> Result<Counts, sqlx::Error> {
    let [list_email, list_domain, list_ip, list_username] = order_values(order);
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
          (SELECT CAST(COALESCE(SUM(hits), 0) AS BIGINT) AS limited FROM rate_limit_counts WHERE client_ip = $3 AND window_start > $5 - 60000) AS rl,
          (SELECT {list_hits} AS list_hits, {surge}) AS ls",
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
        list_hits = list_hits_sql(
            db.backend(),
            HitParams {
                email: "$9",
                domain: "$10",
                ip: "$11",
                username: "$12",
                order: "$1",
                now: "$13",
            }
        ),
        surge = engagement_sql(db.backend(), surge_kind, "$1", "$13"),
    ))))
    .bind(&order.id)
    .bind(&order.email)
    .bind(&order.client_ip)
    .bind(&order.tiktok_username)
    .bind(h1)
    .bind(d1)
    .bind(i64::from(prior_paid_cap))
    // Orders are paid before they expire, so a paid order of the last day was created within
    // a day and the order's expiry before it: this keeps the recipient counts on the
    // (username, created_at) index.
    .bind(d1 - RECIPIENT_LOOKBACK_SLACK)
    .bind(list_email)
    .bind(list_domain)
    .bind(list_ip)
    .bind(list_username)
    .bind(now)
    .fetch_one(db.pool())
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
        list_hits: hits_from_json(&col::<String>(&row, "list_hits")?)?,
        surge_detail: col(&row, "surge_detail")?,
        surge_tightened: col(&row, "surge_tightened")?,
        surge_bins: col(&row, "surge_bins")?,
    })
}

/// The statement's parameters wrapped in casts: `$1`–`$4` and `$9`–`$12` are text, the
/// others integers.
///
/// SQLite compares a bare parameter with the literals of partial indexes (`WHERE status =
/// 'failed'`) while planning, and then marks the statement to be planned again whenever that
/// parameter's value changes, which is every order: a quarter of the scoring time went to
/// re-preparing. A cast is an expression, not a parameter, so the plan is made once; the
/// indexes are used as before, and PostgreSQL reads the casts as type hints.
fn cast_parameters(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 512);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(rest.len() - at - 1, |n| n);
        match rest[at + 1..at + 1 + digits].parse::<u32>() {
            Ok(n) => {
                let ty = if matches!(n, 1..=4 | 9..=12) {
                    "TEXT"
                } else {
                    "BIGINT"
                };
                out.push_str(&format!("CAST(${n} AS {ty})"));
            }
            Err(_) => out.push('$'),
        }
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    out
}

/// The order's values in the form list entries are stored in (`normalise`): email, email
/// domain, IP and TikTok username.
fn order_values(order: &Order) -> [String; 4] {
    let domain = order
        .email
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or_default();
    [
        normalise(ListKind::Email, &order.email),
        normalise(ListKind::EmailDomain, domain),
        normalise(ListKind::Ip, &order.client_ip),
        normalise(ListKind::TiktokUsername, &order.tiktok_username),
    ]
}

/// The placeholders `list_hits_sql` uses, e.g. `"$9"` (or any SQL expression).
#[derive(Clone, Copy)]
struct HitParams<'a> {
    email: &'a str,
    domain: &'a str,
    ip: &'a str,
    username: &'a str,
    order: &'a str,
    now: &'a str,
}

/// The entries in force that match an order, as one JSON array of `[list, kind, value, reason,
/// added_by]`, oldest first; each branch is a look-up on (kind, value).
fn list_hits_sql(backend: Backend, p: HitParams) -> String {
    let HitParams {
        email,
        domain,
        ip,
        username,
        order,
        now,
    } = p;
    let matching = format!(
        "FROM risk_lists
         WHERE (expires_at IS NULL OR expires_at > {now})
           AND ((kind = 'email' AND value = {email})
             OR (kind = 'email_domain' AND value = {domain})
             OR (kind = 'ip' AND value = {ip})
             OR (kind = 'tiktok_username' AND value = {username})
             OR (kind = 'card_fingerprint' AND value IN
                   (SELECT LOWER(card_fingerprint) FROM payments WHERE order_id = {order} AND card_fingerprint IS NOT NULL)))"
    );
    match backend {
        // SQLite aggregates in the order rows arrive, which the sub-select sorts.
        Backend::Sqlite => format!(
            "(SELECT json_group_array(json_array(list, kind, value, reason, added_by))
              FROM (SELECT list, kind, value, reason, added_by {matching} ORDER BY created_at) AS hits)"
        ),
        Backend::Postgres => format!(
            "(SELECT CAST(COALESCE(json_agg(json_build_array(list, kind, value, reason, added_by) ORDER BY created_at), '[]') AS TEXT)
              {matching})"
        ),
    }
}

/// Reads the hits `list_hits_sql` returned. An entry of a kind this version does not know
/// cannot match anything and is skipped.
fn hits_from_json(json: &str) -> Result<Vec<ListHit>, sqlx::Error> {
    type Row = (String, String, String, String, String);
    let rows: Vec<Row> =
        serde_json::from_str(json).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    Ok(rows
        .into_iter()
        .filter_map(|(list, kind, value, reason, added_by)| {
            Some(ListHit {
                list: if list == "block" {
                    List::Block
                } else {
                    List::Allow
                },
                kind: ListKind::parse(&kind)?,
                value,
                reason,
                added_by,
            })
        })
        .collect())
}

/// The surge engagement in force, newest first, and the card prefixes tried on the order, as
/// columns `surge_detail`, `surge_tightened` and `surge_bins`; `{order}` and `{now}` are the
/// statement's placeholders for the order's id and the time. `kind` is a constant of the
/// code, never outside input.
fn engagement_sql(backend: Backend, kind: &'static str, order: &str, now: &str) -> String {
    let in_force = format!(
        "FROM screening_events WHERE kind = '{kind}' AND until_at > {now} ORDER BY started_at DESC LIMIT 1"
    );
    // Card prefixes are digits: a comma cannot be part of one.
    let bins = match backend {
        Backend::Sqlite => "group_concat(DISTINCT card_bin)",
        Backend::Postgres => "string_agg(DISTINCT card_bin, ',')",
    };
    format!(
        "(SELECT detail {in_force}) AS surge_detail,
         (SELECT tightened {in_force}) AS surge_tightened,
         (SELECT {bins} FROM payments WHERE order_id = {order} AND card_bin IS NOT NULL) AS surge_bins"
    )
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

    #[test]
    fn two_digit_parameters_are_cast_whole() {
        assert_eq!(
            cast_parameters("v = $12 OR t > $13 OR x = $1"),
            "v = CAST($12 AS TEXT) OR t > CAST($13 AS BIGINT) OR x = CAST($1 AS TEXT)"
        );
        assert_eq!(cast_parameters("'$' || $"), "'$' || $");
    }
}
