//! The shop as an operator deploys it: the release binary started as separate processes, on
//! SQLite (one instance) and on PostgreSQL (one instance, and three sharing one database),
//! loaded over HTTP. For each setup, each figure beside its reference measured in the same run:
//!
//! - start-up: from starting the process to `/readyz` answering 200, on a fresh database (the
//!   migrations included);
//! - catalog throughput: requests per second of `/` beside `/healthz` of the same processes,
//!   with `BENCH_CONNECTIONS` keep-alive connections spread over the instances;
//! - checkout throughput: complete checkouts through the sandbox's hosted payment page
//!   (GET / → POST /checkout → POST /checkout/confirm → GET and POST /sandbox/pay/{session}),
//!   `BENCH_CONCURRENCY` buyers with their own cookie jars spread over the instances, beside the
//!   raw commit rate of the same database (one-row transactions, as many writers);
//! - paid-to-delivered latency: from the payment to the coins credited, per order, as the
//!   shop recorded them (`paid_at`, `delivered_at`), the webhook delivery and the job queue
//!   included;
//! - peak RSS of each server process (`VmHWM`) after all of it.
//!
//! Prints a Markdown report on standard output (`scripts/benchmarks.sh` writes it to
//! BENCHMARKS.md) and progress on standard error.
//!
//! Environment: COINFRONT_BIN (the server binary; default target/release/coinfront),
//! BENCH_POSTGRES_URL (PostgreSQL runs, on fresh databases dropped at the end; without it only
//! SQLite), BENCH_DURATION_SECS (each throughput run, default 10), BENCH_CONNECTIONS (64),
//! BENCH_ORDERS (checkouts measured, default 500), BENCH_CONCURRENCY (buyers, default 16),
//! BENCH_COMMITS (raw commits measured, default 2000).

mod common;

use anyhow::{bail, ensure, Context};
use common::shop::hidden;
use common::{ms, percentile, process, Scratch};
use sqlx::Row;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const COOKIE_KEY: &str = "bench-cookie-key-0123456789abcdef0123456789";
const WEBHOOK_KEY: &str = "bench-webhook-signing-key-0123456789abcdef";
const TOTP_KEY: &str = "bench-totp-key-0123456789abcdef0123456789ab";

struct Config {
    bin: PathBuf,
    postgres: Option<String>,
    duration: Duration,
    connections: usize,
    orders: usize,
    concurrency: usize,
    commits: usize,
}

