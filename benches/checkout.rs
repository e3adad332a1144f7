//! Checkout throughput (issue 3): complete checkouts over real HTTP against the real app, beside
//! the raw commit rate of the same database engine measured in the same run.
//!
//!     cargo bench --bench checkout
//!     BENCH_ORDERS=200 BENCH_WARMUP=20 cargo bench --bench checkout        (a quick check)
//!     BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench checkout
//!
//! Environment: BENCH_ORDERS (measured orders, default 2000), BENCH_WARMUP (orders before the
//! measurement, default 100), BENCH_CONCURRENCY (virtual buyers, default 32), BENCH_JOB_WORKERS
//! (the app's job workers, default: the app's own default), BENCH_POSTGRES_URL (also run on a
//! fresh PostgreSQL database `cf_bench_<random>` made from this URL and dropped at the end),
//! BENCH_LOG=1 (the app's logs on stderr, filtered by COINFRONT_LOG).
//!
//! One order, as a browser and the payment provider would do it:
//!   GET /  →  POST /checkout  →  POST /checkout/confirm (303 to /sandbox/pay/{session})
//!   →  POST /webhooks/payments/sandbox with a signed `payment.succeeded` event (200).
//! The webhook stands in for the provider's delivery: the benchmark reads the session's order,
//! amount and currency from the provider's own record (`sandbox_sessions`, by primary key),
//! signs the event with the shop's webhook key and posts it.
//!
//! The raw rate: a fresh database of the same engine with the same pool, 32 tasks writing, per
//! order, the fewest durable commits a checkout needs — the order with its assessment and
//! payment session at confirm, the payment with its paid transition and screening job at the
//! webhook — with the shop's own write functions and nothing else (no HTTP, no reads, no risk
//! screening, no templates, no payment provider of the shop's own).

mod common;

use anyhow::{ensure, Context};
use coinfront::clock::SystemClock;
use coinfront::config::Settings;
use coinfront::db::orders::{self, Order};
use coinfront::db::payments::{self, PaymentRecord};
use coinfront::db::Db;
use coinfront::domain::{ids, Coins, Currency, Money, OrderStatus, PaymentMethod};
use coinfront::jobs::{self, NewJob};
use coinfront::risk::{self, Stage};
use coinfront::startup::Application;
use common::shop::{self, AppConfig, Shop, DOMAINS};
use common::{ms, percentile, Engine, Scratch};
use sqlx::Row;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const GOAL_PERCENT: f64 = 50.0;
/// The fewest durable commits a checkout needs (see `raw_order`): the order at confirm, the
/// payment at the paid webhook.
const COMMITS_PER_ORDER: usize = 2;

struct Config {
    orders: usize,
    warmup: usize,
    concurrency: usize,
    job_workers: usize,
    postgres: Option<String>,
}

struct AppResult {
    orders: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// Orders delivered (fulfilled by the job workers) when the measured window ended.
    delivered_at_end: i64,
    /// How long after the window the job queue took to empty.
    drain: Option<Duration>,
    statuses: Vec<String>,
    load_during: String,
}

struct RawResult {
    orders: usize,
    elapsed: Duration,
}

struct EngineRun {
    engine: Engine,
    app: AppResult,
    raw: RawResult,
}

fn main() -> ExitCode {
    let cfg = Config {
        orders: common::env_usize("BENCH_ORDERS", 2000).max(1),
        warmup: common::env_usize("BENCH_WARMUP", 100),
        concurrency: common::env_usize("BENCH_CONCURRENCY", 32).max(1),
        job_workers: common::env_usize("BENCH_JOB_WORKERS", Settings::default().jobs.workers),
        postgres: common::postgres_admin_url(),
    };
    if std::env::var_os("BENCH_LOG").is_some() {
        coinfront::telemetry::init(coinfront::config::LogFormat::Pretty);
    }
    println!("coinfront checkout benchmark (issue 3)");
    println!(
        "  {} orders measured (+{} warm-up), {} concurrent virtual buyers, each with its own cookie jar and keep-alive connection",
        cfg.orders, cfg.warmup, cfg.concurrency
    );
    println!("  one order: GET / -> POST /checkout -> POST /checkout/confirm (303 to /sandbox/pay/…) -> signed payment.succeeded webhook (200)");
    println!(
        "  app: in-process, 127.0.0.1, http.workers 2, pool {} connections, supplier delay 0, rate limits out of the way",
        Settings::default().db_max_connections
    );
    println!(
        "  job workers ON ({}): each paid webhook queues screening, then fulfillment; they run during the window,",
        cfg.job_workers
    );
    println!("  but the measured path ends when the paid webhook answers 200");
    println!("  machine at start: {}", common::machine_load());
    let engines = common::engines(&cfg.postgres);
    let mut rows = Vec::new();
    for engine in engines {
        println!("\n[{}] running…", engine.name());
        match run_engine(&cfg, engine) {
            Ok(row) => {
                print_details(&row);
                rows.push(row);
            }
            Err(e) => {
                eprintln!("[{}] failed: {e:#}", engine.name());
                print_table(&rows);
                return ExitCode::FAILURE;
            }
        }
    }
    print_table(&rows);
    println!("machine at end: {}", common::machine_load());
    ExitCode::SUCCESS
}

