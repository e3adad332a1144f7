//! Order search and order pages: finding orders, retrying a failed delivery.

use super::*;

#[tokio::test]
async fn orders_are_found_by_number_email_username_and_card() {
    let app = spawn_app().await;
    let ana = app
        .buy(&Checkout {
            email: "ana@example.com",
            username: "ana_buyer",
            ..Default::default()
        })
        .await;
    let bob = app
        .buy(&Checkout {
            email: "bob@example.com",
            username: "bob.builder",
            ..Default::default()
        })
        .await;
    app.wait_for_status(&ana, "delivered").await;
    app.wait_for_status(&bob, "delivered").await;
    let (ana_no, bob_no) = (
        order_number(&app, &ana).await,
        order_number(&app, &bob).await,
    );
    let agent = app.sign_in_as_agent(AGENT).await;
    let search = |q: String| {
        let agent = &agent;
        async move { agent.get_html(&format!("/console/orders?{q}")).await }
    };
    let html = search(format!("q={}", ana_no.to_lowercase())).await;
    assert!(
        html.contains(&ana_no) && !html.contains(&bob_no),
        "by number"
    );
    let html = search("q=BOB%40example.com".into()).await;
    assert!(
        html.contains(&bob_no) && !html.contains(&ana_no),
        "by email"
    );
    let html = search("q=%40ana_".into()).await;
    assert!(
        html.contains(&ana_no) && !html.contains(&bob_no),
        "by username"
    );
    let html = search("q=4242".into()).await;
    assert!(
        html.contains(&ana_no) && html.contains(&bob_no),
        "by card last 4"
    );
    let html = search("q=&status=delivered".into()).await;
    assert!(html.contains(&ana_no) && html.contains(&bob_no));
    let html = search("q=&status=in_review".into()).await;
    assert!(!html.contains(&ana_no) && html.contains("No orders match"));
    let today = chrono::DateTime::from_timestamp_millis(app.now_ms())
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    let tomorrow = chrono::DateTime::from_timestamp_millis(app.now_ms() + 86_400_000)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    let html = search(format!("from={today}&to={today}")).await;
    assert!(html.contains(&ana_no) && html.contains(&bob_no), "by date");
    let html = search(format!("from={tomorrow}")).await;
    assert!(!html.contains(&ana_no), "nothing tomorrow");
    let r = agent.get("/console/orders?from=yesterday").await;
    assert_eq!(r.status(), 422);

    // The order page has everything.
    let html = agent.get_html(&format!("/console/orders/{ana_no}")).await;
    for needle in [
        "Timeline",
        "order created",
        "Visa •••• 4242",
        "Risk assessments",
        "pre-payment",
        "pre-fulfillment",
        "Emails sent",
        "supplier",
        "Resend receipt",
    ] {
        assert!(html.contains(needle), "{needle} missing");
    }
    let r = post_from(
        &agent,
        &format!("/console/orders/{ana_no}"),
        &format!("/console/orders/{ana_no}/resend-receipt"),
        &[],
    )
    .await;
    assert_is_redirect_to(&r, "?done=resent");
    assert_eq!(
        count_where(
            &app,
            "SELECT COUNT(*) FROM order_events WHERE kind = 'receipt_resent' AND actor = $1",
            "staff:agent@example.com"
        )
        .await,
        1
    );
    assert_eq!(agent.get("/console/orders/CF-NOTHERE").await.status(), 404);
}

#[tokio::test]
async fn a_failed_delivery_can_be_retried_unless_it_is_being_refunded() {
    let app = spawn_app_with(|s| {
        s.jobs.max_attempts = 2;
        s.fulfillment.auto_refund_on_failure = false;
    })
    .await;
    let path = app
        .buy(&Checkout {
            username: "broken_link",
            ..Default::default()
        })
        .await;
    app.wait_for_status_advancing(&path, "fulfillment_failed")
        .await;
    let number = order_number(&app, &path).await;
    let agent = app.sign_in_as_agent(AGENT).await;
    let dash = agent.get_html("/console/").await;
    assert!(dash.contains("Delivery failed") && dash.contains(&number));
    let r = post_from(
        &agent,
        &format!("/console/orders/{number}"),
        &format!("/console/orders/{number}/retry"),
        &[],
    )
    .await;
    assert_is_redirect_to(&r, "?done=retried");
    assert_eq!(
        count_where(
            &app,
            "SELECT COUNT(*) FROM order_events WHERE from_status = 'fulfillment_failed' AND to_status = 'queued' AND actor = $1",
            "staff:agent@example.com"
        )
        .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM jobs WHERE kind = 'fulfill_order'")
            .await,
        2
    );
    // It fails again; this time an automatic refund is under way: no retry over it.
    app.wait_for_status_advancing(&path, "fulfillment_failed")
        .await;
    let mut tx = app.state.db.begin().await.unwrap();
    let id: String = sqlx::query("SELECT id FROM orders")
        .fetch_one(&mut *tx)
        .await
        .unwrap()
        .get(0);
    // A refund queued (for later, so that it is still under way when the agent clicks).
    let job = coinfront::jobs::NewJob {
        job: coinfront::jobs::Job::RefundOrder {
            order_id: id.clone(),
            reason: "test".into(),
        },
        dedupe_key: Some(format!("refund_order:{id}:full")),
        run_at: app.now_ms() + 86_400_000,
    };
    coinfront::jobs::enqueue(&mut tx, job, app.now_ms())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let r = post_from(
        &agent,
        &format!("/console/orders/{number}"),
        &format!("/console/orders/{number}/retry"),
        &[],
    )
    .await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("being refunded"));
}
