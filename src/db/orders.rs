//! Orders: rows, look-ups, and guarded state changes.

use super::params::{like_prefix, where_all, Params};
use crate::clock::Millis;
use crate::db::{col, events};
use crate::domain::{Coins, Currency, Money, OrderStatus, PaymentMethod};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool};

#[derive(Debug, Clone)]
pub struct Order {
    pub id: String,
    pub order_number: String,
    pub idempotency_key: String,
    pub status: OrderStatus,
    pub coins: Coins,
    /// The total charged, fee included.
    pub amount: Money,
    /// The payment method's fee (part of `amount`).
    pub fee_minor: i64,
    pub base_amount_minor: i64,
    pub tiktok_username: String,
    pub tiktok_account_id: String,
    pub tiktok_display_name: String,
    pub email: String,
    pub payment_method: PaymentMethod,
    pub client_ip: String,
    pub age_confirmed_at: Option<Millis>,
    pub min_age: Option<i64>,
    pub client_amount_minor: Option<i64>,
    pub client_currency: Option<String>,
    pub provider: String,
    pub provider_session_id: Option<String>,
    pub refunded_minor: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub expires_at: Millis,
    pub paid_at: Option<Millis>,
    pub delivered_at: Option<Millis>,
}

pub const COLUMNS: &str = "id, order_number, idempotency_key, status, coins, amount_minor, fee_minor, currency, base_amount_minor, \
    tiktok_username, tiktok_account_id, tiktok_display_name, email, payment_method, client_ip, age_confirmed_at, min_age, client_amount_minor, \
    client_currency, provider, provider_session_id, refunded_minor, created_at, updated_at, expires_at, paid_at, delivered_at";

fn bad(what: &str, value: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("orders.{what} holds {value:?}").into())
}

pub fn from_row(r: &AnyRow) -> Result<Order, sqlx::Error> {
    let status: String = col(r, "status")?;
    let currency: String = col(r, "currency")?;
    let method: String = col(r, "payment_method")?;
    let currency: Currency = currency.parse().map_err(|_| bad("currency", &currency))?;
    Ok(Order {
        id: col(r, "id")?,
        order_number: col(r, "order_number")?,
        idempotency_key: col(r, "idempotency_key")?,
        status: status.parse().map_err(|_| bad("status", &status))?,
        coins: Coins::new(col::<i64>(r, "coins")?.max(0) as u64),
        amount: Money::from_minor(col(r, "amount_minor")?, currency),
        fee_minor: col(r, "fee_minor")?,
        base_amount_minor: col(r, "base_amount_minor")?,
        tiktok_username: col(r, "tiktok_username")?,
        tiktok_account_id: col(r, "tiktok_account_id")?,
        tiktok_display_name: col(r, "tiktok_display_name")?,
        email: col(r, "email")?,
        payment_method: method.parse().map_err(|_| bad("payment_method", &method))?,
        client_ip: col(r, "client_ip")?,
        age_confirmed_at: col(r, "age_confirmed_at")?,
        min_age: col(r, "min_age")?,
        client_amount_minor: col(r, "client_amount_minor")?,
        client_currency: col(r, "client_currency")?,
        provider: col(r, "provider")?,
        provider_session_id: col(r, "provider_session_id")?,
        refunded_minor: col(r, "refunded_minor")?,
        created_at: col(r, "created_at")?,
        updated_at: col(r, "updated_at")?,
        expires_at: col(r, "expires_at")?,
        paid_at: col(r, "paid_at")?,
        delivered_at: col(r, "delivered_at")?,
    })
}

