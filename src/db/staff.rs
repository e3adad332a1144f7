//! Staff accounts, their two-factor recovery codes and the one-time setup links (the sign-in
//! throttle is in `sign_in_throttle`). Passwords and codes are only ever stored hashed.

use crate::clock::Millis;
use crate::db::{col, is_unique_violation, Backend};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Agent,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "agent" => Ok(Role::Agent),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?}: use agent or admin")),
        }
    }
}

#[derive(Clone)]
pub struct StaffMember {
    pub id: String,
    pub email: String,
    pub role: Role,
    pub password_hash: String,
    pub password_changed_at: Millis,
    pub totp_secret: Option<String>,
    pub totp_last_step: Option<i64>,
    pub disabled_at: Option<Millis>,
    pub created_at: Millis,
}

// Hashes and secrets stay out of logs.
impl fmt::Debug for StaffMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaffMember")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("totp", &self.totp_secret.is_some())
            .field("disabled_at", &self.disabled_at)
            .finish_non_exhaustive()
    }
}

impl StaffMember {
    /// How the staff member appears as an actor in audit trails.
    pub fn actor(&self) -> String {
        format!("staff:{}", self.email)
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    pub fn totp_enabled(&self) -> bool {
        self.totp_secret.is_some()
    }
}

pub const COLUMNS: &str =
    "s.id, s.email, s.role, s.password_hash, s.password_changed_at, s.totp_secret, \
    s.totp_last_step, s.disabled_at, s.created_at";

pub fn from_row(r: &AnyRow) -> Result<StaffMember, sqlx::Error> {
    let role: String = col(r, "role")?;
    Ok(StaffMember {
        id: col(r, "id")?,
        email: col(r, "email")?,
        role: role
            .parse()
            .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        password_hash: col(r, "password_hash")?,
        password_changed_at: col(r, "password_changed_at")?,
        totp_secret: col(r, "totp_secret")?,
        totp_last_step: col(r, "totp_last_step")?,
        disabled_at: col(r, "disabled_at")?,
        created_at: col(r, "created_at")?,
    })
}

/// Emails are keys in lower case.
pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

pub async fn by_email(pool: &AnyPool, email: &str) -> Result<Option<StaffMember>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM staff s WHERE s.email = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(normalise_email(email))
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn by_id(pool: &AnyPool, id: &str) -> Result<Option<StaffMember>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM staff s WHERE s.id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn list(pool: &AnyPool) -> Result<Vec<StaffMember>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM staff s ORDER BY s.email");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}

pub async fn count(conn: &mut AnyConnection) -> Result<i64, sqlx::Error> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM staff")
        .fetch_one(conn)
        .await?;
    col(&row, "n")
}

/// Adds a staff member. `None` when the email is taken already.
pub async fn insert(
    conn: &mut AnyConnection,
    email: &str,
    role: Role,
    password_hash: &str,
    now: Millis,
) -> Result<Option<String>, sqlx::Error> {
    let id = crate::domain::ids::new_id();
    let done = sqlx::query(
        "INSERT INTO staff (id, email, role, password_hash, password_changed_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $5, $5)",
    )
    .bind(&id)
    .bind(normalise_email(email))
    .bind(role.as_str())
    .bind(password_hash)
    .bind(now)
    .execute(conn)
    .await;
    match done {
        Ok(_) => Ok(Some(id)),
        Err(e) if is_unique_violation(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A new password: every session of the account ends with it.
pub async fn set_password(
    conn: &mut AnyConnection,
    id: &str,
    password_hash: &str,
    now: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE staff SET password_hash = $1, password_changed_at = $2, updated_at = $2 WHERE id = $3",
    )
    .bind(password_hash)
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    super::staff_sessions::delete_for_staff(conn, id).await
}

/// An admin's reset: the password is replaced (by one nobody knows) and every session ends —
/// unless the account was disabled meanwhile, which the `WHERE` re-checks under the row's
/// write lock on both backends. False when it was disabled.
pub async fn reset_password_if_enabled(
    conn: &mut AnyConnection,
    id: &str,
    password_hash: &str,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE staff SET password_hash = $1, password_changed_at = $2, updated_at = $2
         WHERE id = $3 AND disabled_at IS NULL",
    )
    .bind(password_hash)
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    super::staff_sessions::delete_for_staff(conn, id).await?;
    Ok(true)
}

/// The same password under stronger hashing parameters (sessions are unaffected). Only
/// replaces the hash it was computed from, so a concurrent password change wins.
pub async fn upgrade_hash(
    pool: &AnyPool,
    id: &str,
    old_hash: &str,
    new_hash: &str,
    now: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE staff SET password_hash = $1, updated_at = $2 WHERE id = $3 AND password_hash = $4",
    )
    .bind(new_hash)
    .bind(now)
    .bind(id)
    .bind(old_hash)
    .execute(pool)
    .await?;
    Ok(())
}

