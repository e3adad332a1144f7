//! Settings: defaults in code, then an optional `coinfront.toml`, then `COINFRONT_*`
//! environment variables (nested keys with `__`, e.g. `COINFRONT_CATALOG__CUSTOM_MAX`) and the
//! conventional `DATABASE_URL`. Nothing needs a file.

use crate::domain::pricing::{Catalog, PriceTier};
use crate::domain::Currency;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use crate::domain::setting::{ConfigError, Dec, ProxyRange, Secret};

/// `[payments.stripe]` (here, not in `payments`, because the settings sit below the providers).
pub mod stripe;
pub use stripe::StripeSettings;
/// The settings printed back as TOML (`coinfront check-config`), secrets redacted.
pub mod print;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address and port to listen on; port 0 picks a free port.
    pub bind: SocketAddr,
    /// `sqlite://…` or `postgres://…`; default: a SQLite file under `data_dir`.
    pub database_url: Option<String>,
    /// Size of the main connection pool. Each job worker holds one while it works, so the
    /// default leaves as many again for web requests: with no more than `jobs.workers`, a
    /// busy queue makes every checkout wait for a connection, and the queue falls behind too.
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
    pub fulfillment: FulfillmentSettings,
    pub shop: ShopSettings,
    pub mail: MailSettings,
    pub secrets: SecretSettings,
    pub console: ConsoleSettings,
    pub metrics: MetricsSettings,
    pub notifications: NotificationSettings,
    pub retention: RetentionSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            db_max_connections: 16,
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
            fulfillment: FulfillmentSettings::default(),
            shop: ShopSettings::default(),
            mail: MailSettings::default(),
            secrets: SecretSettings::default(),
            console: ConsoleSettings::default(),
            metrics: MetricsSettings::default(),
            notifications: NotificationSettings::default(),
            retention: RetentionSettings::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentSettings {
    /// `sandbox` (the default: TEST MODE, no real money) or `stripe` (see `[payments.stripe]`).
    pub provider: String,
    /// Unpaid orders expire after this many minutes.
    pub order_expiry_minutes: u64,
    /// How long a bank transfer takes to settle in the sandbox.
    pub sandbox_bank_transfer_settle_seconds: u64,
    /// Webhook signatures older or newer than this are refused.
    pub webhook_tolerance_seconds: u64,
    /// Methods offered, per currency code; `default` for currencies not listed.
    pub methods: BTreeMap<String, Vec<String>>,
    /// A method's fee: a percentage of the price plus a fixed amount in the base currency.
    pub fees: BTreeMap<String, FeeSettings>,
    /// How long a crypto quote (address and exact amount) stays valid.
    pub crypto_quote_minutes: u64,
    /// How long the sandbox takes to confirm a crypto transfer.
    pub sandbox_crypto_confirm_seconds: u64,
    /// Stripe's keys and method mapping, used when `provider = "stripe"`.
    pub stripe: StripeSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FeeSettings {
    pub percent: Dec,
    pub fixed: Dec,
}

impl Default for FeeSettings {
    fn default() -> Self {
        FeeSettings {
            percent: Dec(Decimal::ZERO),
            fixed: Dec(Decimal::ZERO),
        }
    }
}

impl Default for PaymentSettings {
    fn default() -> Self {
        PaymentSettings {
            provider: "sandbox".into(),
            order_expiry_minutes: 30,
            sandbox_bank_transfer_settle_seconds: 5,
            webhook_tolerance_seconds: 300,
            methods: BTreeMap::from([(
                "default".to_owned(),
                [
                    "card",
                    "wallet",
                    "paypal",
                    "bank_transfer",
                    "gift_card",
                    "crypto",
                ]
                .map(String::from)
                .to_vec(),
            )]),
            // PayPal-style wallets usually pass their cost on; the rest carry none by default.
            fees: BTreeMap::from([(
                "paypal".to_owned(),
                FeeSettings {
                    percent: dec("2.9"),
                    fixed: dec("0.30"),
                },
            )]),
            crypto_quote_minutes: 15,
            sandbox_crypto_confirm_seconds: 5,
            stripe: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Peers whose client-IP header is believed (a reverse proxy on the same host, say):
    /// addresses or CIDR ranges.
    pub trusted_proxies: Vec<ProxyRange>,
    /// The header a trusted proxy puts the client's IP in (read from the right, over every
    /// line of it, walking back through trusted proxies).
    pub client_ip_header: String,
    /// Mark cookies `Secure` behind a TLS-terminating proxy (built-in TLS does it anyway).
    /// Never read it directly: every cookie goes through `CookiePolicy::of`, which uses
    /// `effective_secure_cookies`.
    pub secure_cookies: bool,
    /// Send `Strict-Transport-Security` (when the shop is served over HTTPS).
    pub hsts: bool,
    pub workers: Option<usize>,
    /// Serve HTTPS directly (rustls): a PEM certificate chain and its PEM private key. Leave
    /// both unset when a reverse proxy terminates TLS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            trusted_proxies: Vec::new(),
            client_ip_header: "X-Forwarded-For".into(),
            secure_cookies: false,
            hsts: false,
            workers: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// A rate limit: `burst` requests at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub per_minute: u32,
    pub burst: u32,
}

/// Where the rate limits keep their state.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LimitStore {
    /// In this process (governor): limits hold per instance.
    Memory,
    /// In the database, one row per limit and client: limits hold across every instance.
    Database,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Unset: `memory` on SQLite (one instance), `database` on PostgreSQL (several may share
    /// it), see `store_for`.
    pub store: Option<LimitStore>,
    pub checkout: Limit,
    pub payment_attempt: Limit,
    pub account_lookup: Limit,
    pub order_lookup: Limit,
    pub refund_request: Limit,
    pub staff_login: Limit,
    pub support_message: Limit,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            store: None,
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
            support_message: Limit {
                per_minute: 3,
                burst: 5,
            },
        }
    }
}

impl RateLimitSettings {
    /// The store in force: the one configured, else the backend's default.
    pub fn store_for(&self, backend: crate::db::Backend) -> LimitStore {
        self.store.unwrap_or(match backend {
            crate::db::Backend::Sqlite => LimitStore::Memory,
            crate::db::Backend::Postgres => LimitStore::Database,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobSettings {
    /// Job workers per server process; 0 runs none (useful for tests of the queue itself).
    /// Most of a worker's time is spent waiting (on the supplier, the SMTP server, the
    /// database), so there are more of them than cores.
    pub workers: usize,
    /// How long a claimed job is reserved for one worker before another may take it. The
    /// worker renews it every `heartbeat_ms` while it runs, so this is how long a crashed
    /// instance's jobs wait for another worker, not a limit on how long a job may take.
    pub lease_seconds: u64,
    /// How often a worker renews the lease of the job it runs (at least three renewals fit in
    /// a lease, so one slow renewal does not lose it).
    pub heartbeat_ms: u64,
    pub max_attempts: u32,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// How often an idle worker looks for new jobs.
    pub poll_interval_ms: u64,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            workers: 8,
            // A crashed instance's jobs are free again at most 8 s after its last renewal, so
            // they are taken over within 10 s of the crash, the workers' polling included.
            lease_seconds: 8,
            heartbeat_ms: 2_000,
            max_attempts: 8,
            backoff_base_ms: 1_000,
            backoff_max_ms: 300_000,
            poll_interval_ms: 250,
        }
    }
}

impl JobSettings {
    /// Durations are already capped at ten years (`check_durations`), so these products fit.
    fn validate_lease(&self) -> Result<(), ConfigError> {
        if self.lease_seconds == 0 {
            return Err(ConfigError::new("jobs.lease_seconds", "must be at least 1"));
        }
        if self.heartbeat_ms < 10 || self.heartbeat_ms.saturating_mul(3) > self.lease_seconds * 1000
        {
            return Err(ConfigError::new(
                "jobs.heartbeat_ms",
                format!(
                    "must be at least 10 and at most a third of jobs.lease_seconds ({} ms)",
                    self.lease_seconds * 1000 / 3
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShopSettings {
    /// Buyers confirm they are at least this old at checkout.
    pub min_age: u32,
    /// Days after payment in which refunds are normally granted (stated in the refund policy,
    /// shown to agents).
    pub refund_window_days: u32,
    /// Where support answers from; shown on policy pages.
    pub support_email: String,
    /// A folder of operator-written Markdown policies (`terms.md`, `refunds.md`,
    /// `delivery.md`, `privacy.md`) replacing the shipped defaults.
    pub policies_dir: Option<PathBuf>,
    /// The delivery time promised while the shop has no delivery history yet, in minutes.
    pub default_delivery_minutes: u32,
}

impl Default for ShopSettings {
    fn default() -> Self {
        ShopSettings {
            min_age: 18,
            refund_window_days: 30,
            support_email: "support@coinfront.invalid".into(),
            policies_dir: None,
            default_delivery_minutes: 5,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FulfillmentSettings {
    /// Refund the buyer at once when coins could not be delivered after the last retry.
    pub auto_refund_on_failure: bool,
}

impl Default for FulfillmentSettings {
    fn default() -> Self {
        FulfillmentSettings {
            auto_refund_on_failure: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretSettings {
    /// Signs CSRF tokens and cookies. Generated into `data_dir` when not set.
    pub cookie_key: Option<Secret>,
    /// Signs payment webhooks. Generated into `data_dir` when not set.
    pub webhook_signing_key: Option<Secret>,
    /// Encrypts staff two-factor (TOTP) seeds in the database. Generated into `data_dir` when
    /// not set.
    pub totp_key: Option<Secret>,
}

/// `GET /metrics` (this instance) and `GET /metrics/shop` (shop-wide counts): off the public
/// shop unless a scraper presents this bearer token.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// With no token, both answer 404.
    pub token: Option<Secret>,
    /// The `instance` label of this instance's metrics; default: `{host name}:{port}`.
    pub instance: Option<String>,
}

impl MetricsSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(name) = &self.instance {
            if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
                return Err(ConfigError::new(
                    "metrics.instance",
                    "must be 1 to 100 characters, without control characters",
                ));
            }
        }
        Ok(())
    }
}

impl HttpSettings {
    pub fn tls(&self) -> bool {
        self.tls_cert.is_some()
    }

    /// Cookies are `Secure` whenever the shop is on HTTPS, built in or behind a proxy.
    pub fn effective_secure_cookies(&self) -> bool {
        self.secure_cookies || self.tls()
    }

    pub fn effective_hsts(&self) -> bool {
        self.hsts || self.tls()
    }
}

impl PaymentSettings {
    /// The methods offered in `currency`, in the shop's display order.
    pub fn methods_for(&self, currency: Currency) -> Vec<crate::domain::PaymentMethod> {
        let listed = self
            .methods
            .get(currency.code())
            .or_else(|| self.methods.get("default"));
        crate::domain::PaymentMethod::ALL
            .into_iter()
            .filter(|m| listed.is_some_and(|l| l.iter().any(|x| x == m.as_str())))
            .collect()
    }

    pub fn fee_for(&self, method: crate::domain::PaymentMethod) -> crate::domain::pricing::FeeRule {
        self.fees
            .get(method.as_str())
            .map(|f| crate::domain::pricing::FeeRule {
                percent: f.percent.0,
                fixed_base: f.fixed.0,
            })
            .unwrap_or_default()
    }
}

/// The support console: staff sessions, sign-in lock-outs and password hashing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleSettings {
    /// A session ends after this long without a request.
    pub idle_timeout_minutes: u64,
    /// And in any case this long after sign-in.
    pub absolute_timeout_hours: u64,
    /// Failed sign-ins in a row for one email from one address before that address pauses.
    pub lockout_after_failures: u32,
    pub lockout_minutes: u64,
    /// Failed sign-ins for one email from all addresses together after which every further
    /// attempt on it is delayed (1 s, 2 s, 4 s … up to `slowdown_max_seconds`): a distributed
    /// attack is slowed without ever locking the real user out.
    pub slowdown_after_failures: u32,
    pub slowdown_max_seconds: u64,
    /// Wrong two-factor codes in a row for one account (from anywhere; a correct password
    /// does not reset them) before its code step pauses for `lockout_minutes`.
    pub code_lockout_after_failures: u32,
    /// argon2id cost for new hashes; older, weaker hashes are upgraded at sign-in.
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// How long the first-start setup link works (it stops at first use anyway).
    pub setup_link_hours: u64,
    /// How often an instance checks for risk rules and prices saved on another instance.
    pub settings_reload_seconds: u64,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        ConsoleSettings {
            idle_timeout_minutes: 15,
            absolute_timeout_hours: 8,
            lockout_after_failures: 5,
            lockout_minutes: 5,
            slowdown_after_failures: 20,
            slowdown_max_seconds: 10,
            code_lockout_after_failures: 5,
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            setup_link_hours: 24,
            settings_reload_seconds: 2,
        }
    }
}

/// Staff notification digests: an email listing work that waits (held orders, refund
/// requests, support messages, dead jobs, screening events), per staff member.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationSettings {
    /// How often each instance looks for digests that are due.
    pub check_seconds: u64,
    /// A held order is listed once it has waited this long for review.
    pub held_after_minutes: u64,
    /// The digest intervals a staff member can choose from.
    pub every_minutes_choices: Vec<u64>,
    /// The interval of a staff member who has not chosen one (one of the choices).
    pub default_every_minutes: u64,
    /// Whether admins get digests before they choose (agents never do).
    pub admins_by_default: bool,
    /// Items listed per kind in one digest; the rest are counted.
    pub max_items: u32,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        NotificationSettings {
            check_seconds: 60,
            held_after_minutes: 30,
            every_minutes_choices: vec![15, 60, 240, 1440],
            default_every_minutes: 60,
            admins_by_default: true,
            max_items: 20,
        }
    }
}

impl NotificationSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.check_seconds == 0 {
            return Err(ConfigError::new(
                "notifications.check_seconds",
                "must be at least 1",
            ));
        }
        if self.every_minutes_choices.is_empty()
            || self.every_minutes_choices.len() > 10
            || self
                .every_minutes_choices
                .iter()
                .any(|m| !(1..=10_080).contains(m))
        {
            return Err(ConfigError::new(
                "notifications.every_minutes_choices",
                "needs 1 to 10 intervals, each 1 to 10080 minutes (a week)",
            ));
        }
        if !self
            .every_minutes_choices
            .contains(&self.default_every_minutes)
        {
            return Err(ConfigError::new(
                "notifications.default_every_minutes",
                "must be one of notifications.every_minutes_choices",
            ));
        }
        if !(1..=200).contains(&self.max_items) {
            return Err(ConfigError::new(
                "notifications.max_items",
                "must be 1 to 200",
            ));
        }
        Ok(())
    }
}

/// How long records the shop does not need for its accounts are kept. Orders, payments,
/// refunds, disputes, their events and the audit log are kept for good; this is about
/// everything else that grows with traffic. Pruning runs as a job, in batches.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// How often the pruning job runs (once per period across all instances).
    pub every_minutes: u64,
    /// Rows per delete statement: each batch is its own short transaction.
    pub batch_size: u32,
    /// Jobs that finished successfully, this long after they finished (dead jobs are kept).
    pub finished_jobs_days: u64,
    /// Per-address counts of rate-limited requests (the `rate_limited` rule reads the last
    /// hour, so at least 2).
    pub rate_limit_hours: u64,
    /// Staff sign-in throttle records (failed sign-ins per email and address), this long
    /// after their last failure and any lock-out ended.
    pub sign_in_records_days: u64,
    /// Staff sessions, this long after they ended (timed out).
    pub sessions_days: u64,
    /// Staff setup and password-reset links, this long after they were used or expired.
    pub staff_links_days: u64,
    /// The bodies of emails, this long after they were sent (or given up on); who, what
    /// kind and when are kept.
    pub email_bodies_days: u64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            every_minutes: 60,
            batch_size: 500,
            finished_jobs_days: 30,
            rate_limit_hours: 2,
            sign_in_records_days: 1,
            sessions_days: 1,
            staff_links_days: 30,
            email_bodies_days: 90,
        }
    }
}

impl RetentionSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=1440).contains(&self.every_minutes) {
            return Err(ConfigError::new(
                "retention.every_minutes",
                "must be 1 to 1440 (a day)",
            ));
        }
        if !(1..=10_000).contains(&self.batch_size) {
            return Err(ConfigError::new(
                "retention.batch_size",
                "must be 1 to 10000",
            ));
        }
        if self.rate_limit_hours < 2 {
            return Err(ConfigError::new(
                "retention.rate_limit_hours",
                "must be at least 2: the rate_limited risk rule reads the last hour",
            ));
        }
        for (key, days) in [
            ("retention.finished_jobs_days", self.finished_jobs_days),
            ("retention.sign_in_records_days", self.sign_in_records_days),
            ("retention.sessions_days", self.sessions_days),
            ("retention.staff_links_days", self.staff_links_days),
            ("retention.email_bodies_days", self.email_bodies_days),
        ] {
            if days == 0 {
                return Err(ConfigError::new(key, "must be at least 1"));
            }
        }
        Ok(())
    }
}