/// Both phases on one engine, each on its own runtime so that ending it ends every task it
/// started (the app's HTTP server and job workers included), then the clean-up.
fn run_engine(cfg: &Config, engine: Engine) -> anyhow::Result<EngineRun> {
    let postgres = matches!(engine, Engine::Postgres)
        .then(|| cfg.postgres.clone())
        .flatten();
    let mut scratch = Scratch::new("cf-bench-checkout-", postgres)?;
    let result = (|| {
        let app_url = scratch.database("app")?;
        let raw_url = scratch.database("raw")?;
        let rt = common::runtime(2);
        let app = rt.block_on(common::or_interrupted(app_phase(
            cfg,
            app_url,
            &scratch.path().join("data"),
        )));
        rt.shutdown_timeout(Duration::from_secs(10));
        let app = app?;
        let rt = common::runtime(2);
        let raw = rt.block_on(common::or_interrupted(raw_phase(cfg, raw_url)));
        rt.shutdown_timeout(Duration::from_secs(10));
        Ok(EngineRun {
            engine,
            app,
            raw: raw?,
        })
    })();
    scratch.close()?;
    result
}

/// What one virtual buyer needs.
struct Shared {
    shop: Shop,
    next: AtomicUsize,
    end: AtomicUsize,
    stop: AtomicBool,
}

