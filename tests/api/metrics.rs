//! `/metrics` (this instance, labelled `instance`) and `/metrics/shop` (the shop's numbers
//! from the database, with no `instance` label), as a Prometheus scraper reads them.

use crate::helpers::{spawn_app_with, Checkout, TestApp};

const TOKEN: &str = "scrape-token-0123456789";

async fn scrape(app: &TestApp, path: &str) -> String {
    let r = app
        .client
        .get(app.url(path))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = r.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    text
}

/// The value of the one sample whose line starts with `series` (name and labels).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn this_instances_requests_and_jobs_are_counted_by_route_and_kind() {
    let app = spawn_app_with(|s| {
        s.metrics.token = Some(coinfront::config::Secret::new(TOKEN));
        s.metrics.instance = Some("shop-a".into());
    })
    .await;
    let order = app.buy(&Checkout::default()).await;
    app.wait_for_status(&order, "delivered").await;
    crate::helpers::eventually("the delivery job recorded as done", || async {
        app.count("SELECT COUNT(*) FROM jobs WHERE kind = 'fulfill_order' AND status = 'done'")
            .await
            == 1
    })
    .await;
    assert_eq!(app.get(&order).await.status(), 200);
    assert_eq!(app.get("/no/such/page-7f3a").await.status(), 404);
    let text = scrape(&app, "/metrics").await;

    let sample =
        |labels: &str| format!("coinfront_http_requests_total{{instance=\"shop-a\",{labels}}}");
    assert_eq!(
        value(&text, &sample("method=\"GET\",route=\"/\",status=\"200\"")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            &sample("method=\"POST\",route=\"/checkout/confirm\",status=\"303\"")
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            &sample("method=\"GET\",route=\"/orders/{token}\",status=\"200\"")
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            &sample("method=\"GET\",route=\"unmatched\",status=\"404\"")
        ),
        Some(1.0),
        "{text}"
    );
    // Patterns, never paths: no order token or made-up path becomes a label.
    let token = order.trim_start_matches("/orders/");
    assert!(
        !text.contains(token) && !text.contains("page-7f3a"),
        "{text}"
    );
    // Latency: a histogram per route.
    assert_eq!(
        value(
            &text,
            "coinfront_http_request_duration_seconds_count{instance=\"shop-a\",method=\"GET\",route=\"/\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains("coinfront_http_request_duration_seconds_bucket{"),
        "{text}"
    );
    // Job runs by kind and outcome, with their durations.
    assert_eq!(
        value(
            &text,
            "coinfront_job_runs_total{instance=\"shop-a\",kind=\"fulfill_order\",outcome=\"done\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert!(text.contains(
        "coinfront_job_run_duration_seconds_count{instance=\"shop-a\",kind=\"fulfill_order\"}"
    ));
    assert_eq!(
        value(
            &text,
            "coinfront_job_leases_lost_total{instance=\"shop-a\"}"
        ),
        Some(0.0)
    );
    // The pool, and the names kept from before.
    assert!(
        value(
            &text,
            "coinfront_db_connections{instance=\"shop-a\",pool=\"main\",state=\"in_use\"}"
        )
        .is_some(),
        "{text}"
    );
    assert_eq!(
        value(&text, "coinfront_db_max_connections{instance=\"shop-a\"}"),
        Some(8.0)
    );
    assert_eq!(
        value(
            &text,
            "coinfront_malformed_requests_total{instance=\"shop-a\"}"
        ),
        Some(0.0)
    );
    // Every series of this endpoint is the instance's own.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.contains("instance=\"shop-a\""), "{line}");
    }
}

#[tokio::test]
async fn the_shops_numbers_come_from_the_database_once_without_an_instance_label() {
    // No workers, so the queue holds still while it is read.
    let app = spawn_app_with(|s| {
        s.metrics.token = Some(coinfront::config::Secret::new(TOKEN));
        s.jobs.workers = 0;
    })
    .await;
    app.start_order(&Checkout::default()).await;
    let now = app.now_ms();
    let pool = app.state.db.pool();
    for (kind, status, run_at) in [
        ("send_email", "dead", now - 3_600_000),
        ("staff_digest", "pending", now - 90_000),
        ("staff_digest", "pending", now + 600_000),
    ] {
        sqlx::query(
            "INSERT INTO jobs (id, kind, payload, status, attempts, run_at, created_at, updated_at)
             VALUES ($1, $2, '{}', $3, 1, $4, $4, $4)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(kind)
        .bind(status)
        .bind(run_at)
        .execute(pool)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO emails (id, kind, dedupe_key, to_address, subject, text_body, html_body, message_id, created_at)
         VALUES ('e1', 'test', 'e1', 'a@example.com', 's', 't', 'h', '<e1@example.com>', $1)",
    )
    .bind(now - 120_000)
    .execute(pool)
    .await
    .unwrap();

    let text = scrape(&app, "/metrics/shop").await;
    for (series, expected) in [
        ("coinfront_orders{status=\"awaiting_payment\"}", 1.0),
        ("coinfront_jobs{kind=\"send_email\",status=\"dead\"}", 1.0),
        ("coinfront_dead_jobs{kind=\"send_email\"}", 1.0),
        ("coinfront_job_queue_depth{kind=\"staff_digest\"}", 2.0),
        ("coinfront_job_queue_due{kind=\"staff_digest\"}", 1.0),
        (
            "coinfront_job_oldest_due_age_seconds{kind=\"staff_digest\"}",
            90.0,
        ),
        ("coinfront_emails_waiting", 1.0),
        ("coinfront_email_oldest_waiting_age_seconds", 120.0),
        ("coinfront_screening_surges_total", 0.0),
        ("coinfront_screening_surge_active", 0.0),
        (
            "coinfront_screening_decisions_24h{stage=\"pre_payment\",decision=\"allow\"}",
            1.0,
        ),
        ("coinfront_rate_limited_last_hour", 0.0),
        ("coinfront_disputes_30d", 0.0),
        ("coinfront_card_payments_settled_30d", 0.0),
    ] {
        assert_eq!(value(&text, series), Some(expected), "{series}\n{text}");
    }
    assert!(!text.contains("instance="), "{text}");
}
