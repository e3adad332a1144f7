//! `Signals`: the facts about an order that the rules read, gathered from the database with
//! indexed range queries (one round trip for the counts) and stored with every assessment so
//! that a rule change can be replayed over past orders.

use super::lists::{self, ListHit};
use crate::clock::Millis;
use crate::db::orders::Order;
use crate::db::{col, Db};
use crate::domain::Catalog;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// Counts of one thing per scope: this order, the buyer's email, IP, card and TikTok username.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PerScope {
    pub order: u32,
    pub email: u32,
    pub ip: u32,
    /// The card tried on this order that failed most (0 before any payment).
    pub card: u32,
    pub username: u32,
}

impl PerScope {
    /// The largest count of the scopes that belong to one buyer (the address does not: many
    /// strangers share one), and the scope it belongs to, for the reason sentence.
    pub fn worst(&self) -> (u32, &'static str) {
        [
            (self.order, "this order"),
            (self.email, "this email"),
            (self.card, "a card tried on this order"),
            (self.username, "this TikTok username"),
        ]
        .into_iter()
        .fold(
            (0, "this order"),
            |best, x| if x.0 > best.0 { x } else { best },
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Velocity {
    pub orders: u32,
    /// Base-currency minor units.
    pub amount_minor: i64,
}

/// Distinct cards that *failed* in the last hour, per scope. Successful payments by different
/// people behind one address are not evidence of anything; failures are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FailedCards {
    pub email: u32,
    /// The TikTok username the order is for: testers often aim every card at one account.
    pub username: u32,
    /// The client's address: a weak signal (carrier NAT, offices), points only.
    pub ip: u32,
}

/// Who paid the order's recipient: paid orders to this TikTok username. A cash-out rotates
/// cards, emails and addresses, but not the account it cashes out to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Recipient {
    /// Distinct payers (the larger of distinct emails and distinct cards) in the last hour
    /// and 24 hours, this order included once it is paid.
    pub payers_1h: u32,
    pub payers_24h: u32,
    /// Base-currency minor units paid to the username in the last hour and 24 hours.
    pub amount_1h_minor: i64,
    pub amount_24h_minor: i64,
    /// Minutes since the first of those payments in the last hour, for "… in 40 minutes"
    /// (a span, not a time: snapshots hold no timestamps).
    pub span_minutes_1h: Option<u32>,
}

/// The order matches something the shop-wide surge response tightened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SurgeMatch {
    /// What the order shares with the failures: "card prefix 400000", "email domain x.test",
    /// or "new payer" when the failures share nothing narrower.
    pub shares: String,
    /// Why the response engaged: "48 failed cards in 10 minutes against a usual 2".
    pub why: String,
}

/// Every field defaults, so assessments stored before a signal existed still load and replay.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Signals {
    pub coins: u64,
    /// The order's amount in the base currency's minor units.
    pub amount_base_minor: i64,
    /// Effective base-currency price per coin, after any discount.
    pub price_per_coin: Decimal,
    pub reference_price_per_coin: Decimal,
    /// The price or currency the buyer's page showed differs from the server's.
    pub price_mismatch: bool,
    pub disposable_email: bool,
    /// Failed payments per scope. Repeats of one card with the same decline on one order
    /// count once (a buyer retrying is not a tester); the card scope counts the orders the
    /// worst card tried here failed on.
    pub failed_payments_1h: PerScope,
    pub failed_payments_24h: PerScope,
    pub failed_cards_1h: FailedCards,
    /// Declines that say "fraud" (lost or stolen card, the provider's fraud block, card
    /// velocity) in the last 24 hours on this order, its email, its username or its cards.
    pub fraud_declines_24h: u32,
    pub velocity_24h_username: Velocity,
    pub velocity_24h_email: Velocity,
    /// Shown to agents; no rule reads it (an address is shared by strangers).
    pub velocity_24h_ip: Velocity,
    pub recipient: Recipient,
    /// Earlier paid orders from the same email, counted up to `PRIOR_PAID_CAP`.
    pub prior_paid_orders: u32,
    /// A card that paid this order paid a delivered order before, with the same email: a
    /// fact an attacker cannot type (an email alone they can).
    pub known_payer: bool,
    /// Requests from the order's IP refused by a rate limit in the last hour.
    pub rate_limited_1h: u32,
    pub surge: Option<SurgeMatch>,
    pub list_hits: Vec<ListHit>,
}

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

