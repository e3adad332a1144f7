//! Start-up with a long history (issue 19): from starting the release binary to `/readyz`
//! answering 200, on a database holding `BENCH_ORDERS` orders with everything the shop keeps
//! for them (`common::history`: payments, events, assessments, done jobs, emails, refunds,
//! disputes, staff), beside the same start on an empty database. Goal: under 1 s with
//! 1,000,000 orders, on SQLite and on PostgreSQL.
//!
//!     BENCH_ORDERS=1000000 BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench startup
//!
//! Environment: BENCH_ORDERS (default 1000000), BENCH_RUNS (starts timed per database,
//! default 5, after 1 untimed), BENCH_SEED (default 42), BENCH_POSTGRES_URL (without it only
//! SQLite). Each start is its own process (`coinfront --config FILE serve`, the settings of
//! `common::shop::config_toml`), stopped with SIGTERM before the next.

mod common;

use anyhow::Context;
use coinfront::db::Db;
use common::history::{self, History};
use common::process::{self, AppProcess};
use common::shop::{self, AppConfig};
use common::{Engine, Scratch};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const GOAL: Duration = Duration::from_secs(1);

struct Config {
    orders: usize,
    runs: usize,
    seed: u64,
    postgres: Option<String>,
}

struct Figures {
    empty: Vec<Duration>,
    full: Vec<Duration>,
    fill: Duration,
    rows: u64,
}

fn main() -> ExitCode {
    let cfg = Config {
        orders: common::env_usize("BENCH_ORDERS", 1_000_000).max(10),
        runs: common::env_usize("BENCH_RUNS", 5).max(1),
        seed: common::env_usize("BENCH_SEED", 42) as u64,
        postgres: common::postgres_admin_url(),
    };
    println!("coinfront start-up benchmark (issue 19)");
    println!(
        "  start to /readyz of the release binary, {} timed starts per database (after 1 untimed): empty, and {} orders of history",
        cfg.runs, cfg.orders
    );
    println!("  machine at start: {}", common::machine_load());
    let mut table = Vec::new();
    for engine in common::engines(&cfg.postgres) {
        println!("\n[{}] filling and starting…", engine.name());
        match run_engine(&cfg, engine) {
            Ok(f) => table.push((engine, f)),
            Err(e) => {
                eprintln!("[{}] failed: {e:#}", engine.name());
                return ExitCode::FAILURE;
            }
        }
    }
    println!("\nengine    | empty: median | {:>7} orders: median | fastest..slowest  | fill (untimed)     | goal", cfg.orders);
    println!("----------|---------------|-----------------------|-------------------|--------------------|------------");
    for (engine, mut f) in table {
        f.empty.sort();
        f.full.sort();
        let ms = |d: Duration| format!("{:.0} ms", common::ms(d));
        let median = f.full[f.full.len() / 2];
        let goal = if median < GOAL {
            "< 1 s: met"
        } else {
            "< 1 s: MISSED"
        };
        println!(
            "{:<9} | {:>13} | {:>21} | {:>17} | {:>18} | {goal}",
            engine.name(),
            ms(f.empty[f.empty.len() / 2]),
            ms(median),
            format!(
                "{}..{}",
                ms(f.full[0]),
                ms(*f.full.last().expect("at least one run"))
            ),
            format!("{} rows, {:.0} s", f.rows, f.fill.as_secs_f64()),
        );
    }
    println!("machine at end: {}", common::machine_load());
    ExitCode::SUCCESS
}

fn run_engine(cfg: &Config, engine: Engine) -> anyhow::Result<Figures> {
    let postgres = (engine == Engine::Postgres)
        .then(|| cfg.postgres.clone())
        .flatten();
    let mut scratch = Scratch::new("cf-bench-startup-", postgres)?;
    let result = (|| {
        let empty_url = scratch.database("empty")?;
        let full_url = scratch.database("history")?;
        let rt = common::runtime(2);
        let filled = rt.block_on(common::or_interrupted(async {
            for url in [&empty_url, &full_url] {
                let db = Db::connect(url, 2).await?;
                db.migrate().await?;
                db.close().await;
            }
            let h = History {
                orders: cfg.orders,
                days: 30,
                seed: cfg.seed,
                now: chrono::Utc::now().timestamp_millis(),
            };
            history::fill(&full_url, &h).await.context("filling")
        }));
        rt.shutdown_timeout(Duration::from_secs(10));
        let filled = filled?;
        println!(
            "  filled {} orders ({} rows) in {:.1} s (untimed)",
            cfg.orders,
            filled.rows,
            filled.elapsed.as_secs_f64()
        );
        let empty = starts(cfg, scratch.path(), "empty", &empty_url)?;
        let full = starts(cfg, scratch.path(), "history", &full_url)?;
        Ok(Figures {
            empty,
            full,
            fill: filled.elapsed,
            rows: filled.rows,
        })
    })();
    scratch.close()?;
    result
}

/// Starts the shop on `db_url` 1 + `cfg.runs` times, one after another; the timed starts.
fn starts(cfg: &Config, dir: &Path, name: &str, db_url: &str) -> anyhow::Result<Vec<Duration>> {
    let data_dir = dir.join(format!("data-{name}"));
    let mut times = Vec::new();
    for run in 0..=cfg.runs {
        let port = process::free_port()?;
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            shop::config_toml(&AppConfig {
                bind: &format!("127.0.0.1:{port}"),
                database_url: db_url,
                data_dir: &data_dir,
                http_workers: None,
                job_workers: None,
            }),
        )?;
        let rt = common::runtime(1);
        let started = Instant::now();
        let mut app = AppProcess::start(
            env!("CARGO_BIN_EXE_coinfront").as_ref(),
            &config,
            port,
            dir,
            &dir.join(format!("{name}-{run}.log")),
        )?;
        let ready = rt.block_on(app.ready(Duration::from_secs(120)));
        let took = started.elapsed();
        let stopped = app.stop(Duration::from_secs(30));
        rt.shutdown_timeout(Duration::from_secs(5));
        ready?;
        anyhow::ensure!(stopped, "the shop did not stop within 30 s of SIGTERM");
        println!(
            "  {name}: start {run}{} ready in {:.0} ms",
            if run == 0 { " (untimed)" } else { "" },
            common::ms(took)
        );
        if run > 0 {
            times.push(took);
        }
    }
    Ok(times)
}