/// One server process.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    /// Peak resident memory so far, in MiB (Linux: `VmHWM`).
    fn peak_rss_mib(&self) -> Option<f64> {
        process::peak_rss_mib(self.child.id())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts one instance and waits for `/readyz`; returns it and how long that took.
async fn start(
    cfg: &Config,
    dir: &Path,
    name: &str,
    db_url: &str,
) -> anyhow::Result<(Server, Duration)> {
    let port = process::free_port()?;
    let data_dir = dir.join(name);
    std::fs::create_dir_all(&data_dir)?;
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    let mut cmd = Command::new(&cfg.bin);
    cmd.current_dir(&data_dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("COINFRONT_BIND", format!("127.0.0.1:{port}"))
        .env("COINFRONT_DATA_DIR", &data_dir)
        .env("DATABASE_URL", db_url)
        .env("COINFRONT_SECRETS__COOKIE_KEY", COOKIE_KEY)
        .env("COINFRONT_SECRETS__WEBHOOK_SIGNING_KEY", WEBHOOK_KEY)
        .env("COINFRONT_SECRETS__TOTP_KEY", TOTP_KEY)
        // The sandbox supplier's simulated latency off: the shop's own work is measured.
        .env("COINFRONT_SUPPLIER__SANDBOX_DELAY_MS", "0")
        .env("COINFRONT_METRICS__INSTANCE", name);
    // Every buyer comes from 127.0.0.1: the per-address limits out of the way.
    for action in [
        "checkout",
        "payment_attempt",
        "account_lookup",
        "order_lookup",
        "refund_request",
        "staff_login",
        "support_message",
    ] {
        let key = action.to_uppercase();
        cmd.env(
            format!("COINFRONT_RATE_LIMITS__{key}__PER_MINUTE"),
            "1000000",
        )
        .env(format!("COINFRONT_RATE_LIMITS__{key}__BURST"), "1000000");
    }
    let started = Instant::now();
    let child = cmd
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
        .with_context(|| format!("starting {}", cfg.bin.display()))?;
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    loop {
        if let Ok(r) = client.get(format!("{}/readyz", server.base)).send().await {
            if r.status() == 200 {
                return Ok((server, started.elapsed()));
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("{name} did not become ready within 60 s (see {name}.log)");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

struct Throughput {
    per_second: f64,
    p99: Duration,
    errors: usize,
}

/// Parses wrk's `--latency` output: requests per second, the 99th percentile, and the
/// responses that were not 2xx/3xx plus socket errors.
fn parse_wrk(out: &str) -> Option<(f64, Duration, usize)> {
    let mut rps = None;
    let mut p99 = None;
    let mut errors = 0usize;
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => rps = v.parse().ok(),
            ["99%", v] => p99 = parse_wrk_time(v),
            ["Non-2xx", "or", "3xx", "responses:", n] => errors += n.parse::<usize>().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<usize>().ok())
                    .sum::<usize>()
            }
            _ => {}
        }
    }
    Some((rps?, p99?, errors))
}

/// "15.89ms", "812.00us", "1.02s".
fn parse_wrk_time(v: &str) -> Option<Duration> {
    let (number, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else {
        return None;
    };
    Some(Duration::from_secs_f64(number.parse::<f64>().ok()? * scale))
}

/// With `wrk` (as `scripts/bench-catalog.sh` uses): one wrk per server at once, the
/// connections split between them; the rates add up, the p99 is the worst of them.
async fn hammer_with_wrk(
    servers: &[String],
    path: &str,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Throughput> {
    let run = |secs: u64| {
        let per_server = (connections / servers.len()).max(1);
        let threads = (2 / servers.len()).max(1);
        let runs: Vec<_> = servers
            .iter()
            .map(|base| {
                let url = format!("{base}{path}");
                tokio::task::spawn_blocking(move || {
                    Command::new("wrk")
                        .args(["--latency", "-t", &threads.to_string()])
                        .args([
                            "-c",
                            &per_server.to_string(),
                            "-d",
                            &format!("{secs}s"),
                            &url,
                        ])
                        .output()
                })
            })
            .collect::<Vec<_>>();
        async move {
            let mut total = Throughput {
                per_second: 0.0,
                p99: Duration::ZERO,
                errors: 0,
            };
            for r in runs {
                let out = r.await??;
                let text = String::from_utf8_lossy(&out.stdout);
                let (rps, p99, errors) =
                    parse_wrk(&text).with_context(|| format!("wrk said: {text}"))?;
                total.per_second += rps;
                total.p99 = total.p99.max(p99);
                total.errors += errors;
            }
            Ok::<_, anyhow::Error>(total)
        }
    };
    run(2).await?;
    run(duration.as_secs().max(1)).await
}

fn have_wrk() -> bool {
    Command::new("wrk")
        .arg("--version")
        .output()
        .is_ok_and(|o| !o.stdout.is_empty() || !o.stderr.is_empty())
}

/// `connections` keep-alive connections, spread over the servers, asking for `path` as fast
/// as they are answered for `duration` (after a short warm-up): with `wrk` when it is
/// installed (a Rust client in this process tops out below what `/healthz` can serve),
/// otherwise with reqwest.
async fn hammer(
    servers: &[String],
    path: &str,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Throughput> {
    if have_wrk() {
        return hammer_with_wrk(servers, path, connections, duration).await;
    }
    hammer_with_reqwest(servers, path, connections, duration).await
}

async fn hammer_with_reqwest(
    servers: &[String],
    path: &str,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Throughput> {
    let run = |length: Duration| {
        let tasks: Vec<_> = (0..connections)
            .map(|c| {
                let url = format!("{}{path}", servers[c % servers.len()]);
                tokio::spawn(async move {
                    let client = reqwest::Client::builder()
                        .pool_max_idle_per_host(1)
                        .build()?;
                    let end = Instant::now() + length;
                    let (mut times, mut errors) = (Vec::new(), 0usize);
                    while Instant::now() < end {
                        let t = Instant::now();
                        match client.get(&url).send().await {
                            Ok(r) if r.status() == 200 => {
                                r.bytes().await?;
                                times.push(t.elapsed());
                            }
                            _ => errors += 1,
                        }
                    }
                    Ok::<_, anyhow::Error>((times, errors))
                })
            })
            .collect::<Vec<_>>();
        async move {
            let (mut all, mut errors) = (Vec::new(), 0);
            for t in tasks {
                let (times, e) = t.await??;
                all.extend(times);
                errors += e;
            }
            Ok::<_, anyhow::Error>((all, errors))
        }
    };
    run(duration.min(Duration::from_secs(2))).await?;
    let started = Instant::now();
    let (mut times, errors) = run(duration).await?;
    let elapsed = started.elapsed();
    times.sort();
    ensure!(!times.is_empty(), "no request to {path} succeeded");
    Ok(Throughput {
        per_second: times.len() as f64 / elapsed.as_secs_f64(),
        p99: percentile(&times, 99.0),
        errors,
    })
}

/// One buyer's whole checkout, paid on the sandbox's hosted page.
async fn checkout(client: &reqwest::Client, base: &str, n: usize) -> anyhow::Result<()> {
    let url = |path: &str| format!("{base}{path}");
    let html = client.get(url("/")).send().await?.text().await?;
    let csrf = hidden(&html, "csrf_token").context("catalog without csrf_token")?;
    let (username, email) = (format!("deploy.buyer_{n}"), format!("buyer{n}@example.com"));
    let resp = client
        .post(url("/checkout"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("package", "700"),
            ("coins", ""),
            ("tiktok_username", &username),
            ("email", &email),
            ("currency", "USD"),
            ("payment_method", "card"),
            ("age_confirmed", "yes"),
        ])
        .send()
        .await?;
    ensure!(resp.status() == 200, "POST /checkout: {}", resp.status());
    let html = resp.text().await?;
    let field = |name: &str| hidden(&html, name).with_context(|| format!("confirm without {name}"));
    let resp = client
        .post(url("/checkout/confirm"))
        .form(&[
            ("csrf_token", field("csrf_token")?),
            ("quote", field("quote")?),
            ("shown_total_minor", field("shown_total_minor")?),
            ("shown_currency", field("shown_currency")?),
        ])
        .send()
        .await?;
    ensure!(
        resp.status() == 303,
        "POST /checkout/confirm: {}",
        resp.status()
    );
    let pay = resp
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .trim_start_matches(base)
        .to_owned();
    ensure!(pay.starts_with("/sandbox/pay/"), "confirm led to {pay:?}");
    let html = client.get(url(&pay)).send().await?.text().await?;
    let csrf = hidden(&html, "csrf_token").context("payment page without csrf_token")?;
    let resp = client
        .post(url(&pay))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("method", "card"),
            ("card_number", "4242424242424242"),
            ("expiry", "12/34"),
            ("cvc", "123"),
        ])
        .send()
        .await?;
    ensure!(resp.status() == 303, "paying: {}", resp.status());
    Ok(())
}

struct Checkouts {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

async fn checkouts(cfg: &Config, servers: &[String]) -> anyhow::Result<Checkouts> {
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..cfg.concurrency)
        .map(|b| {
            let base = servers[b % servers.len()].clone();
            let (next, failed, orders) = (next.clone(), failed.clone(), cfg.orders);
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .cookie_store(true)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()?;
                let mut times = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= orders || failed.load(Ordering::SeqCst) {
                        return Ok::<_, anyhow::Error>(times);
                    }
                    let t = Instant::now();
                    if let Err(e) = checkout(&client, &base, n).await {
                        failed.store(true, Ordering::SeqCst);
                        return Err(e.context(format!("checkout #{n} on {base}")));
                    }
                    times.push(t.elapsed());
                }
            })
        })
        .collect();
    let mut times = Vec::new();
    for t in tasks {
        times.extend(t.await??);
    }
    let elapsed = started.elapsed();
    times.sort();
    Ok(Checkouts {
        per_second: times.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&times, 50.0),
        p99: percentile(&times, 99.0),
    })
}

