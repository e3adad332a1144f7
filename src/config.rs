//! Settings: defaults in code, then an optional `coinfront.toml`, then `COINFRONT_*`
//! environment variables (nested keys with `__`, e.g. `COINFRONT_CATALOG__CUSTOM_MAX`) and the
//! conventional `DATABASE_URL`. Nothing needs a file.

use crate::domain::pricing::{Catalog, PriceTier};
use crate::domain::Currency;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A bad setting: which key, and what is wrong with it. Shown as one line at start-up.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {key}: {problem}")]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, problem: impl fmt::Display) -> Self {
        ConfigError {
            key: key.into(),
            problem: problem.to_string(),
        }
    }
}

/// A secret string whose `Debug` never prints it.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A decimal written in the config as a string ("0.0104"), an integer, or a TOML float
/// (taken by its shortest decimal spelling, so `0.92` is exactly 0.92 and never a binary
/// approximation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dec(pub Decimal);

impl<'de> Deserialize<'de> for Dec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Dec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a decimal number such as \"0.0104\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dec, E> {
                Decimal::from_str(v.trim())
                    .or_else(|_| Decimal::from_scientific(v.trim()))
                    .map(Dec)
                    .map_err(|_| E::custom(format!("{v:?} is not a decimal number")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Dec, E> {
                Ok(Dec(Decimal::from(v)))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Dec, E> {
                Ok(Dec(Decimal::from(v)))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Dec, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address and port to listen on; port 0 picks a free port.
    pub bind: SocketAddr,
    /// `sqlite://…` or `postgres://…`; default: a SQLite file under `data_dir`.
    pub database_url: Option<String>,
    pub db_max_connections: u32,
    /// Where the SQLite database, generated secrets and the mail outbox live.
    pub data_dir: PathBuf,
    /// The shop's address as buyers and the payment provider reach it; default: from `bind`.
    pub public_base_url: Option<String>,
    pub shop_name: String,
    pub log_format: LogFormat,
    pub catalog: CatalogSettings,
    pub payments: PaymentSettings,
    pub http: HttpSettings,
    pub rate_limits: RateLimitSettings,
    pub risk: crate::risk::RiskSettings,
    pub jobs: JobSettings,
    pub supplier: SupplierSettings,
    pub mail: MailSettings,
    pub secrets: SecretSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            db_max_connections: 8,
            data_dir: PathBuf::from("./data"),
            public_base_url: None,
            shop_name: "coinfront".into(),
            log_format: LogFormat::Pretty,
            catalog: CatalogSettings::default(),
            payments: PaymentSettings::default(),
            http: HttpSettings::default(),
            rate_limits: RateLimitSettings::default(),
            risk: crate::risk::RiskSettings::default(),
            jobs: JobSettings::default(),
            supplier: SupplierSettings::default(),
            mail: MailSettings::default(),
            secrets: SecretSettings::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogSettings {
    pub base_currency: String,
    /// Coin packages shown on the catalog page.
    pub packages: Vec<u64>,
    pub custom_min: u64,
    pub custom_max: u64,
    /// Graduated tiers: coins from `from_coins` on cost `price_per_coin` (base currency).
    pub tiers: Vec<TierSettings>,
    /// Units of each currency per unit of the base currency. The currencies listed here (and
    /// the base currency) are the ones offered.
    pub exchange_rates: BTreeMap<String, Dec>,
    /// The market price per coin (base currency) that offers are screened against: TikTok's
    /// own web price by default.
    pub reference_price_per_coin: Dec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierSettings {
    pub from_coins: u64,
    pub price_per_coin: Dec,
}

fn dec(s: &str) -> Dec {
    Dec(Decimal::from_str(s).expect("literal decimal"))
}

impl Default for CatalogSettings {
    fn default() -> Self {
        // A little under TikTok's web price (about US$0.0106 a coin), falling with volume.
        let tiers = [
            (0, "0.0104"),
            (1_000, "0.0102"),
            (10_000, "0.0100"),
            (100_000, "0.0098"),
        ]
        .into_iter()
        .map(|(from_coins, p)| TierSettings {
            from_coins,
            price_per_coin: dec(p),
        })
        .collect();
        let exchange_rates = [
            ("EUR", "0.92"),
            ("GBP", "0.79"),
            ("JPY", "150"),
            ("IDR", "15800"),
            ("PHP", "58"),
            ("BRL", "5.6"),
            ("MXN", "18.5"),
        ]
        .into_iter()
        .map(|(c, r)| (c.to_owned(), dec(r)))
        .collect();
        CatalogSettings {
            base_currency: "USD".into(),
            packages: vec![70, 350, 700, 1_400, 3_500, 7_000, 17_500],
            custom_min: 30,
            custom_max: 2_500_000,
            tiers,
            exchange_rates,
            reference_price_per_coin: dec("0.0106"),
        }
    }
}

impl CatalogSettings {
    pub fn build(&self) -> Result<Catalog, ConfigError> {
        let base = Currency::from_str(&self.base_currency)
            .map_err(|e| ConfigError::new("catalog.base_currency", e))?;
        let mut rates = BTreeMap::new();
        for (code, rate) in &self.exchange_rates {
            let cur = Currency::from_str(code)
                .map_err(|e| ConfigError::new(format!("catalog.exchange_rates.{code}"), e))?;
            rates.insert(cur, rate.0);
        }
        let tiers = self
            .tiers
            .iter()
            .map(|t| PriceTier {
                from_coins: t.from_coins,
                price_per_coin: t.price_per_coin.0,
            })
            .collect();
        Catalog::new(
            base,
            tiers,
            self.packages.clone(),
            self.custom_min,
            self.custom_max,
            rates,
            self.reference_price_per_coin.0,
        )
        .map_err(|e| ConfigError::new("catalog", e))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentSettings {
    /// Only `sandbox` exists today.
    pub provider: String,
    /// Unpaid orders expire after this many minutes.
    pub order_expiry_minutes: u64,
    /// How long a bank transfer takes to settle in the sandbox.
    pub sandbox_bank_transfer_settle_seconds: u64,
    /// Webhook signatures older or newer than this are refused.
    pub webhook_tolerance_seconds: u64,
}

impl Default for PaymentSettings {
    fn default() -> Self {
        PaymentSettings {
            provider: "sandbox".into(),
            order_expiry_minutes: 30,
            sandbox_bank_transfer_settle_seconds: 5,
            webhook_tolerance_seconds: 300,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Peers whose client-IP header is believed (a reverse proxy on the same host, say).
    pub trusted_proxies: Vec<IpAddr>,
    /// The header a trusted proxy puts the client's IP in (its last entry is used).
    pub client_ip_header: String,
    /// Mark cookies `Secure`. Turn off only for plain-HTTP development.
    pub secure_cookies: bool,
    /// Send `Strict-Transport-Security` (when the shop is served over HTTPS).
    pub hsts: bool,
    pub workers: Option<usize>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            trusted_proxies: Vec::new(),
            client_ip_header: "X-Forwarded-For".into(),
            secure_cookies: false,
            hsts: false,
            workers: None,
        }
    }
}

/// A rate limit: `burst` requests at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub per_minute: u32,
    pub burst: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    pub checkout: Limit,
    pub payment_attempt: Limit,
    pub account_lookup: Limit,
    pub order_lookup: Limit,
    pub refund_request: Limit,
    pub staff_login: Limit,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            checkout: Limit {
                per_minute: 5,
                burst: 5,
            },
            payment_attempt: Limit {
                per_minute: 10,
                burst: 10,
            },
            account_lookup: Limit {
                per_minute: 10,
                burst: 10,
            },
            order_lookup: Limit {
                per_minute: 5,
                burst: 5,
            },
            refund_request: Limit {
                per_minute: 3,
                burst: 3,
            },
            staff_login: Limit {
                per_minute: 5,
                burst: 5,
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobSettings {
    /// Job workers per server process; 0 runs none (useful for tests of the queue itself).
    pub workers: usize,
    /// How long a claimed job is reserved for one worker before another may take it.
    pub lease_seconds: u64,
    pub max_attempts: u32,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// How often an idle worker looks for new jobs.
    pub poll_interval_ms: u64,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            workers: 2,
            lease_seconds: 60,
            max_attempts: 8,
            backoff_base_ms: 1_000,
            backoff_max_ms: 300_000,
            poll_interval_ms: 250,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupplierSettings {
    /// Only `sandbox` exists today.
    pub kind: String,
    /// Simulated latency of each sandbox supplier call.
    pub sandbox_delay_ms: u64,
}

impl Default for SupplierSettings {
    fn default() -> Self {
        SupplierSettings {
            kind: "sandbox".into(),
            sandbox_delay_ms: 200,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailSettings {
    /// `file` (an outbox folder of .eml files) or `smtp`.
    pub transport: String,
    pub from: String,
    pub reply_to: Option<String>,
    pub outbox_dir: Option<PathBuf>,
    pub smtp_host: String,
    pub smtp_port: u16,
    /// `starttls`, `tls` or `none` (a local test server only).
    pub smtp_security: String,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<Secret>,
}

impl Default for MailSettings {
    fn default() -> Self {
        MailSettings {
            transport: "file".into(),
            from: "coinfront <shop@coinfront.invalid>".into(),
            reply_to: None,
            outbox_dir: None,
            smtp_host: "localhost".into(),
            smtp_port: 587,
            smtp_security: "starttls".into(),
            smtp_username: None,
            smtp_password: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretSettings {
    /// Signs CSRF tokens and cookies. Generated into `data_dir` when not set.
    pub cookie_key: Option<Secret>,
    /// Signs payment webhooks. Generated into `data_dir` when not set.
    pub webhook_signing_key: Option<Secret>,
}

impl Settings {
    /// Loads defaults, then `config_file` (or `./coinfront.toml` when it exists), then the
    /// environment.
    pub fn load(config_file: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut figment = Figment::new();
        match config_file {
            Some(path) if !path.exists() => {
                return Err(ConfigError::new(
                    "--config",
                    format!("{} does not exist", path.display()),
                ))
            }
            Some(path) => figment = figment.merge(Toml::file(path)),
            None => figment = figment.merge(Toml::file("coinfront.toml")),
        }
        let figment = figment
            .merge(Env::prefixed("COINFRONT_").split("__"))
            .merge(Env::raw().only(&["DATABASE_URL"]));
        Self::from_figment(figment)
    }

    pub fn from_figment(figment: Figment) -> Result<Settings, ConfigError> {
        let settings: Settings = figment.extract().map_err(|e| {
            let key = e.path.join(".");
            let mut problem = e.kind.to_string();
            if let Some(meta) = &e.metadata {
                problem.push_str(&format!(" (from {})", meta.name));
            }
            ConfigError::new(if key.is_empty() { "config".into() } else { key }, problem)
        })?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what the types alone cannot. Run at start-up so a bad value stops the shop
    /// before it serves anyone.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.catalog.build()?;
        if let Some(url) = &self.database_url {
            if !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
            {
                return Err(ConfigError::new(
                    "database_url",
                    "must start with sqlite: or postgres://",
                ));
            }
        }
        if let Some(url) = &self.public_base_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::new(
                    "public_base_url",
                    "must start with http:// or https://",
                ));
            }
        }
        if self.payments.provider != "sandbox" {
            return Err(ConfigError::new(
                "payments.provider",
                "only \"sandbox\" is available",
            ));
        }
        if self.supplier.kind != "sandbox" {
            return Err(ConfigError::new(
                "supplier.kind",
                "only \"sandbox\" is available",
            ));
        }
        if !matches!(self.mail.transport.as_str(), "file" | "smtp") {
            return Err(ConfigError::new(
                "mail.transport",
                "must be \"file\" or \"smtp\"",
            ));
        }
        crate::mail::mailer::parse_mailbox("mail.from", &self.mail.from)?;
        if let Some(reply_to) = &self.mail.reply_to {
            crate::mail::mailer::parse_mailbox("mail.reply_to", reply_to)?;
        }
        if !matches!(
            self.mail.smtp_security.as_str(),
            "starttls" | "tls" | "none"
        ) {
            return Err(ConfigError::new(
                "mail.smtp_security",
                "must be \"starttls\", \"tls\" or \"none\"",
            ));
        }
        for (name, limit) in [
            ("checkout", self.rate_limits.checkout),
            ("payment_attempt", self.rate_limits.payment_attempt),
            ("account_lookup", self.rate_limits.account_lookup),
            ("order_lookup", self.rate_limits.order_lookup),
            ("refund_request", self.rate_limits.refund_request),
            ("staff_login", self.rate_limits.staff_login),
        ] {
            if limit.per_minute == 0 || limit.burst == 0 {
                return Err(ConfigError::new(
                    format!("rate_limits.{name}"),
                    "per_minute and burst must be at least 1",
                ));
            }
        }
        if self.db_max_connections == 0 {
            return Err(ConfigError::new("db_max_connections", "must be at least 1"));
        }
        if self.jobs.max_attempts == 0 {
            return Err(ConfigError::new("jobs.max_attempts", "must be at least 1"));
        }
        self.risk.validate()?;
        Ok(())
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("coinfront.db").display()
            )
        })
    }

    pub fn outbox_dir(&self) -> PathBuf {
        self.mail
            .outbox_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("outbox"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::Serialized;

    #[test]
    fn defaults_are_valid() {
        Settings::default().validate().unwrap();
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let fig = Figment::new().merge(Serialized::default("catalog.custom_min", "lots"));
        let err = Settings::from_figment(fig).unwrap_err();
        assert_eq!(err.key, "catalog.custom_min");
        let fig = Figment::new().merge(Serialized::default("catalog.base_currency", "XYZ"));
        assert_eq!(
            Settings::from_figment(fig).unwrap_err().key,
            "catalog.base_currency"
        );
    }

    #[test]
    fn floats_in_config_are_taken_at_their_written_value() {
        let fig = Figment::new().merge(Toml::string("[catalog.exchange_rates]\nEUR = 0.92\n"));
        let s = Settings::from_figment(fig).unwrap();
        assert_eq!(s.catalog.exchange_rates["EUR"].0.to_string(), "0.92");
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(
            format!("{:?}", Secret::new("hunter2")),
            "Secret([redacted])"
        );
    }
}
