//! Server-side staff sessions. The cookie carries a random token; the table keys sessions by
//! the token's SHA-256, so a copy of the database opens no session.

use crate::clock::Millis;
use crate::db::col;
use crate::db::staff::{self, StaffMember};
use sqlx::{AnyConnection, AnyPool};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The password was right; the second factor is awaited.
    Totp,
    Active,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Totp => "totp",
            Stage::Active => "active",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub staff: StaffMember,
    pub stage: Stage,
    pub created_at: Millis,
    pub last_seen_at: Millis,
}

pub struct NewSession<'a> {
    pub id_hash: &'a str,
    pub staff_id: &'a str,
    pub stage: Stage,
    pub client_ip: &'a str,
    pub user_agent: &'a str,
}

pub async fn create(
    conn: &mut AnyConnection,
    s: NewSession<'_>,
    now: Millis,
) -> Result<(), sqlx::Error> {
    let agent: String = s.user_agent.chars().take(200).collect();
    sqlx::query(
        "INSERT INTO staff_sessions (id_hash, staff_id, stage, created_at, last_seen_at, client_ip, user_agent)
         VALUES ($1, $2, $3, $4, $4, $5, $6)",
    )
    .bind(s.id_hash)
    .bind(s.staff_id)
    .bind(s.stage.as_str())
    .bind(now)
    .bind(s.client_ip)
    .bind(agent)
    .execute(conn)
    .await?;
    Ok(())
}

/// The session and its (enabled) staff member.
pub async fn find(pool: &AnyPool, id_hash: &str) -> Result<Option<SessionRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {}, x.stage, x.created_at AS session_created_at, x.last_seen_at
         FROM staff_sessions x JOIN staff s ON s.id = x.staff_id
         WHERE x.id_hash = $1 AND s.disabled_at IS NULL",
        staff::COLUMNS
    );
    let Some(r) = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id_hash)
        .fetch_optional(pool)
        .await?
    else {
        return Ok(None);
    };
    let stage: String = col(&r, "stage")?;
    Ok(Some(SessionRow {
        staff: staff::from_row(&r)?,
        stage: if stage == "active" {
            Stage::Active
        } else {
            Stage::Totp
        },
        created_at: col(&r, "session_created_at")?,
        last_seen_at: col(&r, "last_seen_at")?,
    }))
}

pub async fn touch(pool: &AnyPool, id_hash: &str, now: Millis) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE staff_sessions SET last_seen_at = $1 WHERE id_hash = $2")
        .bind(now)
        .bind(id_hash)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn delete(conn: &mut AnyConnection, id_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM staff_sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn delete_for_staff(conn: &mut AnyConnection, staff_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM staff_sessions WHERE staff_id = $1")
        .bind(staff_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Removes sessions past either timeout (they are refused anyway; this keeps the table small).
pub async fn delete_expired(
    pool: &AnyPool,
    idle_before: Millis,
    created_before: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM staff_sessions WHERE last_seen_at < $1 OR created_at < $2")
        .bind(idle_before)
        .bind(created_before)
        .execute(pool)
        .await?;
    Ok(())
}