/// Waits until the `orders` paid orders have settled (none left paid, queued or being
/// fulfilled); returns the paid-to-delivered time of each delivered one.
async fn delivered(db_url: &str, orders: usize) -> anyhow::Result<Vec<Duration>> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(db_url)
        .await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM orders WHERE paid_at IS NOT NULL) AS paid,
                    (SELECT COUNT(*) FROM orders WHERE status IN ('paid', 'queued', 'fulfilling')) AS moving",
        )
        .fetch_one(&pool)
        .await?;
        let (paid, moving): (i64, i64) = (row.try_get("paid")?, row.try_get("moving")?);
        if paid as usize >= orders && moving == 0 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "{paid} of {orders} orders paid, {moving} still on their way after 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows = sqlx::query(
        "SELECT delivered_at - paid_at AS took FROM orders WHERE status = 'delivered' ORDER BY took",
    )
    .fetch_all(&pool)
    .await?;
    pool.close().await;
    rows.iter()
        .map(|r| {
            Ok(Duration::from_millis(
                r.try_get::<i64, _>("took")?.max(0) as u64
            ))
        })
        .collect()
}

/// One-row transactions per second on `db_url`, `writers` at a time: the engine's commit rate
/// as the shop's pool meets it (SQLite: WAL, synchronous NORMAL, like the shop's connections).
async fn raw_commits(db_url: &str, commits: usize, writers: usize) -> anyhow::Result<f64> {
    let db = coinfront::db::Db::connect(db_url, writers as u32).await?;
    sqlx::query("CREATE TABLE bench_commits (id BIGINT PRIMARY KEY, at BIGINT NOT NULL)")
        .execute(db.pool())
        .await?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let (db, next) = (db.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= commits {
                        return Ok::<_, anyhow::Error>(());
                    }
                    let mut tx = db.begin().await?;
                    sqlx::query("INSERT INTO bench_commits (id, at) VALUES ($1, $2)")
                        .bind(i as i64)
                        .bind(chrono::Utc::now().timestamp_millis())
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let rate = commits as f64 / started.elapsed().as_secs_f64();
    sqlx::query("DROP TABLE bench_commits")
        .execute(db.pool())
        .await?;
    db.close().await;
    Ok(rate)
}

struct SetupResult {
    name: String,
    startup: Duration,
    catalog: Throughput,
    healthz: Throughput,
    checkout: Checkouts,
    raw_commits: f64,
    delivery: Vec<Duration>,
    peak_rss_mib: Vec<f64>,
}

/// One setup, on fresh databases (made and dropped outside the runtime: `Scratch` blocks).
fn run_setup(
    cfg: &Config,
    rt: &tokio::runtime::Runtime,
    name: &str,
    postgres: Option<String>,
    instances: usize,
) -> anyhow::Result<SetupResult> {
    eprintln!("== {name}");
    let mut scratch = Scratch::new("cf-deploy-", postgres)?;
    let db_url = scratch.database("shop")?;
    let raw_url = scratch.database("raw")?;
    let result = rt.block_on(common::or_interrupted(async {
        let mut servers = Vec::new();
        let mut startup = Duration::ZERO;
        for i in 0..instances {
            let (server, took) = start(cfg, scratch.path(), &format!("shop-{}", i + 1), &db_url)
                .await
                .with_context(|| format!("starting instance {}", i + 1))?;
            // The first start migrates a fresh database; the others find it ready.
            if i == 0 {
                startup = took;
            }
            eprintln!("   instance {} ready in {:.0} ms", i + 1, ms(took));
            servers.push(server);
        }
        let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
        eprintln!("   catalog and /healthz, {} s each", cfg.duration.as_secs());
        let catalog = hammer(&bases, "/", cfg.connections, cfg.duration).await?;
        let healthz = hammer(&bases, "/healthz", cfg.connections, cfg.duration).await?;
        eprintln!("   {} checkouts", cfg.orders);
        let checkout = checkouts(cfg, &bases).await?;
        let delivery = delivered(&db_url, cfg.orders).await?;
        eprintln!("   raw commits");
        let raw_commits = raw_commits(&raw_url, cfg.commits, cfg.concurrency).await?;
        let peak_rss_mib = servers.iter().filter_map(Server::peak_rss_mib).collect();
        Ok::<_, anyhow::Error>(SetupResult {
            name: name.to_owned(),
            startup,
            catalog,
            healthz,
            checkout,
            raw_commits,
            delivery,
            peak_rss_mib,
        })
    }));
    // Servers are stopped (dropped) before their databases go.
    scratch.close()?;
    result
}

fn report(cfg: &Config, results: &[SetupResult]) {
    println!("| setup | start-up | catalog `/` req/s (p99) | `/healthz` req/s (p99) | catalog ÷ healthz | checkouts/s (p50 / p99) | raw commits/s | raw commits per checkout | delivered | paid→delivered p50 / p99 / max | peak RSS per instance |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in results {
        let d = &r.delivery;
        println!(
            "| {} | {:.0} ms | {:.0} ({:.1} ms) | {:.0} ({:.1} ms) | {:.0} % | {:.1} ({:.0} / {:.0} ms) | {:.0} | {:.0} | {} of {} | {:.0} / {:.0} / {:.0} ms | {} |",
            r.name,
            ms(r.startup),
            r.catalog.per_second,
            ms(r.catalog.p99),
            r.healthz.per_second,
            ms(r.healthz.p99),
            100.0 * r.catalog.per_second / r.healthz.per_second,
            r.checkout.per_second,
            ms(r.checkout.p50),
            ms(r.checkout.p99),
            r.raw_commits,
            r.raw_commits / r.checkout.per_second,
            d.len(),
            cfg.orders,
            ms(percentile(d, 50.0)),
            ms(percentile(d, 99.0)),
            ms(*d.last().unwrap_or(&Duration::ZERO)),
            r.peak_rss_mib
                .iter()
                .map(|m| format!("{m:.0} MiB"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        if r.catalog.errors + r.healthz.errors > 0 {
            println!(
                "\n({}: {} failed requests during the throughput runs)\n",
                r.name,
                r.catalog.errors + r.healthz.errors
            );
        }
    }
    println!();
    println!(
        "Settings: {} s per throughput run over {} keep-alive connections ({}); {} checkouts by {} buyers \
         (each with its own cookie jar, paying on the sandbox's hosted page, card 4242…); {} raw \
         one-row commits by {} writers on a fresh database of the same engine. Several instances \
         share the connections and buyers round-robin. The sandbox supplier's delay is 0; \
         everything else is the shipped default (access log on, 8 job workers, pool of 8).",
        cfg.duration.as_secs(),
        cfg.connections,
        if have_wrk() {
            "wrk, one per instance at once"
        } else {
            "reqwest: install wrk for figures the client does not cap"
        },
        cfg.orders,
        cfg.concurrency,
        cfg.commits,
        cfg.concurrency,
    );
}

fn main() -> ExitCode {
    let cfg = Config {
        bin: std::env::var_os("COINFRONT_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target/release/coinfront")),
        postgres: common::postgres_admin_url(),
        duration: Duration::from_secs(common::env_usize("BENCH_DURATION_SECS", 10).max(1) as u64),
        connections: common::env_usize("BENCH_CONNECTIONS", 64).max(1),
        orders: common::env_usize("BENCH_ORDERS", 500).max(1),
        concurrency: common::env_usize("BENCH_CONCURRENCY", 16).max(1),
        commits: common::env_usize("BENCH_COMMITS", 2000).max(1),
    };
    if !cfg.bin.exists() {
        eprintln!(
            "{} does not exist: build it with `cargo build --release --bin coinfront` (or set COINFRONT_BIN)",
            cfg.bin.display()
        );
        return ExitCode::FAILURE;
    }
    let mut setups: Vec<(&str, Option<String>, usize)> = vec![("SQLite, 1 instance", None, 1)];
    if let Some(pg) = &cfg.postgres {
        setups.push(("PostgreSQL, 1 instance", Some(pg.clone()), 1));
        setups.push(("PostgreSQL, 3 instances", Some(pg.clone()), 3));
    } else {
        eprintln!("BENCH_POSTGRES_URL is not set: SQLite only");
    }
    let rt = common::runtime(2);
    let load_before = common::machine_load();
    let mut results = Vec::new();
    for (name, pg, instances) in setups {
        match run_setup(&cfg, &rt, name, pg, instances) {
            Ok(r) => results.push(r),
            Err(e) => {
                eprintln!("{name}: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    }
    report(&cfg, &results);
    println!();
    println!(
        "Machine: {} before, {} after.",
        load_before,
        common::machine_load()
    );
    ExitCode::SUCCESS
}
