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
pub struct PerScope {
    pub order: u32,
    pub email: u32,
    pub ip: u32,
    /// The card tried on this order that failed most (0 before any payment).
    pub card: u32,
    pub username: u32,
}

impl PerScope {
    /// The largest count and the scope it belongs to, for the reason sentence.
    pub fn worst(&self) -> (u32, &'static str) {
        [
            (self.order, "this order"),
            (self.email, "this email"),
            (self.ip, "this IP address"),
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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    pub failed_payments_1h: PerScope,
    pub failed_payments_24h: PerScope,
    /// Distinct card fingerprints tried in the last hour from the order's IP / email.
    pub distinct_cards_1h_ip: u32,
    pub distinct_cards_1h_email: u32,
    pub velocity_24h_username: Velocity,
    pub velocity_24h_email: Velocity,
    pub velocity_24h_ip: Velocity,
    /// Earlier paid orders from the same email, counted up to `PRIOR_PAID_CAP`.
    pub prior_paid_orders: u32,
    /// Requests from the order's IP refused by a rate limit in the last hour.
    pub rate_limited_1h: u32,
    pub list_hits: Vec<ListHit>,
}

fn n(row: &sqlx::any::AnyRow, name: &str) -> Result<u32, sqlx::Error> {
    Ok(col::<i64>(row, name)?.clamp(0, u32::MAX as i64) as u32)
}

/// Earlier paid orders are counted up to this many: the rules only ask whether there is one,
/// and a regular's thousandth order should cost no more to screen than their second.
pub const PRIOR_PAID_CAP: u32 = 100;

/// Gathers the signals for `order` as of `now`: two statements on one connection, one for
/// every count and one for the block and allow lists.
pub async fn gather(
    db: &Db,
    catalog: &Catalog,
    order: &Order,
    now: Millis,
) -> Result<Signals, sqlx::Error> {
    let mut conn = db.pool().acquire().await?;
    let h1 = now - HOUR;
    let d1 = now - DAY;
    // Every sub-query is a range scan on a (key, created_at) index. The card scope counts the
    // failures of the worst card tried on this order (none for a new order): webhooks arrive
    // in any order, so "the latest card" is not a fact the shop knows, and a stolen card
    // tried first is no less telling for a good one paying after it.
    let row = sqlx::query(
        "SELECT
          (SELECT COUNT(*) FROM payments WHERE order_id = $1 AND status = 'failed' AND created_at > $5) AS f1_order,
          (SELECT COUNT(*) FROM payments WHERE email = $2 AND status = 'failed' AND created_at > $5) AS f1_email,
          (SELECT COUNT(*) FROM payments WHERE client_ip = $3 AND status = 'failed' AND created_at > $5) AS f1_ip,
          (SELECT COALESCE(MAX((SELECT COUNT(*) FROM payments f WHERE f.card_fingerprint = c.card_fingerprint
                                    AND f.status = 'failed' AND f.created_at > $5)), 0)
           FROM (SELECT DISTINCT card_fingerprint FROM payments WHERE order_id = $1 AND card_fingerprint IS NOT NULL) AS c) AS f1_card,
          (SELECT COUNT(*) FROM payments WHERE tiktok_username = $4 AND status = 'failed' AND created_at > $5) AS f1_user,
          (SELECT COUNT(*) FROM payments WHERE order_id = $1 AND status = 'failed' AND created_at > $6) AS f24_order,
          (SELECT COUNT(*) FROM payments WHERE email = $2 AND status = 'failed' AND created_at > $6) AS f24_email,
          (SELECT COUNT(*) FROM payments WHERE client_ip = $3 AND status = 'failed' AND created_at > $6) AS f24_ip,
          (SELECT COALESCE(MAX((SELECT COUNT(*) FROM payments f WHERE f.card_fingerprint = c.card_fingerprint
                                    AND f.status = 'failed' AND f.created_at > $6)), 0)
           FROM (SELECT DISTINCT card_fingerprint FROM payments WHERE order_id = $1 AND card_fingerprint IS NOT NULL) AS c) AS f24_card,
          (SELECT COUNT(*) FROM payments WHERE tiktok_username = $4 AND status = 'failed' AND created_at > $6) AS f24_user,
          (SELECT COUNT(DISTINCT card_fingerprint) FROM payments WHERE client_ip = $3 AND created_at > $5) AS cards_ip,
          (SELECT COUNT(DISTINCT card_fingerprint) FROM payments WHERE email = $2 AND created_at > $5) AS cards_email,
          (SELECT COUNT(*) FROM orders WHERE tiktok_username = $4 AND created_at > $6) AS v_user_n,
          (SELECT CAST(COALESCE(SUM(base_amount_minor), 0) AS BIGINT) FROM orders WHERE tiktok_username = $4 AND created_at > $6) AS v_user_a,
          (SELECT COUNT(*) FROM orders WHERE email = $2 AND created_at > $6) AS v_email_n,
          (SELECT CAST(COALESCE(SUM(base_amount_minor), 0) AS BIGINT) FROM orders WHERE email = $2 AND created_at > $6) AS v_email_a,
          (SELECT COUNT(*) FROM orders WHERE client_ip = $3 AND created_at > $6) AS v_ip_n,
          (SELECT CAST(COALESCE(SUM(base_amount_minor), 0) AS BIGINT) FROM orders WHERE client_ip = $3 AND created_at > $6) AS v_ip_a,
          (SELECT COUNT(*) FROM (SELECT 1 FROM orders WHERE email = $2 AND paid_at IS NOT NULL AND id <> $1 LIMIT $7) AS p) AS prior_paid,
          (SELECT CAST(COALESCE(SUM(hits), 0) AS BIGINT) FROM rate_limit_counts WHERE client_ip = $3 AND window_start > $5 - 60000) AS limited",
    )
    .bind(&order.id)
    .bind(&order.email)
    .bind(&order.client_ip)
    .bind(&order.tiktok_username)
    .bind(h1)
    .bind(d1)
    .bind(i64::from(PRIOR_PAID_CAP))
    .fetch_one(&mut *conn)
    .await?;
    let list_hits = lists::matches_order(&mut conn, order, now).await?;

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
        distinct_cards_1h_ip: n(&row, "cards_ip")?,
        distinct_cards_1h_email: n(&row, "cards_email")?,
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
        prior_paid_orders: n(&row, "prior_paid")?,
        rate_limited_1h: n(&row, "limited")?,
        list_hits,
    })
}
