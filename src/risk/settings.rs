//! Risk rules' weights and thresholds: defaults in code, overridable under `[risk]` in the
//! config file. The effective values are logged at start.

use crate::domain::setting::{ConfigError, Dec};
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
    pub fraud_decline: FraudDecline,
    pub recipient_funnel: RecipientFunnel,
    pub surge: Surge,
    pub holdback: Holdback,
    /// Retired with the shop-wide pause it configured (replaced by `surge`): read and ignored,
    /// so a config file or a stored console setting that still has it keeps working.
    #[serde(default, skip_serializing)]
    pub circuit_breaker: Option<serde::de::IgnoredAny>,
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
    /// Distinct cards that failed for one email or one TikTok username in the last hour.
    pub distinct_cards_1h: u32,
    pub points: u32,
    /// The same many failed cards from one IP address add only these points: an address is
    /// shared by strangers (carrier NAT, offices), so it never blocks by itself.
    pub address_points: u32,
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

/// A decline that means fraud (lost or stolen card, the provider's fraud block) on the
/// order, its email, username or cards: not an honest typo.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FraudDecline {
    pub points: u32,
    /// Hold the order for review whatever the score.
    pub review: bool,
}

/// Many payers, one recipient: the shape of a cash-out.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RecipientFunnel {
    /// Distinct payers to one TikTok username in the last hour at which the order is held.
    pub review_payers_1h: u32,
    /// … in the last 24 hours.
    pub review_payers_24h: u32,
}

/// A new payer's large order waits a few minutes before the coins go out, and the recipient is
/// looked at again just before crediting: the first payer of a cash-out funnel looks like a
/// gift until the second one arrives, usually within minutes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Holdback {
    /// Orders above this base-currency amount from a payer the shop has not delivered to…
    pub amount: Dec,
    /// …wait this long (0 turns the hold-back off).
    pub minutes: u32,
}

/// The shop-wide response to a wave of failures (see `risk::surge`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Surge {
    /// Failures are counted over this many minutes.
    pub window_minutes: u32,
    /// At least this many failed cards in the window…
    pub min_failures: u32,
    /// …and this many times the shop's usual rate (its 24 hours before the window).
    pub baseline_multiple: u32,
    /// A card prefix, email domain, network or recipient shared by at least this many failed
    /// cards in the window…
    pub trait_min_failures: u32,
    /// …whose attempts failed at least this often (percent) is tightened.
    pub trait_min_failed_percent: u32,
    /// The response lasts this long after the last check that saw the surge.
    pub hold_minutes: u32,
    /// Seconds between checks on one instance (a check runs after a failed payment).
    pub check_seconds: u32,
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
            fraud_decline: FraudDecline::default(),
            recipient_funnel: RecipientFunnel::default(),
            surge: Surge::default(),
            holdback: Holdback::default(),
            circuit_breaker: None,
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
            address_points: 25,
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

impl Default for FraudDecline {
    fn default() -> Self {
        FraudDecline {
            points: 50,
            review: true,
        }
    }
}

impl Default for RecipientFunnel {
    fn default() -> Self {
        RecipientFunnel {
            review_payers_1h: 2,
            review_payers_24h: 3,
        }
    }
}

impl Default for Holdback {
    fn default() -> Self {
        Holdback {
            amount: Dec(Decimal::from(100)),
            minutes: 5,
        }
    }
}

impl Default for Surge {
    fn default() -> Self {
        Surge {
            window_minutes: 10,
            min_failures: 12,
            baseline_multiple: 4,
            trait_min_failures: 4,
            trait_min_failed_percent: 60,
            hold_minutes: 30,
            check_seconds: 5,
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
        let r = &self.recipient_funnel;
        if r.review_payers_1h < 2 || r.review_payers_24h < 2 {
            return Err(ConfigError::new(
                "risk.recipient_funnel",
                "review_payers_1h and review_payers_24h must be at least 2 (one payer is not a funnel)",
            ));
        }
        if self.holdback.minutes > 24 * 60 || self.holdback.amount.0 < Decimal::ZERO {
            return Err(ConfigError::new(
                "risk.holdback",
                "minutes must be at most 1440 and the amount not negative",
            ));
        }
        let g = &self.surge;
        if g.window_minutes == 0 || g.window_minutes > 1440 {
            return Err(ConfigError::new(
                "risk.surge.window_minutes",
                "must be from 1 to 1440",
            ));
        }
        if g.min_failures == 0 || g.trait_min_failures < 2 || g.baseline_multiple == 0 {
            return Err(ConfigError::new(
                "risk.surge",
                "min_failures and baseline_multiple must be at least 1, trait_min_failures at least 2",
            ));
        }
        if g.trait_min_failed_percent > 100 || g.hold_minutes == 0 || g.hold_minutes > 1440 {
            return Err(ConfigError::new(
                "risk.surge",
                "trait_min_failed_percent must be at most 100 and hold_minutes from 1 to 1440",
            ));
        }
        Ok(())
    }
}
