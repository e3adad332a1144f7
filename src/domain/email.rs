//! Buyer email addresses: a pragmatic check, not RFC 5322 in full. The address is later used
//! in an email header, so anything that could inject a header is refused here.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BuyerEmail(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("Enter the email address for your receipt.")]
    Empty,
    #[error("Enter an email address like name@example.com.")]
    Invalid,
}

impl BuyerEmail {
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(EmailError::Empty);
        }
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(EmailError::Invalid);
        }
        let (local, domain) = s.rsplit_once('@').ok_or(EmailError::Invalid)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.contains(['@', '<', '>', '(', ')', '[', ']', ',', ';', ':', '\\', '"']);
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if !(local_ok && domain_ok) {
            return Err(EmailError::Invalid);
        }
        // Stored in lower case so that one buyer is one key for receipts and risk signals;
        // mailbox providers treat the local part case-insensitively in practice.
        Ok(BuyerEmail(s.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

impl fmt::Display for BuyerEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_addresses() {
        assert_eq!(
            BuyerEmail::parse(" Ana@Example.COM ").unwrap().as_str(),
            "ana@example.com"
        );
        assert_eq!(
            BuyerEmail::parse("a.b+tag@mail.example.co.uk")
                .unwrap()
                .domain(),
            "mail.example.co.uk"
        );
    }

    #[test]
    fn refuses_malformed_and_header_injection() {
        for bad in [
            "",
            "plain",
            "a@b",
            "a@.com",
            "a@b..com",
            "a b@c.com",
            "a@b.com\r\nBcc: x@y.com",
            "<a@b.com>",
            "a@-b.com",
        ] {
            assert!(BuyerEmail::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn parsed_addresses_never_carry_line_breaks(s in "\\PC{0,60}") {
            if let Ok(e) = BuyerEmail::parse(&s) {
                prop_assert!(!e.as_str().contains(['\r', '\n']));
            }
        }
    }
}
