//! `coinfront backup` and `coinfront restore` as an operator runs them: the server binary
//! serving a SQLite database under write load, the commands as separate processes.

use crate::helpers::{Browser, Checkout};
use crate::process::ServerProcess;
use sqlx::{AnyConnection, Connection, Row};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const BUYERS: usize = 4;

fn run(data_dir: &Path, database_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coinfront"))
        .current_dir(data_dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("COINFRONT_DATA_DIR", data_dir.join("data"))
        .env("DATABASE_URL", database_url)
        .args(args)
        .output()
        .expect("run coinfront")
}

async fn open(path: &Path) -> AnyConnection {
    sqlx::any::install_default_drivers();
    AnyConnection::connect(&format!("sqlite://{}?mode=ro", path.display()))
        .await
        .unwrap()
}

async fn integrity(conn: &mut AnyConnection) -> Vec<String> {
    sqlx::query("PRAGMA integrity_check")
        .fetch_all(conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect()
}

/// Every order as (id, status, amount, currency, token hash), in id order.
async fn orders(conn: &mut AnyConnection) -> Vec<(String, String, i64, String, String)> {
    sqlx::query("SELECT id, status, amount_minor, currency, token_hash FROM orders ORDER BY id")
        .fetch_all(conn)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get("id"),
                r.get("status"),
                r.get("amount_minor"),
                r.get("currency"),
                r.get("token_hash"),
            )
        })
        .collect()
}

async fn count(conn: &mut AnyConnection, sql: &'static str) -> i64 {
    sqlx::query(sql).fetch_one(conn).await.unwrap().get(0)
}

/// Buyers placing and paying orders until told to stop; returns the order page paths.
fn load(
    address: &str,
    stop: Arc<AtomicBool>,
    placed: Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<Vec<String>>> {
    (0..BUYERS)
        .map(|b| {
            let (address, stop, placed) = (address.to_owned(), stop.clone(), placed.clone());
            tokio::spawn(async move {
                let buyer = Browser::new(address);
                let mut paths = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let username = format!("backup_{b}_{i}");
                    let email = format!("backup{b}_{i}@example.com");
                    paths.push(
                        buyer
                            .buy(&Checkout {
                                username: &username,
                                email: &email,
                                ..Default::default()
                            })
                            .await,
                    );
                    placed.fetch_add(1, Ordering::SeqCst);
                    i += 1;
                }
                paths
            })
        })
        .collect()
}

