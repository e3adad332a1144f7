//! Refund requests and refunds.

use crate::clock::Millis;
use crate::db::col;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub id: String,
    pub order_id: String,
    pub reason: String,
    pub message: String,
    pub status: String,
    pub decided_by: Option<String>,
    pub decision_message: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

const REQUEST_COLUMNS: &str =
    "id, order_id, reason, message, status, decided_by, decision_message, created_at, updated_at";

fn request_from(r: &AnyRow) -> Result<RefundRequest, sqlx::Error> {
    Ok(RefundRequest {
        id: col(r, "id")?,
        order_id: col(r, "order_id")?,
        reason: col(r, "reason")?,
        message: col(r, "message")?,
        status: col(r, "status")?,
        decided_by: col(r, "decided_by")?,
        decision_message: col(r, "decision_message")?,
        created_at: col(r, "created_at")?,
        updated_at: col(r, "updated_at")?,
    })
}

/// The buyer-facing reasons, in form order.
pub const REASONS: [(&str, &str); 5] = [
    ("not_delivered", "The coins did not arrive"),
    ("wrong_amount", "I received the wrong amount of coins"),
    ("wrong_account", "The coins went to the wrong account"),
    ("charged_twice", "I was charged twice"),
    ("other", "Something else"),
];

pub fn reason_label(code: &str) -> &'static str {
    REASONS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, l)| *l)
        .unwrap_or("Something else")
}