/// Inserts a new order with its creation event. Returns false (and writes nothing) if an
/// order with the same idempotency key exists already.
pub async fn insert(
    conn: &mut AnyConnection,
    o: &Order,
    token_hash: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO orders (id, order_number, token_hash, idempotency_key, status, coins, amount_minor, currency,
            base_amount_minor, tiktok_username, tiktok_account_id, tiktok_display_name, email, payment_method,
            client_ip, client_amount_minor, client_currency, provider, provider_session_id, refunded_minor,
            created_at, updated_at, expires_at, paid_at, delivered_at, fee_minor, age_confirmed_at, min_age)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23,
                 $24, $25, $26, $27, $28)
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(&o.id)
    .bind(&o.order_number)
    .bind(token_hash)
    .bind(&o.idempotency_key)
    .bind(o.status.as_str())
    .bind(o.coins.get() as i64)
    .bind(o.amount.minor())
    .bind(o.amount.currency().code())
    .bind(o.base_amount_minor)
    .bind(&o.tiktok_username)
    .bind(&o.tiktok_account_id)
    .bind(&o.tiktok_display_name)
    .bind(&o.email)
    .bind(o.payment_method.as_str())
    .bind(&o.client_ip)
    .bind(o.client_amount_minor)
    .bind(&o.client_currency)
    .bind(&o.provider)
    .bind(&o.provider_session_id)
    .bind(o.refunded_minor)
    .bind(o.created_at)
    .bind(o.updated_at)
    .bind(o.expires_at)
    .bind(o.paid_at)
    .bind(o.delivered_at)
    .bind(o.fee_minor)
    .bind(o.age_confirmed_at)
    .bind(o.min_age)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    let detail = format!("{} coins for @{}, {}", o.coins, o.tiktok_username, o.amount);
    events::record(
        conn,
        &o.id,
        o.created_at,
        "buyer",
        "order_created",
        None,
        Some(o.status),
        &detail,
    )
    .await?;
    Ok(true)
}

async fn find_one(
    pool: &AnyPool,
    column: &'static str,
    value: &str,
) -> Result<Option<Order>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM orders WHERE {column} = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(value)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn by_id(pool: &AnyPool, id: &str) -> Result<Option<Order>, sqlx::Error> {
    find_one(pool, "id", id).await
}

pub async fn by_token_hash(pool: &AnyPool, hash: &str) -> Result<Option<Order>, sqlx::Error> {
    find_one(pool, "token_hash", hash).await
}

pub async fn by_idempotency_key(pool: &AnyPool, key: &str) -> Result<Option<Order>, sqlx::Error> {
    find_one(pool, "idempotency_key", key).await
}

pub async fn by_number(pool: &AnyPool, number: &str) -> Result<Option<Order>, sqlx::Error> {
    find_one(pool, "order_number", number).await
}

/// Reads an order inside a transaction (after a guarded write, or to decide one).
pub async fn by_id_in(conn: &mut AnyConnection, id: &str) -> Result<Option<Order>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM orders WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn set_provider_session(
    pool: &AnyPool,
    id: &str,
    session_id: &str,
    now: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE orders SET provider_session_id = $1, updated_at = $2 WHERE id = $3 AND provider_session_id IS NULL",
    )
    .bind(session_id)
    .bind(now)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Adds a settled refund to what has been returned on an order (the status follows apart).
pub async fn add_refunded(
    conn: &mut AnyConnection,
    id: &str,
    amount_minor: i64,
    now: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE orders SET refunded_minor = refunded_minor + $1, updated_at = $2 WHERE id = $3",
    )
    .bind(amount_minor)
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// One state change: `UPDATE … WHERE status = $from` plus its audit event, in the caller's
/// transaction. Returns false when the order was not in `from` (someone else moved it first:
/// the caller treats that as the no-op it is). Refuses transitions the state machine forbids.
pub async fn transition(
    conn: &mut AnyConnection,
    id: &str,
    from: OrderStatus,
    to: OrderStatus,
    actor: &str,
    detail: &str,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    if !from.can_move_to(to) {
        return Err(sqlx::Error::Protocol(format!(
            "order transition {from} -> {to} is not allowed"
        )));
    }
    let extra = match to {
        OrderStatus::Paid => ", paid_at = COALESCE(paid_at, $1)",
        OrderStatus::Delivered => ", delivered_at = COALESCE(delivered_at, $1)",
        _ => "",
    };
    let sql = format!(
        "UPDATE orders SET status = $2, updated_at = $1{extra} WHERE id = $3 AND status = $4"
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(to.as_str())
        .bind(id)
        .bind(from.as_str())
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    events::record(
        conn,
        id,
        now,
        actor,
        "status_changed",
        Some(from),
        Some(to),
        detail,
    )
    .await?;
    Ok(true)
}

/// Orders past their payment deadline.
pub async fn due_to_expire(
    pool: &AnyPool,
    now: Millis,
    limit: i64,
) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id FROM orders WHERE status = 'awaiting_payment' AND expires_at <= $1 ORDER BY expires_at LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(|r| col(r, "id")).collect()
}
/// How many orders are in `status`.
pub async fn count_in_status(pool: &AnyPool, status: OrderStatus) -> Result<i64, sqlx::Error> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM orders WHERE status = $1")
        .bind(status.as_str())
        .fetch_one(pool)
        .await?;
    col(&row, "n")
}

