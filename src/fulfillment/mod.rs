//! Delivering coins: the `Supplier` that looks up TikTok accounts and credits coins.

pub mod sandbox;

use crate::domain::{Coins, TikTokUsername};
use async_trait::async_trait;

/// A TikTok account as the supplier knows it. `account_id` is stable; a username can change
/// hands, so orders pin the id shown to the buyer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TikTokAccount {
    pub account_id: String,
    pub username: String,
    pub display_name: String,
}

impl TikTokAccount {
    /// The letter shown in the avatar circle.
    pub fn initial(&self) -> String {
        self.display_name
            .chars()
            .find(|c| c.is_alphanumeric())
            .map(|c| c.to_uppercase().to_string())
            .unwrap_or_else(|| "?".into())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditReceipt {
    pub credit_ref: String,
    pub account_id: String,
    pub coins: Coins,
}

#[derive(Debug, thiserror::Error)]
pub enum SupplierError {
    /// Worth retrying: timeouts, rate limits, a supplier outage.
    #[error("supplier temporarily unavailable: {0}")]
    Transient(String),
    /// Retrying will not help.
    #[error("supplier refused: {0}")]
    Permanent(String),
}

#[async_trait]
pub trait Supplier: Send + Sync + 'static {
    /// `Ok(None)` when no such account exists.
    async fn lookup_account(
        &self,
        username: &TikTokUsername,
    ) -> Result<Option<TikTokAccount>, SupplierError>;

    /// Credits `coins` to `account_id`. `order_id` is the idempotency key: crediting the same
    /// order again returns the first receipt and credits nothing.
    async fn credit(
        &self,
        order_id: &str,
        account_id: &str,
        coins: Coins,
    ) -> Result<CreditReceipt, SupplierError>;

    /// What the supplier's own ledger says was credited for an order, if anything: what an
    /// agent checks before deciding a "not delivered" refund request.
    async fn delivery_record(&self, order_id: &str)
        -> Result<Option<CreditReceipt>, SupplierError>;
}
