//! Block and allow lists' values: what kind of value an entry lists (card fingerprint, email,
//! email domain, IP, TikTok username), which list, the form values are stored and matched in,
//! and an admin's typed value checked per kind. The entries themselves are `db::risk_lists`.

use crate::domain::{BuyerEmail, TikTokUsername};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListKind {
    CardFingerprint,
    Email,
    EmailDomain,
    Ip,
    TiktokUsername,
}

impl ListKind {
    pub const ALL: [ListKind; 5] = [
        ListKind::CardFingerprint,
        ListKind::Email,
        ListKind::EmailDomain,
        ListKind::Ip,
        ListKind::TiktokUsername,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ListKind::CardFingerprint => "card_fingerprint",
            ListKind::Email => "email",
            ListKind::EmailDomain => "email_domain",
            ListKind::Ip => "ip",
            ListKind::TiktokUsername => "tiktok_username",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            ListKind::CardFingerprint => "card",
            ListKind::Email => "email address",
            ListKind::EmailDomain => "email domain",
            ListKind::Ip => "IP address",
            ListKind::TiktokUsername => "TikTok username",
        }
    }

    pub fn parse(s: &str) -> Option<ListKind> {
        ListKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum List {
    Block,
    Allow,
}

impl List {
    pub fn as_str(self) -> &'static str {
        match self {
            List::Block => "block",
            List::Allow => "allow",
        }
    }

    pub fn parse(s: &str) -> Option<List> {
        match s {
            "block" => Some(List::Block),
            "allow" => Some(List::Allow),
            _ => None,
        }
    }
}

/// A list entry that matched an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListHit {
    pub list: List,
    pub kind: ListKind,
    pub value: String,
    pub reason: String,
    pub added_by: String,
}

/// Values are stored normalised (lower case, trimmed) so matching is exact and indexed.
pub fn normalise(kind: ListKind, value: &str) -> String {
    let v = value.trim().to_ascii_lowercase();
    match kind {
        ListKind::TiktokUsername => v.trim_start_matches('@').to_owned(),
        _ => v,
    }
}

/// Checks a value typed by an admin for `kind` and returns it in the form orders are matched
/// in (`normalise` of what the shop stores), or a message saying what is wrong.
pub fn parse_value(kind: ListKind, input: &str) -> Result<String, String> {
    let v = input.trim();
    if v.is_empty() {
        return Err(format!("Enter the {} to list.", kind.describe()));
    }
    let parsed = match kind {
        ListKind::Email => BuyerEmail::parse(v)
            .map(|e| e.as_str().to_owned())
            .map_err(|_| "Enter an email address like name@example.com.".to_owned())?,
        ListKind::EmailDomain => {
            let domain = v.trim_start_matches('@');
            BuyerEmail::parse(&format!("x@{domain}"))
                .map(|e| e.domain().to_owned())
                .map_err(|_| "Enter an email domain like example.com (no name@).".to_owned())?
        }
        // Orders store the address as `IpAddr` prints it, so "::FFFF:1.2.3.4" and "1.2.3.4 "
        // are written back the same way.
        ListKind::Ip => v.parse::<IpAddr>().map(|ip| ip.to_string()).map_err(|_| {
            "Enter one IP address like 203.0.113.7 or 2001:db8::1 (ranges are not supported)."
                .to_owned()
        })?,
        ListKind::TiktokUsername => TikTokUsername::parse(v)
            .map(|u| u.as_str().to_owned())
            .map_err(|e| e.to_string())?,
        // The provider's fingerprint as the order page shows it; the sandbox's are hex, other
        // providers use letters, digits, `_` and `-`.
        ListKind::CardFingerprint => {
            let ok = (4..=128).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !ok {
                return Err("Enter the card fingerprint as the order page shows it (letters, digits, _ and -; no card number).".into());
            }
            v.to_owned()
        }
    };
    Ok(normalise(kind, &parsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_per_kind_and_stored_as_orders_are_matched() {
        use ListKind::*;
        assert_eq!(parse_value(Ip, " 203.0.113.7 ").unwrap(), "203.0.113.7");
        assert_eq!(parse_value(Ip, "2001:DB8::1").unwrap(), "2001:db8::1");
        assert!(parse_value(Ip, "203.0.113.0/24").is_err());
        assert!(parse_value(Ip, "999.1.1.1").is_err());
        assert_eq!(
            parse_value(Email, "Ana@Example.com").unwrap(),
            "ana@example.com"
        );
        assert!(parse_value(Email, "ana@").is_err());
        assert_eq!(
            parse_value(EmailDomain, "@Mailinator.com").unwrap(),
            "mailinator.com"
        );
        assert!(parse_value(EmailDomain, "ana@example.com").is_err());
        assert!(parse_value(EmailDomain, "localhost").is_err());
        assert_eq!(
            parse_value(TiktokUsername, "@Scam_Target").unwrap(),
            "scam_target"
        );
        assert!(parse_value(TiktokUsername, "no spaces please").is_err());
        assert_eq!(
            parse_value(CardFingerprint, "9F2C44aa01bc55de66f70a1b").unwrap(),
            "9f2c44aa01bc55de66f70a1b"
        );
        assert!(parse_value(CardFingerprint, "4242 4242 4242 4242").is_err());
        for kind in ListKind::ALL {
            assert!(parse_value(kind, "   ").is_err());
        }
    }
}
