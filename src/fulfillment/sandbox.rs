//! The sandbox supplier: a deterministic directory so demos, tests and scripts know what to
//! expect. Every well-formed username exists, with a display name and a stable account id
//! derived from it, except:
//! - `missing_…`: not found;
//! - `flaky_…`: look-ups and credits fail transiently the first two times;
//! - `moved_…`: every look-up returns a new account id (the username changed hands).
//! - `broken_…`: every credit fails (to exercise the last retry and the automatic refund).
//!
//! A ledger keyed by order id (`db::sandbox_supplier`) makes a repeated credit a no-op that
//! returns the first receipt.

use super::{CreditReceipt, Supplier, SupplierError, TikTokAccount};
use crate::clock::SharedClock;
use crate::db::sandbox_supplier::{self as ledger, LedgerEntry};
use crate::db::Db;
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
        ledger::count_call(&self.db, key).await.map_err(transient)
    }
}

fn transient(e: sqlx::Error) -> SupplierError {
    SupplierError::Transient(e.to_string())
}

fn receipt(e: LedgerEntry) -> CreditReceipt {
    CreditReceipt {
        credit_ref: e.credit_ref,
        account_id: e.account_id,
        coins: Coins::new(e.coins.max(0) as u64),
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
        let entry = ledger::ledger_entry(self.db.pool(), order_id)
            .await
            .map_err(transient)?;
        Ok(entry.map(receipt))
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
        let existing = ledger::ledger_entry(self.db.pool(), order_id)
            .await
            .map_err(transient)?;
        if let Some(entry) = existing {
            return Ok(receipt(entry));
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
        let entry = LedgerEntry {
            account_id: account_id.to_owned(),
            coins: coins.get() as i64,
            credit_ref: format!("cr_{}", uuid::Uuid::now_v7().simple()),
        };
        let credited = ledger::credit_once(&self.db, order_id, &entry, self.clock.now_ms())
            .await
            .map_err(transient)?;
        Ok(receipt(credited))
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
