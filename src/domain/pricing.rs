//! Catalog and pricing.
//!
//! Prices are *graduated*: like tax brackets, the coins in each tier band are charged at that
//! band's rate. With rates that never rise from one band to the next, the total price always
//! grows with the amount (no "buy more, pay less" cliff at a tier boundary) and the average
//! price per coin never rises. The exact total in the base currency is converted at the
//! configured exchange rate and rounded half-up to the currency's minor unit once, at the end.

use super::{Coins, Currency, Money};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// One tier: coins from `from_coins` upwards (until the next tier) cost `price_per_coin` each,
/// in the base currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceTier {
    pub from_coins: u64,
    pub price_per_coin: Decimal,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    base_currency: Currency,
    tiers: Vec<PriceTier>,
    packages: Vec<Coins>,
    custom_min: Coins,
    custom_max: Coins,
    /// Units of each currency per one unit of the base currency (base currency included, at 1).
    rates: BTreeMap<Currency, Decimal>,
    /// The market's price per coin in the base currency, which offers are compared against.
    reference_price_per_coin: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("needs at least one price tier")]
    NoTiers,
    #[error("the first price tier must start at 0 coins")]
    FirstTierNotZero,
    #[error("tiers must be in increasing order of from_coins")]
    TiersOutOfOrder,
    #[error("a tier's price per coin must be positive and never higher than the tier before it")]
    TierPriceRises,
    #[error("custom_min must be at least 1 and not above custom_max")]
    CustomLimits,
    #[error("packages must be whole numbers of coins above 0")]
    EmptyPackage,
    #[error("no exchange rate for {0}")]
    MissingRate(Currency),
    #[error("exchange rate for {0} must be positive")]
    RateNotPositive(Currency),
    #[error("reference price per coin must be positive")]
    Reference,
}

/// What the buyer is asked to pay for an amount of coins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceQuote {
    pub coins: Coins,
    pub total: Money,
    /// The exact, unrounded total in the base currency (for risk screening).
    pub base_total: Decimal,
}

impl PriceQuote {
    /// Price per coin in the charged currency, for display (e.g. `0.0104`).
    pub fn per_coin_text(&self) -> String {
        let per_coin = self.total.to_major() / Decimal::from(self.coins.get().max(1));
        let dp = self.total.currency().minor_units() + 3;
        super::money::group_thousands(&per_coin.round_dp(dp).normalize().to_string())
    }

    /// Effective base-currency price per coin, before rounding.
    pub fn base_per_coin(&self) -> Decimal {
        self.base_total / Decimal::from(self.coins.get().max(1))
    }
}

/// A payment method's fee: a percentage of the price plus a fixed amount in the base currency.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeeRule {
    pub percent: Decimal,
    pub fixed_base: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("Enter a number of coins, like 1500.")]
    NotANumber,
    #[error("The smallest custom amount is {0} coins.")]
    TooFew(Coins),
    #[error("The largest custom amount is {0} coins.")]
    TooMany(Coins),
    #[error("That package is not in the catalog.")]
    UnknownPackage,
}

impl Catalog {
    pub fn new(
        base_currency: Currency,
        mut tiers: Vec<PriceTier>,
        packages: Vec<u64>,
        custom_min: u64,
        custom_max: u64,
        mut rates: BTreeMap<Currency, Decimal>,
        reference_price_per_coin: Decimal,
    ) -> Result<Self, CatalogError> {
        if tiers.is_empty() {
            return Err(CatalogError::NoTiers);
        }
        if tiers[0].from_coins != 0 {
            return Err(CatalogError::FirstTierNotZero);
        }
        if tiers.windows(2).any(|w| w[1].from_coins <= w[0].from_coins) {
            return Err(CatalogError::TiersOutOfOrder);
        }
        if tiers[0].price_per_coin <= Decimal::ZERO
            || tiers.windows(2).any(|w| {
                w[1].price_per_coin > w[0].price_per_coin || w[1].price_per_coin <= Decimal::ZERO
            })
        {
            return Err(CatalogError::TierPriceRises);
        }
        if custom_min == 0 || custom_min > custom_max {
            return Err(CatalogError::CustomLimits);
        }
        if packages.contains(&0) {
            return Err(CatalogError::EmptyPackage);
        }
        if reference_price_per_coin <= Decimal::ZERO {
            return Err(CatalogError::Reference);
        }
        rates.insert(base_currency, Decimal::ONE);
        if let Some((c, _)) = rates.iter().find(|(_, r)| **r <= Decimal::ZERO) {
            return Err(CatalogError::RateNotPositive(*c));
        }
        tiers.shrink_to_fit();
        Ok(Catalog {
            base_currency,
            tiers,
            packages: packages.into_iter().map(Coins::new).collect(),
            custom_min: Coins::new(custom_min),
            custom_max: Coins::new(custom_max),
            rates,
            reference_price_per_coin,
        })
    }

