//! Refund requests: the buyer asks from the order page, an agent decides, the provider
//! refunds, and the order ends refunded or partly refunded.

use crate::helpers::{extract_hidden, spawn_app, Checkout, TestApp};
use coinfront::domain::{Currency, Money};
use coinfront::orders::refunds::{approve, deny, RefundError, Started};
use sqlx::Row;

async fn ask(app: &TestApp, order_path: &str, reason: &str, message: &str) -> reqwest::Response {
    let page = app.get_html(order_path).await;
    let csrf = extract_hidden(&page, "csrf_token").expect("order page has a form token");
    app.post_form(
        &format!("{order_path}/refund"),
        &[
            ("csrf_token", &csrf),
            ("reason", reason),
            ("message", message),
        ],
    )
    .await
}

async fn request_id(app: &TestApp) -> String {
    sqlx::query("SELECT id FROM refund_requests ORDER BY created_at DESC, id DESC")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0)
}

async fn delivered_order(app: &TestApp, card: &str) -> String {
    let started = app.start_order(&Checkout::default()).await;
    let path = app
        .order_path_after(app.pay_card(&started, card, "123").await)
        .await;
    app.wait_for_status(&path, "delivered").await;
    path
}

#[tokio::test]
async fn request_then_full_approval_refunds_the_order() {
    let app = spawn_app().await;
    let path = delivered_order(&app, "4242424242424242").await;
    let page = app.get_html(&path).await;
    assert!(page.contains("Ask for a refund") && page.contains("usually within one business day"));
    let r = ask(&app, &path, "not_delivered", "Balance did not change").await;
    crate::helpers::assert_is_redirect_to(&r, "?refund=requested");
    let page = app.get_html(&format!("{path}?refund=requested")).await;
    assert!(
        page.contains("We received your refund request")
            && page.contains("The coins did not arrive")
    );
    assert!(
        !page.contains("Ask for a refund</button>"),
        "no second form while one is open"
    );

    let outcome = approve(
        &app.state,
        &request_id(&app).await,
        None,
        "staff:agent@shop.test",
    )
    .await;
    assert_eq!(outcome, Ok(Started::Pending));
    app.wait_for_status(&path, "refunded").await;
    let status: String = sqlx::query("SELECT status FROM refund_requests")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "refunded");
    assert_eq!(app.count("SELECT refunded_minor FROM orders").await, 728);
    assert!(app.get_html(&path).await.contains("Refunded US$7.28"));
}

#[tokio::test]
async fn partial_refunds_up_to_the_total_and_never_more() {
    let app = spawn_app().await;
    let path = delivered_order(&app, "4242424242424242").await;
    ask(&app, &path, "wrong_amount", "Got 350 coins, not 700").await;
    let id = request_id(&app).await;
    let usd = |minor| Some(Money::from_minor(minor, Currency::Usd));
    // More than paid, zero, and the wrong currency are refused with the limit named.
    for bad in [
        usd(729),
        usd(0),
        Some(Money::from_minor(100, Currency::Eur)),
    ] {
        let r = approve(&app.state, &id, bad, "staff:a").await;
        assert_eq!(
            r,
            Err(RefundError::Amount {
                max: "US$7.28".into()
            })
        );
    }
    assert_eq!(
        approve(&app.state, &id, usd(300), "staff:a").await,
        Ok(Started::Pending)
    );
    app.wait_for_status(&path, "partially_refunded").await;
    // A second request for the rest.
    let r = ask(&app, &path, "wrong_amount", "And the rest please").await;
    assert!(r.status().is_redirection());
    let second = request_id(&app).await;
    let r = approve(&app.state, &second, usd(429), "staff:a").await;
    assert_eq!(
        r,
        Err(RefundError::Amount {
            max: "US$4.28".into()
        }),
        "over-refund refused"
    );
    assert_eq!(
        approve(&app.state, &second, usd(428), "staff:a").await,
        Ok(Started::Pending)
    );
    app.wait_for_status(&path, "refunded").await;
    assert_eq!(app.count("SELECT refunded_minor FROM orders").await, 728);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM refunds WHERE status = 'succeeded'")
            .await,
        2
    );
}

