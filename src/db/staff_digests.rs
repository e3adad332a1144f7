//! Staff notification digests: each staff member's choice (`staff_digests`), and the waiting
//! work a digest lists, each item found by when it became worth telling staff about.

use crate::clock::Millis;
use crate::db::col;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool};

/// What a staff member chose: whether, how often, and which kinds of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub enabled: bool,
    pub every_minutes: u64,
    pub held: bool,
    pub refunds: bool,
    pub support: bool,
    pub dead_jobs: bool,
    pub screening: bool,
}

/// A stored choice with the time up to which digests have covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub staff_id: String,
    pub choice: Choice,
    pub covered_until: Millis,
}

fn flag(r: &AnyRow, name: &str) -> Result<bool, sqlx::Error> {
    Ok(col::<i64>(r, name)? != 0)
}

fn from_row(r: &AnyRow) -> Result<Stored, sqlx::Error> {
    Ok(Stored {
        staff_id: col(r, "staff_id")?,
        choice: Choice {
            enabled: flag(r, "enabled")?,
            every_minutes: u64::try_from(col::<i64>(r, "every_minutes")?).unwrap_or(0),
            held: flag(r, "held")?,
            refunds: flag(r, "refunds")?,
            support: flag(r, "support")?,
            dead_jobs: flag(r, "dead_jobs")?,
            screening: flag(r, "screening")?,
        },
        covered_until: col(r, "covered_until")?,
    })
}

const COLUMNS: &str =
    "staff_id, enabled, every_minutes, held, refunds, support, dead_jobs, screening, covered_until";

