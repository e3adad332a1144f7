//! The staff audit log: sign-ins, failures, lock-outs, enrolments, staff changes and (with
//! the admin pages) settings changes with their old and new values. Append-only.

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
    pub at: Millis,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
    pub client_ip: Option<String>,
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

/// The newest entries, optionally about one subject.
pub async fn recent(
    pool: &AnyPool,
    subject: Option<&str>,
    limit: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    let rows = match subject {
        Some(s) => {
            sqlx::query(
                "SELECT at, actor, action, subject, detail, client_ip FROM audit_log
                 WHERE subject = $1 ORDER BY at DESC, id DESC LIMIT $2",
            )
            .bind(s)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query(
                "SELECT at, actor, action, subject, detail, client_ip FROM audit_log
                 ORDER BY at DESC, id DESC LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
    };
    rows.iter()
        .map(|r| {
            Ok(AuditRow {
                at: col(r, "at")?,
                actor: col(r, "actor")?,
                action: col(r, "action")?,
                subject: col(r, "subject")?,
                detail: col(r, "detail")?,
                client_ip: col(r, "client_ip")?,
            })
        })
        .collect()
}