async fn app_phase(cfg: &Config, db_url: String, data_dir: &Path) -> anyhow::Result<AppResult> {
    let settings = shop::settings(&AppConfig {
        bind: "127.0.0.1:0",
        database_url: &db_url,
        data_dir,
        http_workers: Some(2),
        job_workers: Some(cfg.job_workers),
    })?;
    let app = Application::build(settings, Arc::new(SystemClock))
        .await
        .context("building the app")?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    let shared = Arc::new(Shared {
        shop: Shop {
            base,
            provider_db: Db::connect(&db_url, 4).await?,
        },
        next: AtomicUsize::new(0),
        end: AtomicUsize::new(cfg.warmup),
        stop: AtomicBool::new(false),
    });
    let clients = (0..cfg.concurrency)
        .map(|_| shop::buyer_client())
        .collect::<Result<Vec<_>, _>>()?;

    if cfg.warmup > 0 {
        drive(&shared, &clients).await?;
    }
    shared.end.store(cfg.warmup + cfg.orders, Ordering::SeqCst);
    let started = Instant::now();
    let mut latencies = drive(&shared, &clients).await?;
    let elapsed = started.elapsed();
    let load_during = common::machine_load();
    latencies.sort();

    let pool = state.db.pool();
    let count = |sql: &'static str| async move {
        sqlx::query(sql)
            .fetch_one(pool)
            .await
            .and_then(|r| r.try_get::<i64, _>(0))
    };
    let delivered_at_end = count("SELECT COUNT(*) FROM orders WHERE status = 'delivered'").await?;
    let total = (cfg.warmup + cfg.orders) as i64;
    let paid = count("SELECT COUNT(*) FROM orders WHERE paid_at IS NOT NULL").await?;
    let applied = count("SELECT COUNT(*) FROM webhook_events WHERE outcome = 'paid'").await?;
    ensure!(
        paid == total && applied == total,
        "expected {total} paid orders, found {paid} paid and {applied} webhooks applied as paid"
    );

    // Let the job workers finish what the window left them, then look at where orders ended.
    let waited = Instant::now();
    let mut drain = None;
    while waited.elapsed() < Duration::from_secs(180) {
        let open =
            count("SELECT COUNT(*) FROM jobs WHERE status IN ('pending', 'running')").await?;
        if open == 0 {
            drain = Some(waited.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let statuses = common::order_statuses(pool).await?;
    shared.shop.provider_db.close().await;
    Ok(AppResult {
        orders: cfg.orders,
        elapsed,
        latencies,
        delivered_at_end,
        drain,
        statuses,
        load_during,
    })
}

/// Runs the buyers until the order counter reaches `end`; returns each checkout's duration.
async fn drive(shared: &Arc<Shared>, clients: &[reqwest::Client]) -> anyhow::Result<Vec<Duration>> {
    let tasks: Vec<_> = clients
        .iter()
        .map(|client| {
            let shared = shared.clone();
            let client = client.clone();
            tokio::spawn(async move {
                let mut done = Vec::new();
                loop {
                    if shared.stop.load(Ordering::SeqCst) {
                        return Ok(done);
                    }
                    let i = shared.next.fetch_add(1, Ordering::SeqCst);
                    if i >= shared.end.load(Ordering::SeqCst) {
                        // Give the number back so the next round starts where this one ended.
                        shared.next.fetch_sub(1, Ordering::SeqCst);
                        return Ok(done);
                    }
                    let t = Instant::now();
                    if let Err(e) = shop::checkout(&client, &shared.shop, i).await {
                        shared.stop.store(true, Ordering::SeqCst);
                        return Err(e.context(format!("order #{i}")));
                    }
                    done.push(t.elapsed());
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut first_error = None;
    for t in tasks {
        match t.await? {
            Ok(d) => all.extend(d),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(all),
    }
}

async fn raw_phase(cfg: &Config, db_url: String) -> anyhow::Result<RawResult> {
    let db = Db::connect(&db_url, Settings::default().db_max_connections).await?;
    db.migrate().await?;
    let proto = Arc::new(RawProto::new());
    let run = |from: usize, to: usize| {
        let next = Arc::new(AtomicUsize::new(from));
        let tasks: Vec<_> = (0..cfg.concurrency)
            .map(|_| {
                let (db, next, proto) = (db.clone(), next.clone(), proto.clone());
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= to {
                            return Ok::<(), anyhow::Error>(());
                        }
                        raw_order(&db, &proto, i).await?;
                    }
                })
            })
            .collect();
        async move {
            for t in tasks {
                t.await??;
            }
            Ok::<(), anyhow::Error>(())
        }
    };
    run(0, cfg.warmup).await?;
    let started = Instant::now();
    run(cfg.warmup, cfg.warmup + cfg.orders).await?;
    let elapsed = started.elapsed();
    let paid: i64 = sqlx::query("SELECT COUNT(*) FROM orders WHERE paid_at IS NOT NULL")
        .fetch_one(db.pool())
        .await?
        .try_get(0)?;
    ensure!(
        paid == (cfg.warmup + cfg.orders) as i64,
        "raw: {paid} orders paid"
    );
    db.close().await;
    Ok(RawResult {
        orders: cfg.orders,
        elapsed,
    })
}

/// The parts of a raw order that do not change: a realistic assessment and its signals.
struct RawProto {
    assessment: risk::Assessment,
    signals: risk::Signals,
}

impl RawProto {
    fn new() -> Self {
        let settings = Settings::default();
        let catalog = settings.catalog.build().expect("default catalog");
        let price = catalog
            .quote(Coins::new(700), Currency::Usd)
            .expect("a price");
        let signals = risk::Signals {
            coins: 700,
            amount_base_minor: price.total.minor(),
            price_per_coin: price.base_per_coin(),
            reference_price_per_coin: catalog.reference_price_per_coin(),
            ..Default::default()
        };
        let assessment = risk::rules::evaluate(&signals, &settings.risk);
        RawProto {
            assessment,
            signals,
        }
    }
}

/// The fewest durable commits of one checkout:
/// 1. confirm: the order with its payment session, its `order_created` event and the
///    pre-payment assessment (one transaction);
/// 2. the paid webhook: its `webhook_events` row, the payment, the guarded paid update and its
///    event, the screening job, the webhook's outcome (one transaction).
///
/// A payment provider's own record of the session is the provider's (a real one keeps it on
/// its side), so it is not among them.
async fn raw_order(db: &Db, proto: &RawProto, i: usize) -> anyhow::Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    let n = i + 1;
    let amount = Money::from_minor(728, Currency::Usd);
    let order = Order {
        id: ids::new_id(),
        order_number: ids::new_order_number(),
        idempotency_key: ids::new_secret_token(),
        status: OrderStatus::AwaitingPayment,
        coins: Coins::new(700),
        amount,
        fee_minor: 0,
        base_amount_minor: 728,
        tiktok_username: format!("bench.buyer_{n}"),
        tiktok_account_id: format!("tt_{n:016x}"),
        tiktok_display_name: format!("Bench Buyer {n}"),
        email: format!("buyer{n}@{}", DOMAINS[i % DOMAINS.len()]),
        payment_method: PaymentMethod::Card,
        client_ip: format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255),
        age_confirmed_at: Some(now),
        min_age: Some(18),
        client_amount_minor: Some(728),
        client_currency: Some("USD".into()),
        provider: "sandbox".into(),
        provider_session_id: Some(format!("cs_test_{}", ids::new_secret_token())),
        refunded_minor: 0,
        created_at: now,
        updated_at: now,
        expires_at: now + 30 * 60_000,
        paid_at: None,
        delivered_at: None,
    };
    let token = ids::new_secret_token();

    let mut tx = db.begin().await?;
    ensure!(
        orders::insert(&mut tx, &order, &ids::token_hash(&token)).await?,
        "raw: order not inserted"
    );
    risk::record(
        &mut tx,
        &order.id,
        Stage::PrePayment,
        &proto.assessment,
        &proto.signals,
        now,
    )
    .await?;
    tx.commit().await?;

    let event_id = format!("evt_bench_{}", uuid::Uuid::now_v7().simple());
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO webhook_events (provider, event_id, event_type, order_id, received_at, outcome)
         VALUES ($1, $2, $3, $4, $5, 'processing') ON CONFLICT DO NOTHING",
    )
    .bind("sandbox")
    .bind(&event_id)
    .bind("payment.succeeded")
    .bind(&order.id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let payment = PaymentRecord {
        id: ids::new_id(),
        order_id: order.id.clone(),
        provider: "sandbox".into(),
        provider_ref: format!("pay_bench_{}", uuid::Uuid::now_v7().simple()),
        method: "card".into(),
        status: "succeeded".into(),
        amount_minor: amount.minor(),
        currency: "USD".into(),
        failure_code: None,
        card_brand: Some("visa".into()),
        card_last4: Some("4242".into()),
        card_country: Some("US".into()),
        card_fingerprint: Some(format!("fp_bench_{n:08}")),
        card_bin: Some("424242".into()),
        email: order.email.clone(),
        email_domain: coinfront::risk::traits::email_domain(&order.email),
        client_net: coinfront::risk::traits::client_net(&order.client_ip),
        client_ip: order.client_ip.clone(),
        tiktok_username: order.tiktok_username.clone(),
        created_at: now,
    };
    payments::upsert(&mut tx, &payment, now).await?;
    ensure!(
        orders::transition(
            &mut tx,
            &order.id,
            OrderStatus::AwaitingPayment,
            OrderStatus::Paid,
            "provider",
            "Paid with Visa •••• 4242",
            now,
        )
        .await?,
        "raw: paid transition did not apply"
    );
    jobs::enqueue(
        &mut tx,
        NewJob {
            job: jobs::Job::ScreenOrder {
                order_id: order.id.clone(),
                late: false,
            },
            dedupe_key: Some(format!("screen_order:{}", order.id)),
            run_at: now,
        },
        now,
    )
    .await?;
    sqlx::query("UPDATE webhook_events SET outcome = $1 WHERE provider = $2 AND event_id = $3")
        .bind("paid")
        .bind("sandbox")
        .bind(&event_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

fn print_details(row: &EngineRun) {
    let a = &row.app;
    println!(
        "[{}] app: {} orders in {:.2} s; machine at the end of the window: {}",
        row.engine.name(),
        a.orders,
        a.elapsed.as_secs_f64(),
        a.load_during
    );
    println!(
        "[{}] background: {} orders delivered when the window ended; job queue empty {}",
        row.engine.name(),
        a.delivered_at_end,
        match a.drain {
            Some(d) => format!("{:.1} s after it", d.as_secs_f64()),
            None => "NOT within 180 s".into(),
        }
    );
    println!(
        "[{}] orders by status after that: {}",
        row.engine.name(),
        a.statuses.join(", ")
    );
    println!(
        "[{}] raw: {} orders ({} commits) in {:.2} s",
        row.engine.name(),
        row.raw.orders,
        row.raw.orders * COMMITS_PER_ORDER,
        row.raw.elapsed.as_secs_f64()
    );
}

fn print_table(rows: &[EngineRun]) {
    if rows.is_empty() {
        return;
    }
    println!();
    println!(
        "{:<9} {:>7} {:>9} {:>8} {:>8} {:>13} {:>14} {:>8}  goal",
        "engine",
        "orders",
        "orders/s",
        "p50 ms",
        "p99 ms",
        "raw orders/s",
        "raw commits/s",
        "app/raw"
    );
    for r in rows {
        let app = per_sec(r.app.orders, r.app.elapsed);
        let raw = per_sec(r.raw.orders, r.raw.elapsed);
        let ratio = 100.0 * app / raw;
        let verdict = if ratio >= GOAL_PERCENT {
            "met"
        } else {
            "BELOW GOAL"
        };
        println!(
            "{:<9} {:>7} {:>9.1} {:>8.1} {:>8.1} {:>13.1} {:>14.1} {:>7.1}%  >= {GOAL_PERCENT:.0} %: {verdict}",
            r.engine.name(),
            r.app.orders,
            app,
            ms(percentile(&r.app.latencies, 50.0)),
            ms(percentile(&r.app.latencies, 99.0)),
            raw,
            raw * COMMITS_PER_ORDER as f64,
            ratio,
        );
    }
    println!(
        "(orders/s and p50/p99: whole checkouts over HTTP, job workers on; raw: bare transactions writing the order and its payment in the fewest commits a checkout needs, {COMMITS_PER_ORDER} per order)"
    );
}
