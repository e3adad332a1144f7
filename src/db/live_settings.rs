//! The `live_settings` table: one row per setting admins change in the console (its JSON
//! value, or none after a revert, and a version that every save moves on by one). What the
//! values mean is `live_settings`' business; this is its SQL.

use crate::clock::Millis;
use crate::db::col;
use sqlx::{AnyConnection, AnyPool};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSetting {
    pub name: String,
    /// None: reverted to the config file's value.
    pub value: Option<String>,
    pub version: i64,
}

/// Every stored setting (a row per setting, so reading it whole is as cheap as reading the
/// versions alone).
pub async fn all(pool: &AnyPool) -> Result<Vec<StoredSetting>, sqlx::Error> {
    sqlx::query("SELECT name, value, version FROM live_settings")
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok(StoredSetting {
                name: col(r, "name")?,
                value: col(r, "value")?,
                version: col(r, "version")?,
            })
        })
        .collect()
}

/// One setting's stored value and version, in the caller's transaction.
pub async fn get(
    conn: &mut AnyConnection,
    name: &str,
) -> Result<Option<StoredSetting>, sqlx::Error> {
    let row = sqlx::query("SELECT value, version FROM live_settings WHERE name = $1")
        .bind(name)
        .fetch_optional(conn)
        .await?;
    row.map(|r| {
        Ok(StoredSetting {
            name: name.to_owned(),
            value: col(&r, "value")?,
            version: col(&r, "version")?,
        })
    })
    .transpose()
}

/// Writes a setting as version `based_on + 1`: inserted when `based_on` is 0 (never saved),
/// else updated only while the stored version is still `based_on`. False when someone else
/// saved first (nothing written).
pub async fn write(
    conn: &mut AnyConnection,
    name: &str,
    value: Option<&str>,
    based_on: i64,
    actor: &str,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let written = if based_on == 0 {
        sqlx::query(
            "INSERT INTO live_settings (name, value, version, updated_at, updated_by)
             VALUES ($1, $2, 1, $3, $4) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .bind(now)
        .bind(actor)
        .execute(conn)
        .await?
    } else {
        sqlx::query(
            "UPDATE live_settings SET value = $2, version = version + 1, updated_at = $3, updated_by = $4
             WHERE name = $1 AND version = $5",
        )
        .bind(name)
        .bind(value)
        .bind(now)
        .bind(actor)
        .bind(based_on)
        .execute(conn)
        .await?
    };
    Ok(written.rows_affected() == 1)
}