/// Durations are turned into milliseconds and added to the clock at run time: anything beyond
/// ten years is a typo, and refusing it keeps that arithmetic far from overflowing.
const MAX_DURATION_MS: u64 = 10 * 366 * 24 * 3_600_000;

impl Settings {
    fn check_durations(&self) -> Result<(), ConfigError> {
        const MS: u64 = 1;
        const SECOND: u64 = 1_000;
        const MINUTE: u64 = 60 * SECOND;
        const HOUR: u64 = 60 * MINUTE;
        const DAY: u64 = 24 * HOUR;
        let (p, j, c) = (&self.payments, &self.jobs, &self.console);
        let durations = [
            (
                "payments.order_expiry_minutes",
                p.order_expiry_minutes,
                MINUTE,
            ),
            (
                "payments.sandbox_bank_transfer_settle_seconds",
                p.sandbox_bank_transfer_settle_seconds,
                SECOND,
            ),
            (
                "payments.webhook_tolerance_seconds",
                p.webhook_tolerance_seconds,
                SECOND,
            ),
            (
                "payments.crypto_quote_minutes",
                p.crypto_quote_minutes,
                MINUTE,
            ),
            (
                "payments.sandbox_crypto_confirm_seconds",
                p.sandbox_crypto_confirm_seconds,
                SECOND,
            ),
            ("jobs.lease_seconds", j.lease_seconds, SECOND),
            ("jobs.heartbeat_ms", j.heartbeat_ms, MS),
            ("jobs.backoff_base_ms", j.backoff_base_ms, MS),
            ("jobs.backoff_max_ms", j.backoff_max_ms, MS),
            ("jobs.poll_interval_ms", j.poll_interval_ms, MS),
            (
                "supplier.sandbox_delay_ms",
                self.supplier.sandbox_delay_ms,
                MS,
            ),
            (
                "console.idle_timeout_minutes",
                c.idle_timeout_minutes,
                MINUTE,
            ),
            (
                "console.absolute_timeout_hours",
                c.absolute_timeout_hours,
                HOUR,
            ),
            ("console.lockout_minutes", c.lockout_minutes, MINUTE),
            ("console.setup_link_hours", c.setup_link_hours, HOUR),
            (
                "console.settings_reload_seconds",
                c.settings_reload_seconds,
                SECOND,
            ),
            (
                "notifications.check_seconds",
                self.notifications.check_seconds,
                SECOND,
            ),
            (
                "notifications.held_after_minutes",
                self.notifications.held_after_minutes,
                MINUTE,
            ),
            (
                "shop.refund_window_days",
                u64::from(self.shop.refund_window_days),
                DAY,
            ),
            (
                "shop.default_delivery_minutes",
                u64::from(self.shop.default_delivery_minutes),
                MINUTE,
            ),
            (
                "retention.finished_jobs_days",
                self.retention.finished_jobs_days,
                DAY,
            ),
            (
                "retention.rate_limit_hours",
                self.retention.rate_limit_hours,
                HOUR,
            ),
            (
                "retention.sign_in_records_days",
                self.retention.sign_in_records_days,
                DAY,
            ),
            ("retention.sessions_days", self.retention.sessions_days, DAY),
            (
                "retention.staff_links_days",
                self.retention.staff_links_days,
                DAY,
            ),
            (
                "retention.email_bodies_days",
                self.retention.email_bodies_days,
                DAY,
            ),
        ];
        for (key, value, unit_ms) in durations {
            if value
                .checked_mul(unit_ms)
                .is_none_or(|ms| ms > MAX_DURATION_MS)
            {
                return Err(ConfigError::new(key, "must be at most ten years"));
            }
        }
        Ok(())
    }
}

