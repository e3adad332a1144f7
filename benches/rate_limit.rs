//! What a rate-limit check costs a request (issue 17): the in-memory limiter (governor, one
//! instance) beside the shared one (one upsert per check in `rate_limit_state`, every
//! instance), on SQLite and on PostgreSQL, through the same `RateLimits::check` that the
//! handlers call.
//!
//!     cargo bench --bench rate_limit
//!     BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench rate_limit
//!
//! Environment: BENCH_CHECKS (checks per run, default 20000), BENCH_CONCURRENCY (tasks for
//! the concurrent run, default 16), BENCH_POSTGRES_URL (also on a fresh PostgreSQL database
//! `cf_bench_<random>`, dropped at the end).
//!
//! Each store runs twice: one check after another (the latency a request sees: mean, p50,
//! p99), and `BENCH_CONCURRENCY` tasks at once (checks per second). Clients are 1,000
//! addresses in turn, each well under its limit, so every check is allowed and writes, as
//! most requests do; one more run sends every check from one address (an attacker's, refused
//! after the burst) to show the cost of a hot row.

mod common;

use coinfront::clock::{SharedClock, SystemClock};
use coinfront::config::{Limit, RateLimitSettings};
use coinfront::db::Db;
use coinfront::web::rate_limit::{Action, RateLimits};
use common::{env_usize, machine_load, percentile, us, Scratch};
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Row {
    store: String,
    mean: Duration,
    p50: Duration,
    p99: Duration,
    per_sec: f64,
    hot_mean: Duration,
}

fn settings() -> RateLimitSettings {
    // Roomy for 1,000 addresses; the hot address is refused after 100.
    let limit = Limit {
        per_minute: 600,
        burst: 100,
    };
    RateLimitSettings {
        store: None,
        checkout: limit,
        payment_attempt: limit,
        account_lookup: limit,
        order_lookup: limit,
        refund_request: limit,
        staff_login: limit,
        support_message: limit,
    }
}

fn address(n: usize) -> IpAddr {
    IpAddr::from([10, 0, (n / 250) as u8, (n % 250) as u8 + 1])
}

async fn measure(store: String, limits: Arc<RateLimits>, checks: usize, tasks: usize) -> Row {
    // Sequential: what one request waits.
    let mut times = Vec::with_capacity(checks);
    for n in 0..checks {
        let at = Instant::now();
        let answer = limits
            .check(Action::Checkout, address(n % 1000))
            .await
            .expect("check");
        times.push(at.elapsed());
        assert!(answer.is_ok(), "under the limit");
    }
    let mean = times.iter().sum::<Duration>() / checks as u32;
    times.sort();
    // Concurrent: how many a second the store takes.
    let started = Instant::now();
    let per_task = checks / tasks;
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let limits = limits.clone();
            tokio::spawn(async move {
                for n in 0..per_task {
                    limits
                        .check(Action::PaymentAttempt, address((t * per_task + n) % 1000))
                        .await
                        .expect("check")
                        .expect("under the limit");
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("a task");
    }
    let per_sec = (per_task * tasks) as f64 / started.elapsed().as_secs_f64();
    // One hot address: the same row every time, refused after the burst.
    let hot = checks.min(2000);
    let at = Instant::now();
    let mut refused = 0;
    for _ in 0..hot {
        if limits
            .check(Action::OrderLookup, address(0))
            .await
            .expect("check")
            .is_err()
        {
            refused += 1;
        }
    }
    let hot_mean = at.elapsed() / hot as u32;
    assert!(refused > 0, "the hot address was limited");
    Row {
        mean,
        p50: percentile(&times, 50.0),
        p99: percentile(&times, 99.0),
        per_sec,
        hot_mean,
        store,
    }
}

/// `databases`: (engine name, URL of a fresh database).
async fn run(
    checks: usize,
    tasks: usize,
    databases: &[(&'static str, String)],
) -> anyhow::Result<Vec<Row>> {
    let clock: SharedClock = Arc::new(SystemClock);
    let s = settings();
    let mut rows = Vec::new();
    let memory = Arc::new(RateLimits::in_memory(&s, clock.clone()));
    rows.push(
        measure(
            "memory (governor), any backend".into(),
            memory,
            checks,
            tasks,
        )
        .await,
    );
    for (name, url) in databases {
        let db = Db::connect(url, 16).await?;
        db.migrate().await?;
        let shared = Arc::new(RateLimits::in_database(&s, &db, clock.clone()));
        rows.push(measure(format!("database, {name}"), shared, checks, tasks).await);
        let kept = coinfront::db::rate_limits::state_rows(db.pool()).await?;
        println!(
            "  {name}: {kept} rows in rate_limit_state after the run (one per limit and address)"
        );
        db.close().await;
    }
    Ok(rows)
}

fn main() -> ExitCode {
    let checks = env_usize("BENCH_CHECKS", 20_000).max(100);
    let tasks = env_usize("BENCH_CONCURRENCY", 16).max(1);
    let postgres = common::postgres_admin_url();
    println!(
        "rate-limit checks: {checks} per run, {tasks} concurrent tasks; {}",
        machine_load()
    );
    let mut scratches = Vec::new();
    let mut databases = Vec::new();
    for (name, admin) in [("SQLite", None), ("PostgreSQL", postgres)] {
        if name == "PostgreSQL" && admin.is_none() {
            continue;
        }
        let made = Scratch::new("cf-bench-limits-", admin).and_then(|mut scratch| {
            let url = scratch.database("limits")?;
            Ok((scratch, url))
        });
        match made {
            Ok((scratch, url)) => {
                scratches.push(scratch);
                databases.push((name, url));
            }
            Err(e) => {
                eprintln!("rate_limit bench: no {name} database: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    }
    let rt = common::runtime(2);
    let result = rt.block_on(common::or_interrupted(run(checks, tasks, &databases)));
    drop(rt);
    for scratch in scratches {
        if let Err(e) = scratch.close() {
            eprintln!("rate_limit bench: cleaning up: {e:#}");
        }
    }
    let rows = match result {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("rate_limit bench failed: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    println!();
    println!(
        "{:<32} {:>10} {:>10} {:>10} {:>14} {:>14}",
        "store", "mean µs", "p50 µs", "p99 µs", "checks/s (×N)", "hot row µs"
    );
    for r in &rows {
        println!(
            "{:<32} {:>10.1} {:>10.1} {:>10.1} {:>14.0} {:>14.1}",
            r.store,
            us(r.mean),
            us(r.p50),
            us(r.p99),
            r.per_sec,
            us(r.hot_mean)
        );
    }
    println!();
    println!("Cost per request = the mean: one check per guarded request (checkout, payment attempt, look-ups, sign-in).");
    ExitCode::SUCCESS
}