#[tokio::test]
async fn a_denial_is_explained_to_the_buyer() {
    let app = spawn_app().await;
    let path = delivered_order(&app, "4242424242424242").await;
    ask(&app, &path, "not_delivered", "").await;
    let id = request_id(&app).await;
    deny(
        &app.state,
        &id,
        "staff:agent@shop.test",
        "Our supplier shows 700 coins credited at 16:02 UTC.",
    )
    .await
    .unwrap();
    let page = app.get_html(&path).await;
    assert!(
        page.contains("Not refunded") && page.contains("Our supplier shows 700 coins credited")
    );
    assert_eq!(
        deny(&app.state, &id, "staff:b", "again").await,
        Err(RefundError::AlreadyDecided)
    );
    assert_eq!(app.order_status(&path).await, "delivered");
}

#[tokio::test]
async fn a_second_request_shows_the_open_one() {
    let app = spawn_app().await;
    let path = delivered_order(&app, "4242424242424242").await;
    assert!(ask(&app, &path, "charged_twice", "")
        .await
        .status()
        .is_redirection());
    let csrf = app.csrf().await;
    let r = app
        .post_form(
            &format!("{path}/refund"),
            &[
                ("csrf_token", &csrf),
                ("reason", "other"),
                ("message", "Please?"),
            ],
        )
        .await;
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("You already asked for a refund on"));
    assert_eq!(app.count("SELECT COUNT(*) FROM refund_requests").await, 1);
}

#[tokio::test]
async fn bad_requests_get_a_message_on_the_page() {
    let app = spawn_app().await;
    let path = delivered_order(&app, "4242424242424242").await;
    let r = ask(&app, &path, "made_up", "").await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("Choose what went wrong."));
    let r = ask(&app, &path, "other", "  ").await;
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Tell us briefly what went wrong."));
    let r = ask(&app, &path, "other", &"x".repeat(2001)).await;
    assert!(r.text().await.unwrap().contains("under 2,000 characters"));
    assert_eq!(app.count("SELECT COUNT(*) FROM refund_requests").await, 0);
}

#[tokio::test]
async fn an_unpaid_order_cannot_be_refunded() {
    let app = spawn_app().await;
    let started = app.start_order(&Checkout::default()).await;
    let _ = started;
    let token_order: (String, String) = {
        let r = sqlx::query("SELECT id, idempotency_key FROM orders")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    let token =
        coinfront::domain::order_token::order_token(&app.state.secrets.cookie_key, &token_order.1);
    let path = format!("/orders/{token}");
    assert!(!app.get_html(&path).await.contains("Ask for a refund"));
    let r = ask_without_form(&app, &path).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("no payment to refund"));
    assert_eq!(app.count("SELECT COUNT(*) FROM refund_requests").await, 0);
}

async fn ask_without_form(app: &TestApp, path: &str) -> reqwest::Response {
    let csrf = app.csrf().await;
    app.post_form(
        &format!("{path}/refund"),
        &[
            ("csrf_token", &csrf),
            ("reason", "not_delivered"),
            ("message", ""),
        ],
    )
    .await
}

#[tokio::test]
async fn a_failed_refund_is_shown_and_can_be_retried() {
    let app = spawn_app().await;
    // The sandbox's refund-fails card: the first refund of this payment fails.
    let path = delivered_order(&app, "4000000000005126").await;
    ask(&app, &path, "not_delivered", "").await;
    let id = request_id(&app).await;
    assert_eq!(
        approve(&app.state, &id, None, "staff:a").await,
        Ok(Started::Pending)
    );
    crate::helpers::eventually("the refund.failed webhook", || async {
        app.count("SELECT COUNT(*) FROM refund_requests WHERE status = 'failed'")
            .await
            == 1
    })
    .await;
    let failure: String = sqlx::query("SELECT failure FROM refunds")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    assert!(
        failure.contains("can no longer receive refunds"),
        "{failure}"
    );
    assert_eq!(app.order_status(&path).await, "delivered");
    // Retry: the failed request is approved again.
    assert_eq!(
        approve(&app.state, &id, None, "staff:a").await,
        Ok(Started::Pending)
    );
    app.wait_for_status(&path, "refunded").await;
    assert_eq!(app.count("SELECT refunded_minor FROM orders").await, 728);
}

