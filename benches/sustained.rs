//! Delivery under sustained load (issue 19): checkouts offered at a fixed rate (open loop) to the
//! shop running as its own process, and how long buyers then wait for their coins.
//!
//!     cargo bench --bench sustained
//!     BENCH_SECONDS=10 BENCH_RATES=50 cargo bench --bench sustained                (a quick check)
//!     BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench sustained
//!
//! Environment: BENCH_SECONDS (how long each rate is offered, default 60), BENCH_RATES (offered
//! checkouts per second, a comma list, default "50,100,150,200"), BENCH_JOB_WORKERS (the app's
//! job workers; default: the app's own default), BENCH_POSTGRES_URL (also run on PostgreSQL:
//! a fresh database `cf_bench_<random>` per rate, made from this URL and dropped after it),
//! BENCH_KEEP_LOG (a file to copy the app's log to after each rate; with
//! `RUST_LOG=sqlx::query=debug,info` it lists every statement with its time).
//!
//! Each rate gets a fresh database and a fresh app: the release binary (`coinfront --config
//! FILE serve`) on 127.0.0.1, with the settings of `common::shop::config_toml` (fixed keys,
//! sandbox supplier delay 0, rate limits out of the way, 127.0.0.1 trusted as a proxy so each
//! buyer has its own address) and the shipped defaults otherwise: job workers, pool, HTTP
//! workers, and the access log (to a file).
//!
//! Open loop: arrival `i` is due at start + i / rate and is spawned then as its own task,
//! whether or not earlier checkouts have finished. Each takes a buyer (a reqwest client with its
//! own cookie jar) from a pool of 512 and does one checkout as `benches/checkout.rs` does:
//! GET / → POST /checkout → POST /checkout/confirm → a signed `payment.succeeded` webhook.
//! Its latency runs from its due time, so time spent waiting counts. Arrivals that had to wait
//! for a buyer, or began more than 100 ms after their due time, are counted: those mean the
//! generator, not the shop, was the limit.
//!
//! Measured per rate: the achieved arrival rate (checkouts begun during the offering, per
//! second); checkout latency p50/p99 and failures; paid → delivered p50/p99/max from the orders
//! table (`delivered_at - paid_at`) for orders paid during the offering; the job backlog (jobs
//! pending or running) and the orders waiting for coins (paid, not delivered), sampled every
//! second by the bench's own connection; the drain: from the end of the offering until every
//! checkout has answered, the backlog is 0, every paid order is delivered and every email
//! sent (up to 120 s); the app's peak RSS (`VmHWM`, read before it is stopped with SIGTERM)
//! and the CPU it and the bench used during the offering.
//!
//! Exactly once, checked after the drain (a violation makes the bench exit non-zero): per paid
//! order one `delivered` status event, one pre-fulfillment risk assessment, one credit in the
//! sandbox supplier's ledger and two emails sent (payment received, receipt; as many `.eml`
//! files in the outbox as emails sent); no dead jobs. Until the drain is complete, only
//! duplicates count as violations (what is missing may still come).
//!
//! Goal (issue 19), per engine: at 100 checkouts/s, paid → delivered p99 < 2 s and the drain
//! < 5 s; the table says at which of the rates run that still holds.

mod common;

use anyhow::Context;
use coinfront::config::Settings;
use coinfront::db::Db;
use common::process::{self, AppProcess};
use common::shop::{self, AppConfig, Shop};
use common::{ms, percentile, Engine, Scratch};
use sqlx::Row;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;

/// Buyers (cookie jars with keep-alive connections) the arrivals share.
const BUYERS: usize = 512;
/// An arrival that begins later than this after its due time was held up by the generator.
const LATE: Duration = Duration::from_millis(100);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);
const EMAILS_PER_ORDER: i64 = 2;
/// The goal: at this rate, paid → delivered p99 and the drain below these.
const GOAL_RATE: u32 = 100;
const GOAL_P99: Duration = Duration::from_secs(2);
const GOAL_DRAIN: Duration = Duration::from_secs(5);
/// Backlog samples are printed at this stride (seconds).
const PRINT_EVERY: u64 = 5;

