//! What a careful buyer checks before paying: methods, fees, policies, age, delivery times.

use crate::helpers::{extract_hidden, spawn_app, spawn_app_with, Checkout};
use sqlx::Row;

#[tokio::test]
async fn the_age_confirmation_is_required_and_recorded() {
    let app = spawn_app().await;
    let csrf = app.csrf().await;
    let form = [
        ("csrf_token", csrf.as_str()),
        ("package", "70"),
        ("tiktok_username", "ana_buyer"),
        ("email", "ana@example.com"),
        ("currency", "USD"),
        ("payment_method", "card"),
    ];
    let r = app.post_form("/checkout", &form).await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Please confirm you are 18 or older.")
            && html.contains("we record your confirmation")
    );
    assert!(html.contains("value=\"ana_buyer\""), "values kept");
    let _ = app.buy(&Checkout::default()).await;
    let r = sqlx::query("SELECT age_confirmed_at, min_age FROM orders")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert!(r.get::<Option<i64>, _>("age_confirmed_at").is_some());
    assert_eq!(r.get::<Option<i64>, _>("min_age"), Some(18));
}

#[tokio::test]
async fn the_minimum_age_is_configurable() {
    let app = spawn_app_with(|s| s.shop.min_age = 21).await;
    assert!(app.get_html("/").await.contains("I am 21 or older"));
}

#[tokio::test]
async fn a_methods_fee_is_shown_before_paying_and_is_exactly_what_is_charged() {
    let app = spawn_app().await;
    let html = app
        .post_checkout(&Checkout {
            method: "paypal",
            ..Default::default()
        })
        .await
        .text()
        .await
        .unwrap();
    // 7.28 + (7.28 * 2.9% + 0.30 = 0.51) = 7.79
    assert!(html.contains("<dt>Price</dt><dd>US$7.28</dd>"), "{html}");
    assert!(html.contains("<dt>PayPal fee</dt><dd>US$0.51</dd>"));
    assert!(html.contains("<dt>Total</dt><dd>US$7.79</dd>"));
    assert!(html.contains("0.01113 USD per coin (everything included)"));
    assert!(
        html.contains("href=\"/policies/refunds\""),
        "policies next to the pay button"
    );
    assert_eq!(extract_hidden(&html, "shown_total_minor").unwrap(), "779");
    let r = app.confirm(&html).await;
    crate::helpers::assert_is_redirect_to(&r, "/sandbox/pay/");
    let row = sqlx::query("SELECT amount_minor, fee_minor FROM orders")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<i64, _>("amount_minor"),
            row.get::<i64, _>("fee_minor")
        ),
        (779, 51)
    );
    let session: i64 = sqlx::query("SELECT amount_minor FROM sandbox_sessions")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(session, 779, "the provider charges the total shown");
    // A card has no fee.
    let html = app
        .post_checkout(&Checkout::default())
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains(" fee</dt>") && html.contains("No fees are added."));
}

#[tokio::test]
async fn the_operator_chooses_methods_per_currency() {
    let app = spawn_app_with(|s| {
        s.payments
            .methods
            .insert("JPY".into(), vec!["card".into(), "wallet".into()]);
    })
    .await;
    let jpy = app.get_html("/?currency=JPY").await;
    assert!(jpy.contains("value=\"card\"") && jpy.contains("value=\"wallet\""));
    assert!(!jpy.contains("value=\"paypal\"") && !jpy.contains("value=\"crypto\""));
    let usd = app.get_html("/").await;
    assert!(usd.contains("value=\"paypal\"") && usd.contains("value=\"gift_card\""));
    let r = app
        .post_checkout(&Checkout {
            currency: "JPY",
            method: "paypal",
            ..Default::default()
        })
        .await;
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("not offered in this currency"));
}

