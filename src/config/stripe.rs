//! `[payments.stripe]`: the keys and the method mapping, checked at start-up when
//! `payments.provider = "stripe"`.

use crate::domain::setting::{ConfigError, Secret};
use crate::domain::{Currency, PaymentMethod};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::str::FromStr;

pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";
/// File uploads (dispute evidence documents) go to their own host.
pub const DEFAULT_FILES_API_BASE: &str = "https://files.stripe.com";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StripeSettings {
    /// `sk_live_…` or `sk_test_…` (a restricted key `rk_…` works too).
    pub secret_key: Option<Secret>,
    /// The webhook endpoint's signing secret, `whsec_…`.
    pub webhook_secret: Option<Secret>,
    /// Where Stripe's API is; tests point it at a local server.
    pub api_base: String,
    /// Where Stripe's Files API is (`POST /v1/files`); tests point it at a local server.
    pub files_api_base: String,
    /// Per currency code (or `default`), per shop method: the Stripe `payment_method_types`
    /// the hosted page offers for it.
    pub method_types: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// How long one API call may take before it counts as a timeout (and is retried).
    pub timeout_seconds: u64,
    /// Attempts per API call, the first included, where Stripe says a retry is safe.
    pub max_attempts: u32,
}

impl Default for StripeSettings {
    fn default() -> Self {
        StripeSettings {
            secret_key: None,
            webhook_secret: None,
            api_base: DEFAULT_API_BASE.into(),
            files_api_base: DEFAULT_FILES_API_BASE.into(),
            method_types: BTreeMap::from([(
                "default".to_owned(),
                BTreeMap::from([
                    ("card".to_owned(), vec!["card".to_owned()]),
                    // Apple Pay and Google Pay are offered on Checkout as part of `card`.
                    ("wallet".to_owned(), vec!["card".to_owned()]),
                    ("paypal".to_owned(), vec!["paypal".to_owned()]),
                ]),
            )]),
            timeout_seconds: 10,
            max_attempts: 3,
        }
    }
}

impl StripeSettings {
    /// The Stripe method types for a shop method in a currency: the currency's own mapping,
    /// else `default`'s.
    pub fn types_for(&self, currency: &str, method: &str) -> Option<&[String]> {
        self.method_types
            .get(currency)
            .and_then(|m| m.get(method))
            .or_else(|| self.method_types.get("default").and_then(|m| m.get(method)))
            .map(Vec::as_slice)
    }