struct Config {
    seconds: u64,
    rates: Vec<u32>,
    job_workers: Option<usize>,
    postgres: Option<String>,
}

/// What one arrival did.
struct Arrival {
    /// From its due time to the webhook's answer (or the failure).
    latency: Duration,
    /// When it had its buyer and began, from the start of the offering.
    began: Duration,
    waited_for_buyer: bool,
    /// Began more than `LATE` after its due time.
    late: bool,
    error: Option<String>,
}

/// One sample of the queue: seconds since the offering began, jobs pending or running, orders
/// paid and not delivered.
#[derive(Clone, Copy)]
struct Sample {
    at: u64,
    backlog: i64,
    waiting: i64,
}

/// Counts per paid order that should be exactly `expected`.
struct OnceCheck {
    what: &'static str,
    expected: i64,
    missing: i64,
    extra: i64,
}

struct Run {
    engine: Engine,
    rate: u32,
    seconds: u64,
    offered: usize,
    achieved: f64,
    ok: usize,
    failed: usize,
    errors: Vec<String>,
    latencies: Vec<Duration>,
    waited_for_buyer: usize,
    /// Began late without waiting for a buyer.
    late: usize,
    /// The offering, in epoch milliseconds (the app's clock).
    window_ms: (i64, i64),
    /// Paid → delivered of the orders paid during the offering.
    delivery: Vec<Duration>,
    paid_in_window: usize,
    samples: Vec<Sample>,
    drain: Option<Duration>,
    statuses: Vec<String>,
    paid: i64,
    checks: Vec<OnceCheck>,
    credits: i64,
    emails_sent: i64,
    eml_files: i64,
    dead_jobs: i64,
    peak_rss_mib: Option<f64>,
    /// Cores' worth of CPU during the offering: the app, the bench.
    cpu: (f64, f64),
    stopped_cleanly: bool,
    log_lines: usize,
    log_problems: Vec<String>,
    log_problem_count: usize,
    load: String,
}

impl Run {
    fn label(&self) -> String {
        format!("{} {}/s", self.engine.name(), self.rate)
    }

    fn delivery_p99(&self) -> Duration {
        percentile(&self.delivery, 99.0)
    }

    /// Exactly-once violations: duplicates always, missing ones once drained.
    fn violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        for c in &self.checks {
            if c.extra > 0 {
                v.push(format!(
                    "{} orders with more than {} {}",
                    c.extra, c.expected, c.what
                ));
            }
            if c.missing > 0 && self.drain.is_some() {
                v.push(format!(
                    "{} orders with fewer than {} {}",
                    c.missing, c.expected, c.what
                ));
            }
        }
        if self.credits > self.paid {
            v.push(format!(
                "{} supplier credits for {} paid orders",
                self.credits, self.paid
            ));
        }
        // Stopped mid-job, an email can be written but not yet recorded as sent (it is
        // written again, to the same file, when its job is retried).
        if self.eml_files != self.emails_sent && self.drain.is_some() {
            v.push(format!(
                "{} .eml files for {} emails sent",
                self.eml_files, self.emails_sent
            ));
        }
        if self.dead_jobs > 0 {
            v.push(format!("{} dead jobs", self.dead_jobs));
        }
        v
    }

    /// The goal's conditions, at whatever rate this ran.
    fn holds(&self) -> bool {
        self.failed == 0
            && self.violations().is_empty()
            && self.delivery.len() == self.paid_in_window
            && self.delivery_p99() < GOAL_P99
            && self.drain.is_some_and(|d| d < GOAL_DRAIN)
    }

    fn generator_limited(&self) -> bool {
        self.waited_for_buyer + self.late > 0
    }
}

fn parse_rates(text: &str) -> Option<Vec<u32>> {
    let rates: Option<Vec<u32>> = text
        .split(',')
        .map(|r| r.trim().parse().ok().filter(|&r: &u32| r > 0))
        .collect();
    rates.filter(|r| !r.is_empty())
}

