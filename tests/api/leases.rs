//! Job leases are short and renewed while a job runs: a job that takes longer than its lease
//! keeps it, and a run whose lease was taken by another worker stops before it does anything
//! more (the other run finishes the job, once).

use crate::helpers::{fresh_database, spawn_app_with, Browser, Checkout};
use crate::process::ServerProcess;
use coinfront::jobs::Job;
use sqlx::Row;
use std::time::{Duration, Instant};

/// The fulfillment job's (status, attempts, locked_by, run_at), if it exists.
async fn fulfill_job(db: &coinfront::db::Db) -> Option<(String, i64, Option<String>, i64)> {
    sqlx::query("SELECT status, attempts, locked_by, run_at FROM jobs WHERE kind = $1")
        .bind(Job::FULFILL_ORDER)
        .fetch_optional(db.pool())
        .await
        .unwrap()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
}

async fn count(db: &coinfront::db::Db, sql: &'static str) -> i64 {
    sqlx::query(sql)
        .fetch_one(db.pool())
        .await
        .unwrap()
        .get::<i64, _>(0)
}

#[tokio::test]
async fn a_job_that_outlasts_its_lease_keeps_it_by_renewing() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _guard) = fresh_database(dir.path()).await;
    // A one-second lease, and a delivery that takes three (two supplier calls of 1.5 s).
    let env = [
        ("COINFRONT_JOBS__LEASE_SECONDS", "1"),
        ("COINFRONT_JOBS__HEARTBEAT_MS", "250"),
        ("COINFRONT_JOBS__WORKERS", "4"),
        ("COINFRONT_SUPPLIER__SANDBOX_DELAY_MS", "1500"),
    ];
    let server = ServerProcess::start(dir.path(), &url, "server.log", &env);
    let db = coinfront::db::Db::connect(&url, 2).await.unwrap();
    let buyer = Browser::new(server.address.clone());
    buyer
        .buy(&Checkout {
            username: "slow_delivery",
            ..Default::default()
        })
        .await;
    // While it runs, its lease end moves on, again and again.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lease_ends = Vec::new();
    loop {
        match fulfill_job(&db).await {
            Some((status, _, _, run_at))
                if status == "running" && lease_ends.last() != Some(&run_at) =>
            {
                lease_ends.push(run_at);
            }
            Some((status, ..)) if status == "done" => break,
            _ => {}
        }
        assert!(Instant::now() < deadline, "the delivery never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        lease_ends.len() >= 5,
        "the lease was renewed while the job ran: {lease_ends:?}"
    );
    let (_, attempts, ..) = fulfill_job(&db).await.unwrap();
    assert_eq!(attempts, 1, "no other worker took the job");
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM sandbox_ledger").await,
        1,
        "credited once"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM orders WHERE status = 'delivered'"
        )
        .await,
        1
    );
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(!log.contains("lease lost"), "{log}");
}

#[tokio::test]
async fn a_run_whose_lease_was_taken_stops_and_the_job_is_done_once() {
    let app = spawn_app_with(|s| {
        s.jobs.lease_seconds = 1;
        s.jobs.heartbeat_ms = 50;
        s.supplier.sandbox_delay_ms = 1_000;
    })
    .await;
    let db = &app.state.db;
    app.buy(&Checkout {
        username: "stolen_lease",
        ..Default::default()
    })
    .await;
    // As soon as a worker runs the delivery (looking the account up, which takes a second),
    // another takes the job from under it, as one would after a lease ran out unrenewed.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (id, first_worker) = loop {
        let row =
            sqlx::query("SELECT id, locked_by FROM jobs WHERE kind = $1 AND status = 'running'")
                .bind(Job::FULFILL_ORDER)
                .fetch_optional(db.pool())
                .await
                .unwrap();
        if let Some(r) = row {
            break (r.get::<String, _>(0), r.get::<String, _>(1));
        }
        assert!(Instant::now() < deadline, "the delivery never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let far = app.now_ms() + 3_600_000;
    sqlx::query(
        "UPDATE jobs SET locked_by = 'other-worker', run_at = $1, lease_until = $1 WHERE id = $2",
    )
    .bind(far)
    .bind(&id)
    .execute(db.pool())
    .await
    .unwrap();
    // The first run notices at its next renewal and stops.
    crate::helpers::eventually("the first run stopped", || async {
        app.state.metrics.job_leases_lost() == 1
    })
    .await;
    // It stopped before crediting, and left the job as the other worker holds it.
    assert_eq!(count(db, "SELECT COUNT(*) FROM sandbox_ledger").await, 0);
    let (status, attempts, locked_by, run_at) = fulfill_job(db).await.unwrap();
    assert_eq!(
        (status.as_str(), attempts, locked_by.as_deref(), run_at),
        ("running", 1, Some("other-worker"), far),
        "{first_worker} recorded nothing"
    );
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM orders WHERE status IN ('queued', 'fulfilling')"
        )
        .await,
        1,
        "not delivered"
    );

    // The other worker dies in turn: its lease ends, and the job is run again, to the end.
    sqlx::query("UPDATE jobs SET run_at = $1, lease_until = $1 WHERE id = $2")
        .bind(app.now_ms())
        .bind(&id)
        .execute(db.pool())
        .await
        .unwrap();
    app.state.jobs_ready.notify_one();
    crate::helpers::eventually("the order is delivered", || async {
        count(db, "SELECT COUNT(*) FROM orders WHERE status = 'delivered'").await == 1
    })
    .await;
    app.wait_until_idle().await;
    assert_eq!(count(db, "SELECT COUNT(*) FROM sandbox_ledger").await, 1);
    let (status, attempts, ..) = fulfill_job(db).await.unwrap();
    assert_eq!((status.as_str(), attempts), ("done", 2));
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM order_events WHERE to_status = 'delivered'"
        )
        .await,
        1
    );
}