    /// Every key needed to take a payment, well formed; every method the shop offers
    /// mapped. `offered` is `payments.methods`.
    pub fn validate(&self, offered: &BTreeMap<String, Vec<String>>) -> Result<(), ConfigError> {
        check_key(
            "payments.stripe.secret_key",
            self.secret_key.as_ref(),
            &["sk_test_", "sk_live_", "rk_test_", "rk_live_"],
        )?;
        check_key(
            "payments.stripe.webhook_secret",
            self.webhook_secret.as_ref(),
            &["whsec_"],
        )?;
        check_base("payments.stripe.api_base", &self.api_base, DEFAULT_API_BASE)?;
        check_base(
            "payments.stripe.files_api_base",
            &self.files_api_base,
            DEFAULT_FILES_API_BASE,
        )?;
        if self.timeout_seconds == 0 || self.timeout_seconds > 120 {
            return Err(ConfigError::new(
                "payments.stripe.timeout_seconds",
                "must be between 1 and 120",
            ));
        }
        if self.max_attempts == 0 || self.max_attempts > 5 {
            return Err(ConfigError::new(
                "payments.stripe.max_attempts",
                "must be between 1 and 5",
            ));
        }
        for (currency, methods) in &self.method_types {
            if currency != "default" && Currency::from_str(currency).is_err() {
                return Err(ConfigError::new(
                    format!("payments.stripe.method_types.{currency}"),
                    "not a currency code or \"default\"",
                ));
            }
            for (method, types) in methods {
                let key = format!("payments.stripe.method_types.{currency}.{method}");
                if PaymentMethod::from_str(method).is_err() {
                    return Err(ConfigError::new(key, "unknown shop payment method"));
                }
                if types.is_empty() || types.len() > 16 {
                    return Err(ConfigError::new(key, "needs 1 to 16 Stripe method types"));
                }
                if let Some(bad) = types.iter().find(|t| {
                    t.is_empty()
                        || t.len() > 40
                        || !t.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                }) {
                    return Err(ConfigError::new(
                        key,
                        format!("{bad:?} is not a Stripe payment method type such as \"card\""),
                    ));
                }
            }
        }
        for (currency, methods) in offered {
            for method in methods {
                let found = if currency == "default" {
                    self.method_types
                        .get("default")
                        .is_some_and(|m| m.contains_key(method))
                } else {
                    self.types_for(currency, method).is_some()
                };
                if !found {
                    return Err(ConfigError::new(
                        format!("payments.stripe.method_types.{currency}.{method}"),
                        format!(
                            "missing: payments.methods.{currency} offers {method:?}; map it to Stripe method types or stop offering it"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn check_base(key: &str, value: &str, example: &str) -> Result<(), ConfigError> {
    let base = value.trim_end_matches('/');
    let host_ok = base
        .split_once("://")
        .is_some_and(|(scheme, rest)| matches!(scheme, "http" | "https") && !rest.is_empty());
    if !host_ok || base.contains(['?', '#', ' ']) {
        return Err(ConfigError::new(
            key,
            format!("must be an http:// or https:// address such as {example}"),
        ));
    }
    Ok(())
}

fn check_key(key: &str, value: Option<&Secret>, prefixes: &[&str]) -> Result<(), ConfigError> {
    let Some(value) = value else {
        return Err(ConfigError::new(
            key,
            "missing (needed with payments.provider = \"stripe\")",
        ));
    };
    let v = value.expose();
    let shaped = prefixes.iter().any(|p| v.starts_with(p))
        && v.len() > 12
        && v.len() <= 255
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !shaped {
        // The value itself is never echoed: it is a secret, even when malformed.
        return Err(ConfigError::new(
            key,
            format!(
                "malformed: expected a key starting with {}",
                prefixes.join(" or ")
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> StripeSettings {
        StripeSettings {
            secret_key: Some(Secret::new("sk_test_0123456789abcdef")),
            webhook_secret: Some(Secret::new("whsec_0123456789abcdef")),
            ..Default::default()
        }
    }

    fn offered(methods: &[&str]) -> BTreeMap<String, Vec<String>> {
        BTreeMap::from([(
            "default".to_owned(),
            methods.iter().map(|m| m.to_string()).collect(),
        )])
    }

    type Change = Box<dyn Fn(&mut StripeSettings)>;

    #[test]
    fn good_settings_pass_and_each_bad_key_is_named() {
        good().validate(&offered(&["card", "paypal"])).unwrap();
        let cases: Vec<(Change, &str)> = vec![
            (
                Box::new(|s| s.secret_key = None),
                "payments.stripe.secret_key",
            ),
            (
                Box::new(|s| s.secret_key = Some(Secret::new("pk_test_0123456789abcdef"))),
                "payments.stripe.secret_key",
            ),
            (
                Box::new(|s| s.webhook_secret = None),
                "payments.stripe.webhook_secret",
            ),
            (
                Box::new(|s| s.webhook_secret = Some(Secret::new("whsec_x y"))),
                "payments.stripe.webhook_secret",
            ),
            (
                Box::new(|s| s.api_base = "ftp://x".into()),
                "payments.stripe.api_base",
            ),
            (
                Box::new(|s| s.files_api_base = "files.stripe.com".into()),
                "payments.stripe.files_api_base",
            ),
            (
                Box::new(|s| {
                    s.method_types
                        .get_mut("default")
                        .unwrap()
                        .insert("card".into(), vec!["Card!".into()]);
                }),
                "payments.stripe.method_types.default.card",
            ),
        ];
        for (change, key) in cases {
            let mut s = good();
            change(&mut s);
            let e = s.validate(&offered(&["card"])).unwrap_err();
            assert_eq!(e.key, key);
            assert!(!e.to_string().contains("0123456789abcdef"), "{e}");
        }
    }

    #[test]
    fn an_offered_method_without_stripe_types_is_named() {
        let e = good().validate(&offered(&["card", "crypto"])).unwrap_err();
        assert_eq!(e.key, "payments.stripe.method_types.default.crypto");
    }

    #[test]
    fn a_currency_mapping_overrides_the_default() {
        let mut s = good();
        s.method_types.insert(
            "EUR".into(),
            BTreeMap::from([("bank_transfer".into(), vec!["sepa_debit".into()])]),
        );
        assert_eq!(s.types_for("EUR", "bank_transfer").unwrap(), ["sepa_debit"]);
        assert_eq!(s.types_for("EUR", "card").unwrap(), ["card"]);
        assert!(s.types_for("USD", "bank_transfer").is_none());
        let eur = BTreeMap::from([("EUR".to_owned(), vec!["bank_transfer".to_owned()])]);
        s.validate(&eur).unwrap();
        let usd = BTreeMap::from([("USD".to_owned(), vec!["bank_transfer".to_owned()])]);
        assert_eq!(
            s.validate(&usd).unwrap_err().key,
            "payments.stripe.method_types.USD.bank_transfer"
        );
    }

    #[test]
    fn debug_never_shows_the_keys() {
        let text = format!("{:?}", good());
        assert!(!text.contains("0123456789abcdef"), "{text}");
    }
}