fn main() -> ExitCode {
    let rates = std::env::var("BENCH_RATES")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "50,100,150,200".into());
    let Some(rates) = parse_rates(&rates) else {
        eprintln!("BENCH_RATES={rates:?} is not a comma list of whole numbers above 0");
        return ExitCode::from(2);
    };
    let defaults = Settings::default();
    let cfg = Config {
        seconds: common::env_usize("BENCH_SECONDS", 60).max(1) as u64,
        rates,
        job_workers: std::env::var_os("BENCH_JOB_WORKERS")
            .map(|_| common::env_usize("BENCH_JOB_WORKERS", defaults.jobs.workers)),
        postgres: common::postgres_admin_url(),
    };
    println!("coinfront sustained-load benchmark (issue 19)");
    println!(
        "  open loop: checkouts offered at {} per second, {} s each, a fresh database and app per rate",
        cfg.rates
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        cfg.seconds
    );
    println!("  one checkout: GET / -> POST /checkout -> POST /checkout/confirm (303 to /sandbox/pay/…) -> signed payment.succeeded webhook (200); {BUYERS} buyers (cookie jars) shared by the arrivals");
    println!(
        "  app: the release binary as its own process on 127.0.0.1; supplier delay 0, rate limits out of the way; {} job workers, pool {}, HTTP workers {}, access log to a file",
        cfg.job_workers.unwrap_or(defaults.jobs.workers),
        defaults.db_max_connections,
        defaults
            .http
            .workers
            .map_or("= CPUs".into(), |n| n.to_string()),
    );
    println!(
        "  goal: at {GOAL_RATE}/s, paid -> delivered p99 < {} s and drained < {} s after the offering ends",
        GOAL_P99.as_secs(),
        GOAL_DRAIN.as_secs()
    );
    println!("  machine at start: {}", common::machine_load());
    let engines = common::engines(&cfg.postgres);
    let mut runs = Vec::new();
    let mut failed = false;
    'engines: for engine in engines {
        for &rate in &cfg.rates {
            println!(
                "\n[{} {rate}/s] offering for {} s…",
                engine.name(),
                cfg.seconds
            );
            match run_once(&cfg, engine, rate) {
                Ok(run) => {
                    print_details(&run);
                    failed |= !run.violations().is_empty();
                    runs.push(run);
                }
                Err(e) => {
                    eprintln!("[{} {rate}/s] failed: {e:#}", engine.name());
                    failed = true;
                    break 'engines;
                }
            }
        }
    }
    print_table(&runs);
    print_goal(&cfg, &runs);
    println!("machine at end: {}", common::machine_load());
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// One rate on one engine: a fresh database and app, the offering, the drain, the checks.
fn run_once(cfg: &Config, engine: Engine, rate: u32) -> anyhow::Result<Run> {
    let postgres = (engine == Engine::Postgres)
        .then(|| cfg.postgres.clone())
        .flatten();
    let mut scratch = Scratch::new("cf-bench-sustained-", postgres)?;
    let result = (|| {
        let db_url = scratch.database("app")?;
        let dir = scratch.path();
        let port = process::free_port()?;
        let config = dir.join("coinfront.toml");
        std::fs::write(
            &config,
            shop::config_toml(&AppConfig {
                bind: &format!("127.0.0.1:{port}"),
                database_url: &db_url,
                data_dir: &dir.join("data"),
                http_workers: None,
                job_workers: cfg.job_workers,
            }),
        )?;
        let mut app = AppProcess::start(
            env!("CARGO_BIN_EXE_coinfront").as_ref(),
            &config,
            port,
            dir,
            &dir.join("app.log"),
        )?;
        let rt = common::runtime(2);
        let run = rt.block_on(common::or_interrupted(offer(
            cfg, engine, rate, &mut app, &db_url,
        )));
        rt.shutdown_timeout(Duration::from_secs(10));
        let peak_rss_mib = process::peak_rss_mib(app.pid());
        // The checks read a database nobody writes any more: counts taken one after another
        // agree even when the drain did not finish.
        let stopped_cleanly = app.stop(Duration::from_secs(30));
        let mut run = run?;
        run.peak_rss_mib = peak_rss_mib;
        run.stopped_cleanly = stopped_cleanly;
        (run.log_lines, run.log_problem_count, run.log_problems) = read_log(app.log_path());
        if let Ok(to) = std::env::var("BENCH_KEEP_LOG") {
            // For reading after the scratch folder is gone (statement counts with RUST_LOG).
            if let Err(e) = std::fs::copy(app.log_path(), &to) {
                eprintln!("could not keep the app's log in {to}: {e}");
            }
        }
        let rt = common::runtime(1);
        let inspected = rt.block_on(common::or_interrupted(inspect(&mut run, &db_url, dir)));
        rt.shutdown_timeout(Duration::from_secs(10));
        inspected?;
        Ok(run)
    })();
    scratch.close()?;
    result
}

