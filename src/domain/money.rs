//! Money: integer minor units at rest, `rust_decimal` in arithmetic, one rounding at the end.

use rust_decimal::{Decimal, RoundingStrategy};
use std::fmt;
use std::str::FromStr;

/// An ISO 4217 currency the shop knows how to show and charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Currency {
    Usd,
    Eur,
    Gbp,
    Jpy,
    Idr,
    Php,
    Brl,
    Mxn,
    Cad,
    Aud,
    Kwd,
}

impl Currency {
    pub const ALL: [Currency; 11] = [
        Currency::Usd,
        Currency::Eur,
        Currency::Gbp,
        Currency::Jpy,
        Currency::Idr,
        Currency::Php,
        Currency::Brl,
        Currency::Mxn,
        Currency::Cad,
        Currency::Aud,
        Currency::Kwd,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Currency::Usd => "USD",
            Currency::Eur => "EUR",
            Currency::Gbp => "GBP",
            Currency::Jpy => "JPY",
            Currency::Idr => "IDR",
            Currency::Php => "PHP",
            Currency::Brl => "BRL",
            Currency::Mxn => "MXN",
            Currency::Cad => "CAD",
            Currency::Aud => "AUD",
            Currency::Kwd => "KWD",
        }
    }

    /// Digits after the decimal point, per ISO 4217.
    pub fn minor_units(self) -> u32 {
        match self {
            Currency::Jpy => 0,
            Currency::Kwd => 3,
            _ => 2,
        }
    }

    /// Decimals prices are rounded to and shown with. The rupiah keeps ISO 4217's two minor
    /// units at rest, but in practice it is priced and written in whole rupiah.
    pub fn shown_decimals(self) -> u32 {
        match self {
            Currency::Idr => 0,
            other => other.minor_units(),
        }
    }

    /// A symbol that names the currency on its own (`US$`, not `$`), so amounts need no code.
    pub fn symbol(self) -> &'static str {
        match self {
            Currency::Usd => "US$",
            Currency::Eur => "€",
            Currency::Gbp => "£",
            Currency::Jpy => "¥",
            Currency::Idr => "Rp",
            Currency::Php => "₱",
            Currency::Brl => "R$",
            Currency::Mxn => "MX$",
            Currency::Cad => "CA$",
            Currency::Aud => "A$",
            Currency::Kwd => "KD",
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown currency code {0:?}")]
pub struct UnknownCurrency(pub String);

impl FromStr for Currency {
    type Err = UnknownCurrency;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        Currency::ALL
            .into_iter()
            .find(|c| c.code() == upper)
            .ok_or_else(|| UnknownCurrency(s.chars().take(12).collect()))
    }
}

/// An amount of money in one currency, held as integer minor units (cents, yen, fils).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    pub fn from_minor(minor: i64, currency: Currency) -> Self {
        Money { minor, currency }
    }

    pub fn zero(currency: Currency) -> Self {
        Money { minor: 0, currency }
    }

    /// Rounds an exact amount in major units half-up (away from zero) to the currency's minor
    /// unit. This is the one rounding step of every price computation.
    pub fn round_from_major(amount: Decimal, currency: Currency) -> Option<Self> {
        let rounded = amount.round_dp_with_strategy(
            currency.shown_decimals(),
            RoundingStrategy::MidpointAwayFromZero,
        );
        let minor = rounded.checked_mul(Decimal::from(10i64.pow(currency.minor_units())))?;
        i64::try_from(minor.trunc())
            .ok()
            .map(|minor| Money { minor, currency })
    }

    /// An amount typed in major units ("12.34") as whole minor units, digits beyond the
    /// currency's minor unit dropped. `None` unless it is a positive amount that fits: outside
    /// input never reaches an unchecked multiply.
    pub fn parse_major_truncated(input: &str, currency: Currency) -> Option<Self> {
        let d = Decimal::from_str(input.trim()).ok()?;
        let scale = Decimal::from(10i64.checked_pow(currency.minor_units())?);
        let minor = i64::try_from(d.checked_mul(scale)?.trunc()).ok()?;
        (minor > 0).then_some(Money { minor, currency })
    }

    pub fn minor(&self) -> i64 {
        self.minor
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    pub fn to_major(&self) -> Decimal {
        Decimal::new(self.minor, self.currency.minor_units())
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        (self.currency == other.currency).then_some(())?;
        Some(Money::from_minor(
            self.minor.checked_add(other.minor)?,
            self.currency,
        ))
    }

    pub fn checked_sub(self, other: Money) -> Option<Money> {
        (self.currency == other.currency).then_some(())?;
        Some(Money::from_minor(
            self.minor.checked_sub(other.minor)?,
            self.currency,
        ))
    }

    /// The amount without symbol, with thousands separators: `1,234.50`. A currency shown with
    /// fewer decimals than it stores (the rupiah) drops them when they are zero, and only then.
    pub fn amount_text(&self) -> String {
        let major = self.to_major();
        let shown = major.round_dp(self.currency.shown_decimals());
        let exact = if shown == major {
            let mut s = shown;
            s.rescale(self.currency.shown_decimals());
            s
        } else {
            major
        };
        group_thousands(&exact.to_string())
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.currency.symbol(), self.amount_text())
    }
}