    pub fn base_currency(&self) -> Currency {
        self.base_currency
    }

    pub fn packages(&self) -> &[Coins] {
        &self.packages
    }

    pub fn tiers(&self) -> &[PriceTier] {
        &self.tiers
    }

    pub fn custom_limits(&self) -> (Coins, Coins) {
        (self.custom_min, self.custom_max)
    }

    pub fn reference_price_per_coin(&self) -> Decimal {
        self.reference_price_per_coin
    }

    /// Currencies the shop can charge in, base currency first.
    pub fn currencies(&self) -> Vec<Currency> {
        let mut out = vec![self.base_currency];
        out.extend(
            self.rates
                .keys()
                .copied()
                .filter(|c| *c != self.base_currency),
        );
        out
    }

    pub fn supports(&self, currency: Currency) -> bool {
        self.rates.contains_key(&currency)
    }

    pub fn rate(&self, currency: Currency) -> Option<Decimal> {
        self.rates.get(&currency).copied()
    }

    /// Parses a custom amount as typed by a buyer ("1500", "1,500", " 1 500 ").
    pub fn parse_custom_amount(&self, input: &str) -> Result<Coins, AmountError> {
        let digits: String = input
            .chars()
            .filter(|c| !matches!(c, ',' | '_' | ' ' | '\u{a0}'))
            .collect();
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AmountError::NotANumber);
        }
        let n = digits
            .parse::<u64>()
            .map_err(|_| AmountError::TooMany(self.custom_max))?;
        let coins = Coins::new(n);
        if coins < self.custom_min {
            Err(AmountError::TooFew(self.custom_min))
        } else if coins > self.custom_max {
            Err(AmountError::TooMany(self.custom_max))
        } else {
            Ok(coins)
        }
    }

    /// Parses a package choice: only the catalog's own packages are accepted.
    pub fn parse_package(&self, input: &str) -> Result<Coins, AmountError> {
        let n = input
            .trim()
            .parse::<u64>()
            .map_err(|_| AmountError::UnknownPackage)?;
        self.packages
            .iter()
            .copied()
            .find(|p| p.get() == n)
            .ok_or(AmountError::UnknownPackage)
    }

    /// The exact price of `coins` in the base currency: each tier band at its own rate.
    /// `None` if it does not fit a `Decimal` (only with absurd configured prices).
    pub fn base_total(&self, coins: Coins) -> Option<Decimal> {
        let n = coins.get();
        let mut total = Decimal::ZERO;
        for (i, tier) in self.tiers.iter().enumerate() {
            if n <= tier.from_coins {
                break;
            }
            let band_end = self
                .tiers
                .get(i + 1)
                .map_or(n, |next| next.from_coins.min(n));
            let band =
                Decimal::from(band_end - tier.from_coins).checked_mul(tier.price_per_coin)?;
            total = total.checked_add(band)?;
        }
        Some(total)
    }

    /// The price of `coins` in `currency`, rounded once. `None` if the currency is not offered
    /// or the amount overflows.
    pub fn quote(&self, coins: Coins, currency: Currency) -> Option<PriceQuote> {
        let rate = self.rate(currency)?;
        let base_total = self.base_total(coins)?;
        let total = Money::round_from_major(base_total.checked_mul(rate)?, currency)?;
        Some(PriceQuote {
            coins,
            total,
            base_total,
        })
    }

    /// The fee for paying `subtotal` with a method, in the same currency, rounded once.
    pub fn fee(&self, subtotal: Money, rule: &FeeRule) -> Option<Money> {
        let rate = self.rate(subtotal.currency())?;
        let percent = subtotal
            .to_major()
            .checked_mul(rule.percent)?
            .checked_div(Decimal::from(100))?;
        let exact = percent.checked_add(rule.fixed_base.checked_mul(rate)?)?;
        Money::round_from_major(exact, subtotal.currency())
    }

    /// Converts an amount charged in some currency back to the base currency, exactly.
    pub fn to_base(&self, money: Money) -> Option<Decimal> {
        money.to_major().checked_div(self.rate(money.currency())?)
    }
}