/// Lines of the app's output, and its warnings and errors (the first few, cut short).
fn read_log(path: &std::path::Path) -> (usize, usize, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let problems: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    (
        text.lines().count(),
        problems.len(),
        problems
            .iter()
            .take(3)
            .map(|l| l.chars().take(300).collect())
            .collect(),
    )
}

/// The buyers: each arrival takes one while it checks out.
struct Buyers {
    free: Mutex<Vec<reqwest::Client>>,
    permits: Semaphore,
}

fn epoch_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

async fn count(pool: &sqlx::AnyPool, sql: &'static str) -> Result<i64, sqlx::Error> {
    sqlx::query(sql).fetch_one(pool).await?.try_get(0)
}

async fn offer(
    cfg: &Config,
    engine: Engine,
    rate: u32,
    app: &mut AppProcess,
    db_url: &str,
) -> anyhow::Result<Run> {
    app.ready(Duration::from_secs(60)).await?;
    let shop = Arc::new(Shop {
        base: app.base.clone(),
        provider_db: Db::connect(db_url, 4).await?,
    });
    // The bench's own small pool for the samples, the drain and the checks.
    let monitor = Db::connect(db_url, 2).await?;
    let buyers = Arc::new(Buyers {
        free: Mutex::new(
            (0..BUYERS)
                .map(|_| shop::buyer_client())
                .collect::<Result<_, _>>()?,
        ),
        permits: Semaphore::new(BUYERS),
    });
    let offered = rate as usize * cfg.seconds as usize;
    let window = Duration::from_secs(cfg.seconds);
    // A moment to spare, so that the first arrivals are not late by the set-up above.
    let lead = Duration::from_millis(200);
    let start = Instant::now() + lead;
    let start_ms = epoch_ms(SystemTime::now() + lead);
    let end = start + window;
    let app_pid = app.pid().to_string();
    let cpu_before = (process::cpu_time(&app_pid), process::cpu_time("self"));

    let samples = Arc::new(Mutex::new(Vec::new()));
    let sampler = tokio::spawn(sample(monitor.pool().clone(), start, samples.clone()));

    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut arrivals = Vec::with_capacity(offered);
    for i in 0..offered {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        in_flight.fetch_add(1, Ordering::SeqCst);
        let (shop, buyers, in_flight) = (shop.clone(), buyers.clone(), in_flight.clone());
        arrivals.push(tokio::spawn(async move {
            let arrival = arrive(&shop, &buyers, i, due, start).await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
            arrival
        }));
    }
    tokio::time::sleep_until(end.into()).await;
    let end_ms = start_ms + window.as_millis() as i64;
    let cpu_after = (process::cpu_time(&app_pid), process::cpu_time("self"));
    let load = common::machine_load();

    // The drain: every checkout answered, no job left, every paid order delivered and every
    // email sent.
    let mut drain = None;
    while end.elapsed() < DRAIN_TIMEOUT {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM jobs WHERE status IN ('pending', 'running')),
                    (SELECT COUNT(*) FROM orders WHERE paid_at IS NOT NULL AND delivered_at IS NULL),
                    (SELECT COUNT(*) FROM emails WHERE sent_at IS NULL AND abandoned_at IS NULL)",
        )
        .fetch_one(monitor.pool())
        .await?;
        let open: i64 =
            row.try_get::<i64, _>(0)? + row.try_get::<i64, _>(1)? + row.try_get::<i64, _>(2)?;
        if open == 0 && in_flight.load(Ordering::SeqCst) == 0 {
            drain = Some(end.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sampler.abort();
    let samples = samples.lock().expect("samples").clone();

    let mut latencies = Vec::new();
    let mut errors = Vec::new();
    let (mut failed, mut waited_for_buyer, mut late, mut began_in_window) = (0, 0, 0, 0);
    for a in arrivals {
        let a = a.await?;
        waited_for_buyer += usize::from(a.waited_for_buyer);
        if a.began <= window {
            began_in_window += 1;
        }
        match a.error {
            None => latencies.push(a.latency),
            Some(e) => {
                failed += 1;
                if errors.len() < 3 && !errors.contains(&e) {
                    errors.push(e);
                }
            }
        }
        late += usize::from(a.late && !a.waited_for_buyer);
    }
    latencies.sort();

    shop.provider_db.close().await;
    monitor.close().await;

    let cores = |before: Option<Duration>, after: Option<Duration>| match (before, after) {
        (Some(b), Some(a)) => a.saturating_sub(b).as_secs_f64() / window.as_secs_f64(),
        _ => f64::NAN,
    };
    Ok(Run {
        engine,
        rate,
        seconds: cfg.seconds,
        offered,
        achieved: began_in_window as f64 / window.as_secs_f64(),
        ok: latencies.len(),
        failed,
        errors,
        latencies,
        waited_for_buyer,
        late,
        window_ms: (start_ms, end_ms),
        paid_in_window: 0,
        delivery: Vec::new(),
        samples,
        drain,
        statuses: Vec::new(),
        paid: 0,
        checks: Vec::new(),
        credits: 0,
        emails_sent: 0,
        eml_files: 0,
        dead_jobs: 0,
        peak_rss_mib: None,
        cpu: (
            cores(cpu_before.0, cpu_after.0),
            cores(cpu_before.1, cpu_after.1),
        ),
        stopped_cleanly: false,
        log_lines: 0,
        log_problems: Vec::new(),
        log_problem_count: 0,
        load,
    })
}

/// What the database says after the app stopped: paid → delivered, the exactly-once counts.
async fn inspect(run: &mut Run, db_url: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let db = Db::connect(db_url, 1).await?;
    let pool = db.pool();
    let rows = sqlx::query(
        "SELECT paid_at, delivered_at FROM orders WHERE paid_at >= $1 AND paid_at < $2",
    )
    .bind(run.window_ms.0)
    .bind(run.window_ms.1)
    .fetch_all(pool)
    .await?;
    run.paid_in_window = rows.len();
    for r in &rows {
        if let Some(delivered) = r.try_get::<Option<i64>, _>("delivered_at")? {
            let paid: i64 = r.try_get("paid_at")?;
            run.delivery
                .push(Duration::from_millis((delivered - paid).max(0) as u64));
        }
    }
    run.delivery.sort();
    run.checks = exactly_once(pool).await?;
    run.paid = count(
        pool,
        "SELECT COUNT(*) FROM orders WHERE paid_at IS NOT NULL",
    )
    .await?;
    run.credits = count(pool, "SELECT COUNT(*) FROM sandbox_ledger").await?;
    run.emails_sent = count(
        pool,
        "SELECT COUNT(*) FROM emails WHERE sent_at IS NOT NULL",
    )
    .await?;
    run.dead_jobs = count(pool, "SELECT COUNT(*) FROM jobs WHERE status = 'dead'").await?;
    run.eml_files = std::fs::read_dir(dir.join("data").join("outbox"))
        .map(|d| d.count() as i64)
        .unwrap_or(0);
    run.statuses = common::order_statuses(pool).await?;
    db.close().await;
    Ok(())
}

/// One arrival: a buyer from the pool (waiting for one if all are out), one checkout.
async fn arrive(shop: &Shop, buyers: &Buyers, i: usize, due: Instant, start: Instant) -> Arrival {
    let (permit, waited_for_buyer) = match buyers.permits.try_acquire() {
        Ok(p) => (p, false),
        Err(_) => (
            buyers
                .permits
                .acquire()
                .await
                .expect("the semaphore stays open"),
            true,
        ),
    };
    let client = buyers
        .free
        .lock()
        .expect("buyers")
        .pop()
        .expect("a buyer per permit");
    let began = Instant::now();
    let result = shop::checkout(&client, shop, i).await;
    let latency = due.elapsed();
    buyers.free.lock().expect("buyers").push(client);
    drop(permit);
    Arrival {
        latency,
        began: began.saturating_duration_since(start),
        waited_for_buyer,
        late: began.saturating_duration_since(due) > LATE,
        error: result.err().map(|e| format!("{e:#}")),
    }
}

/// Every second from the start of the offering: jobs pending or running, and orders paid but
/// not delivered.
async fn sample(pool: sqlx::AnyPool, start: Instant, into: Arc<Mutex<Vec<Sample>>>) {
    let mut tick = tokio::time::interval_at(start.into(), Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM jobs WHERE status IN ('pending', 'running')),
                    (SELECT COUNT(*) FROM orders WHERE paid_at IS NOT NULL AND delivered_at IS NULL)",
        )
        .fetch_one(&pool)
        .await;
        let Ok(row) = row else { continue };
        let (Ok(backlog), Ok(waiting)) = (row.try_get(0), row.try_get(1)) else {
            continue;
        };
        into.lock().expect("samples").push(Sample {
            at: start.elapsed().as_secs_f64().round() as u64,
            backlog,
            waiting,
        });
    }
}

