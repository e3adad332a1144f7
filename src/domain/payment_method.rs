//! How a buyer pays.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentMethod {
    Card,
    Wallet,
    BankTransfer,
}

impl PaymentMethod {
    pub const ALL: [PaymentMethod; 3] = [
        PaymentMethod::Card,
        PaymentMethod::Wallet,
        PaymentMethod::BankTransfer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::Card => "card",
            PaymentMethod::Wallet => "wallet",
            PaymentMethod::BankTransfer => "bank_transfer",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            PaymentMethod::Card => "Card",
            PaymentMethod::Wallet => "Wallet",
            PaymentMethod::BankTransfer => "Bank transfer",
        }
    }

    pub fn hint(self) -> &'static str {
        match self {
            PaymentMethod::Card => "Visa, Mastercard, Amex — instant",
            PaymentMethod::Wallet => "Apple Pay or Google Pay style — instant",
            PaymentMethod::BankTransfer => "Settles later; coins follow once it arrives",
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
