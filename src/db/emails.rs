//! The `emails` outbox table: rendered emails waiting for (or done with) their send job.
//! What an email says and when it is written is `mail::outbox`'s business; this is its SQL.

use crate::clock::Millis;
use crate::db::col;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool};

/// An email as stored: rendered, with its Message-ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEmail {
    pub id: String,
    pub order_id: Option<String>,
    pub kind: String,
    pub to_address: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub message_id: String,
    pub created_at: Millis,
    pub sent_at: Option<Millis>,
    pub attempts: i64,
    /// When its body was deleted (by `retention`, or by erasing the buyer's data); such an
    /// email is a record only and is never sent again.
    pub body_deleted_at: Option<Millis>,
}

/// A new row: unsent, no attempts yet.
#[derive(Debug, Clone, Copy)]
pub struct NewRow<'a> {
    pub id: &'a str,
    pub order_id: Option<&'a str>,
    pub kind: &'a str,
    pub dedupe_key: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    pub text_body: &'a str,
    pub html_body: &'a str,
    pub message_id: &'a str,
    pub created_at: Millis,
}

/// False (and nothing written) when an email with the same dedupe key exists.
pub async fn insert(conn: &mut AnyConnection, e: &NewRow<'_>) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO emails (id, order_id, kind, dedupe_key, to_address, subject, text_body, html_body,
            message_id, created_at, sent_at, attempts, last_error, abandoned_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, 0, NULL, NULL)
         ON CONFLICT DO NOTHING",
    )
    .bind(e.id)
    .bind(e.order_id)
    .bind(e.kind)
    .bind(e.dedupe_key)
    .bind(e.to)
    .bind(e.subject)
    .bind(e.text_body)
    .bind(e.html_body)
    .bind(e.message_id)
    .bind(e.created_at)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

const COLUMNS: &str = "id, order_id, kind, to_address, subject, text_body, html_body, message_id, created_at, sent_at, attempts, body_deleted_at";

fn from_row(r: &AnyRow) -> Result<StoredEmail, sqlx::Error> {
    Ok(StoredEmail {
        id: col(r, "id")?,
        order_id: col(r, "order_id")?,
        kind: col(r, "kind")?,
        to_address: col(r, "to_address")?,
        subject: col(r, "subject")?,
        text_body: col(r, "text_body")?,
        html_body: col(r, "html_body")?,
        message_id: col(r, "message_id")?,
        created_at: col(r, "created_at")?,
        sent_at: col(r, "sent_at")?,
        attempts: col(r, "attempts")?,
        body_deleted_at: col(r, "body_deleted_at")?,
    })
}

pub async fn load(pool: &AnyPool, id: &str) -> Result<Option<StoredEmail>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM emails WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// The emails written for an order, oldest first.
pub async fn for_order(pool: &AnyPool, order_id: &str) -> Result<Vec<StoredEmail>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM emails WHERE order_id = $1 ORDER BY created_at, id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(order_id)
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}

/// Clears the sent mark of one of an order's emails. False when the order has no such email,
/// or its body has been deleted.
pub async fn mark_unsent_of_order(
    conn: &mut AnyConnection,
    order_id: &str,
    email_id: &str,
) -> Result<bool, sqlx::Error> {
    let changed = sqlx::query(
        "UPDATE emails SET sent_at = NULL WHERE id = $1 AND order_id = $2 AND body_deleted_at IS NULL",
    )
        .bind(email_id)
        .bind(order_id)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(changed > 0)
}

/// Clears an email's sent mark, so its next send job sends it again.
pub async fn mark_unsent(conn: &mut AnyConnection, email_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE emails SET sent_at = NULL WHERE id = $1")
        .bind(email_id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn mark_sent(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    now: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE emails SET sent_at = $1, attempts = attempts + 1, last_error = NULL
         WHERE id = $2 AND sent_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a failed attempt. `abandon` marks an email that can never be sent, so it is not
/// revived; otherwise it stays queued.
pub async fn record_failure(
    pool: &AnyPool,
    id: &str,
    error: &str,
    abandon: bool,
    now: Millis,
) -> Result<(), sqlx::Error> {
    let error: String = error.chars().take(1000).collect();
    sqlx::query(
        "UPDATE emails SET attempts = attempts + 1, last_error = $1,
            abandoned_at = CASE WHEN $2 = 1 THEN $3 ELSE abandoned_at END
         WHERE id = $4 AND sent_at IS NULL",
    )
    .bind(error)
    .bind(i64::from(abandon))
    .bind(now)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// The order's receipt email (the `delivered` kind, one per order), if it was written and
/// still has its body (else a new one is written).
pub async fn receipt_of(
    conn: &mut AnyConnection,
    order_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id FROM emails WHERE order_id = $1 AND kind = 'delivered' AND body_deleted_at IS NULL",
    )
        .bind(order_id)
        .fetch_optional(conn)
        .await?;
    row.map(|r| col(&r, "id")).transpose()
}

/// Sets the dead send jobs of emails still unsent and not abandoned back to pending, once
/// they have been dead since `dead_before`. A send job's dedupe key is `key_prefix` and the
/// email's id; `kind` is its job kind. Returns how many were revived.
pub async fn revive_dead_sends(
    pool: &AnyPool,
    kind: &str,
    key_prefix: &str,
    dead_before: Millis,
    now: Millis,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE jobs SET status = 'pending', attempts = 0, run_at = $1, lease_until = NULL, updated_at = $1
         WHERE kind = $2 AND status = 'dead' AND updated_at <= $3
           AND dedupe_key IN (SELECT $4 || id FROM emails WHERE sent_at IS NULL AND abandoned_at IS NULL)",
    )
    .bind(now)
    .bind(kind)
    .bind(dead_before)
    .bind(key_prefix)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Emails waiting to go out (unsent, not given up on, with a body), and when the oldest of
/// them was written: the outbox's depth for the metrics.
pub async fn waiting(pool: &AnyPool) -> Result<(i64, Option<Millis>), sqlx::Error> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM emails
         WHERE sent_at IS NULL AND abandoned_at IS NULL AND body_deleted_at IS NULL",
    )
    .fetch_one(pool)
    .await?;
    Ok((col(&row, "n")?, col(&row, "oldest")?))
}
