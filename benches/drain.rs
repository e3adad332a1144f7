//! Fulfillment drain (issue 5): a backlog of paid orders worked off by the app's job workers
//! with the sandbox supplier's delay at zero — deliveries/s and emails/s.
//!
//!     cargo bench --bench drain
//!     BENCH_ORDERS=500 cargo bench --bench drain                              (a quick check)
//!     BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench drain
//!
//! Environment: BENCH_ORDERS (paid orders, default 5000), BENCH_JOB_WORKERS (default: the
//! app's own default), BENCH_POSTGRES_URL (also run on a fresh PostgreSQL database
//! `cf_bench_<random>` made from this URL and dropped at the end), BENCH_LOG=1 (the app's logs).
//!
//! The backlog is made the way the shop makes it, untimed: an app with its job workers off
//! creates each order (awaiting payment, with the TikTok account the sandbox supplier knows)
//! and applies a signed-off `payment.succeeded` event through the webhook's own code
//! (`orders::payment_events::apply`), which marks the order paid and, in that transaction,
//! queues its screening job and its "payment received" email. That app stops; then the
//! measured app starts on the same database with its workers on, and the clock runs until
//! every order is delivered and every email is sent (to `.eml` files, the default transport).
//! Per order the workers run: screening (risk signals + rules) → `queued`, fulfillment
//! (account re-check, supplier credit, `delivered`, receipt queued) and two email sends.

mod common;

use anyhow::{ensure, Context};
use coinfront::clock::SystemClock;
use coinfront::config::{Secret, Settings};
use coinfront::db::orders::{self, Order};
use coinfront::domain::order_token::order_token;
use coinfront::domain::{ids, Coins, Currency, Money, OrderStatus, PaymentMethod, TikTokUsername};
use coinfront::orders::payment_events::{self, Applied};
use coinfront::payments::{CardDetails, EventData, EventKind, ProviderEvent};
use coinfront::startup::{AppState, Application};
use common::{Engine, Scratch};
use sqlx::Row;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PACKAGES: [u64; 5] = [70, 350, 700, 1_400, 3_500];
const CURRENCIES: [Currency; 3] = [Currency::Usd, Currency::Eur, Currency::Gbp];
const DOMAINS: [&str; 4] = ["gmail.com", "outlook.com", "yahoo.com", "icloud.com"];
/// Emails per order: "payment received" and the receipt.
const EMAILS_PER_ORDER: i64 = 2;
const TIMEOUT: Duration = Duration::from_secs(900);

struct Config {
    orders: usize,
    job_workers: usize,
    postgres: Option<String>,
}

struct Drained {
    engine: Engine,
    orders: usize,
    /// From the workers' start until the last order was delivered.
    deliveries: Duration,
    /// … until the last email was sent.
    emails: Duration,
    emails_sent: i64,
    jobs_run: i64,
    load: String,
}

fn main() -> ExitCode {
    let cfg = Config {
        orders: common::env_usize("BENCH_ORDERS", 5000).max(1),
        job_workers: common::env_usize("BENCH_JOB_WORKERS", Settings::default().jobs.workers)
            .max(1),
        postgres: common::postgres_admin_url(),
    };
    if std::env::var_os("BENCH_LOG").is_some() {
        coinfront::telemetry::init(coinfront::config::LogFormat::Pretty);
    }
    println!("coinfront fulfillment drain benchmark (issue 5)");
    println!(
        "  {} paid orders queued as the paid webhook leaves them, then drained by {} job workers; supplier delay 0; emails to .eml files",
        cfg.orders, cfg.job_workers
    );
    println!(
        "  per order: screen_order → fulfill_order → 2 × send_email (payment received, receipt)"
    );
    println!("  machine at start: {}", common::machine_load());
    let engines = common::engines(&cfg.postgres);
    let mut results = Vec::new();
    for engine in engines {
        println!("\n[{}] filling and draining…", engine.name());
        match run_engine(&cfg, engine) {
            Ok(r) => results.push(r),
            Err(e) => {
                eprintln!("[{}] failed: {e:#}", engine.name());
                print_table(&results);
                return ExitCode::FAILURE;
            }
        }
    }
    print_table(&results);
    println!("machine at end: {}", common::machine_load());
    ExitCode::SUCCESS
}

