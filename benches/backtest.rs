//! The console's rule test (issues 7 and 19): how long replaying 30 days of a shop's orders
//! takes — the stored signals of every pre-fulfillment assessment evaluated under the settings
//! in force and a proposal, with each order's later fate (refunded, rejected, fraud, disputed).
//! Goal (issue 19): 30 days of 1,000,000 orders in under 5 s, on SQLite and on PostgreSQL.
//!
//!     BENCH_ORDERS=1000000 cargo bench --bench backtest
//!     BENCH_ORDERS=5000 cargo bench --bench backtest                          (a quick check)
//!     BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench backtest
//!
//! Environment: BENCH_ORDERS (orders over the 30 days, default 100000), BENCH_RUNS (timed
//! replays, default 3, after one untimed), BENCH_SEED (default 42), BENCH_POSTGRES_URL.
//!
//! The history is `common::history` (shared with the start-up bench): every order with its
//! payments, events, both assessments, jobs, emails, refunds and disputes. Beside the replay,
//! where its time goes: reading the period's assessments alone on one connection (the pieces
//! `risk_assessments::pre_fulfillment_packed` reads), and decoding their `Signals` JSON too on
//! one thread; the replay adds the two evaluations and the tallies, and reads and evaluates
//! several pieces at once.

mod common;

use anyhow::Context;
use coinfront::db::{risk_assessments, Db};
use coinfront::risk::backtest;
use coinfront::risk::signals::Signals;
use coinfront::risk::RiskSettings;
use common::history::{self, History, DAY};
use common::Scratch;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const GOAL: Duration = Duration::from_secs(5);

struct Config {
    orders: usize,
    runs: usize,
    seed: u64,
    postgres: Option<String>,
}

/// One engine's figures: the medians of `runs` timings each.
struct Figures {
    orders: u64,
    fill: Duration,
    rows: Duration,
    decoded: Duration,
    replays: Vec<Duration>,
}

fn main() -> ExitCode {
    let cfg = Config {
        orders: common::env_usize("BENCH_ORDERS", 100_000).max(10),
        runs: common::env_usize("BENCH_RUNS", 3).max(1),
        seed: common::env_usize("BENCH_SEED", 42) as u64,
        postgres: common::postgres_admin_url(),
    };
    println!("coinfront rule-test (backtest) benchmark (issues 7, 19)");
    println!(
        "  {} orders with their history over 30 days; each figure the median of {} runs (after 1 untimed replay)",
        cfg.orders, cfg.runs
    );
    println!("  machine at start: {}", common::machine_load());
    let mut table = Vec::new();
    for engine in common::engines(&cfg.postgres) {
        println!("\n[{}] filling and replaying…", engine.name());
        match run_engine(&cfg, engine) {
            Ok(f) => table.push((engine, f)),
            Err(e) => {
                eprintln!("[{}] failed: {e:#}", engine.name());
                return ExitCode::FAILURE;
            }
        }
    }
    println!("\nengine    | orders replayed | fill    | rows only | + decode  | replay median | replay fastest..slowest | goal");
    println!("----------|-----------------|---------|-----------|-----------|---------------|-------------------------|------------");
    for (engine, mut f) in table {
        f.replays.sort();
        let ms = |d: Duration| format!("{:.0} ms", common::ms(d));
        let median = f.replays[f.replays.len() / 2];
        let goal = if median < GOAL {
            "< 5 s: met"
        } else {
            "< 5 s: MISSED"
        };
        println!(
            "{:<9} | {:>15} | {:>5.0} s | {:>9} | {:>9} | {:>13} | {:>23} | {goal}",
            engine.name(),
            f.orders,
            f.fill.as_secs_f64(),
            ms(f.rows),
            ms(f.decoded),
            ms(median),
            format!(
                "{}..{}",
                ms(f.replays[0]),
                ms(*f.replays.last().expect("at least one run"))
            ),
        );
    }
    println!("machine at end: {}", common::machine_load());
    ExitCode::SUCCESS
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn run_engine(cfg: &Config, engine: common::Engine) -> anyhow::Result<Figures> {
    let postgres = (engine == common::Engine::Postgres)
        .then(|| cfg.postgres.clone())
        .flatten();
    let mut scratch = Scratch::new("cf-bench-backtest-", postgres)?;
    let url = scratch.database("backtest")?;
    let rt = common::runtime(2);
    let result = rt.block_on(common::or_interrupted(async {
        let db = Db::connect(&url, 1).await?;
        db.migrate().await?;
        db.close().await;
        let now = chrono::Utc::now().timestamp_millis();
        let h = History {
            orders: cfg.orders,
            days: 30,
            seed: cfg.seed,
            now,
        };
        let filled = history::fill(&url, &h).await.context("filling")?;
        println!(
            "  filled {} orders ({} rows) in {:.1} s (untimed)",
            cfg.orders,
            filled.rows,
            filled.elapsed.as_secs_f64()
        );
        let db = Db::connect(&url, 8).await?;
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
        println!(
            "  outcomes now (allow/review/block): refunded {:?}, rejected {:?}, fraud {:?}",
            first.current.refunded, first.current.rejected, first.current.fraud
        );
        let (mut rows, mut decoded, mut replays) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..cfg.runs {
            let t = Instant::now();
            let n = read_rows(&db, since, false).await?;
            rows.push(t.elapsed());
            anyhow::ensure!(n == first.orders + first.unreadable, "rows read {n}");
            let t = Instant::now();
            read_rows(&db, since, true).await?;
            decoded.push(t.elapsed());
            let t = Instant::now();
            let c = backtest::run(&db, &current, &proposed, since).await?;
            replays.push(t.elapsed());
            anyhow::ensure!(c == first, "a replay gave a different answer");
        }
        db.close().await;
        Ok(Figures {
            orders: first.orders,
            fill: filled.elapsed,
            rows: median(rows),
            decoded: median(decoded),
            replays,
        })
    }));
    rt.shutdown_timeout(Duration::from_secs(10));
    scratch.close()?;
    result
}

/// The period's assessments as the replay reads them (pieces of about 2,000 packed by the
/// database), one piece after another on one connection, each `Signals` decoded when `decode`;
/// nothing evaluated.
async fn read_rows(db: &Db, since: i64, decode: bool) -> anyhow::Result<u64> {
    let Some((count, first, last)) =
        risk_assessments::pre_fulfillment_span(db.pool(), since).await?
    else {
        return Ok(0);
    };
    let pieces = count.div_ceil(2_000).max(1) as i64;
    let step = (last - first) / pieces + 1;
    let mut n = 0u64;
    for i in 0..pieces {
        let until = if i + 1 == pieces {
            i64::MAX
        } else {
            first + (i + 1) * step
        };
        let packed =
            risk_assessments::pre_fulfillment_packed(db.pool(), first + i * step, until).await?;
        for row in packed.rows() {
            let row = row?;
            if decode {
                std::hint::black_box(serde_json::from_str::<Signals>(row.signals).ok());
            }
            n += 1;
        }
    }
    Ok(n)
}
