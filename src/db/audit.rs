//! The staff audit log: sign-ins, failures, lock-outs, enrolments, staff changes and (with
//! the admin pages) settings changes with their old and new values. Append-only.

use super::params::{like_contains, where_all, Params};
use crate::clock::Millis;
use crate::db::col;
use sqlx::{AnyConnection, AnyPool};

#[derive(Debug, Clone, Default)]
pub struct Entry<'a> {
    /// `staff:{email}`, `cli`, `setup`, or `anonymous` (a sign-in by someone not yet known).
    pub actor: &'a str,
    pub action: &'a str,
    /// What it was about: a staff email, an order number, a setting.
    pub subject: &'a str,
    pub detail: &'a str,
    pub old_value: Option<&'a str>,
    pub new_value: Option<&'a str>,
    pub client_ip: Option<&'a str>,
}

#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: String,
    pub at: Millis,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub client_ip: Option<String>,
}

const COLUMNS: &str = "id, at, actor, action, subject, detail, old_value, new_value, client_ip";

fn from_row(r: &sqlx::any::AnyRow) -> Result<AuditRow, sqlx::Error> {
    Ok(AuditRow {
        id: col(r, "id")?,
        at: col(r, "at")?,
        actor: col(r, "actor")?,
        action: col(r, "action")?,
        subject: col(r, "subject")?,
        detail: col(r, "detail")?,
        old_value: col(r, "old_value")?,
        new_value: col(r, "new_value")?,
        client_ip: col(r, "client_ip")?,
    })
}

pub async fn record(
    conn: &mut AnyConnection,
    e: Entry<'_>,
    now: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (id, at, actor, action, subject, detail, old_value, new_value, client_ip)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(crate::domain::ids::new_id())
    .bind(now)
    .bind(e.actor)
    .bind(e.action)
    .bind(e.subject)
    .bind(e.detail)
    .bind(e.old_value)
    .bind(e.new_value)
    .bind(e.client_ip)
    .execute(conn)
    .await?;
    Ok(())
}

/// An agent's action on an order (an approval, a rejection, a note, a refund decision…), in the
/// caller's transaction, with the order's number as its subject: the history then holds what
/// staff did to orders as well as to settings.
pub async fn order_action(
    conn: &mut AnyConnection,
    actor: &str,
    action: &str,
    order_id: &str,
    detail: &str,
    now: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (id, at, actor, action, subject, detail, old_value, new_value, client_ip)
         SELECT $1, $2, $3, $4, order_number, $5, NULL, NULL, NULL FROM orders WHERE id = $6",
    )
    .bind(crate::domain::ids::new_id())
    .bind(now)
    .bind(actor)
    .bind(action)
    .bind(detail)
    .bind(order_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The newest entries, optionally about one subject.
pub async fn recent(
    pool: &AnyPool,
    subject: Option<&str>,
    limit: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    let filter = Filter {
        subject: subject.map(|s| Match::Exact(s.to_owned())),
        ..Default::default()
    };
    page(pool, &filter, None, limit).await
}

/// How a filter field matches.
#[derive(Debug, Clone)]
pub enum Match {
    Exact(String),
    /// Contains the text, ignoring case.
    Contains(String),
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub action: Option<Match>,
    pub subject: Option<Match>,
    pub actor: Option<Match>,
}

/// Where a page of the log starts: just older than this entry (keyset paging, so new entries
/// arriving while someone reads do not shift the pages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub at: Millis,
    pub id: String,
}

/// Entries newest first, filtered, starting after `before`; at most `limit`.
pub async fn page(
    pool: &AnyPool,
    filter: &Filter,
    before: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    let mut p = Params::new();
    let mut clauses = Vec::new();
    for (column, m) in [
        ("action", &filter.action),
        ("subject", &filter.subject),
        ("actor", &filter.actor),
    ] {
        match m {
            None => {}
            Some(Match::Exact(v)) => clauses.push(format!("{column} = {}", p.add(v.as_str()))),
            // LOWER on both sides: LIKE ignores case on SQLite but not on PostgreSQL.
            Some(Match::Contains(v)) => clauses.push(format!(
                "LOWER({column}) LIKE {} ESCAPE '\\'",
                p.add(like_contains(&v.to_lowercase()))
            )),
        }
    }
    if let Some(c) = before {
        let (at, id) = (p.add(c.at), p.add(c.id.as_str()));
        clauses.push(format!("(at < {at} OR (at = {at} AND id < {id}))"));
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_log{} ORDER BY at DESC, id DESC LIMIT {}",
        where_all(&clauses),
        p.add(limit)
    );
    let rows = p
        .bind_to(sqlx::query(sqlx::AssertSqlSafe(sql)))
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}

/// The actions the log holds, for the history page's filter.
pub async fn actions(pool: &AnyPool) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query("SELECT DISTINCT action FROM audit_log ORDER BY action")
        .fetch_all(pool)
        .await?;
    rows.iter().map(|r| col(r, "action")).collect()
}
