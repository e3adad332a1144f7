//! Test cards, after Stripe's test-card table. Any Luhn-valid number works; its last four
//! digits pick the outcome, so scripts can make many distinct cards that all decline:
//! `…4242`, `…4444`, `…0005` and the rest succeed; `…0002` generic decline, `…9995`
//! insufficient funds, `…9987` lost card, `…9979` stolen card, `…6975` card velocity
//! exceeded, `…0069` expired card, `…0127` incorrect CVC, `…0119` processing error, and
//! `…0019` (Stripe's "always blocked" `4100 0000 0000 0019`) blocked as fraudulent.
//! The lost, stolen, velocity and fraudulent codes say most about fraud: the screening reads
//! them as evidence, while the buyer is told only that the card was declined (as Stripe advises).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Declined(Decline),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decline {
    Generic,
    InsufficientFunds,
    LostCard,
    StolenCard,
    /// The issuer saw too many attempts on the card.
    VelocityExceeded,
    /// The provider's own fraud screening refused the payment.
    Fraudulent,
    ExpiredCard,
    IncorrectCvc,
    ProcessingError,
    /// A gift card code that does not exist.
    InvalidCode,
    /// A gift card whose balance does not cover the order.
    InsufficientBalance,
    /// A crypto transfer for less than the quoted amount.
    Underpaid,
}

impl Decline {
    pub fn code(self) -> &'static str {
        match self {
            Decline::Generic => "card_declined",
            Decline::InsufficientFunds => "insufficient_funds",
            Decline::LostCard => "lost_card",
            Decline::StolenCard => "stolen_card",
            Decline::VelocityExceeded => "card_velocity_exceeded",
            Decline::Fraudulent => "fraudulent",
            Decline::ExpiredCard => "expired_card",
            Decline::IncorrectCvc => "incorrect_cvc",
            Decline::ProcessingError => "processing_error",
            Decline::InvalidCode => "invalid_code",
            Decline::InsufficientBalance => "insufficient_balance",
            Decline::Underpaid => "underpaid",
        }
    }

    /// What the buyer reads: enough to know what to do, nothing more.
    pub fn message(self) -> &'static str {
        match self {
            // Never "lost" or "stolen": whoever holds such a card learns nothing from us.
            Decline::Generic
            | Decline::LostCard
            | Decline::StolenCard
            | Decline::VelocityExceeded
            | Decline::Fraudulent => "Your card was declined. Try another card or payment method.",
            Decline::InsufficientFunds => "Your card has insufficient funds. Try another card.",
            Decline::ExpiredCard => "Your card has expired. Try another card.",
            Decline::IncorrectCvc => {
                "The card's security code is incorrect. Check it and try again."
            }
            Decline::ProcessingError => "The card could not be processed. Please try again.",
            Decline::InvalidCode => "That gift card code is not valid. Check it and try again.",
            Decline::InsufficientBalance => {
                "This gift card's balance is too low for this order. Use another gift card or another way to pay."
            }
            Decline::Underpaid => {
                "Less than the quoted amount arrived, so it is not a payment. It will be returned to the sending address; send a new payment for the exact amount."
            }
        }
    }
}

/// A card number that passed the format and Luhn checks. Holds the number only for the
/// duration of one attempt; `Debug` never prints it.
pub struct CardNumber(String);

impl std::fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CardNumber(…{})", self.last4())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    #[error("Enter the card number.")]
    MissingNumber,
    #[error("The card number is not valid. Check it and try again.")]
    InvalidNumber,
    #[error("Enter the expiry date as MM/YY.")]
    InvalidExpiry,
    #[error("This card's expiry date has passed.")]
    PastExpiry,
    #[error("Enter the 3 or 4 digit security code from the back of the card.")]
    InvalidCvc,
}

impl CardNumber {
    pub fn parse(input: &str) -> Result<Self, CardError> {
        let digits: String = input.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        if digits.is_empty() {
            return Err(CardError::MissingNumber);
        }
        if !(13..=19).contains(&digits.len())
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || !luhn_valid(&digits)
        {
            return Err(CardError::InvalidNumber);
        }
        Ok(CardNumber(digits))
    }

    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }

    pub fn digits(&self) -> &str {
        &self.0
    }

    /// The issuer identification number: the first six digits, which PCI DSS allows a
    /// merchant to keep beside the last four. Card-testing waves often share it.
    pub fn bin(&self) -> &str {
        &self.0[..6]
    }

    pub fn brand(&self) -> &'static str {
        let n = &self.0;
        let two: u32 = n[..2].parse().unwrap_or(0);
        let four: u32 = n[..4].parse().unwrap_or(0);
        if n.starts_with('4') {
            "visa"
        } else if (51..=55).contains(&two) || (2221..=2720).contains(&four) {
            "mastercard"
        } else if two == 34 || two == 37 {
            "amex"
        } else if n.starts_with("6011") || n.starts_with("65") {
            "discover"
        } else {
            "card"
        }
    }

    pub fn outcome(&self) -> Outcome {
        match self.last4() {
            "0002" => Outcome::Declined(Decline::Generic),
            "9995" => Outcome::Declined(Decline::InsufficientFunds),
            "9987" => Outcome::Declined(Decline::LostCard),
            "9979" => Outcome::Declined(Decline::StolenCard),
            "6975" => Outcome::Declined(Decline::VelocityExceeded),
            "0019" => Outcome::Declined(Decline::Fraudulent),
            "0069" => Outcome::Declined(Decline::ExpiredCard),
            "0127" => Outcome::Declined(Decline::IncorrectCvc),
            "0119" => Outcome::Declined(Decline::ProcessingError),
            _ => Outcome::Succeeded,
        }
    }
}

pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0;
    for (i, b) in digits.bytes().rev().enumerate() {
        let mut d = (b - b'0') as u32;
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

/// Checks `MM/YY` (or `MM/YYYY`) is a real month that has not ended before `now_ms`.
pub fn check_expiry(input: &str, now_ms: i64) -> Result<(), CardError> {
    use chrono::Datelike;
    let (m, y) = input
        .trim()
        .split_once('/')
        .ok_or(CardError::InvalidExpiry)?;
    let month: u32 = m.trim().parse().map_err(|_| CardError::InvalidExpiry)?;
    let year: i32 = y.trim().parse().map_err(|_| CardError::InvalidExpiry)?;
    let year = if y.trim().len() == 2 {
        2000 + year
    } else {
        year
    };
    if !(1..=12).contains(&month) || !(2000..=2100).contains(&year) {
        return Err(CardError::InvalidExpiry);
    }
    let now = chrono::DateTime::from_timestamp_millis(now_ms).ok_or(CardError::InvalidExpiry)?;
    if (year, month) < (now.year(), now.month()) {
        return Err(CardError::PastExpiry);
    }
    Ok(())
}

pub fn check_cvc(input: &str) -> Result<(), CardError> {
    let s = input.trim();
    if (3..=4).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(CardError::InvalidCvc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_test_numbers_give_their_outcomes() {
        let cases = [
            ("4242 4242 4242 4242", Outcome::Succeeded, "visa"),
            ("5555555555554444", Outcome::Succeeded, "mastercard"),
            ("378282246310005", Outcome::Succeeded, "amex"),
            (
                "4000000000000002",
                Outcome::Declined(Decline::Generic),
                "visa",
            ),
            (
                "4000000000009995",
                Outcome::Declined(Decline::InsufficientFunds),
                "visa",
            ),
            (
                "4000000000000069",
                Outcome::Declined(Decline::ExpiredCard),
                "visa",
            ),
            (
                "4000000000009987",
                Outcome::Declined(Decline::LostCard),
                "visa",
            ),
            (
                "4000000000009979",
                Outcome::Declined(Decline::StolenCard),
                "visa",
            ),
            (
                "4000000000006975",
                Outcome::Declined(Decline::VelocityExceeded),
                "visa",
            ),
            (
                "4100000000000019",
                Outcome::Declined(Decline::Fraudulent),
                "visa",
            ),
            (
                "4000000000000127",
                Outcome::Declined(Decline::IncorrectCvc),
                "visa",
            ),
            (
                "4000000000000119",
                Outcome::Declined(Decline::ProcessingError),
                "visa",
            ),
        ];
        for (n, outcome, brand) in cases {
            let c = CardNumber::parse(n).unwrap();
            assert_eq!(c.outcome(), outcome, "{n}");
            assert_eq!(c.brand(), brand, "{n}");
        }
    }

    #[test]
    fn fraud_declines_tell_the_buyer_only_that_the_card_was_declined() {
        for d in [
            Decline::LostCard,
            Decline::StolenCard,
            Decline::VelocityExceeded,
            Decline::Fraudulent,
        ] {
            assert_eq!(d.message(), Decline::Generic.message(), "{}", d.code());
        }
        assert_eq!(
            CardNumber::parse("4000 0566 5566 5556").unwrap().bin(),
            "400005"
        );
    }

    #[test]
    fn bad_numbers_are_refused_before_any_attempt() {
        assert_eq!(CardNumber::parse("").unwrap_err(), CardError::MissingNumber);
        assert_eq!(
            CardNumber::parse("4242424242424241").unwrap_err(),
            CardError::InvalidNumber
        );
        assert_eq!(
            CardNumber::parse("4242").unwrap_err(),
            CardError::InvalidNumber
        );
        assert_eq!(
            CardNumber::parse("4242abcd42424242").unwrap_err(),
            CardError::InvalidNumber
        );
    }

    #[test]
    fn debug_never_shows_the_number() {
        let c = CardNumber::parse("4242424242424242").unwrap();
        assert_eq!(format!("{c:?}"), "CardNumber(…4242)");
    }

    #[test]
    fn expiry_and_cvc_are_checked() {
        let nov_2026 = 1_795_000_000_000; // 2026-11-18
        assert_eq!(check_expiry("12/26", nov_2026), Ok(()));
        assert_eq!(check_expiry("11/26", nov_2026), Ok(()));
        assert_eq!(check_expiry("10/26", nov_2026), Err(CardError::PastExpiry));
        assert_eq!(
            check_expiry("13/30", nov_2026),
            Err(CardError::InvalidExpiry)
        );
        assert_eq!(
            check_expiry("1230", nov_2026),
            Err(CardError::InvalidExpiry)
        );
        assert_eq!(check_expiry("01/2031", nov_2026), Ok(()));
        assert_eq!(check_cvc("123"), Ok(()));
        assert_eq!(check_cvc("12a"), Err(CardError::InvalidCvc));
        assert_eq!(check_cvc("12345"), Err(CardError::InvalidCvc));
    }
}
