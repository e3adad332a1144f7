//! One buyer's complete checkout against a running shop, and the settings the benchmarks run
//! the shop with (shared by `checkout` and `sustained`).

use anyhow::{bail, ensure, Context};
use coinfront::config::Settings;
use coinfront::db::Db;
use sqlx::Row;
use std::path::Path;
use std::time::Duration;

pub const WEBHOOK_KEY: &str = "bench-webhook-signing-key-0123456789abcdef";
pub const COOKIE_KEY: &str = "bench-cookie-key-0123456789abcdef0123456789";
pub const PACKAGES: [&str; 5] = ["70", "350", "700", "1400", "3500"];
pub const CURRENCIES: [&str; 3] = ["USD", "EUR", "GBP"];
pub const DOMAINS: [&str; 4] = ["gmail.com", "outlook.com", "yahoo.com", "icloud.com"];

/// Every rate limit the shop has: the benchmarks put each out of the way.
const LIMITS: [&str; 7] = [
    "checkout",
    "payment_attempt",
    "account_lookup",
    "order_lookup",
    "refund_request",
    "staff_login",
    "support_message",
];

/// What a benchmark chooses about the shop it runs; the rest is in [`config_toml`].
pub struct AppConfig<'a> {
    pub bind: &'a str,
    pub database_url: &'a str,
    pub data_dir: &'a Path,
    /// `None`: the shop's default.
    pub http_workers: Option<usize>,
    /// `None`: the shop's default.
    pub job_workers: Option<usize>,
}

/// The shop's settings as a config file (`coinfront --config FILE`): fixed keys, the sandbox
/// supplier without delay, rate limits out of the way, and 127.0.0.1 trusted as a proxy. The
/// buyers' addresses arrive as X-Forwarded-For from 127.0.0.1, as behind a reverse proxy, so
/// that each order comes from its own address (as real buyers do) instead of every order
/// piling onto one IP's velocity and rate-limit counters. Everything else keeps its default.
pub fn config_toml(c: &AppConfig) -> String {
    let quoted = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut t = format!(
        "bind = {}\ndatabase_url = {}\ndata_dir = {}\n",
        quoted(c.bind),
        quoted(c.database_url),
        quoted(&c.data_dir.display().to_string())
    );
    t += "\n[http]\ntrusted_proxies = [\"127.0.0.1\"]\n";
    if let Some(n) = c.http_workers {
        t += &format!("workers = {n}\n");
    }
    if let Some(n) = c.job_workers {
        t += &format!("\n[jobs]\nworkers = {n}\n");
    }
    t += "\n[supplier]\nsandbox_delay_ms = 0\n\n[rate_limits]\n";
    for limit in LIMITS {
        t += &format!("{limit} = {{ per_minute = 1000000, burst = 1000000 }}\n");
    }
    t += &format!(
        "\n[secrets]\ncookie_key = {}\nwebhook_signing_key = {}\n",
        quoted(COOKIE_KEY),
        quoted(WEBHOOK_KEY)
    );
    t
}

/// The same settings for an app built in this process.
pub fn settings(c: &AppConfig) -> anyhow::Result<Settings> {
    use figment::providers::{Format, Toml};
    Settings::from_figment(figment::Figment::new().merge(Toml::string(&config_toml(c))))
        .map_err(|e| anyhow::anyhow!("bench settings: {e}"))
}

/// A buyer: its own cookie jar and keep-alive connection; redirects are read, not followed.
pub fn buyer_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
}

/// The shop being checked out at.
pub struct Shop {
    /// `http://127.0.0.1:{port}`.
    pub base: String,
    /// Reads the provider's record of a session (a pool of its own, like a separate system).
    pub provider_db: Db,
}

