//! The sandbox payment provider's own records (`payments::sandbox`): its hosted sessions, the
//! refunds it made, its gift cards and crypto quotes. A real provider keeps these on its side;
//! the sandbox keeps them in the shop's database, in tables of its own.

use crate::clock::Millis;
use crate::db::{col, Db};
use sqlx::{AnyConnection, AnyPool};

#[derive(Debug, Clone)]
pub struct SandboxSession {
    pub id: String,
    pub order_reference: String,
    pub description: String,
    pub amount_minor: i64,
    pub currency: String,
    pub method: String,
    pub status: String,
    pub return_url: String,
    pub webhook_url: String,
    pub expires_at: Millis,
}

/// A new session, `open`.
#[derive(Debug, Clone, Copy)]
pub struct NewSession<'a> {
    pub id: &'a str,
    pub order_reference: &'a str,
    pub description: &'a str,
    pub amount_minor: i64,
    pub currency: &'a str,
    pub method: &'a str,
    pub return_url: &'a str,
    pub webhook_url: &'a str,
    pub created_at: Millis,
    pub expires_at: Millis,
}

/// Creates the order's session unless it has one; returns the id of the order's session
/// (one per order: a repeated request gets the first one back). A write transaction, so it
/// takes its turn with the shop's own writes.
pub async fn open_session(db: &Db, s: &NewSession<'_>) -> Result<String, sqlx::Error> {
    let mut tx = db.begin().await?;
    // The no-op update makes the conflict return the existing row's id: one statement.
    let row = sqlx::query(
        "INSERT INTO sandbox_sessions (id, order_reference, description, amount_minor, currency, method, status,
            return_url, webhook_url, created_at, updated_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8, $9, $9, $10)
         ON CONFLICT (order_reference) DO UPDATE SET order_reference = excluded.order_reference
         RETURNING id",
    )
    .bind(s.id)
    .bind(s.order_reference)
    .bind(s.description)
    .bind(s.amount_minor)
    .bind(s.currency)
    .bind(s.method)
    .bind(s.return_url)
    .bind(s.webhook_url)
    .bind(s.created_at)
    .bind(s.expires_at)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    col(&row, "id")
}

pub async fn session(pool: &AnyPool, id: &str) -> Result<Option<SandboxSession>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, order_reference, description, amount_minor, currency, method, status, return_url, webhook_url, expires_at
         FROM sandbox_sessions WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(SandboxSession {
            id: col(&r, "id")?,
            order_reference: col(&r, "order_reference")?,
            description: col(&r, "description")?,
            amount_minor: col(&r, "amount_minor")?,
            currency: col(&r, "currency")?,
            method: col(&r, "method")?,
            status: col(&r, "status")?,
            return_url: col(&r, "return_url")?,
            webhook_url: col(&r, "webhook_url")?,
            expires_at: col(&r, "expires_at")?,
        })
    })
    .transpose()
}

/// The last 4 of the card that paid the session, if a card did.
pub async fn paid_last4(pool: &AnyPool, id: &str) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query("SELECT paid_last4 FROM sandbox_sessions WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await?;
    col(&row, "paid_last4")
}

/// Moves a session from `from` to `to` (`paid`, `pending`), recording the paying card's last
/// 4 when given. False when the session was not in `from` (paid or settling already).
pub async fn move_session(
    conn: &mut AnyConnection,
    id: &str,
    from: &str,
    to: &str,
    last4: Option<&str>,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let moved = sqlx::query(
        "UPDATE sandbox_sessions SET status = $1, paid_last4 = COALESCE($2, paid_last4), updated_at = $3
         WHERE id = $4 AND status = $5",
    )
    .bind(to)
    .bind(last4)
    .bind(now)
    .bind(id)
    .bind(from)
    .execute(conn)
    .await?;
    Ok(moved.rows_affected() == 1)
}

