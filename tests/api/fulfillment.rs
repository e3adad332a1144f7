//! Delivery through the job queue and the sandbox supplier.

use crate::helpers::{spawn_app, spawn_app_with, Checkout};
use sqlx::Row;

#[tokio::test]
async fn a_paid_allowed_order_is_credited_exactly_once_and_shown_delivered() {
    let app = spawn_app().await;
    let order_path = app
        .buy(&Checkout {
            package: "1400",
            ..Default::default()
        })
        .await;
    app.wait_for_status(&order_path, "delivered").await;
    let r = sqlx::query("SELECT o.id, l.coins, l.account_id, o.tiktok_account_id FROM orders o JOIN sandbox_ledger l ON l.order_id = o.id")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(r.get::<i64, _>("coins"), 1400);
    assert_eq!(
        r.get::<String, _>("account_id"),
        r.get::<String, _>("tiktok_account_id"),
        "credited to the pinned account"
    );
    let html = app.get_html(&order_path).await;
    assert!(
        html.contains("Coins delivered")
            && html.contains("Done — the coins are in your TikTok account")
    );
    let path = ["queued", "fulfilling", "delivered"];
    let seen: Vec<String> = app
        .texts("SELECT to_status FROM order_events WHERE to_status IS NOT NULL ORDER BY at, id")
        .await;
    assert_eq!(
        seen,
        [
            "awaiting_payment",
            "paid",
            "queued",
            "fulfilling",
            "delivered"
        ]
    );
    let _ = path;
    // A repeated credit for the same order is a no-op returning the first receipt.
    let order_id: String = r.get("id");
    let first = app
        .state
        .supplier
        .credit(
            &order_id,
            "tt_someone_else",
            coinfront::domain::Coins::new(5),
        )
        .await
        .unwrap();
    assert_eq!(first.coins.get(), 1400);
    assert_eq!(app.count("SELECT COUNT(*) FROM sandbox_ledger").await, 1);
}

#[tokio::test]
async fn transient_supplier_failures_are_retried_until_delivered() {
    let app = spawn_app().await;
    let order_path = app
        .buy(&Checkout {
            username: "flaky_star",
            ..Default::default()
        })
        .await;
    app.wait_for_status_advancing(&order_path, "delivered")
        .await;
    let attempts: i64 = sqlx::query("SELECT attempts FROM jobs WHERE kind = 'fulfill_order'")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(attempts, 3, "two transient failures, then success");
    assert_eq!(app.count("SELECT COUNT(*) FROM sandbox_ledger").await, 1);
}

#[tokio::test]
async fn a_permanent_failure_ends_fulfillment_failed_and_refunds_the_buyer() {
    let app = spawn_app_with(|s| s.jobs.max_attempts = 3).await;
    let order_path = app
        .buy(&Checkout {
            username: "broken_link",
            ..Default::default()
        })
        .await;
    app.wait_for_status_advancing(&order_path, "refunded").await;
    let statuses: Vec<String> = app
        .texts("SELECT to_status FROM order_events WHERE to_status IS NOT NULL ORDER BY at, id")
        .await;
    assert!(
        statuses.contains(&"fulfillment_failed".to_owned()),
        "{statuses:?}"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM jobs WHERE kind = 'fulfill_order' AND status = 'dead'")
            .await,
        1
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM sandbox_ledger").await, 0);
    assert_eq!(app.count("SELECT refunded_minor FROM orders").await, 728);
}

#[tokio::test]
async fn without_automatic_refunds_a_failed_order_waits_for_support() {
    let app = spawn_app_with(|s| {
        s.jobs.max_attempts = 2;
        s.fulfillment.auto_refund_on_failure = false;
    })
    .await;
    let order_path = app
        .buy(&Checkout {
            username: "broken_link",
            ..Default::default()
        })
        .await;
    app.wait_for_status_advancing(&order_path, "fulfillment_failed")
        .await;
    app.wait_until_idle().await;
    assert_eq!(app.order_status(&order_path).await, "fulfillment_failed");
    assert_eq!(app.count("SELECT COUNT(*) FROM sandbox_refunds").await, 0);
}

#[tokio::test]
async fn a_username_that_changed_hands_is_held_instead_of_crediting_a_stranger() {
    let app = spawn_app().await;
    let order_path = app
        .buy(&Checkout {
            username: "moved_account",
            ..Default::default()
        })
        .await;
    app.wait_for_status(&order_path, "in_review").await;
    assert_eq!(app.count("SELECT COUNT(*) FROM sandbox_ledger").await, 0);
    let detail: String =
        sqlx::query("SELECT detail FROM order_events WHERE to_status = 'in_review'")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
            .get(0);
    assert!(
        detail.contains("now belongs to a different TikTok account"),
        "{detail}"
    );
}

#[tokio::test]
async fn a_crashed_workers_job_is_taken_again_after_its_lease() {
    let app = spawn_app_with(|s| {
        s.jobs.workers = 0;
        s.jobs.lease_seconds = 30;
    })
    .await;
    let mut tx = app.state.db.begin().await.unwrap();
    let job = coinfront::jobs::NewJob {
        // Never run (no workers): any kind will do.
        job: coinfront::jobs::Job::SendEmail {
            email_id: "noop_test".into(),
        },
        dedupe_key: None,
        run_at: app.now_ms(),
    };
    coinfront::jobs::enqueue(&mut tx, job, app.now_ms())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let db = &app.state.db;
    let first = coinfront::jobs::claim(db, "dead-worker", app.now_ms(), 30_000)
        .await
        .unwrap()
        .expect("claimed");
    assert!(
        coinfront::jobs::claim(db, "other", app.now_ms(), 30_000)
            .await
            .unwrap()
            .is_none(),
        "leased"
    );
    app.clock.advance_secs(31);
    let again = coinfront::jobs::claim(db, "other", app.now_ms(), 30_000)
        .await
        .unwrap()
        .expect("lease ended");
    assert_eq!(again.id, first.id);
    assert_eq!(again.attempts, 2);
    // The crashed worker can no longer complete it.
    let mut tx = db.begin().await.unwrap();
    assert!(
        !coinfront::jobs::complete(&mut tx, &first, "dead-worker", app.now_ms())
            .await
            .unwrap()
    );
    assert!(
        coinfront::jobs::complete(&mut tx, &again, "other", app.now_ms())
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
}
