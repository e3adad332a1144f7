//! The surge response's SQL (`risk::surge`): shop-wide failure statistics over `payments`, and
//! the `screening_events` rows that record each engagement (its tightened traits as JSON).

use crate::clock::Millis;
use crate::db::col;
use sqlx::{AnyConnection, AnyPool};

/// The `payments` columns that hold what a wave can share: card prefix, email domain,
/// network, recipient. Only these may be named as a trait column (they are written into SQL).
pub const TRAIT_COLUMNS: [&str; 4] = ["card_bin", "email_domain", "client_net", "tiktok_username"];

fn trait_column(column: &str) -> Result<&'static str, sqlx::Error> {
    TRAIT_COLUMNS
        .into_iter()
        .find(|c| *c == column)
        .ok_or_else(|| sqlx::Error::Protocol(format!("{column} is not a surge trait column")))
}

/// Distinct cards (or attempts without one) that failed after `since`.
pub async fn failed_cards_since(pool: &AnyPool, since: Millis) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(
        "SELECT COUNT(DISTINCT COALESCE(card_fingerprint, id)) AS n FROM payments
         WHERE status = 'failed' AND created_at > $1",
    )
    .bind(since)
    .fetch_one(pool)
    .await?;
    col(&row, "n")
}

/// Failed attempts after `from` up to `to`.
pub async fn failures_between(
    pool: &AnyPool,
    from: Millis,
    to: Millis,
) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM payments WHERE status = 'failed' AND created_at > $1 AND created_at <= $2",
    )
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await?;
    col(&row, "n")
}

/// The (at most five) values of a trait column shared by at least `min_failed_cards` failed
/// cards after `since`, with that count, most first.
pub async fn shared_by_failures(
    pool: &AnyPool,
    column: &str,
    since: Millis,
    min_failed_cards: i64,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let column = trait_column(column)?;
    let sql = format!(
        "SELECT {column} AS v, COUNT(DISTINCT COALESCE(card_fingerprint, id)) AS failed FROM payments
         WHERE status = 'failed' AND created_at > $1 AND {column} IS NOT NULL AND {column} <> ''
         GROUP BY {column} HAVING COUNT(DISTINCT COALESCE(card_fingerprint, id)) >= $2
         ORDER BY failed DESC LIMIT 5"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(since)
        .bind(min_failed_cards)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| Ok((col(r, "v")?, col(r, "failed")?)))
        .collect()
}

/// Attempts with this trait value after `since`: (all, failed).
pub async fn attempts_with(
    pool: &AnyPool,
    column: &str,
    value: &str,
    since: Millis,
) -> Result<(i64, i64), sqlx::Error> {
    let column = trait_column(column)?;
    let sql = format!(
        "SELECT COUNT(*) AS total,
                CAST(COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT) AS failed
         FROM payments WHERE {column} = $1 AND created_at > $2"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(value)
        .bind(since)
        .fetch_one(pool)
        .await?;
    Ok((col(&row, "total")?, col(&row, "failed")?))
}

/// Successful payments with this trait value after `from` up to `to`, counted up to `cap`.
pub async fn successes_with(
    pool: &AnyPool,
    column: &str,
    value: &str,
    from: Millis,
    to: Millis,
    cap: i64,
) -> Result<i64, sqlx::Error> {
    let column = trait_column(column)?;
    let sql = format!(
        "SELECT COUNT(*) AS n FROM (SELECT 1 FROM payments WHERE {column} = $1 AND status = 'succeeded'
         AND created_at > $2 AND created_at <= $3 LIMIT $4) AS h"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(value)
        .bind(from)
        .bind(to)
        .bind(cap)
        .fetch_one(pool)
        .await?;
    col(&row, "n")
}

/// A `screening_events` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    pub started_at: Millis,
    pub until_at: Millis,
    pub detail: String,
    /// The tightened traits, JSON.
    pub tightened: String,
}

const COLUMNS: &str = "id, started_at, until_at, detail, tightened";

fn from_row(r: &sqlx::any::AnyRow) -> Result<Event, sqlx::Error> {
    Ok(Event {
        id: col(r, "id")?,
        started_at: col(r, "started_at")?,
        until_at: col(r, "until_at")?,
        detail: col(r, "detail")?,
        tightened: col(r, "tightened")?,
    })
}

/// The latest event of `kind` still in force at `now`.
pub async fn in_force(
    conn: &mut AnyConnection,
    kind: &str,
    now: Millis,
) -> Result<Option<Event>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM screening_events WHERE kind = $1 AND until_at > $2
         ORDER BY started_at DESC LIMIT 1"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(kind)
        .bind(now)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Events of `kind` in force at or ending after `since`, newest first.
pub async fn recent(
    pool: &AnyPool,
    kind: &str,
    since: Millis,
    limit: i64,
) -> Result<Vec<Event>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM screening_events
         WHERE kind = $1 AND until_at > $2 ORDER BY started_at DESC LIMIT $3"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(kind)
        .bind(since)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}

pub async fn insert(
    conn: &mut AnyConnection,
    kind: &str,
    started_at: Millis,
    until_at: Millis,
    detail: &str,
    tightened: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO screening_events (id, kind, started_at, until_at, detail, tightened, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $3)",
    )
    .bind(crate::domain::ids::new_id())
    .bind(kind)
    .bind(started_at)
    .bind(until_at)
    .bind(detail)
    .bind(tightened)
    .execute(conn)
    .await?;
    Ok(())
}

/// Extends an event to `until_at` with what the latest check found.
pub async fn extend(
    conn: &mut AnyConnection,
    id: &str,
    until_at: Millis,
    detail: &str,
    tightened: &str,
    now: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE screening_events SET until_at = $1, detail = $2, tightened = $3, updated_at = $4 WHERE id = $5",
    )
    .bind(until_at)
    .bind(detail)
    .bind(tightened)
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// How many times a response engaged, ever.
pub async fn count(pool: &AnyPool) -> Result<i64, sqlx::Error> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM screening_events")
        .fetch_one(pool)
        .await?;
    col(&row, "n")
}

/// How many surge responses are in force at `now` (0 or 1 in practice).
pub async fn active(pool: &AnyPool, now: Millis) -> Result<i64, sqlx::Error> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM screening_events WHERE until_at > $1")
        .bind(now)
        .fetch_one(pool)
        .await?;
    col(&row, "n")
}