/// Spends `amount_minor` from a gift card, creating the card with `balance_minor` the first
/// time its code is used. False when what is left is not enough (or the currency differs).
pub async fn spend_gift_card(
    conn: &mut AnyConnection,
    code: &str,
    currency: &str,
    balance_minor: i64,
    amount_minor: i64,
) -> Result<bool, sqlx::Error> {
    sqlx::query(
        "INSERT INTO sandbox_gift_cards (code, currency, remaining_minor) VALUES ($1, $2, $3) ON CONFLICT (code) DO NOTHING",
    )
    .bind(code)
    .bind(currency)
    .bind(balance_minor)
    .execute(&mut *conn)
    .await?;
    let spent = sqlx::query(
        "UPDATE sandbox_gift_cards SET remaining_minor = remaining_minor - $1
         WHERE code = $2 AND currency = $3 AND remaining_minor >= $1",
    )
    .bind(amount_minor)
    .bind(code)
    .bind(currency)
    .execute(conn)
    .await?;
    Ok(spent.rows_affected() == 1)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoQuote {
    pub payment_id: String,
    pub address: String,
    pub amount_minor: i64,
    pub expires_at: Millis,
}

pub async fn crypto_quote(
    conn: &mut AnyConnection,
    session_id: &str,
) -> Result<Option<CryptoQuote>, sqlx::Error> {
    let row = sqlx::query("SELECT payment_id, address, amount_minor, expires_at FROM sandbox_crypto_quotes WHERE session_id = $1")
        .bind(session_id)
        .fetch_optional(conn)
        .await?;
    row.map(|r| {
        Ok(CryptoQuote {
            payment_id: col(&r, "payment_id")?,
            address: col(&r, "address")?,
            amount_minor: col(&r, "amount_minor")?,
            expires_at: col(&r, "expires_at")?,
        })
    })
    .transpose()
}

/// Writes the session's quote unless it has one. False when it had one already.
pub async fn insert_crypto_quote(
    conn: &mut AnyConnection,
    session_id: &str,
    q: &CryptoQuote,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO sandbox_crypto_quotes (session_id, payment_id, address, amount_minor, expires_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (session_id) DO NOTHING",
    )
    .bind(session_id)
    .bind(&q.payment_id)
    .bind(&q.address)
    .bind(q.amount_minor)
    .bind(q.expires_at)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

pub async fn delete_crypto_quote(
    conn: &mut AnyConnection,
    session_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sandbox_crypto_quotes WHERE session_id = $1")
        .bind(session_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The id of the refund made with this idempotency key, if one was.
pub async fn refund_by_key(
    conn: &mut AnyConnection,
    idempotency_key: &str,
) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query("SELECT id FROM sandbox_refunds WHERE idempotency_key = $1")
        .bind(idempotency_key)
        .fetch_optional(conn)
        .await?;
    row.map(|r| col(&r, "id")).transpose()
}

/// What the session's refunds came to: (refunded minor units, failed refunds).
pub async fn refund_totals(
    conn: &mut AnyConnection,
    session_id: &str,
) -> Result<(i64, i64), sqlx::Error> {
    let row = sqlx::query(
        "SELECT CAST(COALESCE(SUM(CASE WHEN status = 'succeeded' THEN amount_minor ELSE 0 END), 0) AS BIGINT) AS refunded,
                CAST(COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT) AS failed
         FROM sandbox_refunds WHERE session_id = $1",
    )
    .bind(session_id)
    .fetch_one(conn)
    .await?;
    Ok((col(&row, "refunded")?, col(&row, "failed")?))
}

#[derive(Debug, Clone, Copy)]
pub struct NewRefund<'a> {
    pub id: &'a str,
    pub session_id: &'a str,
    pub idempotency_key: &'a str,
    pub amount_minor: i64,
    pub currency: &'a str,
    /// `succeeded` or `failed`.
    pub status: &'a str,
    pub created_at: Millis,
}

pub async fn insert_refund(conn: &mut AnyConnection, r: &NewRefund<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sandbox_refunds (id, session_id, idempotency_key, amount_minor, currency, status, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(r.id)
    .bind(r.session_id)
    .bind(r.idempotency_key)
    .bind(r.amount_minor)
    .bind(r.currency)
    .bind(r.status)
    .bind(r.created_at)
    .execute(conn)
    .await?;
    Ok(())
}