/// Disables an account: its sessions end at once and its unused setup links stop working.
/// False when it was disabled already.
pub async fn disable(conn: &mut AnyConnection, id: &str, now: Millis) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE staff SET disabled_at = $1, updated_at = $1 WHERE id = $2 AND disabled_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    revoke_setup_tokens(&mut *conn, id).await?;
    super::staff_sessions::delete_for_staff(conn, id).await?;
    Ok(done.rows_affected() == 1)
}

/// Enables a disabled account again (with the password it had). False when it was enabled.
pub async fn enable(conn: &mut AnyConnection, id: &str, now: Millis) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE staff SET disabled_at = NULL, updated_at = $1 WHERE id = $2 AND disabled_at IS NOT NULL",
    )
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The ids of the enabled admins. On PostgreSQL their rows stay locked until the transaction
/// ends (SQLite's `BEGIN IMMEDIATE` already lets one writer in at a time), so two admins who
/// disable each other at the same moment cannot leave the shop without any.
pub async fn lock_active_admins(
    conn: &mut AnyConnection,
    backend: Backend,
) -> Result<Vec<String>, sqlx::Error> {
    let sql = match backend {
        Backend::Postgres => {
            "SELECT id FROM staff WHERE role = 'admin' AND disabled_at IS NULL ORDER BY id FOR UPDATE"
        }
        Backend::Sqlite => "SELECT id FROM staff WHERE role = 'admin' AND disabled_at IS NULL",
    };
    let rows = sqlx::query(sql).fetch_all(conn).await?;
    rows.iter().map(|r| col(r, "id")).collect()
}

/// Turns two-factor sign-in on with a confirmed secret (the step of the confirming code is
/// already used) and replaces the recovery codes. `stored_secret` is the sealed seed
/// (`console::seed_box`).
pub async fn enable_totp(
    conn: &mut AnyConnection,
    id: &str,
    stored_secret: &str,
    confirmed_step: i64,
    recovery_hashes: &[String],
    now: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE staff SET totp_secret = $1, totp_last_step = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(stored_secret)
    .bind(confirmed_step)
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    replace_recovery_codes(conn, id, recovery_hashes, now).await
}

/// Accepts a TOTP time step once: false if this or a later step was used already.
pub async fn accept_totp_step(
    conn: &mut AnyConnection,
    id: &str,
    step: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE staff SET totp_last_step = $1 WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)",
    )
    .bind(step)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn replace_recovery_codes(
    conn: &mut AnyConnection,
    staff_id: &str,
    hashes: &[String],
    now: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM staff_recovery_codes WHERE staff_id = $1")
        .bind(staff_id)
        .execute(&mut *conn)
        .await?;
    for hash in hashes {
        sqlx::query(
            "INSERT INTO staff_recovery_codes (id, staff_id, code_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(crate::domain::ids::new_id())
        .bind(staff_id)
        .bind(hash)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The unused recovery codes of an account: (row id, stored hash).
pub async fn unused_recovery_codes(
    pool: &AnyPool,
    staff_id: &str,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, code_hash FROM staff_recovery_codes WHERE staff_id = $1 AND used_at IS NULL ORDER BY id",
    )
    .bind(staff_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((col(r, "id")?, col(r, "code_hash")?)))
        .collect()
}

/// Every recovery code still stored as a bare SHA-256 (from before argon2id): (id, hash).
pub async fn legacy_recovery_codes(pool: &AnyPool) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows =
        sqlx::query("SELECT id, code_hash FROM staff_recovery_codes WHERE code_hash NOT LIKE '$%'")
            .fetch_all(pool)
            .await?;
    rows.iter()
        .map(|r| Ok((col(r, "id")?, col(r, "code_hash")?)))
        .collect()
}

/// Replaces one stored recovery-code hash with its upgraded form (only the value it was
/// computed from, so a concurrent change wins).
pub async fn upgrade_recovery_code(
    pool: &AnyPool,
    id: &str,
    old_hash: &str,
    new_hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE staff_recovery_codes SET code_hash = $1 WHERE id = $2 AND code_hash = $3")
        .bind(new_hash)
        .bind(id)
        .bind(old_hash)
        .execute(pool)
        .await?;
    Ok(())
}

/// Spends a recovery code by its row: true once per code.
pub async fn use_recovery_code(
    conn: &mut AnyConnection,
    staff_id: &str,
    code_id: &str,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE staff_recovery_codes SET used_at = $1 WHERE staff_id = $2 AND id = $3 AND used_at IS NULL",
    )
    .bind(now)
    .bind(staff_id)
    .bind(code_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Every staff member whose TOTP seed is stored in clear (from before encryption): (id, seed).
pub async fn clear_totp_seeds(pool: &AnyPool) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, totp_secret FROM staff WHERE totp_secret IS NOT NULL AND totp_secret NOT LIKE 'enc1:%'",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((col(r, "id")?, col(r, "totp_secret")?)))
        .collect()
}

/// Replaces a stored seed with its sealed form (only the value it was computed from).
pub async fn seal_totp_seed(
    pool: &AnyPool,
    id: &str,
    old: &str,
    sealed: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE staff SET totp_secret = $1 WHERE id = $2 AND totp_secret = $3")
        .bind(sealed)
        .bind(id)
        .bind(old)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn recovery_codes_left(pool: &AnyPool, staff_id: &str) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM staff_recovery_codes WHERE staff_id = $1 AND used_at IS NULL",
    )
    .bind(staff_id)
    .fetch_one(pool)
    .await?;
    col(&row, "n")
}