/// One complete checkout, as buyer number `i`, as a browser and the payment provider would do it:
///   GET /  →  POST /checkout  →  POST /checkout/confirm (303 to /sandbox/pay/{session})
///   →  POST /webhooks/payments/sandbox with a signed `payment.succeeded` event (200).
/// The webhook stands in for the provider's delivery: the order, amount and currency come from
/// the provider's own record (`sandbox_sessions`, by primary key), signed with the shop's key.
pub async fn checkout(client: &reqwest::Client, shop: &Shop, i: usize) -> anyhow::Result<()> {
    let n = i + 1;
    let ip = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
    let username = format!("bench.buyer_{n}");
    let email = format!("buyer{n}@{}", DOMAINS[i % DOMAINS.len()]);
    let package = PACKAGES[i % PACKAGES.len()];
    let currency = CURRENCIES[i % CURRENCIES.len()];
    let url = |path: &str| format!("{}{path}", shop.base);

    let resp = client
        .get(url(&format!("/?currency={currency}")))
        .header("X-Forwarded-For", &ip)
        .send()
        .await?;
    ensure!(resp.status() == 200, "GET / answered {}", resp.status());
    let html = resp.text().await?;
    let csrf = hidden(&html, "csrf_token").context("catalog page without csrf_token")?;

    let resp = client
        .post(url("/checkout"))
        .header("X-Forwarded-For", &ip)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("package", package),
            ("coins", ""),
            ("tiktok_username", &username),
            ("email", &email),
            ("currency", currency),
            ("payment_method", "card"),
            ("age_confirmed", "yes"),
        ])
        .send()
        .await?;
    ensure!(
        resp.status() == 200,
        "POST /checkout answered {}",
        resp.status()
    );
    let html = resp.text().await?;
    let field =
        |name: &str| hidden(&html, name).with_context(|| format!("confirm page without {name}"));
    let form = [
        ("csrf_token", field("csrf_token")?),
        ("quote", field("quote")?),
        ("shown_total_minor", field("shown_total_minor")?),
        ("shown_currency", field("shown_currency")?),
    ];

    let resp = client
        .post(url("/checkout/confirm"))
        .header("X-Forwarded-For", &ip)
        .form(&form)
        .send()
        .await?;
    ensure!(
        resp.status() == 303,
        "POST /checkout/confirm answered {} (expected 303 to the payment page)",
        resp.status()
    );
    let location = resp
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default();
    let Some((_, session)) = location.split_once("/sandbox/pay/") else {
        bail!("confirm redirected to {location:?}, not to /sandbox/pay/…");
    };
    let session = session.to_owned();

    // The provider's record of the session: which order, how much.
    let row = sqlx::query(
        "SELECT order_reference, amount_minor, currency FROM sandbox_sessions WHERE id = $1",
    )
    .bind(&session)
    .fetch_one(shop.provider_db.pool())
    .await
    .context("reading the payment session")?;
    let order_id: String = row.try_get("order_reference")?;
    let amount: i64 = row.try_get("amount_minor")?;
    let paid_currency: String = row.try_get("currency")?;
    let body = serde_json::json!({
        "id": format!("evt_bench_{}", uuid::Uuid::now_v7().simple()),
        "type": "payment.succeeded",
        "created": chrono::Utc::now().timestamp(),
        "data": {
            "order_reference": order_id,
            "session_id": session,
            "object_id": format!("pay_bench_{}", uuid::Uuid::now_v7().simple()),
            "method": "card",
            "amount_minor": amount,
            "currency": paid_currency,
            "card": {
                "brand": "visa",
                "last4": "4242",
                "country": "US",
                "fingerprint": format!("fp_bench_{n:08}"),
            }
        }
    })
    .to_string();
    let signature = coinfront::payments::signature::sign(
        WEBHOOK_KEY.as_bytes(),
        chrono::Utc::now().timestamp(),
        body.as_bytes(),
    );
    let resp = client
        .post(url("/webhooks/payments/sandbox"))
        .header("content-type", "application/json")
        .header("Coinfront-Signature", signature)
        .body(body)
        .send()
        .await?;
    ensure!(
        resp.status() == 200,
        "the paid webhook answered {}",
        resp.status()
    );
    Ok(())
}

/// The value of a hidden input in a page.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\" value=\"");
    let start = html.find(&needle)? + needle.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}