pub async fn insert(conn: &mut AnyConnection, r: &RefundRequest) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refund_requests (id, order_id, reason, message, status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'open', $5, $5)",
    )
    .bind(&r.id)
    .bind(&r.order_id)
    .bind(&r.reason)
    .bind(&r.message)
    .bind(r.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn by_id(pool: &AnyPool, id: &str) -> Result<Option<RefundRequest>, sqlx::Error> {
    let sql = format!("SELECT {REQUEST_COLUMNS} FROM refund_requests WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(request_from)
        .transpose()
}

pub async fn for_order(pool: &AnyPool, order_id: &str) -> Result<Vec<RefundRequest>, sqlx::Error> {
    let sql = format!(
        "SELECT {REQUEST_COLUMNS} FROM refund_requests WHERE order_id = $1 ORDER BY created_at, id"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(order_id)
        .fetch_all(pool)
        .await?
        .iter()
        .map(request_from)
        .collect()
}

/// How many requests wait for an agent (new, or whose refund failed), and the order number of
/// the oldest with when it was asked.
pub async fn waiting(pool: &AnyPool) -> Result<(i64, Option<(String, i64)>), sqlx::Error> {
    let n: i64 = col(
        &sqlx::query(
            "SELECT COUNT(*) AS n FROM refund_requests WHERE status IN ('open', 'failed')",
        )
        .fetch_one(pool)
        .await?,
        "n",
    )?;
    let oldest = sqlx::query(
        "SELECT o.order_number, r.created_at FROM refund_requests r JOIN orders o ON o.id = r.order_id
         WHERE r.status IN ('open', 'failed') ORDER BY r.created_at, r.id LIMIT 1",
    )
    .fetch_optional(pool)
    .await?
    .map(|r| -> Result<(String, i64), sqlx::Error> {
        Ok((col(&r, "order_number")?, col(&r, "created_at")?))
    })
    .transpose()?;
    Ok((n, oldest))
}

/// Requests waiting for an agent (new, or whose refund failed), oldest first.
pub async fn queue(pool: &AnyPool, limit: i64) -> Result<Vec<RefundRequest>, sqlx::Error> {
    let sql = format!(
        "SELECT {REQUEST_COLUMNS} FROM refund_requests WHERE status IN ('open', 'failed') ORDER BY created_at, id LIMIT $1"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(limit)
        .fetch_all(pool)
        .await?
        .iter()
        .map(request_from)
        .collect()
}

/// Moves a request from one of `from` to `to`; false if it was not in any of them.
pub async fn set_status(
    conn: &mut AnyConnection,
    id: &str,
    from: &[&str],
    to: &str,
    decided_by: Option<&str>,
    decision_message: Option<&str>,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    // `from` holds at most three fixed states; spelled out to keep the statement static.
    let (a, b, c) = (
        from.first().copied().unwrap_or(""),
        from.get(1).copied().unwrap_or(""),
        from.get(2).copied().unwrap_or(""),
    );
    let done = sqlx::query(
        "UPDATE refund_requests SET status = $1, decided_by = COALESCE($2, decided_by),
            decision_message = COALESCE($3, decision_message), updated_at = $4
         WHERE id = $5 AND status IN ($6, $7, $8)",
    )
    .bind(to)
    .bind(decided_by)
    .bind(decision_message)
    .bind(now)
    .bind(id)
    .bind(a)
    .bind(b)
    .bind(c)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub id: String,
    pub order_id: String,
    pub request_id: Option<String>,
    pub amount_minor: i64,
    pub currency: String,
    pub status: String,
    pub provider_refund_id: Option<String>,
    pub failure: Option<String>,
    pub created_by: String,
    pub created_at: Millis,
}

const REFUND_COLUMNS: &str =
    "id, order_id, request_id, amount_minor, currency, status, provider_refund_id, failure, created_by, created_at";

fn refund_from(r: &AnyRow) -> Result<Refund, sqlx::Error> {
    Ok(Refund {
        id: col(r, "id")?,
        order_id: col(r, "order_id")?,
        request_id: col(r, "request_id")?,
        amount_minor: col(r, "amount_minor")?,
        currency: col(r, "currency")?,
        status: col(r, "status")?,
        provider_refund_id: col(r, "provider_refund_id")?,
        failure: col(r, "failure")?,
        created_by: col(r, "created_by")?,
        created_at: col(r, "created_at")?,
    })
}

/// Records a refund the shop is about to ask for. A repeated id is a no-op (returns false).
pub async fn insert_refund(conn: &mut AnyConnection, r: &Refund) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO refunds (id, order_id, request_id, amount_minor, currency, status, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $7) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&r.id)
    .bind(&r.order_id)
    .bind(&r.request_id)
    .bind(r.amount_minor)
    .bind(&r.currency)
    .bind(&r.created_by)
    .bind(r.created_at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn refunds_for_order(pool: &AnyPool, order_id: &str) -> Result<Vec<Refund>, sqlx::Error> {
    let sql =
        format!("SELECT {REFUND_COLUMNS} FROM refunds WHERE order_id = $1 ORDER BY created_at, id");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(order_id)
        .fetch_all(pool)
        .await?
        .iter()
        .map(refund_from)
        .collect()
}

pub async fn refund_by_provider_id(
    conn: &mut AnyConnection,
    provider_refund_id: &str,
) -> Result<Option<Refund>, sqlx::Error> {
    let sql = format!("SELECT {REFUND_COLUMNS} FROM refunds WHERE provider_refund_id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(provider_refund_id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(refund_from)
        .transpose()
}

/// Money asked for but not yet confirmed back: it counts against what may still be refunded.
pub async fn pending_minor(conn: &mut AnyConnection, order_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) AS n FROM refunds WHERE order_id = $1 AND status = 'pending'")
        .bind(order_id)
        .fetch_one(conn)
        .await
        .and_then(|r| col(&r, "n"))
}

pub async fn set_provider_id(
    conn: &mut AnyConnection,
    id: &str,
    provider_refund_id: &str,
    now: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE refunds SET provider_refund_id = $1, updated_at = $2 WHERE id = $3")
        .bind(provider_refund_id)
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Settles a pending refund; false if it was settled already (a replayed or duplicate event).
pub async fn settle(
    conn: &mut AnyConnection,
    id: &str,
    status: &str,
    failure: Option<&str>,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE refunds SET status = $1, failure = $2, updated_at = $3 WHERE id = $4 AND status = 'pending'")
        .bind(status)
        .bind(failure)
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn refund_by_id(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<Refund>, sqlx::Error> {
    let sql = format!("SELECT {REFUND_COLUMNS} FROM refunds WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(refund_from)
        .transpose()
}