/// The first-admin link, logged at a start with no staff at all.
pub async fn add_setup_token(
    pool: &AnyPool,
    token_hash: &str,
    now: Millis,
    expires_at: Millis,
) -> Result<(), sqlx::Error> {
    // An unused link from an earlier start stops working: only the newest one is valid.
    sqlx::query("DELETE FROM staff_setup_tokens WHERE used_at IS NULL AND staff_id IS NULL")
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO staff_setup_tokens (token_hash, created_at, expires_at) VALUES ($1, $2, $3)",
    )
    .bind(token_hash)
    .bind(now)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// What a setup link opens, if it still works.
#[derive(Debug, Clone)]
pub enum SetupLink {
    /// The first-admin link: whoever opens it creates the first admin.
    FirstAdmin,
    /// A link an admin made for this (enabled) staff member to choose a password.
    Staff(StaffMember),
}

pub async fn setup_link(
    pool: &AnyPool,
    token_hash: &str,
    now: Millis,
) -> Result<Option<SetupLink>, sqlx::Error> {
    let Some(row) = sqlx::query(
        "SELECT staff_id FROM staff_setup_tokens WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    match col::<Option<String>>(&row, "staff_id")? {
        None => Ok(Some(SetupLink::FirstAdmin)),
        Some(id) => Ok(by_id(pool, &id)
            .await?
            .filter(|m| m.disabled_at.is_none())
            .map(SetupLink::Staff)),
    }
}

/// Spends the first-admin link, in the transaction that creates the first admin. Every other
/// unused first-admin link is spent with it, so two links used at once cannot make two first
/// admins.
pub async fn use_setup_token(
    conn: &mut AnyConnection,
    token_hash: &str,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let valid = sqlx::query(
        "UPDATE staff_setup_tokens SET used_at = $1
         WHERE token_hash = $2 AND staff_id IS NULL AND used_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .bind(token_hash)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    sqlx::query(
        "UPDATE staff_setup_tokens SET used_at = $1 WHERE used_at IS NULL AND staff_id IS NULL",
    )
    .bind(now)
    .execute(conn)
    .await?;
    Ok(valid)
}

/// A link for one staff member to choose their password, in the caller's transaction. Their
/// earlier unused links stop working: only the newest one is valid.
pub async fn add_staff_setup_token(
    conn: &mut AnyConnection,
    staff_id: &str,
    token_hash: &str,
    now: Millis,
    expires_at: Millis,
) -> Result<(), sqlx::Error> {
    revoke_setup_tokens(&mut *conn, staff_id).await?;
    sqlx::query(
        "INSERT INTO staff_setup_tokens (token_hash, staff_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash)
    .bind(staff_id)
    .bind(now)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Drops a staff member's unused setup links (when they are disabled, or get a new one).
pub async fn revoke_setup_tokens(
    conn: &mut AnyConnection,
    staff_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM staff_setup_tokens WHERE staff_id = $1 AND used_at IS NULL")
        .bind(staff_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Spends a staff member's setup link: true once, and only for the member it was made for.
pub async fn use_staff_setup_token(
    conn: &mut AnyConnection,
    token_hash: &str,
    staff_id: &str,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE staff_setup_tokens SET used_at = $1
         WHERE token_hash = $2 AND staff_id = $3 AND used_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .bind(token_hash)
    .bind(staff_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Staff members with a setup link still waiting to be used, and when each link expires.
pub async fn pending_setup_links(
    pool: &AnyPool,
    now: Millis,
) -> Result<Vec<(String, Millis)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT staff_id, MAX(expires_at) AS expires_at FROM staff_setup_tokens
         WHERE staff_id IS NOT NULL AND used_at IS NULL AND expires_at > $1 GROUP BY staff_id",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((col(r, "staff_id")?, col(r, "expires_at")?)))
        .collect()
}