#[tokio::test]
async fn policy_pages_render_markdown_with_the_enforced_numbers() {
    let app = spawn_app_with(|s| s.shop.refund_window_days = 14).await;
    for (path, heading) in [
        ("terms", "Terms of sale"),
        ("refunds", "Refund policy"),
        ("delivery", "Delivery times"),
        ("privacy", "Privacy"),
    ] {
        let r = app.get(&format!("/policies/{path}")).await;
        assert_eq!(r.status(), 200, "{path}");
        let html = r.text().await.unwrap();
        assert!(html.contains(&format!("<h1>{heading}</h1>")), "{path}");
    }
    assert!(app
        .get_html("/policies/refunds")
        .await
        .contains("<strong>14 days</strong>"));
    assert!(
        app.get_html("/")
            .await
            .contains("href=\"/policies/privacy\""),
        "linked in the footer"
    );
    assert_eq!(app.get("/policies/nope").await.status(), 404);
}

#[tokio::test]
async fn operator_policies_are_rendered_safely() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("terms.md"), "# Our terms\n\n<script>alert('x')</script>\n\nRefunds within {refund_window_days} days. [click](javascript:alert(1))\n").unwrap();
    let policies = dir.path().to_path_buf();
    let app = spawn_app_with(move |s| s.shop.policies_dir = Some(policies)).await;
    let html = app.get_html("/policies/terms").await;
    assert!(html.contains("<h1>Our terms</h1>"));
    assert!(!html.contains("<script>alert") && html.contains("&lt;script&gt;"));
    assert!(!html.contains("javascript:"));
    assert!(html.contains("Refunds within 30 days."));
    // Policies the operator did not write keep the shipped default.
    assert!(app
        .get_html("/policies/privacy")
        .await
        .contains("We never see or store your full card number"));
}

#[tokio::test]
async fn the_order_page_says_when_coins_are_expected_and_what_to_do_when_late() {
    let app = spawn_app_with(|s| s.shop.default_delivery_minutes = 7).await;
    // Held for review, so the order stays "on its way".
    let started = app.start_order(&Checkout::default()).await;
    // A stolen-card decline first.
    assert_eq!(
        app.pay_card(&started, "4000000000009979", "123")
            .await
            .status(),
        402
    );
    crate::helpers::eventually("the decline recorded", || async {
        app.count("SELECT COUNT(*) FROM payments").await == 1
    })
    .await;
    let path = app
        .order_path_after(app.pay_card(&started, "4242424242424242", "123").await)
        .await;
    app.wait_for_status(&path, "in_review").await;
    let html = app.get_html(&path).await;
    assert!(
        html.contains("within about 7 minutes of payment"),
        "no history yet: the configured default"
    );
    assert!(!html.contains("taking longer than usual"));
    app.clock.advance_secs(30 * 60);
    let html = app.get_html(&path).await;
    assert!(html.contains("taking longer than usual") && html.contains("ask for a refund"));
}

#[tokio::test]
async fn the_estimate_follows_recent_deliveries() {
    let app = spawn_app().await;
    let path = app.buy(&Checkout::default()).await;
    app.wait_for_status(&path, "delivered").await;
    // With one delivery taking well under a minute, the delivery policy says so.
    assert!(app
        .get_html("/policies/delivery")
        .await
        .contains("within a minute"));
}

#[tokio::test]
async fn the_receipt_itemises_the_methods_fee() {
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
    let page = app.get_html(&format!("/sandbox/paypal/{session}")).await;
    let csrf = extract_hidden(&page, "csrf_token").unwrap();
    let r = app
        .post_form(
            &format!("/sandbox/paypal/{session}"),
            &[("csrf_token", &csrf), ("action", "approve")],
        )
        .await;
    let path = app.order_path_after(r).await;
    app.wait_for_status(&path, "delivered").await;
    crate::helpers::eventually("the receipt", || async {
        app.count("SELECT COUNT(*) FROM emails WHERE kind = 'delivered'")
            .await
            == 1
    })
    .await;
    let body: String = sqlx::query("SELECT text_body FROM emails WHERE kind = 'delivered'")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    assert!(
        body.contains("US$7.79 (coins US$7.28 + PayPal fee US$0.51)"),
        "{body}"
    );
}