fn run_engine(cfg: &Config, engine: Engine) -> anyhow::Result<Drained> {
    let postgres = matches!(engine, Engine::Postgres)
        .then(|| cfg.postgres.clone())
        .flatten();
    let mut scratch = Scratch::new("cf-bench-drain-", postgres)?;
    let result = (|| {
        let url = scratch.database("drain")?;
        let data = scratch.path().join("data");
        // Each phase on its own runtime: ending it ends every task the app started.
        let rt = common::runtime(2);
        let filled = rt.block_on(common::or_interrupted(fill(cfg, &url, &data)));
        rt.shutdown_timeout(Duration::from_secs(10));
        filled?;
        let rt = common::runtime(2);
        let drained = rt.block_on(common::or_interrupted(drain(cfg, engine, &url, &data)));
        rt.shutdown_timeout(Duration::from_secs(10));
        drained
    })();
    scratch.close()?;
    result
}

fn settings(url: &str, data: &Path, job_workers: usize) -> Settings {
    let mut s = Settings {
        bind: "127.0.0.1:0".parse().expect("address"),
        data_dir: data.to_path_buf(),
        database_url: Some(url.to_owned()),
        ..Settings::default()
    };
    // The same keys in both phases, so the outbox's links and signatures agree.
    s.secrets.cookie_key = Some(Secret::new("bench-cookie-key-0123456789abcdef0123456789"));
    s.secrets.webhook_signing_key = Some(Secret::new("bench-webhook-signing-key-0123456789abcdef"));
    s.supplier.sandbox_delay_ms = 0;
    s.jobs.workers = job_workers;
    s.http.workers = Some(1);
    s
}

/// Creates the paid backlog through the shop's own code, with the workers off.
async fn fill(cfg: &Config, url: &str, data: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let app = Application::build(settings(url, data, 0), Arc::new(SystemClock))
        .await
        .context("building the filling app")?;
    let state = app.state();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (state, next) = (state.clone(), next.clone());
            let total = cfg.orders;
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= total {
                        return Ok::<(), anyhow::Error>(());
                    }
                    paid_order(&state, i)
                        .await
                        .with_context(|| format!("order #{i}"))?;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let count = |sql: &'static str| {
        let pool = state.db.pool().clone();
        async move {
            sqlx::query(sql)
                .fetch_one(&pool)
                .await?
                .try_get::<i64, _>(0)
        }
    };
    let paid = count("SELECT COUNT(*) FROM orders WHERE status = 'paid'").await?;
    let jobs = count("SELECT COUNT(*) FROM jobs WHERE status = 'pending'").await?;
    ensure!(
        paid == cfg.orders as i64,
        "{paid} orders paid, expected {}",
        cfg.orders
    );
    println!(
        "  backlog: {paid} paid orders, {jobs} pending jobs (made in {:.1} s, untimed)",
        started.elapsed().as_secs_f64()
    );
    state.db.close().await;
    Ok(())
}

/// One order awaiting payment, then its successful payment applied as the webhook applies it.
async fn paid_order(state: &AppState, i: usize) -> anyhow::Result<()> {
    let n = i + 1;
    let username = format!("drain.buyer_{n}");
    let account = state
        .supplier
        .lookup_account(&TikTokUsername::parse(&username)?)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?
        .context("the sandbox supplier knows every plain username")?;
    let live = state.live.current();
    let coins = Coins::new(PACKAGES[i % PACKAGES.len()]);
    let currency = CURRENCIES[i % CURRENCIES.len()];
    let price = live.catalog.quote(coins, currency).context("pricing")?;
    let now = state.now_ms();
    let order = Order {
        id: ids::new_id(),
        order_number: ids::new_order_number(),
        idempotency_key: ids::new_secret_token(),
        status: OrderStatus::AwaitingPayment,
        coins,
        amount: price.total,
        fee_minor: 0,
        base_amount_minor: Money::round_from_major(price.base_total, live.catalog.base_currency())
            .map_or(0, |m| m.minor()),
        tiktok_username: username.clone(),
        tiktok_account_id: account.account_id,
        tiktok_display_name: account.display_name,
        email: format!("buyer{n}@{}", DOMAINS[i % DOMAINS.len()]),
        payment_method: PaymentMethod::Card,
        client_ip: format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255),
        age_confirmed_at: Some(now),
        min_age: Some(18),
        client_amount_minor: Some(price.total.minor()),
        client_currency: Some(currency.code().into()),
        provider: "sandbox".into(),
        provider_session_id: Some(format!("cs_test_{}", ids::new_secret_token())),
        refunded_minor: 0,
        created_at: now,
        updated_at: now,
        expires_at: now + 30 * 60_000,
        paid_at: None,
        delivered_at: None,
    };
    let mut tx = state.db.begin().await?;
    let token = order_token(&state.secrets.cookie_key, &order.idempotency_key);
    orders::insert(&mut tx, &order, &ids::token_hash(&token)).await?;
    tx.commit().await?;
    let event = ProviderEvent {
        id: format!("evt_drain_{n}"),
        kind: EventKind::PaymentSucceeded,
        created: now / 1000,
        data: EventData {
            order_reference: order.id.clone(),
            session_id: order.provider_session_id.clone().unwrap_or_default(),
            object_id: format!("pay_drain_{n}"),
            method: "card".into(),
            amount_minor: order.amount.minor(),
            currency: currency.code().into(),
            failure_code: None,
            failure_message: None,
            card: Some(CardDetails {
                brand: "visa".into(),
                last4: "4242".into(),
                country: "US".into(),
                fingerprint: format!("fp_drain_{n:08}"),
                bin: Some("424242".into()),
            }),
            reference: None,
            late: false,
            payment_ref: None,
            dispute: None,
        },
    };
    let applied = payment_events::apply(state, "sandbox", &event).await?;
    ensure!(
        matches!(applied, Applied::Paid),
        "the payment was applied as {applied:?}"
    );
    Ok(())
}

