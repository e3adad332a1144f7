//! How a buyer pays.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PaymentMethod {
    Card,
    /// A device wallet (Apple Pay / Google Pay style): one step, a tokenised card.
    Wallet,
    /// A redirect wallet (PayPal style): approve at the provider, then back to the shop.
    Paypal,
    BankTransfer,
    GiftCard,
    Crypto,
}

impl PaymentMethod {
    pub const ALL: [PaymentMethod; 6] = [
        PaymentMethod::Card,
        PaymentMethod::Wallet,
        PaymentMethod::Paypal,
        PaymentMethod::BankTransfer,
        PaymentMethod::GiftCard,
        PaymentMethod::Crypto,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::Card => "card",
            PaymentMethod::Wallet => "wallet",
            PaymentMethod::Paypal => "paypal",
            PaymentMethod::BankTransfer => "bank_transfer",
            PaymentMethod::GiftCard => "gift_card",
            PaymentMethod::Crypto => "crypto",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            PaymentMethod::Card => "Card",
            PaymentMethod::Wallet => "Apple Pay / Google Pay",
            PaymentMethod::Paypal => "PayPal",
            PaymentMethod::BankTransfer => "Bank transfer",
            PaymentMethod::GiftCard => "Gift card or voucher",
            PaymentMethod::Crypto => "Crypto (USDC)",
        }
    }

    pub fn hint(self) -> &'static str {
        match self {
            PaymentMethod::Card => "Visa, Mastercard, Amex — instant",
            PaymentMethod::Wallet => "One tap on your phone — instant",
            PaymentMethod::Paypal => "Approve with your PayPal account — instant",
            PaymentMethod::BankTransfer => "Settles later; coins follow once it arrives",
            PaymentMethod::GiftCard => "Redeem a code; the balance must cover the total",
            PaymentMethod::Crypto => "Send the exact amount quoted within 15 minutes",
        }
    }
}

impl fmt::Display for PaymentMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("Choose how you would like to pay.")]
pub struct UnknownMethod;

impl FromStr for PaymentMethod {
    type Err = UnknownMethod;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PaymentMethod::ALL
            .into_iter()
            .find(|m| m.as_str() == s.trim())
            .ok_or(UnknownMethod)
    }
}