/// A package's price as the page shows it. Computed once per currency at start (the catalog
/// does not change while the shop runs), so the busiest page does no money arithmetic.
pub struct PriceRow {
    pub coins: u64,
    pub coins_text: String,
    pub price_text: String,
    pub per_coin_text: String,
}

/// Every currency's price rows, built at start.
pub fn price_rows(catalog: &Catalog) -> std::collections::HashMap<Currency, Vec<PriceRow>> {
    catalog
        .currencies()
        .into_iter()
        .map(|currency| {
            let rows = catalog
                .packages()
                .iter()
                .filter_map(|&coins| {
                    let q = catalog.quote(coins, currency)?;
                    let (price_text, per_coin_text) = price_texts(&q);
                    Some(PriceRow {
                        coins: coins.get(),
                        coins_text: coins.to_string(),
                        price_text,
                        per_coin_text,
                    })
                })
                .collect();
            (currency, rows)
        })
        .collect()
}

/// A quote as the page shows it: the price and the price per coin.
pub fn price_texts(q: &PriceQuote) -> (String, String) {
    (
        q.total.to_string(),
        format!(
            "{} {} per coin",
            q.per_coin_text(),
            q.total.currency().code()
        ),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    pub fn test_catalog() -> Catalog {
        let rates = BTreeMap::from([
            (Currency::Eur, dec!(0.92)),
            (Currency::Jpy, dec!(150)),
            (Currency::Idr, dec!(15800)),
            (Currency::Kwd, dec!(0.307)),
        ]);
        Catalog::new(
            Currency::Usd,
            vec![
                PriceTier {
                    from_coins: 0,
                    price_per_coin: dec!(0.0104),
                },
                PriceTier {
                    from_coins: 1000,
                    price_per_coin: dec!(0.0102),
                },
                PriceTier {
                    from_coins: 10000,
                    price_per_coin: dec!(0.0100),
                },
            ],
            vec![70, 350, 700, 1400, 3500, 7000, 17500],
            30,
            2_500_000,
            rates,
            dec!(0.0106),
        )
        .unwrap()
    }

    #[test]
    fn prices_bands_at_their_own_rates() {
        let c = test_catalog();
        assert_eq!(c.base_total(Coins::new(70)).unwrap(), dec!(0.728));
        assert_eq!(c.base_total(Coins::new(1000)).unwrap(), dec!(10.4));
        assert_eq!(
            c.base_total(Coins::new(1400)).unwrap(),
            dec!(10.4) + dec!(4.08)
        );
        assert_eq!(
            c.base_total(Coins::new(10001)).unwrap(),
            dec!(10.4) + dec!(91.8) + dec!(0.01)
        );
    }

    #[test]
    fn rounds_once_per_currency() {
        let c = test_catalog();
        assert_eq!(
            c.quote(Coins::new(70), Currency::Usd)
                .unwrap()
                .total
                .minor(),
            73
        );
        // 0.728 * 0.92 = 0.66976 -> 0.67
        assert_eq!(
            c.quote(Coins::new(70), Currency::Eur)
                .unwrap()
                .total
                .minor(),
            67
        );
        // 0.728 * 150 = 109.2 -> 109 yen
        assert_eq!(
            c.quote(Coins::new(70), Currency::Jpy)
                .unwrap()
                .total
                .minor(),
            109
        );
        // 0.728 * 0.307 = 0.223496 KWD -> 0.223
        assert_eq!(
            c.quote(Coins::new(70), Currency::Kwd)
                .unwrap()
                .total
                .minor(),
            223
        );
        assert!(c.quote(Coins::new(70), Currency::Brl).is_none());
    }

    #[test]
    fn tier_boundaries_are_continuous() {
        let c = test_catalog();
        for boundary in [1000u64, 10000] {
            let below = c.base_total(Coins::new(boundary - 1)).unwrap();
            let at = c.base_total(Coins::new(boundary)).unwrap();
            let above = c.base_total(Coins::new(boundary + 1)).unwrap();
            assert!(below < at && at < above);
        }
    }

    #[test]
    fn custom_amounts_are_checked() {
        let c = test_catalog();
        assert_eq!(c.parse_custom_amount("1,500").unwrap(), Coins::new(1500));
        assert_eq!(
            c.parse_custom_amount("29"),
            Err(AmountError::TooFew(Coins::new(30)))
        );
        assert_eq!(c.parse_custom_amount("30").unwrap(), Coins::new(30));
        assert_eq!(
            c.parse_custom_amount("2500000").unwrap(),
            Coins::new(2_500_000)
        );
        assert_eq!(
            c.parse_custom_amount("2500001"),
            Err(AmountError::TooMany(Coins::new(2_500_000)))
        );
        assert_eq!(
            c.parse_custom_amount("99999999999999999999999"),
            Err(AmountError::TooMany(Coins::new(2_500_000)))
        );
        assert_eq!(c.parse_custom_amount("12.5"), Err(AmountError::NotANumber));
        assert_eq!(c.parse_custom_amount("-5"), Err(AmountError::NotANumber));
        assert_eq!(c.parse_custom_amount("abc"), Err(AmountError::NotANumber));
        assert_eq!(c.parse_custom_amount(""), Err(AmountError::NotANumber));
        assert_eq!(c.parse_package("700").unwrap(), Coins::new(700));
        assert_eq!(c.parse_package("701"), Err(AmountError::UnknownPackage));
    }

    #[test]
    fn fees_are_a_percentage_plus_a_converted_fixed_part() {
        let c = test_catalog();
        let rule = FeeRule {
            percent: dec!(2.9),
            fixed_base: dec!(0.30),
        };
        // 7.28 * 2.9% = 0.21112, + 0.30 = 0.51112 -> 0.51
        assert_eq!(
            c.fee(Money::from_minor(728, Currency::Usd), &rule)
                .unwrap()
                .minor(),
            51
        );
        // ¥1092 * 2.9% = 31.668, + 0.30 * 150 = 45 -> 76.668 -> ¥77
        assert_eq!(
            c.fee(Money::from_minor(1092, Currency::Jpy), &rule)
                .unwrap()
                .minor(),
            77
        );
        assert_eq!(
            c.fee(Money::from_minor(728, Currency::Usd), &FeeRule::default())
                .unwrap()
                .minor(),
            0
        );
    }

    #[test]
    fn refuses_rising_tiers() {
        let err = Catalog::new(
            Currency::Usd,
            vec![
                PriceTier {
                    from_coins: 0,
                    price_per_coin: dec!(0.01),
                },
                PriceTier {
                    from_coins: 100,
                    price_per_coin: dec!(0.02),
                },
            ],
            vec![70],
            30,
            100,
            BTreeMap::new(),
            dec!(0.0106),
        );
        assert_eq!(err.unwrap_err(), CatalogError::TierPriceRises);
    }

    proptest! {
        #[test]
        fn price_is_never_negative_and_never_falls_with_more_coins(n in 1u64..3_000_000, extra in 1u64..500_000) {
            let c = test_catalog();
            for cur in c.currencies() {
                let a = c.quote(Coins::new(n), cur).unwrap();
                let b = c.quote(Coins::new(n + extra), cur).unwrap();
                prop_assert!(a.total.minor() >= 0);
                prop_assert!(b.total.minor() >= a.total.minor());
            }
        }

        #[test]
        fn exact_per_coin_price_never_rises(n in 1u64..3_000_000, extra in 1u64..500_000) {
            let c = test_catalog();
            let a = c.quote(Coins::new(n), Currency::Usd).unwrap();
            let b = c.quote(Coins::new(n + extra), Currency::Usd).unwrap();
            prop_assert!(b.base_per_coin() <= a.base_per_coin());
        }

        #[test]
        fn rounding_moves_the_total_by_at_most_half_a_minor_unit(n in 1u64..3_000_000) {
            let c = test_catalog();
            for cur in c.currencies() {
                let q = c.quote(Coins::new(n), cur).unwrap();
                let exact = q.base_total * c.rate(cur).unwrap();
                // Half of the smallest unit prices are shown in (a whole rupiah for IDR).
                let half = Decimal::new(5, cur.shown_decimals() + 1);
                prop_assert!((q.total.to_major() - exact).abs() <= half);
            }
        }
    }
}
