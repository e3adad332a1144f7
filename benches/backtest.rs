//! The console's rule test (issue 7): how long replaying 30 days of a shop with 100,000 orders
//! takes — the stored signals of every pre-fulfillment assessment evaluated under the settings
//! in force and a proposal, with each order's later fate (refunded, rejected, fraud).
//!
//!     cargo bench --bench backtest
//!     BENCH_ORDERS=5000 cargo bench --bench backtest                          (a quick check)
//!     BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench backtest
//!
//! Environment: BENCH_ORDERS (orders over the 30 days, default 100000), BENCH_RUNS (timed
//! replays, default 5, after one untimed), BENCH_SEED (default 42), BENCH_POSTGRES_URL.
//!
//! The history: orders spread over the last 30 days, each with the assessment the shop stores
//! before fulfillment (`risk::record`, the real `Signals` JSON) made from varied signals —
//! repeat buyers with velocity, declines, some card testing, disposable emails, now and then a
//! price mismatch or a list hit — and a fate: mostly delivered, some refunded, some rejected,
//! a few rejected as fraud (the `block_listed` event).

mod common;

use anyhow::Context;
use coinfront::db::Db;
use coinfront::domain::risk_list::{List, ListHit, ListKind};
use coinfront::risk::backtest;
use coinfront::risk::signals::{PerScope, Signals, Velocity};
use coinfront::risk::{self, RiskSettings, Stage};
use common::Scratch;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const DAY: i64 = 86_400_000;
const GOAL: Duration = Duration::from_secs(2);

struct Config {
    orders: usize,
    runs: usize,
    seed: u64,
    postgres: Option<String>,
}