#[tokio::test]
async fn concurrent_approvals_refund_once() {
    let app = spawn_app().await;
    let path = delivered_order(&app, "4242424242424242").await;
    ask(&app, &path, "not_delivered", "").await;
    let id = request_id(&app).await;
    let results = futures_util::future::join_all((0..6).map(|n| {
        let state = app.state.clone();
        let id = id.clone();
        async move { approve(&state, &id, None, &format!("staff:agent{n}")).await }
    }))
    .await;
    assert_eq!(
        results
            .iter()
            .filter(|r| **r == Ok(Started::Pending))
            .count(),
        1,
        "{results:?}"
    );
    assert!(results.iter().all(|r| matches!(
        r,
        Ok(Started::Pending) | Err(RefundError::AlreadyDecided) | Err(RefundError::NothingLeft)
    )));
    app.wait_for_status(&path, "refunded").await;
    assert_eq!(app.count("SELECT COUNT(*) FROM refunds").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM sandbox_refunds").await, 1);
    assert_eq!(app.count("SELECT refunded_minor FROM orders").await, 728);
}

#[tokio::test]
async fn a_replayed_refund_webhook_under_a_new_event_id_adds_nothing() {
    let app = spawn_app().await;
    let path = delivered_order(&app, "4242424242424242").await;
    ask(&app, &path, "not_delivered", "").await;
    approve(
        &app.state,
        &request_id(&app).await,
        Some(Money::from_minor(100, Currency::Usd)),
        "staff:a",
    )
    .await
    .unwrap();
    app.wait_for_status(&path, "partially_refunded").await;
    let r = sqlx::query("SELECT r.id, r.provider_refund_id, o.id AS order_id, o.provider_session_id FROM refunds r JOIN orders o ON o.id = r.order_id")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    let body = serde_json::json!({
        "id": "evt_replayed_under_new_id",
        "type": "refund.succeeded",
        "created": 0,
        "data": {
            "order_reference": r.get::<String, _>("order_id"),
            "session_id": r.get::<String, _>("provider_session_id"),
            "object_id": r.get::<String, _>("provider_refund_id"),
            "method": "card", "amount_minor": 100, "currency": "USD",
            "reference": r.get::<String, _>("id")
        }
    })
    .to_string();
    let sig = crate::helpers::signed(&app, &body);
    assert_eq!(app.post_webhook(&body, Some(&sig)).await.status(), 200);
    assert_eq!(
        app.count("SELECT refunded_minor FROM orders").await,
        100,
        "applied once"
    );
}

#[tokio::test]
async fn an_agent_decides_refunds_in_the_console_and_the_buyer_is_emailed() {
    let app = spawn_app().await;
    let path = delivered_order(&app, "4242424242424242").await;
    ask(&app, &path, "not_delivered", "Nothing arrived").await;
    let agent = app.sign_in_as_agent("agent@shop.test").await;
    let queue = agent.get_html("/console/refunds").await;
    assert!(queue.contains("The coins did not arrive") && queue.contains("Nothing arrived"));
    assert!(
        queue.contains("Yes — 700 coins credited"),
        "the supplier's ledger"
    );
    assert!(queue.contains("the refund window is 30 days"));
    let csrf = extract_hidden(&queue, "csrf_token").unwrap();
    let id = request_id(&app).await;
    // Too much is refused with the limit named; part is accepted.
    let r = agent
        .post_form(
            &format!("/console/refunds/{id}"),
            &[
                ("csrf_token", &csrf),
                ("decision", "partial"),
                ("amount", "7.29"),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("at most US$7.28"));
    let r = agent
        .post_form(
            &format!("/console/refunds/{id}"),
            &[
                ("csrf_token", &csrf),
                ("decision", "partial"),
                ("amount", "2.00"),
            ],
        )
        .await;
    crate::helpers::assert_is_redirect_to(&r, "/console/refunds?done=approved");
    app.wait_for_status(&path, "partially_refunded").await;
    // A second agent acting on the decided request gets a clear conflict.
    let other = app.sign_in_as_agent("other@shop.test").await;
    let page = other.get_html("/console/").await;
    let csrf2 = extract_hidden(&page, "csrf_token").expect("the console layout carries a token");
    let r = other
        .post_form(
            &format!("/console/refunds/{id}"),
            &[("csrf_token", &csrf2), ("decision", "full")],
        )
        .await;
    assert_eq!(r.status(), 409);
    crate::helpers::eventually("the outcome email", || async {
        app.count("SELECT COUNT(*) FROM emails WHERE kind = 'refund_completed'")
            .await
            == 1
    })
    .await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM emails WHERE kind = 'refund_requested'")
            .await,
        1
    );
}