fn n(row: &sqlx::any::AnyRow, name: &str) -> Result<u32, sqlx::Error> {
    Ok(col::<i64>(row, name)?.clamp(0, u32::MAX as i64) as u32)
}

/// Earlier paid orders are counted up to this many: the rules only ask whether there is one,
/// and a regular's thousandth order should cost no more to screen than their second.
pub const PRIOR_PAID_CAP: u32 = 100;

/// Gathers the signals for `order` as of `now`: on one connection, one statement for every
/// count (one index range scan per key), one for the block and allow lists, and one for the surge response (a tiny table).
pub async fn gather(
    db: &Db,
    catalog: &Catalog,
    order: &Order,
    now: Millis,
) -> Result<Signals, sqlx::Error> {
    let [list_email, list_domain, list_ip, list_username] = lists::order_values(order);
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
        list_hits = lists::hits_json_sql(
            db.backend(),
            lists::HitParams {
                email: "$9",
                domain: "$10",
                ip: "$11",
                username: "$12",
                order: "$1",
                now: "$13",
            }
        ),
        surge = super::surge::engagement_sql(db.backend(), "$1", "$13"),
    ))))
    .bind(&order.id)
    .bind(&order.email)
    .bind(&order.client_ip)
    .bind(&order.tiktok_username)
    .bind(h1)
    .bind(d1)
    .bind(i64::from(PRIOR_PAID_CAP))
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
    let list_hits = lists::hits_from_json(&col::<String>(&row, "list_hits")?)?;
    let surge = super::surge::match_order(
        col(&row, "surge_detail")?,
        col(&row, "surge_tightened")?,
        col(&row, "surge_bins")?,
        order,
    );

    let base_total = catalog.to_base(order.amount).unwrap_or_default();
    let price_per_coin = base_total / Decimal::from(order.coins.get().max(1));
    let price_mismatch = order
        .client_amount_minor
        .is_some_and(|c| c != order.amount.minor())
        || order
            .client_currency
            .as_deref()
            .is_some_and(|c| c != order.amount.currency().code());
    let domain = order.email.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    let fraud_declines_24h = [
        n(&row, "fraud_order")?,
        n(&row, "fraud_email")?,
        n(&row, "fraud_user")?,
        n(&row, "fraud_card")?,
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    Ok(Signals {
        coins: order.coins.get(),
        amount_base_minor: order.base_amount_minor,
        price_per_coin: price_per_coin.round_dp(8),
        reference_price_per_coin: catalog.reference_price_per_coin(),
        price_mismatch,
        disposable_email: super::disposable::is_disposable(domain),
        failed_payments_1h: PerScope {
            order: n(&row, "f1_order")?,
            email: n(&row, "f1_email")?,
            ip: n(&row, "f1_ip")?,
            card: n(&row, "f1_card")?,
            username: n(&row, "f1_user")?,
        },
        failed_payments_24h: PerScope {
            order: n(&row, "f24_order")?,
            email: n(&row, "f24_email")?,
            ip: n(&row, "f24_ip")?,
            card: n(&row, "f24_card")?,
            username: n(&row, "f24_user")?,
        },
        failed_cards_1h: FailedCards {
            email: n(&row, "fc_email")?,
            username: n(&row, "fc_user")?,
            ip: n(&row, "fc_ip")?,
        },
        fraud_declines_24h,
        velocity_24h_username: Velocity {
            orders: n(&row, "v_user_n")?,
            amount_minor: col(&row, "v_user_a")?,
        },
        velocity_24h_email: Velocity {
            orders: n(&row, "v_email_n")?,
            amount_minor: col(&row, "v_email_a")?,
        },
        velocity_24h_ip: Velocity {
            orders: n(&row, "v_ip_n")?,
            amount_minor: col(&row, "v_ip_a")?,
        },
        recipient: Recipient {
            payers_1h: n(&row, "r1_emails")?.max(n(&row, "r1_cards")?),
            payers_24h: n(&row, "r24_emails")?.max(n(&row, "r24_cards")?),
            amount_1h_minor: col(&row, "r1_amount")?,
            amount_24h_minor: col(&row, "r24_amount")?,
            span_minutes_1h: col::<Option<i64>>(&row, "r_first")?
                .map(|first| ((now - first).max(0) / 60_000).clamp(0, 60) as u32),
        },
        prior_paid_orders: n(&row, "prior_paid")?,
        known_payer: n(&row, "known_payer")? > 0,
        rate_limited_1h: n(&row, "limited")?,
        surge,
        list_hits,
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