pub async fn for_staff(pool: &AnyPool, staff_id: &str) -> Result<Option<Stored>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM staff_digests WHERE staff_id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(staff_id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn for_staff_in(
    conn: &mut AnyConnection,
    staff_id: &str,
) -> Result<Option<Stored>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM staff_digests WHERE staff_id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(staff_id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every stored choice (the staff list shows them; the rest have their role's default).
pub async fn all(pool: &AnyPool) -> Result<Vec<Stored>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM staff_digests");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}

/// The switched-on choices of staff whose account is enabled.
pub async fn enabled(pool: &AnyPool) -> Result<Vec<Stored>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM staff_digests d JOIN staff s ON s.id = d.staff_id
         WHERE d.enabled = 1 AND s.disabled_at IS NULL ORDER BY d.staff_id",
        COLUMNS
            .split(", ")
            .map(|c| format!("d.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}

/// Saves a staff member's choice. Digests start from `now` when they are switched on (never a
/// backlog from the time they were off); otherwise the covered time is kept.
pub async fn save(
    conn: &mut AnyConnection,
    staff_id: &str,
    choice: &Choice,
    now: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO staff_digests (staff_id, enabled, every_minutes, held, refunds, support, dead_jobs, screening, covered_until, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
         ON CONFLICT (staff_id) DO UPDATE SET
            covered_until = CASE WHEN staff_digests.enabled = 0 AND $2 = 1 THEN $9 ELSE staff_digests.covered_until END,
            enabled = $2, every_minutes = $3, held = $4, refunds = $5, support = $6,
            dead_jobs = $7, screening = $8, updated_at = $9",
    )
    .bind(staff_id)
    .bind(i64::from(choice.enabled))
    .bind(i64::try_from(choice.every_minutes).unwrap_or(i64::MAX))
    .bind(i64::from(choice.held))
    .bind(i64::from(choice.refunds))
    .bind(i64::from(choice.support))
    .bind(i64::from(choice.dead_jobs))
    .bind(i64::from(choice.screening))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives every enabled admin without a stored choice `choice` (admins' default), starting
/// from `now`. Returns how many were added.
pub async fn adopt_for_admins(
    pool: &AnyPool,
    choice: &Choice,
    now: Millis,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO staff_digests (staff_id, enabled, every_minutes, held, refunds, support, dead_jobs, screening, covered_until, updated_at)
         SELECT s.id, $1, $2, $3, $4, $5, $6, $7, $8, $8 FROM staff s
         WHERE s.role = 'admin' AND s.disabled_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM staff_digests d WHERE d.staff_id = s.id)
         ON CONFLICT (staff_id) DO NOTHING",
    )
    .bind(i64::from(choice.enabled))
    .bind(i64::try_from(choice.every_minutes).unwrap_or(i64::MAX))
    .bind(i64::from(choice.held))
    .bind(i64::from(choice.refunds))
    .bind(i64::from(choice.support))
    .bind(i64::from(choice.dead_jobs))
    .bind(i64::from(choice.screening))
    .bind(now)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Marks `[from, until)` covered, if nobody else did: false when the covered time is no
/// longer `from` (another worker or instance covered that period first).
pub async fn advance(
    conn: &mut AnyConnection,
    staff_id: &str,
    from: Millis,
    until: Millis,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE staff_digests SET covered_until = $1, updated_at = $2
         WHERE staff_id = $3 AND covered_until = $4",
    )
    .bind(until)
    .bind(now)
    .bind(staff_id)
    .bind(from)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One line of a digest: what, about which order (if any), since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub order_number: Option<String>,
    pub at: Millis,
    /// A short description (a refund reason, a job's error, why screening tightened).
    pub detail: String,
}

/// Some items of one kind, and how many there are in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub items: Vec<Item>,
    pub total: i64,
}

async fn found(
    conn: &mut AnyConnection,
    count_sql: &'static str,
    list_sql: &'static str,
    from: Millis,
    until: Millis,
    limit: i64,
) -> Result<Found, sqlx::Error> {
    let total: i64 = col(
        &sqlx::query(count_sql)
            .bind(from)
            .bind(until)
            .fetch_one(&mut *conn)
            .await?,
        "n",
    )?;
    if total == 0 {
        return Ok(Found::default());
    }
    let rows = sqlx::query(list_sql)
        .bind(from)
        .bind(until)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(Item {
                order_number: col(r, "order_number")?,
                at: col(r, "at")?,
                detail: col(r, "detail")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Found { items, total })
}

/// Orders still held for review whose wait reached `held_after_ms` in `[from, until)`: an
/// order is listed once, in the digest of the period its wait grew too long in.
pub async fn held_orders(
    conn: &mut AnyConnection,
    from: Millis,
    until: Millis,
    held_after_ms: i64,
    limit: i64,
) -> Result<Found, sqlx::Error> {
    found(
        conn,
        "SELECT COUNT(*) AS n FROM orders WHERE status = 'in_review' AND updated_at >= $1 AND updated_at < $2",
        "SELECT order_number, updated_at AS at, '' AS detail FROM orders
         WHERE status = 'in_review' AND updated_at >= $1 AND updated_at < $2
         ORDER BY updated_at, id LIMIT $3",
        from.saturating_sub(held_after_ms),
        until.saturating_sub(held_after_ms),
        limit,
    )
    .await
}

/// Refund requests made in `[from, until)` that still wait for a decision.
pub async fn refund_requests(
    conn: &mut AnyConnection,
    from: Millis,
    until: Millis,
    limit: i64,
) -> Result<Found, sqlx::Error> {
    found(
        conn,
        "SELECT COUNT(*) AS n FROM refund_requests WHERE status = 'open' AND created_at >= $1 AND created_at < $2",
        "SELECT o.order_number, r.created_at AS at, r.reason AS detail
         FROM refund_requests r JOIN orders o ON o.id = r.order_id
         WHERE r.status = 'open' AND r.created_at >= $1 AND r.created_at < $2
         ORDER BY r.created_at, r.id LIMIT $3",
        from,
        until,
        limit,
    )
    .await
}

/// Support conversations whose buyer started waiting in `[from, until)` and still waits.
pub async fn support_waiting(
    conn: &mut AnyConnection,
    from: Millis,
    until: Millis,
    limit: i64,
) -> Result<Found, sqlx::Error> {
    found(
        conn,
        "SELECT COUNT(*) AS n FROM support_threads WHERE status = 'open' AND waiting_since >= $1 AND waiting_since < $2",
        "SELECT o.order_number, t.waiting_since AS at, '' AS detail
         FROM support_threads t JOIN orders o ON o.id = t.order_id
         WHERE t.status = 'open' AND t.waiting_since >= $1 AND t.waiting_since < $2
         ORDER BY t.waiting_since, t.order_id LIMIT $3",
        from,
        until,
        limit,
    )
    .await
}

/// Jobs that ran out of tries in `[from, until)` and are still dead.
pub async fn dead_jobs(
    conn: &mut AnyConnection,
    from: Millis,
    until: Millis,
    limit: i64,
) -> Result<Found, sqlx::Error> {
    found(
        conn,
        "SELECT COUNT(*) AS n FROM jobs WHERE status = 'dead' AND updated_at >= $1 AND updated_at < $2",
        "SELECT CAST(NULL AS TEXT) AS order_number, updated_at AS at,
                kind || ': ' || COALESCE(last_error, '') AS detail
         FROM jobs WHERE status = 'dead' AND updated_at >= $1 AND updated_at < $2
         ORDER BY updated_at, id LIMIT $3",
        from,
        until,
        limit,
    )
    .await
}

/// Screening events (the shop-wide surge response) that started in `[from, until)`.
pub async fn screening_events(
    conn: &mut AnyConnection,
    from: Millis,
    until: Millis,
    limit: i64,
) -> Result<Found, sqlx::Error> {
    found(
        conn,
        "SELECT COUNT(*) AS n FROM screening_events WHERE started_at >= $1 AND started_at < $2",
        "SELECT CAST(NULL AS TEXT) AS order_number, started_at AS at, detail FROM screening_events
         WHERE started_at >= $1 AND started_at < $2
         ORDER BY started_at, id LIMIT $3",
        from,
        until,
        limit,
    )
    .await
}