/// The order longest in `status`: its number and when it entered the status (`updated_at`,
/// its last change).
pub async fn longest_in_status(
    pool: &AnyPool,
    status: OrderStatus,
) -> Result<Option<(String, Millis)>, sqlx::Error> {
    sqlx::query(
        "SELECT order_number, updated_at FROM orders WHERE status = $1 ORDER BY updated_at, created_at LIMIT 1",
    )
    .bind(status.as_str())
    .fetch_optional(pool)
    .await?
    .map(|r| Ok((col(&r, "order_number")?, col(&r, "updated_at")?)))
    .transpose()
}

/// How many orders created since `since` are in each status (statuses with none left out).
pub async fn created_since_by_status(
    pool: &AnyPool,
    since: Millis,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT status, COUNT(*) AS n FROM orders WHERE created_at >= $1 GROUP BY status",
    )
    .bind(since)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((col(r, "status")?, col(r, "n")?)))
        .collect()
}

/// The oldest `limit` orders in `status` (longest waiting first).
pub async fn longest_waiting(
    pool: &AnyPool,
    status: OrderStatus,
    limit: i64,
) -> Result<Vec<Order>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM orders WHERE status = $1 ORDER BY updated_at, created_at LIMIT $2"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(status.as_str())
        .bind(limit)
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}

/// The buyer's other orders: same email or same TikTok username, newest first, at most 20.
pub async fn others_of_buyer(pool: &AnyPool, order: &Order) -> Result<Vec<Order>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM orders WHERE (email = $1 OR tiktok_username = $2) AND id <> $3
         ORDER BY created_at DESC LIMIT 20"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&order.email)
        .bind(&order.tiktok_username)
        .bind(&order.id)
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}

/// How long the last `n` deliveries took from payment (ms), newest first.
pub async fn recent_delivery_times(pool: &AnyPool, n: i64) -> Result<Vec<i64>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT delivered_at - paid_at AS took FROM orders
         WHERE delivered_at IS NOT NULL AND paid_at IS NOT NULL ORDER BY delivered_at DESC LIMIT $1",
    )
    .bind(n)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .filter_map(|r| col::<i64>(r, "took").ok())
        .collect())
}

/// How many orders are in each status (for the metrics).
pub async fn count_by_status(pool: &AnyPool) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM orders GROUP BY status")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| Ok((col(r, "status")?, col(r, "n")?)))
        .collect()
}

/// What to look for in the console's order search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// Normalised (`CF-…`).
    OrderNumber(String),
    /// Any payment of the order with these last four digits.
    CardLast4(String),
    /// Lower-case; matched as a prefix.
    EmailPrefix(String),
    /// Lower-case, without `@`; matched as a prefix.
    UsernamePrefix(String),
}

/// The console's order search: every given condition, newest first.
#[derive(Debug, Clone)]
pub struct Search {
    pub term: Option<Term>,
    pub status: Option<OrderStatus>,
    pub created_from: Option<Millis>,
    pub created_before: Option<Millis>,
    pub limit: i64,
    pub offset: i64,
}

pub async fn search(pool: &AnyPool, s: &Search) -> Result<Vec<Order>, sqlx::Error> {
    let mut p = Params::new();
    let mut conditions = Vec::new();
    match &s.term {
        None => {}
        Some(Term::OrderNumber(n)) => {
            conditions.push(format!("order_number = {}", p.add(n.as_str())))
        }
        Some(Term::CardLast4(l)) => conditions.push(format!(
            "id IN (SELECT order_id FROM payments WHERE card_last4 = {})",
            p.add(l.as_str())
        )),
        Some(Term::EmailPrefix(e)) => {
            conditions.push(format!("email LIKE {} ESCAPE '\\'", p.add(like_prefix(e))))
        }
        Some(Term::UsernamePrefix(u)) => conditions.push(format!(
            "tiktok_username LIKE {} ESCAPE '\\'",
            p.add(like_prefix(u))
        )),
    }
    if let Some(status) = s.status {
        conditions.push(format!("status = {}", p.add(status.as_str())));
    }
    if let Some(from) = s.created_from {
        conditions.push(format!("created_at >= {}", p.add(from)));
    }
    if let Some(before) = s.created_before {
        conditions.push(format!("created_at < {}", p.add(before)));
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM orders{} ORDER BY created_at DESC, id DESC LIMIT {} OFFSET {}",
        where_all(&conditions),
        p.add(s.limit),
        p.add(s.offset)
    );
    let rows = p
        .bind_to(sqlx::query(sqlx::AssertSqlSafe(sql)))
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}