/// Puts a comma between each group of three digits of the integer part of a decimal string.
pub fn group_thousands(plain: &str) -> String {
    let (sign, rest) = plain.strip_prefix('-').map_or(("", plain), |r| ("-", r));
    let (int, frac) = rest
        .split_once('.')
        .map_or((rest, None), |(i, f)| (i, Some(f)));
    let mut out = String::with_capacity(plain.len() + int.len() / 3);
    out.push_str(sign);
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if let Some(frac) = frac {
        out.push('.');
        out.push_str(frac);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn rounds_half_up_to_each_currency_minor_unit() {
        assert_eq!(
            Money::round_from_major(dec!(0.725), Currency::Usd)
                .unwrap()
                .minor(),
            73
        );
        assert_eq!(
            Money::round_from_major(dec!(0.724999), Currency::Usd)
                .unwrap()
                .minor(),
            72
        );
        assert_eq!(
            Money::round_from_major(dec!(109.5), Currency::Jpy)
                .unwrap()
                .minor(),
            110
        );
        assert_eq!(
            Money::round_from_major(dec!(109.49), Currency::Jpy)
                .unwrap()
                .minor(),
            109
        );
        assert_eq!(
            Money::round_from_major(dec!(1.0005), Currency::Kwd)
                .unwrap()
                .minor(),
            1001
        );
    }

    #[test]
    fn displays_with_symbol_and_separators() {
        assert_eq!(
            Money::from_minor(123456, Currency::Usd).to_string(),
            "US$1,234.56"
        );
        assert_eq!(
            Money::from_minor(1234567, Currency::Jpy).to_string(),
            "¥1,234,567"
        );
        // Whole rupiah, stored in ISO 4217's two minor units; a stored fraction still shows.
        assert_eq!(
            Money::from_minor(11_502_400, Currency::Idr).to_string(),
            "Rp115,024"
        );
        assert_eq!(
            Money::from_minor(11_502_440, Currency::Idr).to_string(),
            "Rp115,024.40"
        );
        assert_eq!(
            Money::round_from_major(dec!(11502.40), Currency::Idr)
                .unwrap()
                .minor(),
            1_150_200
        );
        assert_eq!(Money::from_minor(5, Currency::Usd).amount_text(), "0.05");
        assert_eq!(group_thousands("-1234567.891"), "-1,234,567.891");
    }

    #[test]
    fn parses_currency_codes_case_insensitively() {
        assert_eq!("eur".parse::<Currency>().unwrap(), Currency::Eur);
        assert!("XYZ".parse::<Currency>().is_err());
    }

    #[test]
    fn refuses_to_mix_currencies() {
        let usd = Money::from_minor(1, Currency::Usd);
        assert!(usd
            .checked_add(Money::from_minor(1, Currency::Eur))
            .is_none());
        assert_eq!(usd.checked_add(usd).unwrap().minor(), 2);
    }
}
