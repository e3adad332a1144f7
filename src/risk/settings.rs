//! Risk rules' weights and thresholds: defaults in code, overridable under `[risk]` in the
//! config file. The effective values are logged at start.

use crate::config::{ConfigError, Dec};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RiskSettings {
    /// A score at or above this holds the order for review.
    pub review_threshold: u32,
    /// A score at or above this blocks the order.
    pub block_threshold: u32,
    pub unrealistic_offer: UnrealisticOffer,
    pub repeated_failed_payments: RepeatedFailedPayments,
    pub card_testing: CardTesting,
    pub velocity: Velocity,
    pub large_first_order: LargeFirstOrder,
    pub disposable_email: Weighted,
    pub price_mismatch: Weighted,
    pub rate_limited: RateLimited,
    pub circuit_breaker: CircuitBreaker,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct UnrealisticOffer {
    /// Effective price per coin below this percentage of the reference rate → review.
    pub review_below_percent: u32,
    /// … below this percentage → block.
    pub block_below_percent: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RepeatedFailedPayments {
    /// Failures in the last hour (worst of order, email, IP, card, username) → review.
    pub review_at_1h: u32,
    pub block_at_1h: u32,
    /// Failures in the last 24 hours → review / block.
    pub review_at_24h: u32,
    pub block_at_24h: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CardTesting {
    /// Distinct cards tried from one IP or email in the last hour.
    pub distinct_cards_1h: u32,
    pub points: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Velocity {
    /// Orders in 24 hours per TikTok username, email or IP above which points are added.
    pub max_orders_24h: u32,
    /// Amount in the base currency in 24 hours per username, email or IP.
    pub max_amount_24h: Dec,
    pub points: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LargeFirstOrder {
    /// A first order (no earlier paid order for the email) above this base-currency amount.
    pub amount: Dec,
    pub points: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Weighted {
    pub points: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimited {
    /// Rate-limited requests from this IP in the last hour at which points are added.
    pub at_least: u32,
    pub points: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CircuitBreaker {
    /// Failed payments across the whole shop in the last minute above which new payment
    /// attempts from clients without a successful payment are paused.
    pub failures_per_minute: u32,
    pub pause_seconds: u64,
}

impl Default for RiskSettings {
    fn default() -> Self {
        RiskSettings {
            review_threshold: 65,
            block_threshold: 75,
            unrealistic_offer: UnrealisticOffer::default(),
            repeated_failed_payments: RepeatedFailedPayments::default(),
            card_testing: CardTesting::default(),
            velocity: Velocity::default(),
            large_first_order: LargeFirstOrder::default(),
            disposable_email: Weighted { points: 30 },
            price_mismatch: Weighted { points: 40 },
            rate_limited: RateLimited::default(),
            circuit_breaker: CircuitBreaker::default(),
        }
    }
}

impl Default for UnrealisticOffer {
    fn default() -> Self {
        UnrealisticOffer {
            review_below_percent: 75,
            block_below_percent: 50,
        }
    }
}

impl Default for RepeatedFailedPayments {
    fn default() -> Self {
        RepeatedFailedPayments {
            review_at_1h: 3,
            block_at_1h: 6,
            review_at_24h: 6,
            block_at_24h: 12,
        }
    }
}

impl Default for CardTesting {
    fn default() -> Self {
        CardTesting {
            distinct_cards_1h: 3,
            points: 80,
        }
    }
}

impl Default for Velocity {
    fn default() -> Self {
        Velocity {
            max_orders_24h: 10,
            max_amount_24h: Dec(Decimal::from(1000)),
            points: 30,
        }
    }
}

impl Default for LargeFirstOrder {
    fn default() -> Self {
        LargeFirstOrder {
            amount: Dec(Decimal::from(200)),
            points: 25,
        }
    }
}

impl Default for Weighted {
    fn default() -> Self {
        Weighted { points: 30 }
    }
}

impl Default for RateLimited {
    fn default() -> Self {
        RateLimited {
            at_least: 3,
            points: 20,
        }
    }
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker {
            failures_per_minute: 10,
            pause_seconds: 300,
        }
    }
}

impl RiskSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.block_threshold > 100 {
            return Err(ConfigError::new(
                "risk.block_threshold",
                "must be at most 100: scores run from 0 to 100",
            ));
        }
        if self.review_threshold == 0 || self.review_threshold > self.block_threshold {
            return Err(ConfigError::new(
                "risk.review_threshold",
                "must be at least 1 and not above risk.block_threshold",
            ));
        }
        let u = &self.unrealistic_offer;
        if u.block_below_percent > u.review_below_percent || u.review_below_percent > 100 {
            return Err(ConfigError::new(
                "risk.unrealistic_offer",
                "block_below_percent must not exceed review_below_percent, which must be at most 100",
            ));
        }
        let f = &self.repeated_failed_payments;
        if f.review_at_1h == 0
            || f.review_at_1h > f.block_at_1h
            || f.review_at_24h == 0
            || f.review_at_24h > f.block_at_24h
        {
            return Err(ConfigError::new(
                "risk.repeated_failed_payments",
                "review_at_* must be at least 1 and not above block_at_*",
            ));
        }
        if self.card_testing.distinct_cards_1h < 2 {
            return Err(ConfigError::new(
                "risk.card_testing.distinct_cards_1h",
                "must be at least 2",
            ));
        }
        if self.circuit_breaker.failures_per_minute == 0 {
            return Err(ConfigError::new(
                "risk.circuit_breaker.failures_per_minute",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