/// Starts the app with its workers on and times the backlog's drain.
async fn drain(cfg: &Config, engine: Engine, url: &str, data: &Path) -> anyhow::Result<Drained> {
    let started = Instant::now();
    let app = Application::build(settings(url, data, cfg.job_workers), Arc::new(SystemClock))
        .await
        .context("building the draining app")?;
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    let total = cfg.orders as i64;
    let pool = state.db.pool().clone();
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query(sql)
                .fetch_one(&pool)
                .await?
                .try_get::<i64, _>(0)
        }
    };
    let (mut deliveries, mut emails) = (None, None);
    while started.elapsed() < TIMEOUT && (deliveries.is_none() || emails.is_none()) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if deliveries.is_none()
            && count("SELECT COUNT(*) FROM orders WHERE status = 'delivered'").await? == total
        {
            deliveries = Some(started.elapsed());
        }
        if emails.is_none()
            && count("SELECT COUNT(*) FROM emails WHERE sent_at IS NOT NULL").await?
                == total * EMAILS_PER_ORDER
        {
            emails = Some(started.elapsed());
        }
    }
    let statuses: Vec<String> = common::order_statuses(&pool).await?;
    let (Some(deliveries), Some(emails)) = (deliveries, emails) else {
        anyhow::bail!(
            "not drained after {} s: orders {}",
            TIMEOUT.as_secs(),
            statuses.join(", ")
        );
    };
    let load = common::machine_load();
    let emails_sent = count("SELECT COUNT(*) FROM emails WHERE sent_at IS NOT NULL").await?;
    let jobs_run = count("SELECT COUNT(*) FROM jobs WHERE status = 'done'").await?;
    let credits = count("SELECT COUNT(*) FROM sandbox_ledger").await?;
    ensure!(
        credits == total,
        "{credits} supplier credits for {total} orders"
    );
    let files = std::fs::read_dir(data.join("outbox"))
        .map(|d| d.count() as i64)
        .unwrap_or(0);
    ensure!(
        files == emails_sent,
        "{files} .eml files for {emails_sent} sent emails"
    );
    println!(
        "  drained: orders {}; {credits} supplier credits; {emails_sent} emails ({files} .eml files); {jobs_run} jobs done",
        statuses.join(", ")
    );
    Ok(Drained {
        engine,
        orders: cfg.orders,
        deliveries,
        emails,
        emails_sent,
        jobs_run,
        load,
    })
}

fn print_table(results: &[Drained]) {
    if results.is_empty() {
        return;
    }
    println!(
        "\nengine    | orders | all delivered | deliveries/s | all emails sent | emails/s | jobs/s"
    );
    println!(
        "----------|--------|---------------|--------------|-----------------|----------|-------"
    );
    for r in results {
        let per_sec = |n: f64, d: Duration| n / d.as_secs_f64();
        println!(
            "{:<9} | {:>6} | {:>11.2} s | {:>12.1} | {:>13.2} s | {:>8.1} | {:>6.1}",
            r.engine.name(),
            r.orders,
            r.deliveries.as_secs_f64(),
            per_sec(r.orders as f64, r.deliveries),
            r.emails.as_secs_f64(),
            per_sec(r.emails_sent as f64, r.emails),
            per_sec(r.jobs_run as f64, r.emails.max(r.deliveries)),
        );
        println!("          | load during the drain: {}", r.load);
    }
}
