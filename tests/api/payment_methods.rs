//! Every payment method's real-world flow, through the sandbox provider.

use crate::helpers::{extract_hidden, spawn_app, spawn_app_with, Checkout, Started, TestApp};
use sqlx::Row;

async fn post_on_page(
    app: &TestApp,
    page_path: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let page = app.get_html(page_path).await;
    let csrf = extract_hidden(&page, "csrf_token").expect("page has a form");
    let mut form = vec![("csrf_token", csrf.as_str())];
    form.extend_from_slice(fields);
    app.post_form(action, &form).await
}

#[tokio::test]
async fn paypal_approve_pays_and_cancel_returns_unpaid() {
    let app = spawn_app().await;
    let started = app
        .start_order(&Checkout {
            method: "paypal",
            ..Default::default()
        })
        .await;
    let session = started
        .session_path
        .trim_start_matches("/sandbox/pay/")
        .to_owned();
    // Off to the wallet's own page…
    let r = post_on_page(&app, &started.session_path, &started.session_path, &[]).await;
    crate::helpers::assert_is_redirect_to(&r, &format!("/sandbox/paypal/{session}"));
    let approve_page = app.get_html(&format!("/sandbox/paypal/{session}")).await;
    assert!(
        approve_page.contains("Approve US$7.79"),
        "the total with the PayPal fee"
    );
    // …cancel first: back to the shop, still unpaid, with a way to pay.
    let r = post_on_page(
        &app,
        &format!("/sandbox/paypal/{session}"),
        &format!("/sandbox/paypal/{session}"),
        &[("action", "cancel")],
    )
    .await;
    let order_path = app.order_path_after(r).await;
    assert_eq!(app.order_status(&order_path).await, "awaiting_payment");
    assert!(app.get_html(&order_path).await.contains("Go to payment"));
    // Then approve.
    let r = post_on_page(
        &app,
        &format!("/sandbox/paypal/{session}"),
        &format!("/sandbox/paypal/{session}"),
        &[("action", "approve")],
    )
    .await;
    app.order_path_after(r).await;
    app.wait_for_status(&order_path, "delivered").await;
    assert!(
        app.get_html(&order_path).await.contains("PayPal")
            || app.get_html(&order_path).await.contains("paypal")
    );
}

#[tokio::test]
async fn gift_cards_pay_from_their_balance_and_decline_clearly_when_short() {
    // Three codes tried from one client count as card testing; this test is about balances.
    let app = spawn_app_with(|s| s.risk.card_testing.distinct_cards_1h = 10).await;
    let started = app
        .start_order(&Checkout {
            method: "gift_card",
            ..Default::default()
        })
        .await;
    for (code, message) in [
        ("NOPE-1234", "not valid"),
        ("GIFT-5-ABCD", "balance is too low"),
    ] {
        let r = post_on_page(
            &app,
            &started.session_path,
            &started.session_path,
            &[("gift_code", code)],
        )
        .await;
        assert_eq!(r.status(), 402, "{code}");
        assert!(r.text().await.unwrap().contains(message), "{code}");
    }
    // A 10.00 card covers 7.28 once, then has 2.72 left.
    let r = post_on_page(
        &app,
        &started.session_path,
        &started.session_path,
        &[("gift_code", "gift-10-abcd")],
    )
    .await;
    let path = app.order_path_after(r).await;
    app.wait_for_status(&path, "delivered").await;
    let second = app
        .start_order(&Checkout {
            method: "gift_card",
            username: "second_fan",
            ..Default::default()
        })
        .await;
    let r = post_on_page(
        &app,
        &second.session_path,
        &second.session_path,
        &[("gift_code", "GIFT-10-ABCD")],
    )
    .await;
    assert_eq!(r.status(), 402);
    assert!(r.text().await.unwrap().contains("balance is too low"));
    // The declines reach the shop's payments as signed webhooks, sent by a job.
    app.wait_until_idle().await;
    let codes: Vec<String> = app
        .texts("SELECT failure_code FROM payments WHERE status = 'failed' ORDER BY created_at, id")
        .await;
    assert!(
        codes.contains(&"invalid_code".to_owned())
            && codes.contains(&"insufficient_balance".to_owned())
    );
}