/// Per paid order, how many of each effect there are, against how many there should be.
async fn exactly_once(pool: &sqlx::AnyPool) -> anyhow::Result<Vec<OnceCheck>> {
    let per_order: [(&'static str, i64, &str); 4] = [
        (
            "`delivered` status events",
            1,
            "SELECT COUNT(*) FROM order_events e WHERE e.order_id = o.id
                AND e.kind = 'status_changed' AND e.to_status = 'delivered'",
        ),
        (
            "pre-fulfillment risk assessments",
            1,
            "SELECT COUNT(*) FROM risk_assessments r WHERE r.order_id = o.id
                AND r.stage = 'pre_fulfillment'",
        ),
        (
            "supplier credits",
            1,
            "SELECT COUNT(*) FROM sandbox_ledger l WHERE l.order_id = o.id",
        ),
        (
            "emails sent",
            EMAILS_PER_ORDER,
            "SELECT COUNT(*) FROM emails m WHERE m.order_id = o.id AND m.sent_at IS NOT NULL",
        ),
    ];
    let mut checks = Vec::new();
    for (what, expected, each) in per_order {
        let sql = format!(
            "SELECT CAST(COALESCE(SUM(CASE WHEN n < {expected} THEN 1 ELSE 0 END), 0) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN n > {expected} THEN 1 ELSE 0 END), 0) AS BIGINT)
             FROM (SELECT ({each}) AS n FROM orders o WHERE o.paid_at IS NOT NULL) per_order"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_one(pool)
            .await
            .with_context(|| format!("counting {what}"))?;
        checks.push(OnceCheck {
            what,
            expected,
            missing: row.try_get(0)?,
            extra: row.try_get(1)?,
        });
    }
    Ok(checks)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Every `PRINT_EVERY`-th sample, a bar where the offering ended, and the maximum.
fn series(samples: &[Sample], seconds: u64, value: fn(&Sample) -> i64) -> String {
    let mut out = String::new();
    let mut marked = false;
    for s in samples.iter().filter(|s| s.at.is_multiple_of(PRINT_EVERY)) {
        if !marked && s.at >= seconds {
            out += " |";
            marked = true;
        }
        out += &format!(" {}", value(s));
    }
    if !marked {
        out += " |";
    }
    match samples.iter().max_by_key(|s| value(s)) {
        Some(top) => format!("{out}  (max {} at {} s)", value(top), top.at),
        None => "no samples".into(),
    }
}

fn print_details(r: &Run) {
    let l = r.label();
    let seconds = r.seconds;
    println!(
        "[{l}] offered {} checkouts in {} s: achieved {:.1}/s; {} ok, {} failed; checkout p50 {:.1} ms, p99 {:.1} ms (from each arrival's due time)",
        r.offered,
        seconds,
        r.achieved,
        r.ok,
        r.failed,
        ms(percentile(&r.latencies, 50.0)),
        ms(percentile(&r.latencies, 99.0)),
    );
    for e in &r.errors {
        println!("[{l}]   failure: {e}");
    }
    println!(
        "[{l}] generator: {} arrivals waited for a free buyer (all {BUYERS} busy), {} more began over {} ms after their due time (the bench lagged){}",
        r.waited_for_buyer,
        r.late,
        LATE.as_millis(),
        if r.generator_limited() {
            ": the rate was not fully offered, the generator was the limit for these"
        } else {
            ""
        }
    );
    println!(
        "[{l}] paid -> delivered ({} orders paid during the offering, {} not delivered): p50 {:.2} s, p99 {:.2} s, max {:.2} s",
        r.paid_in_window,
        r.paid_in_window - r.delivery.len(),
        secs(percentile(&r.delivery, 50.0)),
        secs(r.delivery_p99()),
        secs(r.delivery.last().copied().unwrap_or_default()),
    );
    println!(
        "[{l}] backlog (jobs pending or running), every {PRINT_EVERY} s, | = offering ended:{}",
        series(&r.samples, seconds, |s| s.backlog)
    );
    println!(
        "[{l}] orders waiting for coins (paid, not delivered), every {PRINT_EVERY} s:{}",
        series(&r.samples, seconds, |s| s.waiting)
    );
    println!(
        "[{l}] drain: {}; orders: {}",
        match r.drain {
            Some(d) => format!("{:.2} s after the offering ended", secs(d)),
            None => format!("NOT drained within {} s", DRAIN_TIMEOUT.as_secs()),
        },
        r.statuses.join(", ")
    );
    let checks: Vec<String> = r
        .checks
        .iter()
        .map(|c| {
            format!(
                "{} ×{}: {} short, {} over",
                c.what, c.expected, c.missing, c.extra
            )
        })
        .collect();
    let violations = r.violations();
    println!(
        "[{l}] exactly once over {} paid orders: {}; {} credits, {} emails sent, {} .eml files, {} dead jobs -> {}",
        r.paid,
        checks.join("; "),
        r.credits,
        r.emails_sent,
        r.eml_files,
        r.dead_jobs,
        match (violations.is_empty(), r.drain.is_some()) {
            (false, _) => format!("VIOLATED: {}", violations.join("; ")),
            (true, true) => "ok".into(),
            (true, false) => "no duplicates (incomplete: not drained)".into(),
        }
    );
    println!(
        "[{l}] app: peak RSS {}; CPU during the offering: app {:.2} cores, bench {:.2} cores; {}; log {} lines, {} warnings/errors",
        r.peak_rss_mib
            .map_or("unknown".into(), |m| format!("{m:.1} MiB")),
        r.cpu.0,
        r.cpu.1,
        if r.stopped_cleanly {
            "stopped by SIGTERM"
        } else {
            "had to be killed after SIGTERM"
        },
        r.log_lines,
        r.log_problem_count,
    );
    for p in &r.log_problems {
        println!("[{l}]   log: {p}");
    }
    println!("[{l}] machine at the end of the offering: {}", r.load);
}

fn print_table(runs: &[Run]) {
    if runs.is_empty() {
        return;
    }
    println!();
    println!(
        "{:<9} {:>6} {:>8} {:>6} {:>5} {:>7} {:>7} {:>8} {:>8} {:>8} {:>7} {:>8} {:>7} {:>5}  holds",
        "engine",
        "rate/s",
        "achieved",
        "ok",
        "fail",
        "p50 ms",
        "p99 ms",
        "p->d p50",
        "p->d p99",
        "p->d max",
        "backlog",
        "drain s",
        "RSS MiB",
        "once"
    );
    for r in runs {
        println!(
            "{:<9} {:>6} {:>7.1}{} {:>6} {:>5} {:>7.1} {:>7.1} {:>7.2}s {:>7.2}s {:>7.2}s {:>7} {:>8} {:>7} {:>5}  {}",
            r.engine.name(),
            r.rate,
            r.achieved,
            if r.generator_limited() { "*" } else { " " },
            r.ok,
            r.failed,
            ms(percentile(&r.latencies, 50.0)),
            ms(percentile(&r.latencies, 99.0)),
            secs(percentile(&r.delivery, 50.0)),
            secs(r.delivery_p99()),
            secs(r.delivery.last().copied().unwrap_or_default()),
            r.samples.iter().map(|s| s.backlog).max().unwrap_or(0),
            r.drain
                .map_or(format!(">{}", DRAIN_TIMEOUT.as_secs()), |d| format!("{:.2}", secs(d))),
            r.peak_rss_mib.map_or("?".into(), |m| format!("{m:.1}")),
            if r.violations().is_empty() { "ok" } else { "FAIL" },
            if r.holds() { "yes" } else { "no" },
        );
    }
    println!(
        "(p50/p99: checkout from due time to the paid webhook's answer; p->d: paid -> delivered of orders paid during the offering; backlog: most jobs pending or running at once; drain: from the end of the offering until all is delivered and sent; once: exactly-once checks; holds: p->d p99 < {} s, drain < {} s, no failures, once ok)",
        GOAL_P99.as_secs(),
        GOAL_DRAIN.as_secs()
    );
    if runs.iter().any(Run::generator_limited) {
        println!("(* some arrivals waited for one of the {BUYERS} buyers or began late: the rate was not fully offered; all buyers busy means checkouts took longer than {BUYERS} / rate)");
    }
}

fn print_goal(cfg: &Config, runs: &[Run]) {
    let mut engines: Vec<Engine> = runs.iter().map(|r| r.engine).collect();
    engines.dedup();
    for engine in engines {
        let mine: Vec<&Run> = runs.iter().filter(|r| r.engine == engine).collect();
        let at_goal = match mine.iter().find(|r| r.rate == GOAL_RATE) {
            Some(r) => format!(
                "at {GOAL_RATE}/s paid -> delivered p99 {:.2} s (< {} s: {}), drain {} (< {} s: {}) -> {}",
                secs(r.delivery_p99()),
                GOAL_P99.as_secs(),
                if r.delivery_p99() < GOAL_P99 { "met" } else { "NOT met" },
                r.drain
                    .map_or(format!("> {} s", DRAIN_TIMEOUT.as_secs()), |d| format!("{:.2} s", secs(d))),
                GOAL_DRAIN.as_secs(),
                if r.drain.is_some_and(|d| d < GOAL_DRAIN) { "met" } else { "NOT met" },
                if r.holds() { "goal met" } else { "GOAL NOT MET" },
            ),
            None => format!("{GOAL_RATE}/s was not run (BENCH_RATES)"),
        };
        // The highest rate such that it and every lower rate run held.
        let mut sorted = mine.clone();
        sorted.sort_by_key(|r| r.rate);
        let highest = sorted
            .iter()
            .take_while(|r| r.holds())
            .last()
            .map_or("none of the rates run".into(), |r| format!("{}/s", r.rate));
        println!(
            "{}: {at_goal}; highest rate that still holds: {highest} (of {} run, {} s each)",
            engine.name(),
            sorted
                .iter()
                .map(|r| format!("{}/s", r.rate))
                .collect::<Vec<_>>()
                .join(", "),
            cfg.seconds
        );
    }
}
