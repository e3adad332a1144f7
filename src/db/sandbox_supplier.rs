//! The sandbox supplier's tables (`fulfillment::sandbox`): its coin ledger, one row per
//! credited order, and its per-key call counts (so `flaky_` accounts fail the same first two
//! times on every instance and after restarts).

use crate::clock::Millis;
use crate::db::{col, Db};
use sqlx::AnyPool;

/// A credit as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub account_id: String,
    pub coins: i64,
    pub credit_ref: String,
}

pub async fn ledger_entry(
    pool: &AnyPool,
    order_id: &str,
) -> Result<Option<LedgerEntry>, sqlx::Error> {
    let row =
        sqlx::query("SELECT account_id, coins, credit_ref FROM sandbox_ledger WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(pool)
            .await?;
    row.map(|r| {
        Ok(LedgerEntry {
            account_id: col(&r, "account_id")?,
            coins: col(&r, "coins")?,
            credit_ref: col(&r, "credit_ref")?,
        })
    })
    .transpose()
}

/// Records a credit unless the order has one; either way returns the order's entry (whoever
/// inserted first wins). A write transaction, so it takes its turn with the shop's own writes.
pub async fn credit_once(
    db: &Db,
    order_id: &str,
    entry: &LedgerEntry,
    now: Millis,
) -> Result<LedgerEntry, sqlx::Error> {
    let mut tx = db.begin().await?;
    // The no-op update makes the conflict return the first credit: one statement.
    let row = sqlx::query(
        "INSERT INTO sandbox_ledger (order_id, account_id, coins, credit_ref, credited_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (order_id) DO UPDATE SET order_id = excluded.order_id
         RETURNING account_id, coins, credit_ref",
    )
    .bind(order_id)
    .bind(&entry.account_id)
    .bind(entry.coins)
    .bind(&entry.credit_ref)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(LedgerEntry {
        account_id: col(&row, "account_id")?,
        coins: col(&row, "coins")?,
        credit_ref: col(&row, "credit_ref")?,
    })
}

/// Counts a call for `key`; returns the count including this one.
pub async fn count_call(db: &Db, key: &str) -> Result<i64, sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO sandbox_supplier_calls (call_key, calls) VALUES ($1, 1)
         ON CONFLICT (call_key) DO UPDATE SET calls = sandbox_supplier_calls.calls + 1",
    )
    .bind(key)
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query("SELECT calls FROM sandbox_supplier_calls WHERE call_key = $1")
        .bind(key)
        .fetch_one(&mut *tx)
        .await?;
    let n = col(&row, "calls")?;
    tx.commit().await?;
    Ok(n)
}