impl ConsoleSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.idle_timeout_minutes == 0 {
            return Err(ConfigError::new(
                "console.idle_timeout_minutes",
                "must be at least 1",
            ));
        }
        if self.absolute_timeout_hours == 0
            || self.absolute_timeout_hours.saturating_mul(60) < self.idle_timeout_minutes
        {
            return Err(ConfigError::new(
                "console.absolute_timeout_hours",
                "must be at least 1 and no shorter than the idle timeout",
            ));
        }
        // At most `failures` tries per lock-out period, plus one batch at the window's edge:
        // never more than 100 failed sign-ins an hour per account, and no lock-out longer
        // than an hour (so nobody can keep an agent out for long).
        let per_hour =
            u64::from(self.lockout_after_failures) * (60 / self.lockout_minutes.max(1) + 1);
        if self.lockout_after_failures == 0
            || !(1..=60).contains(&self.lockout_minutes)
            || per_hour > 100
        {
            return Err(ConfigError::new(
                "console.lockout_after_failures",
                "lockout_after_failures must be at least 1 and lockout_minutes 1 to 60, allowing at most 100 failed sign-ins an hour",
            ));
        }
        let code_per_hour =
            u64::from(self.code_lockout_after_failures) * (60 / self.lockout_minutes.max(1) + 1);
        if self.code_lockout_after_failures == 0 || code_per_hour > 100 {
            return Err(ConfigError::new(
                "console.code_lockout_after_failures",
                "must be at least 1, allowing at most 100 wrong two-factor codes an hour with lockout_minutes",
            ));
        }
        if self.slowdown_after_failures == 0 {
            return Err(ConfigError::new(
                "console.slowdown_after_failures",
                "must be at least 1",
            ));
        }
        if !(1..=60).contains(&self.slowdown_max_seconds) {
            return Err(ConfigError::new(
                "console.slowdown_max_seconds",
                "must be 1 to 60",
            ));
        }
        if self.argon2_memory_kib < 19_456
            || self.argon2_iterations < 2
            || self.argon2_parallelism < 1
        {
            return Err(ConfigError::new(
                "console.argon2_memory_kib",
                "argon2id must be at least m=19456 KiB, t=2, p=1",
            ));
        }
        if self.setup_link_hours == 0 {
            return Err(ConfigError::new(
                "console.setup_link_hours",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

impl PaymentSettings {
    fn check_methods_and_fees(&self) -> Result<(), ConfigError> {
        for (currency, methods) in &self.methods {
            if currency != "default" && Currency::from_str(currency).is_err() {
                return Err(ConfigError::new(
                    format!("payments.methods.{currency}"),
                    "not a currency code or \"default\"",
                ));
            }
            if let Some(bad) = methods
                .iter()
                .find(|m| crate::domain::PaymentMethod::from_str(m).is_err())
            {
                return Err(ConfigError::new(
                    format!("payments.methods.{currency}"),
                    format!("unknown method {bad:?}"),
                ));
            }
        }
        if !self.methods.contains_key("default") {
            return Err(ConfigError::new(
                "payments.methods",
                "needs a \"default\" list",
            ));
        }
        for (method, fee) in &self.fees {
            if crate::domain::PaymentMethod::from_str(method).is_err() {
                return Err(ConfigError::new(
                    format!("payments.fees.{method}"),
                    "unknown method",
                ));
            }
            if fee.percent.0 < Decimal::ZERO
                || fee.percent.0 > Decimal::from(50)
                || fee.fixed.0 < Decimal::ZERO
            {
                return Err(ConfigError::new(
                    format!("payments.fees.{method}"),
                    "percent must be 0 to 50 and fixed at least 0",
                ));
            }
        }
        Ok(())
    }

    fn check_provider(&self) -> Result<(), ConfigError> {
        match self.provider.as_str() {
            "sandbox" => Ok(()),
            "stripe" => self.stripe.validate(&self.methods),
            _ => Err(ConfigError::new(
                "payments.provider",
                "must be \"sandbox\" or \"stripe\"",
            )),
        }
    }
}

impl ShopSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.min_age == 0 || self.min_age > 99 {
            return Err(ConfigError::new("shop.min_age", "must be between 1 and 99"));
        }
        Ok(())
    }
}

impl SupplierSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.kind != "sandbox" {
            return Err(ConfigError::new(
                "supplier.kind",
                "only \"sandbox\" is available",
            ));
        }
        Ok(())
    }
}