async fn crypto_quote(app: &TestApp, started: &Started) -> String {
    let r = post_on_page(app, &started.session_path, &started.session_path, &[]).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Send exactly") && html.contains("7.28 USDC-test") && html.contains("0xtest")
    );
    html
}

async fn send(app: &TestApp, started: &Started, amount: &str) -> reqwest::Response {
    let session = started.session_path.trim_start_matches("/sandbox/pay/");
    post_on_page(
        app,
        &started.session_path,
        &format!("/sandbox/crypto/{session}"),
        &[("amount", amount)],
    )
    .await
}

#[tokio::test]
async fn crypto_pays_on_confirmation_of_the_exact_amount() {
    let app = spawn_app_with(|s| s.payments.sandbox_crypto_confirm_seconds = 60).await;
    let started = app
        .start_order(&Checkout {
            method: "crypto",
            ..Default::default()
        })
        .await;
    crypto_quote(&app, &started).await;
    crate::helpers::eventually("the pending event", || async {
        app.count("SELECT COUNT(*) FROM payments WHERE status = 'pending'")
            .await
            == 1
    })
    .await;
    let path = app
        .order_path_after(send(&app, &started, "7.28").await)
        .await;
    // Not yet confirmed: waiting.
    app.wait_until_idle().await;
    assert_eq!(app.order_status(&path).await, "awaiting_payment");
    app.clock.advance_secs(61);
    app.wait_for_status_advancing(&path, "delivered").await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM payments WHERE status = 'succeeded' AND method = 'crypto'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_crypto_underpayment_is_not_a_payment_and_the_buyer_can_pay_again() {
    let app = spawn_app_with(|s| s.payments.sandbox_crypto_confirm_seconds = 0).await;
    let started = app
        .start_order(&Checkout {
            method: "crypto",
            ..Default::default()
        })
        .await;
    crypto_quote(&app, &started).await;
    let path = app
        .order_path_after(send(&app, &started, "7.00").await)
        .await;
    crate::helpers::eventually("the underpayment event", || async {
        app.count("SELECT COUNT(*) FROM payments WHERE failure_code = 'underpaid'")
            .await
            == 1
    })
    .await;
    assert_eq!(app.order_status(&path).await, "awaiting_payment");
    let html = app.get_html(&path).await;
    assert!(
        html.contains("underpaid") || html.contains("not a payment"),
        "the buyer sees what happened"
    );
    let received: i64 =
        sqlx::query("SELECT amount_minor FROM payments WHERE failure_code = 'underpaid'")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
            .get(0);
    assert_eq!(
        received, 700,
        "the amount that arrived is recorded, to be returned"
    );
    // A fresh quote, the exact amount, delivered.
    crypto_quote(&app, &started).await;
    send(&app, &started, "7.28").await;
    app.wait_for_status_advancing(&path, "delivered").await;
}

#[tokio::test]
async fn a_crypto_payment_after_the_quote_expired_goes_to_review() {
    let app = spawn_app_with(|s| s.payments.sandbox_crypto_confirm_seconds = 0).await;
    let started = app
        .start_order(&Checkout {
            method: "crypto",
            ..Default::default()
        })
        .await;
    crypto_quote(&app, &started).await;
    app.clock.advance_secs(16 * 60); // past the 15-minute quote, within the 30-minute order
    assert!(app
        .get_html(&started.session_path)
        .await
        .contains("expired: a payment now goes to a manual check"));
    let path = app
        .order_path_after(send(&app, &started, "7.28").await)
        .await;
    app.wait_for_status(&path, "in_review").await;
    let reasons: String =
        sqlx::query("SELECT reasons FROM risk_assessments WHERE stage = 'pre_fulfillment'")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
            .get(0);
    assert!(reasons.contains("paid_after_expiry"), "{reasons}");
}
