//! Shared by the benchmarks (each `benches/*.rs` is its own crate and uses a part of this).
#![allow(dead_code)]

pub mod history;
pub mod process;
pub mod shop;

use std::time::Duration;

/// A size from the environment (`2000` or `2_000`), or `default` when unset.
pub fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().replace('_', "").parse().unwrap_or_else(|_| {
            eprintln!("{name}={v:?} is not a whole number");
            std::process::exit(2)
        }),
        _ => default,
    }
}

/// The database engine a run is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

/// SQLite, and PostgreSQL when `postgres` (the admin URL) is set; says so when it is not.
pub fn engines(postgres: &Option<String>) -> Vec<Engine> {
    if postgres.is_some() {
        vec![Engine::Sqlite, Engine::Postgres]
    } else {
        println!("  (set BENCH_POSTGRES_URL to run on PostgreSQL too)");
        vec![Engine::Sqlite]
    }
}

/// "delivered 1990, in_review 10": the orders by status, most first.
pub async fn order_statuses(pool: &sqlx::AnyPool) -> Result<Vec<String>, sqlx::Error> {
    use sqlx::Row;
    sqlx::query("SELECT status, COUNT(*) AS n FROM orders GROUP BY status ORDER BY COUNT(*) DESC")
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok(format!(
                "{} {}",
                r.try_get::<String, _>("status")?,
                r.try_get::<i64, _>("n")?
            ))
        })
        .collect()
}

/// `BENCH_POSTGRES_URL`, when set and not empty.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var("BENCH_POSTGRES_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000_000.0
}

/// "load average 0.52 0.61 0.64 (2 CPUs)": how busy the machine was.
pub fn machine_load() -> String {
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into());
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("load average {load} ({cpus} CPUs)")
}

/// A fresh PostgreSQL database `cf_bench_<random><suffix>` made from the admin URL. Dropped
/// by `drop_now` (or, failing that, when the value is dropped).
pub struct PgDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
    dropped: bool,
}

impl PgDatabase {
    pub async fn create(admin_url: &str, suffix: &str) -> anyhow::Result<PgDatabase> {
        use anyhow::Context;
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let name = format!(
            "cf_bench_{}{suffix}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let mut conn = sqlx::AnyConnection::connect(admin_url)
            .await
            .with_context(|| "connecting to BENCH_POSTGRES_URL".to_string())?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .with_context(|| format!("creating database {name}"))?;
        let _ = conn.close().await;
        let base = admin_url.split('?').next().unwrap_or(admin_url);
        let authority = base.find("://").map_or(0, |i| i + 3);
        let root = base
            .rfind('/')
            .filter(|&i| i >= authority)
            .map_or(base, |i| &base[..i]);
        Ok(PgDatabase {
            admin_url: admin_url.to_owned(),
            url: format!("{root}/{name}"),
            name,
            dropped: false,
        })
    }

    /// Drops the database, closing any connection still open to it.
    pub async fn drop_now(&mut self) -> anyhow::Result<()> {
        if self.dropped {
            return Ok(());
        }
        drop_database(&self.admin_url, &self.name).await?;
        self.dropped = true;
        Ok(())
    }
}

async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(admin_url).await?;
    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await?;
    let _ = conn.close().await;
    Ok(())
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // Possibly inside a runtime: use a thread with its own.
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            if let Err(e) = rt.block_on(drop_database(&url, &name)) {
                eprintln!("could not drop database {name}: {e:#}");
            }
        })
        .join();
    }
}

/// A multi-threaded runtime for one phase of a benchmark; shutting it down ends every task the
/// phase started.
pub fn runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Runs `fut`, or stops early with an error when Ctrl-C arrives (so the caller still cleans up).
pub async fn or_interrupted<T>(
    fut: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::select! {
        r = fut => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    }
}

/// Where one engine's run keeps its data: a temporary folder, and fresh databases — SQLite
/// files in that folder, or (given an admin URL) new PostgreSQL databases. `close` drops the
/// databases and removes the folder; dropping a `Scratch` without it still drops them.
pub struct Scratch {
    dir: tempfile::TempDir,
    postgres_admin: Option<String>,
    databases: Vec<PgDatabase>,
}

impl Scratch {
    /// SQLite when `postgres_admin` is `None`.
    pub fn new(prefix: &str, postgres_admin: Option<String>) -> anyhow::Result<Scratch> {
        Ok(Scratch {
            dir: tempfile::Builder::new().prefix(prefix).tempdir()?,
            postgres_admin,
            databases: Vec::new(),
        })
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The URL of a new, empty database called `name` (a file `name.db`, or a database
    /// `cf_bench_<random>_name`).
    pub fn database(&mut self, name: &str) -> anyhow::Result<String> {
        match &self.postgres_admin {
            None => Ok(format!(
                "sqlite://{}?mode=rwc",
                self.dir.path().join(format!("{name}.db")).display()
            )),
            Some(admin) => {
                let db = runtime(1).block_on(PgDatabase::create(admin, &format!("_{name}")))?;
                let url = db.url.clone();
                self.databases.push(db);
                Ok(url)
            }
        }
    }

    pub fn close(mut self) -> anyhow::Result<()> {
        use anyhow::Context;
        for db in &mut self.databases {
            if let Err(e) = runtime(1).block_on(db.drop_now()) {
                eprintln!("could not drop database {}: {e:#}", db.name);
            }
        }
        self.dir.close().context("removing the temporary folder")
    }
}