impl MailSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if !matches!(self.transport.as_str(), "file" | "smtp") {
            return Err(ConfigError::new(
                "mail.transport",
                "must be \"file\" or \"smtp\"",
            ));
        }
        parse_mailbox("mail.from", &self.from)?;
        if let Some(reply_to) = &self.reply_to {
            parse_mailbox("mail.reply_to", reply_to)?;
        }
        if !matches!(self.smtp_security.as_str(), "starttls" | "tls" | "none") {
            return Err(ConfigError::new(
                "mail.smtp_security",
                "must be \"starttls\", \"tls\" or \"none\"",
            ));
        }
        Ok(())
    }
}

impl RateLimitSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        for (name, limit) in [
            ("checkout", self.checkout),
            ("payment_attempt", self.payment_attempt),
            ("account_lookup", self.account_lookup),
            ("order_lookup", self.order_lookup),
            ("refund_request", self.refund_request),
            ("staff_login", self.staff_login),
            ("support_message", self.support_message),
        ] {
            if limit.per_minute == 0 || limit.burst == 0 {
                return Err(ConfigError::new(
                    format!("rate_limits.{name}"),
                    "per_minute and burst must be at least 1",
                ));
            }
        }
        Ok(())
    }
}

impl HttpSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => Err(ConfigError::new(
                "http.tls_key",
                "is needed with http.tls_cert",
            )),
            (None, Some(_)) => Err(ConfigError::new(
                "http.tls_cert",
                "is needed with http.tls_key",
            )),
            _ => Ok(()),
        }
    }
}

