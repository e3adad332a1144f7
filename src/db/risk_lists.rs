//! The `risk_lists` table: block and allow list entries, with who added them, why and when;
//! an entry may expire, and one an admin removes stays as history. Values are stored in their
//! normalised form (`domain::risk_list::normalise`) so matching is exact and indexed.

use crate::clock::Millis;
use crate::db::col;
use crate::db::params::{like_contains, where_all, Params};
use crate::domain::risk_list::{normalise, List, ListKind};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool};

#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    pub list: List,
    pub kind: ListKind,
    pub value: &'a str,
    pub reason: &'a str,
    pub added_by: &'a str,
    pub expires_at: Option<Millis>,
}

pub async fn add(
    conn: &mut AnyConnection,
    e: NewEntry<'_>,
    now: Millis,
) -> Result<String, sqlx::Error> {
    let id = crate::domain::ids::new_id();
    sqlx::query(
        "INSERT INTO risk_lists (id, list, kind, value, reason, added_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(e.list.as_str())
    .bind(e.kind.as_str())
    .bind(normalise(e.kind, e.value))
    .bind(e.reason)
    .bind(e.added_by)
    .bind(now)
    .bind(e.expires_at)
    .execute(conn)
    .await?;
    Ok(id)
}

/// A list entry as the admin page shows it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    pub list: List,
    pub kind: ListKind,
    pub value: String,
    pub reason: String,
    pub added_by: String,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    /// Set when an admin ended the entry before its expiry.
    pub removed_by: Option<String>,
    pub removed_at: Option<Millis>,
}

const ENTRY_COLUMNS: &str =
    "id, list, kind, value, reason, added_by, created_at, expires_at, removed_by, removed_at";

fn entry_from_row(r: &AnyRow) -> Result<Entry, sqlx::Error> {
    let list: String = col(r, "list")?;
    let kind: String = col(r, "kind")?;
    let bad =
        |what: &str, v: &str| sqlx::Error::Decode(format!("unknown list {what} {v:?}").into());
    Ok(Entry {
        id: col(r, "id")?,
        list: List::parse(&list).ok_or_else(|| bad("name", &list))?,
        kind: ListKind::parse(&kind).ok_or_else(|| bad("kind", &kind))?,
        value: col(r, "value")?,
        reason: col(r, "reason")?,
        added_by: col(r, "added_by")?,
        created_at: col(r, "created_at")?,
        expires_at: col(r, "expires_at")?,
        removed_by: col(r, "removed_by")?,
        removed_at: col(r, "removed_at")?,
    })
}

/// Which entries the admin page lists.
#[derive(Debug, Clone, Default)]
pub struct EntryFilter {
    pub kind: Option<ListKind>,
    /// Part of the value, as typed (matched in lower case).
    pub value_contains: Option<String>,
}

/// Entries in force at `now` (`ended_since: None`, newest first), or entries that ended
/// between `ended_since` and `now` (latest ended first). At most `limit`.
pub async fn entries(
    pool: &AnyPool,
    now: Millis,
    ended_since: Option<Millis>,
    filter: &EntryFilter,
    limit: i64,
) -> Result<Vec<Entry>, sqlx::Error> {
    let mut p = Params::new();
    let at = p.add(now);
    let (mut conditions, order) = match ended_since {
        None => (
            vec![format!("(expires_at IS NULL OR expires_at > {at})")],
            "created_at DESC, id DESC",
        ),
        Some(since) => (
            vec![format!(
                "expires_at <= {at} AND expires_at > {}",
                p.add(since)
            )],
            "expires_at DESC, id DESC",
        ),
    };
    if let Some(kind) = filter.kind {
        conditions.push(format!("kind = {}", p.add(kind.as_str())));
    }
    if let Some(v) = &filter.value_contains {
        conditions.push(format!(
            "value LIKE {} ESCAPE '\\'",
            p.add(like_contains(&v.to_lowercase()))
        ));
    }
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM risk_lists{} ORDER BY {order} LIMIT {}",
        where_all(&conditions),
        p.add(limit)
    );
    let rows = p
        .bind_to(sqlx::query(sqlx::AssertSqlSafe(sql)))
        .fetch_all(pool)
        .await?;
    rows.iter().map(entry_from_row).collect()
}

/// Whether `value` (normalised here) is on the block list, in force at `now`.
pub async fn is_blocked(
    conn: &mut AnyConnection,
    kind: ListKind,
    value: &str,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM risk_lists WHERE list = 'block' AND kind = $1 AND value = $2
         AND (expires_at IS NULL OR expires_at > $3)",
    )
    .bind(kind.as_str())
    .bind(normalise(kind, value))
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(col::<i64>(&row, "n")? > 0)
}

pub async fn entry_by_id(pool: &AnyPool, id: &str) -> Result<Option<Entry>, sqlx::Error> {
    let sql = format!("SELECT {ENTRY_COLUMNS} FROM risk_lists WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(entry_from_row).transpose()
}

/// The entry in force for this exact list, kind and (normalised) value, if any.
/// Serialises adds of one (list, kind, value) until the transaction ends, so that the check
/// for an active entry and the insert are one step on PostgreSQL too (SQLite's
/// `BEGIN IMMEDIATE` already lets one writer in at a time).
pub async fn lock_value(
    conn: &mut AnyConnection,
    backend: crate::db::Backend,
    list: List,
    kind: ListKind,
    value: &str,
) -> Result<(), sqlx::Error> {
    if backend == crate::db::Backend::Postgres {
        let key = format!(
            "risk_lists:{}:{}:{}",
            list.as_str(),
            kind.as_str(),
            normalise(kind, value)
        );
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(key)
            .execute(conn)
            .await?;
    }
    Ok(())
}

pub async fn active_entry(
    conn: &mut AnyConnection,
    list: List,
    kind: ListKind,
    value: &str,
    now: Millis,
) -> Result<Option<Entry>, sqlx::Error> {
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM risk_lists
         WHERE list = $1 AND kind = $2 AND value = $3 AND (expires_at IS NULL OR expires_at > $4)
         ORDER BY created_at DESC LIMIT 1"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(list.as_str())
        .bind(kind.as_str())
        .bind(normalise(kind, value))
        .bind(now)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(entry_from_row).transpose()
}

/// Ends an entry now: it stops matching at once and stays in the table as history. False
/// when it had ended already (expired, or someone else removed it first).
pub async fn end(
    conn: &mut AnyConnection,
    id: &str,
    removed_by: &str,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE risk_lists SET expires_at = $1, removed_at = $1, removed_by = $2
         WHERE id = $3 AND (expires_at IS NULL OR expires_at > $1)",
    )
    .bind(now)
    .bind(removed_by)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
