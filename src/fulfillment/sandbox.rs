//! The sandbox supplier: a deterministic directory so demos, tests and scripts know what to
//! expect. Every well-formed username exists, with a display name and a stable account id
//! derived from it, except:
//! - `missing_…`: not found;
//! - `flaky_…`: look-ups and credits fail transiently the first two times;
//! - `moved_…`: every look-up returns a new account id (the username changed hands).
//! - `broken_…`: every credit fails (to exercise the last retry and the automatic refund).
//!
//! A ledger keyed by order id makes a repeated credit a no-op that returns the first receipt.

use super::{CreditReceipt, Supplier, SupplierError, TikTokAccount};
use crate::clock::SharedClock;
use crate::db::{col, Db};
use crate::domain::{Coins, TikTokUsername};
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::time::Duration;

pub struct SandboxSupplier {
    db: Db,
    clock: SharedClock,
    delay: Duration,
}

impl SandboxSupplier {
    pub fn new(db: Db, clock: SharedClock, delay_ms: u64) -> Self {
        SandboxSupplier {
            db,
            clock,
            delay: Duration::from_millis(delay_ms),
        }
    }

    async fn pause(&self) {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
    }

    /// Counts calls for a key; returns the count including this one. Kept in the database so
    /// that every instance and every restart sees the same sequence.
    async fn count_call(&self, key: &str) -> Result<i64, SupplierError> {
        let transient = |e: sqlx::Error| SupplierError::Transient(e.to_string());
        let mut tx = self.db.begin().await.map_err(transient)?;
        sqlx::query(
            "INSERT INTO sandbox_supplier_calls (call_key, calls) VALUES ($1, 1)
             ON CONFLICT (call_key) DO UPDATE SET calls = sandbox_supplier_calls.calls + 1",
        )
        .bind(key)
        .execute(&mut *tx)
        .await
        .map_err(transient)?;
        let n = sqlx::query("SELECT calls FROM sandbox_supplier_calls WHERE call_key = $1")
            .bind(key)
            .fetch_one(&mut *tx)
            .await
            .and_then(|r| col::<i64>(&r, "calls"))
            .map_err(transient)?;
        tx.commit().await.map_err(transient)?;
        Ok(n)
    }
}

pub fn display_name(username: &str) -> String {
    username
        .split(['_', '.'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The account id of a username. Flaky accounts are marked in their id, because credits
/// carry only the id.
pub fn stable_account_id(username: &str) -> String {
    let hash = hex::encode(Sha256::digest(
        format!("sandbox-account:{username}").as_bytes(),
    ));
    let prefix = ["flaky_", "broken_"]
        .into_iter()
        .find(|p| username.starts_with(p))
        .map_or("tt_".to_owned(), |p| format!("tt_{p}"));
    format!("{prefix}{}", &hash[..16])
}

#[async_trait]
impl Supplier for SandboxSupplier {
    async fn delivery_record(
        &self,
        order_id: &str,
    ) -> Result<Option<CreditReceipt>, SupplierError> {
        let transient = |e: sqlx::Error| SupplierError::Transient(e.to_string());
        let row = sqlx::query(
            "SELECT account_id, coins, credit_ref FROM sandbox_ledger WHERE order_id = $1",
        )
        .bind(order_id)
        .fetch_optional(self.db.pool())
        .await
        .map_err(transient)?;
        row.map(|r| {
            Ok(CreditReceipt {
                credit_ref: col(&r, "credit_ref").map_err(transient)?,
                account_id: col(&r, "account_id").map_err(transient)?,
                coins: Coins::new(col::<i64>(&r, "coins").map_err(transient)?.max(0) as u64),
            })
        })
        .transpose()
    }
    async fn lookup_account(
        &self,
        username: &TikTokUsername,
    ) -> Result<Option<TikTokAccount>, SupplierError> {
        self.pause().await;
        let name = username.as_str();
        if name.starts_with("missing_") {
            return Ok(None);
        }
        if name.starts_with("flaky_") && self.count_call(&format!("lookup:{name}")).await? <= 2 {
            return Err(SupplierError::Transient(
                "TikTok account directory timed out".into(),
            ));
        }
        let account_id = if name.starts_with("moved_") {
            format!("tt_{}", &uuid::Uuid::new_v4().simple().to_string()[..16])
        } else {
            stable_account_id(name)
        };
        Ok(Some(TikTokAccount {
            account_id,
            username: name.to_owned(),
            display_name: display_name(name),
        }))
    }

    async fn credit(
        &self,
        order_id: &str,
        account_id: &str,
        coins: Coins,
    ) -> Result<CreditReceipt, SupplierError> {
        self.pause().await;
        let transient = |e: sqlx::Error| SupplierError::Transient(e.to_string());
        let existing = sqlx::query(
            "SELECT account_id, coins, credit_ref FROM sandbox_ledger WHERE order_id = $1",
        )
        .bind(order_id)
        .fetch_optional(self.db.pool())
        .await
        .map_err(transient)?;
        if let Some(r) = existing {
            return Ok(CreditReceipt {
                credit_ref: col(&r, "credit_ref").map_err(transient)?,
                account_id: col(&r, "account_id").map_err(transient)?,
                coins: Coins::new(col::<i64>(&r, "coins").map_err(transient)? as u64),
            });
        }
        if account_id.starts_with("tt_broken_") {
            return Err(SupplierError::Transient("coin ledger unavailable".into()));
        }
        if account_id.starts_with("tt_flaky_") {
            let n = self.count_call(&format!("credit:{order_id}")).await?;
            if n <= 2 {
                return Err(SupplierError::Transient(
                    "coin ledger busy, try again".into(),
                ));
            }
        }
        let credit_ref = format!("cr_{}", uuid::Uuid::now_v7().simple());
        sqlx::query(
            "INSERT INTO sandbox_ledger (order_id, account_id, coins, credit_ref, credited_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(order_id)
        .bind(account_id)
        .bind(coins.get() as i64)
        .bind(&credit_ref)
        .bind(self.clock.now_ms())
        .execute(self.db.pool())
        .await
        .map_err(transient)?;
        // Whoever inserted first wins; everyone returns that row.
        let r = sqlx::query(
            "SELECT account_id, coins, credit_ref FROM sandbox_ledger WHERE order_id = $1",
        )
        .bind(order_id)
        .fetch_one(self.db.pool())
        .await
        .map_err(transient)?;
        Ok(CreditReceipt {
            credit_ref: col(&r, "credit_ref").map_err(transient)?,
            account_id: col(&r, "account_id").map_err(transient)?,
            coins: Coins::new(col::<i64>(&r, "coins").map_err(transient)? as u64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_are_derived_from_the_username() {
        assert_eq!(display_name("charli_d.amelio"), "Charli D Amelio");
        assert_eq!(stable_account_id("a"), stable_account_id("a"));
        assert_ne!(stable_account_id("a"), stable_account_id("b"));
    }
}