async fn wait_for(what: &str, check: impl Fn() -> bool) {
    for _ in 0..1200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_write_load_is_whole_and_restores_while_the_shop_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("data/coinfront.db");
    let url = format!("sqlite://{}?mode=rwc", db_path.display());
    let env = [
        ("COINFRONT_SUPPLIER__SANDBOX_DELAY_MS", "5"),
        ("COINFRONT_RISK__VELOCITY__MAX_ORDERS_24H", "100000"),
    ];
    let mut server = ServerProcess::start(dir.path(), &url, "server.log", &env);

    let stop = Arc::new(AtomicBool::new(false));
    let placed = Arc::new(AtomicUsize::new(0));
    let buyers = load(&server.address, stop.clone(), placed.clone());
    wait_for("the first orders", || {
        placed.load(Ordering::SeqCst) >= 10 * BUYERS
    })
    .await;

    // The backup runs while the buyers go on writing.
    let backup_file = dir.path().join("backups/shop-1.db");
    std::fs::create_dir_all(backup_file.parent().unwrap()).unwrap();
    let placed_before = placed.load(Ordering::SeqCst);
    let out = {
        let (d, u, f) = (
            dir.path().to_owned(),
            url.clone(),
            backup_file.display().to_string(),
        );
        tokio::task::spawn_blocking(move || run(&d, &u, &["backup", &f]))
            .await
            .unwrap()
    };
    let placed_after = placed.load(Ordering::SeqCst);
    assert!(
        out.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("integrity checked"), "{said}");
    assert!(
        !PathBuf::from(format!("{}.partial", backup_file.display())).exists(),
        "no partial file is left"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&backup_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the backup is owner-only like the database"
        );
    }
    // The load goes on past the backup, then stops.
    wait_for("orders after the backup", || {
        placed.load(Ordering::SeqCst) >= placed_after + BUYERS
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let mut paths = Vec::new();
    for b in buyers {
        paths.extend(b.await.unwrap());
    }

    // A backup never overwrites.
    let again = run(
        dir.path(),
        &url,
        &["backup", &backup_file.display().to_string()],
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));

    // The backup is whole, and consistent: it is one moment of the shop, in which every
    // order's status has the audit event that moved it there (written in the same
    // transaction), and every payment its order.
    let mut backup = open(&backup_file).await;
    assert_eq!(integrity(&mut backup).await, ["ok"]);
    let in_backup = orders(&mut backup).await;
    assert!(
        in_backup.len() >= placed_before && in_backup.len() <= placed_after + BUYERS,
        "the backup holds the orders of its moment: {} (placed before {placed_before}, after {placed_after})",
        in_backup.len()
    );
    assert_eq!(
        count(
            &mut backup,
            "SELECT COUNT(*) FROM orders o WHERE NOT EXISTS
               (SELECT 1 FROM order_events e WHERE e.order_id = o.id AND e.to_status = o.status)"
        )
        .await,
        0,
        "an order's status without the event that set it: a torn copy"
    );
    assert_eq!(
        count(
            &mut backup,
            "SELECT COUNT(*) FROM payments p WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = p.order_id)"
        )
        .await,
        0
    );
    backup.close().await.unwrap();

    // Restore refuses while the shop runs, and changes nothing.
    let refused = run(
        dir.path(),
        &url,
        &["restore", &backup_file.display().to_string()],
    );
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("the shop is running"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    let mut live = open(&db_path).await;
    assert!(
        orders(&mut live).await.len() > in_backup.len(),
        "the live database is untouched"
    );
    live.close().await.unwrap();

    // Stopped (as hard as it gets), the shop's database can be restored.
    server.kill_hard();
    let mut live = open(&db_path).await;
    let live_orders = orders(&mut live).await;
    live.close().await.unwrap();
    let restored = run(
        dir.path(),
        &url,
        &["restore", &backup_file.display().to_string()],
    );
    assert!(
        restored.status.success(),
        "restore failed: {}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let said = String::from_utf8_lossy(&restored.stdout);
    assert!(said.contains("kept as"), "{said}");
    let mut db = open(&db_path).await;
    assert_eq!(integrity(&mut db).await, ["ok"]);
    assert_eq!(
        orders(&mut db).await,
        in_backup,
        "the restored orders are the backup's"
    );
    db.close().await.unwrap();
    let kept: Vec<_> = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".before-restore-"))
        .collect();
    assert_eq!(kept.len(), 1, "the replaced database is kept");
    let mut replaced = open(&kept[0].path()).await;
    assert_eq!(
        orders(&mut replaced).await,
        live_orders,
        "…whole, with what was still in its WAL"
    );
    replaced.close().await.unwrap();

    // The shop starts on the restored database and serves its orders.
    let server = ServerProcess::start(dir.path(), &url, "server-restored.log", &env);
    let browser = Browser::new(server.address.clone());
    let hashes: Vec<&String> = in_backup.iter().map(|o| &o.4).collect();
    let restored_path = paths
        .iter()
        .find(|p| {
            hashes.contains(&&coinfront::domain::ids::token_hash(
                p.trim_start_matches("/orders/"),
            ))
        })
        .expect("an order page of an order in the backup");
    assert_eq!(browser.get(restored_path).await.status(), 200);
    let lost_path = paths
        .iter()
        .find(|p| {
            !hashes.contains(&&coinfront::domain::ids::token_hash(
                p.trim_start_matches("/orders/"),
            ))
        })
        .expect("an order placed after the backup");
    assert_eq!(browser.get(lost_path).await.status(), 404);
    eprintln!(
        "backup under load: {} orders in the backup (placed before it started {placed_before}, \
         when it ended {placed_after}), {} in the live database at the end",
        in_backup.len(),
        live_orders.len()
    );
}

#[test]
fn backup_and_restore_point_postgresql_at_its_own_tools() {
    let dir = tempfile::tempdir().unwrap();
    for command in ["backup", "restore"] {
        let out = run(
            dir.path(),
            "postgres://shop@127.0.0.1:1/coins",
            &[command, "x.dump"],
        );
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("pg_dump") && stderr.contains("pg_restore"),
            "{stderr}"
        );
    }
}