impl JobSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_attempts == 0 {
            return Err(ConfigError::new("jobs.max_attempts", "must be at least 1"));
        }
        self.validate_lease()
    }
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
            // COINFRONT_LOG is the log filter (telemetry.rs), not a setting.
            .merge(Env::prefixed("COINFRONT_").split("__").ignore(&["log"]))
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
    /// before it serves anyone. Each section checks its own keys, in this order.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_durations()?;
        self.catalog.build()?;
        self.check_urls()?;
        self.payments.check_methods_and_fees()?;
        self.shop.validate()?;
        self.payments.check_provider()?;
        self.supplier.validate()?;
        self.mail.validate()?;
        self.rate_limits.validate()?;
        self.http.validate()?;
        if self.db_max_connections == 0 {
            return Err(ConfigError::new("db_max_connections", "must be at least 1"));
        }
        self.jobs.validate()?;
        self.risk.validate()?;
        self.console.validate()?;
        self.notifications.validate()?;
        self.retention.validate()?;
        self.metrics.validate()?;
        Ok(())
    }

    fn check_urls(&self) -> Result<(), ConfigError> {
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

/// Parses a configured address such as `Coin Shop <shop@example.com>`.
pub fn parse_mailbox(key: &str, value: &str) -> Result<lettre::message::Mailbox, ConfigError> {
    value
        .parse::<lettre::message::Mailbox>()
        .map_err(|e| ConfigError::new(key, format!("{value:?} is not an email address ({e})")))
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

    #[test]
    fn a_lease_must_fit_three_renewals() {
        for (line, ok) in [
            ("[jobs]\nlease_seconds = 8\nheartbeat_ms = 2000", true),
            ("[jobs]\nlease_seconds = 1\nheartbeat_ms = 333", true),
            ("[jobs]\nlease_seconds = 1\nheartbeat_ms = 334", false),
            ("[jobs]\nheartbeat_ms = 5", false),
            ("[jobs]\nlease_seconds = 0", false),
        ] {
            let result = Settings::from_figment(Figment::new().merge(Toml::string(line)));
            match (ok, result) {
                (true, Ok(_)) => {}
                (false, Err(e)) => assert!(e.key.starts_with("jobs."), "{line}: {e}"),
                (true, Err(e)) => panic!("{line}: {e}"),
                (false, Ok(_)) => panic!("{line} was accepted"),
            }
        }
    }

    #[test]
    fn the_rate_limit_store_defaults_by_backend() {
        use crate::db::Backend;
        let s = Settings::default();
        assert_eq!(s.rate_limits.store_for(Backend::Sqlite), LimitStore::Memory);
        assert_eq!(
            s.rate_limits.store_for(Backend::Postgres),
            LimitStore::Database
        );
        let fig = Figment::new().merge(Toml::string("[rate_limits]\nstore = \"database\""));
        let s = Settings::from_figment(fig).unwrap();
        assert_eq!(
            s.rate_limits.store_for(Backend::Sqlite),
            LimitStore::Database
        );
        let fig = Figment::new().merge(Toml::string("[rate_limits]\nstore = \"redis\""));
        assert_eq!(
            Settings::from_figment(fig).unwrap_err().key,
            "rate_limits.store"
        );
    }

    #[test]
    fn absurd_durations_are_refused_not_overflowed() {
        for line in [
            "console.absolute_timeout_hours = 307445734561825861",
            "payments.order_expiry_minutes = 9223372036854775807",
            "jobs.lease_seconds = 9223372036854775807",
        ] {
            let err = Settings::from_figment(Figment::new().merge(Toml::string(line))).unwrap_err();
            assert!(err.to_string().contains("ten years"), "{line}: {err}");
        }
    }
}