fn main() -> ExitCode {
    let cfg = Config {
        orders: common::env_usize("BENCH_ORDERS", 100_000).max(10),
        runs: common::env_usize("BENCH_RUNS", 5).max(1),
        seed: common::env_usize("BENCH_SEED", 42) as u64,
        postgres: common::postgres_admin_url(),
    };
    println!("coinfront rule-test (backtest) benchmark (issue 7)");
    println!(
        "  {} orders with their pre-fulfillment assessments over 30 days; the replay of 30 days timed {} times (after 1 untimed)",
        cfg.orders, cfg.runs
    );
    println!("  machine at start: {}", common::machine_load());
    let mut engines = vec!["sqlite"];
    if cfg.postgres.is_some() {
        engines.push("postgres");
    } else {
        println!("  (set BENCH_POSTGRES_URL to run on PostgreSQL too)");
    }
    let mut table = Vec::new();
    for engine in engines {
        println!("\n[{engine}] filling and replaying…");
        match run_engine(&cfg, engine) {
            Ok(times) => table.push((engine, times)),
            Err(e) => {
                eprintln!("[{engine}] failed: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("\nengine    | replays | orders replayed | fastest   | median    | slowest   | goal (SQLite)");
    println!(
        "----------|---------|-----------------|-----------|-----------|-----------|--------------"
    );
    for (engine, (orders, mut times)) in table {
        times.sort();
        let ms = |d: Duration| format!("{:>6.0} ms", common::ms(d));
        let median = times[times.len() / 2];
        let goal = if engine == "sqlite" {
            if median < GOAL {
                "< 2 s: met"
            } else {
                "< 2 s: MISSED"
            }
        } else {
            "—"
        };
        println!(
            "{engine:<9} | {:>7} | {orders:>15} | {} | {} | {} | {goal}",
            times.len(),
            ms(times[0]),
            ms(median),
            ms(*times.last().expect("at least one run")),
        );
    }
    println!("machine at end: {}", common::machine_load());
    ExitCode::SUCCESS
}

fn run_engine(cfg: &Config, engine: &str) -> anyhow::Result<(u64, Vec<Duration>)> {
    let postgres = (engine == "postgres")
        .then(|| cfg.postgres.clone())
        .flatten();
    let mut scratch = Scratch::new("cf-bench-backtest-", postgres)?;
    let url = scratch.database("backtest")?;
    let rt = common::runtime(2);
    let result = rt.block_on(common::or_interrupted(async {
        let db = Db::connect(&url, 8).await?;
        db.migrate().await?;
        let now = chrono::Utc::now().timestamp_millis();
        let started = Instant::now();
        fill(&db, cfg, now).await.context("filling")?;
        println!(
            "  filled {} orders in {:.1} s (untimed)",
            cfg.orders,
            started.elapsed().as_secs_f64()
        );
        let current = RiskSettings::default();
        let proposed = RiskSettings {
            review_threshold: 55,
            block_threshold: 80,
            ..RiskSettings::default()
        };
        let since = now - 30 * DAY;
        let first = backtest::run(&db, &current, &proposed, since).await?;
        println!(
            "  replay: {} orders; now allow/review/block {}/{}/{}, proposed {}/{}/{}; {} change; {} unreadable",
            first.orders,
            first.current.allow(),
            first.current.review(),
            first.current.block(),
            first.proposed.allow(),
            first.proposed.review(),
            first.proposed.block(),
            first.changed,
            first.unreadable
        );
        let mut times = Vec::new();
        for _ in 0..cfg.runs {
            let t = Instant::now();
            let c = backtest::run(&db, &current, &proposed, since).await?;
            times.push(t.elapsed());
            anyhow::ensure!(c == first, "a replay gave a different answer");
        }
        db.close().await;
        Ok((first.orders, times))
    }));
    rt.shutdown_timeout(Duration::from_secs(10));
    scratch.close()?;
    result
}

/// Orders, their assessments and fates, in transactions of 5,000 orders.
async fn fill(db: &Db, cfg: &Config, now: i64) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let settings = RiskSettings::default();
    for chunk in (0..cfg.orders).collect::<Vec<_>>().chunks(5000) {
        let mut tx = db.begin().await?;
        for &n in chunk {
            let at = now - rng.gen_range(60_000..30 * DAY);
            let signals = signals(&mut rng);
            let assessment = risk::rules::evaluate(&signals, &settings);
            let status = match (assessment.decision, rng.gen_range(0..100)) {
                (risk::Decision::Block, _) => "blocked",
                (risk::Decision::Review, 0..=59) => "rejected",
                (_, 0..=3) => "refunded",
                (_, 4..=5) => "partially_refunded",
                _ => "delivered",
            };
            let id = format!("order-{n:07}");
            sqlx::query(
                "INSERT INTO orders (id, order_number, token_hash, idempotency_key, status, coins, amount_minor, currency,
                    base_amount_minor, tiktok_username, tiktok_account_id, tiktok_display_name, email, payment_method,
                    client_ip, provider, created_at, updated_at, expires_at, paid_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'USD', $7, $8, $9, $8, $10, 'card', $11, 'sandbox', $12, $12, $13, $12)",
            )
            .bind(&id)
            .bind(format!("CF-{n:08}"))
            .bind(format!("hash-{n}"))
            .bind(format!("key-{n}"))
            .bind(status)
            .bind(signals.coins as i64)
            .bind(signals.amount_base_minor)
            .bind(format!("user_{}", n % 20_000))
            .bind(format!("tt_{n}"))
            .bind(format!("buyer{}@example.com", n % 25_000))
            .bind(format!("10.0.{}.{}", (n / 256) % 256, n % 256))
            .bind(at)
            .bind(at + 30 * 60_000)
            .execute(&mut *tx)
            .await?;
            if status == "rejected" && rng.gen_range(0..3) == 0 {
                coinfront::db::events::record(
                    &mut tx,
                    &id,
                    at + 3_600_000,
                    "staff:bench@example.com",
                    "block_listed",
                    None,
                    None,
                    "rejected as fraud",
                )
                .await?;
            }
            risk::record(
                &mut tx,
                &id,
                Stage::PreFulfillment,
                &assessment,
                &signals,
                at,
            )
            .await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

fn signals(rng: &mut StdRng) -> Signals {
    let coins = [70u64, 350, 700, 1_400, 3_500, 7_000, 17_500][rng.gen_range(0..7)];
    let amount = (coins as f64 * 1.04).round() as i64;
    let per_scope = |rng: &mut StdRng, busy: bool| PerScope {
        order: rng.gen_range(0..if busy { 4 } else { 2 }),
        email: rng.gen_range(0..if busy { 6 } else { 2 }),
        ip: rng.gen_range(0..if busy { 8 } else { 2 }),
        card: rng.gen_range(0..if busy { 5 } else { 2 }),
        username: rng.gen_range(0..2),
    };
    let busy = rng.gen_range(0..20) == 0;
    let velocity = |rng: &mut StdRng| Velocity {
        orders: rng.gen_range(1..if busy { 15 } else { 4 }),
        amount_minor: rng.gen_range(amount..amount * 4),
    };
    let list_hits = if rng.gen_range(0..200) == 0 {
        vec![ListHit {
            list: if rng.gen_bool(0.5) {
                List::Block
            } else {
                List::Allow
            },
            kind: ListKind::Email,
            value: "someone@example.com".into(),
            reason: "chargeback in March".into(),
            added_by: "staff:bench@example.com".into(),
        }]
    } else {
        Vec::new()
    };
    Signals {
        coins,
        amount_base_minor: amount,
        price_per_coin: rust_decimal::Decimal::new(104, 4),
        reference_price_per_coin: rust_decimal::Decimal::new(106, 4),
        price_mismatch: rng.gen_range(0..100) == 0,
        disposable_email: rng.gen_range(0..25) == 0,
        failed_payments_1h: per_scope(rng, busy),
        failed_payments_24h: per_scope(rng, busy),
        failed_cards_1h: coinfront::risk::signals::FailedCards {
            email: rng.gen_range(0..if busy { 4 } else { 1 }),
            username: rng.gen_range(0..if busy { 3 } else { 1 }),
            ip: rng.gen_range(0..if busy { 6 } else { 2 }),
        },
        recipient: coinfront::risk::signals::Recipient {
            payers_1h: rng.gen_range(0..if busy { 3 } else { 2 }),
            payers_24h: rng.gen_range(0..if busy { 4 } else { 2 }),
            ..Default::default()
        },
        fraud_declines_24h: if busy { rng.gen_range(0..2) } else { 0 },
        velocity_24h_username: velocity(rng),
        velocity_24h_email: velocity(rng),
        velocity_24h_ip: velocity(rng),
        prior_paid_orders: rng.gen_range(0..30),
        rate_limited_1h: if busy { rng.gen_range(0..5) } else { 0 },
        list_hits,
        ..Signals::default()
    }
}
