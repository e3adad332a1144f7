//! What people see: the checkout's error summary, "go back" keeping the order, the held-order
//! page, the buyer's timeline, and the console's queues, emails and audit history. The same
//! journeys run in a real browser in `tests/browser/`.

use crate::helpers::{
    assert_is_redirect_to, eventually, extract_hidden, post_from, spawn_app, spawn_app_with,
    Checkout, TestApp,
};

async fn post_checkout_form(app: &TestApp, fields: &[(&str, &str)]) -> reqwest::Response {
    let csrf = app.csrf().await;
    let mut form = vec![("csrf_token", csrf.as_str()), ("currency", "USD")];
    form.extend_from_slice(fields);
    app.post_form("/checkout", &form).await
}

#[tokio::test]
async fn a_checkout_error_comes_back_with_a_summary_linked_to_each_field() {
    let app = spawn_app().await;
    let r = post_checkout_form(&app, &[("payment_method", "card")]).await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("<title>Error: Top up TikTok coins"),
        "the title says so"
    );
    assert!(html.contains("<h1>Top up TikTok coins</h1>"));
    // The summary comes first, takes the focus, and links to every field in error.
    let summary = html
        .split("id=\"error-summary\"")
        .nth(1)
        .expect("an error summary");
    assert!(html.find("id=\"error-summary\"") < html.find("<form class=\"checkout\""));
    assert!(html.contains("tabindex=\"-1\" autofocus"));
    for href in [
        "#package-70",
        "#tiktok_username",
        "#email",
        "#age_confirmed",
    ] {
        assert!(summary.contains(&format!("href=\"{href}\"")), "{href}");
    }
    // Each field says it is invalid and points at its message.
    for (field, error) in [
        ("id=\"tiktok_username\"", "username-error"),
        ("id=\"email\"", "email-error"),
        ("id=\"age_confirmed\"", "age-error"),
        ("id=\"package-70\"", "amount-error"),
    ] {
        let tag = html
            .split(field)
            .nth(1)
            .and_then(|t| t.split('>').next())
            .unwrap();
        assert!(
            tag.contains(&format!("aria-invalid=\"true\" aria-describedby=\"{error}")),
            "{field}: {tag}"
        );
        assert!(html.contains(&format!("id=\"{error}\"")), "{error}");
    }
    // A custom amount's error is at the Custom box, whose field is marked invalid.
    let r = post_checkout_form(
        &app,
        &[
            ("package", "custom"),
            ("coins", "29"),
            ("age_confirmed", "yes"),
        ],
    )
    .await;
    let html = r.text().await.unwrap();
    let custom = html.split("class=\"package custom\"").nth(1).unwrap();
    assert!(custom.contains("The smallest custom amount is 30 coins."));
    assert!(custom.contains("aria-invalid=\"true\" aria-describedby=\"amount-error coins-hint\""));
    assert!(html.contains("href=\"#coins\""));
}

#[tokio::test]
async fn check_price_prices_the_custom_amount_in_the_one_coin_field_and_keeps_the_form() {
    let app = spawn_app().await;
    let r = post_checkout_form(
        &app,
        &[
            ("coins", "2500"),
            ("tiktok_username", "@ana_buyer"),
            ("email", "ana@example.com"),
            ("payment_method", "paypal"),
            ("check_price", "yes"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200, "a price check is not an error");
    let html = r.text().await.unwrap();
    assert!(html.contains("US$25.70"));
    assert_eq!(html.matches("name=\"coins\"").count(), 1, "one coin field");
    assert!(!html.contains("Price check for a custom amount"));
    assert!(html.contains("value=\"@ana_buyer\"") && html.contains("value=\"ana@example.com\""));
    assert!(html.contains("value=\"paypal\" checked"));
    assert!(
        !html.contains("There is a problem"),
        "nothing else is judged yet"
    );
}

#[tokio::test]
async fn going_back_from_the_confirm_page_keeps_every_choice() {
    let app = spawn_app().await;
    let confirm = app
        .post_checkout(&Checkout {
            method: "paypal",
            ..Checkout::default()
        })
        .await
        .text()
        .await
        .unwrap();
    assert!(confirm.contains("No, go back and change it"));
    let r = app
        .post_form(
            "/checkout/back",
            &[
                (
                    "csrf_token",
                    &extract_hidden(&confirm, "csrf_token").unwrap(),
                ),
                ("quote", &extract_hidden(&confirm, "quote").unwrap()),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    for kept in [
        "value=\"700\" checked",
        "value=\"ana_buyer\"",
        "value=\"ana@example.com\"",
        "value=\"paypal\" checked",
        "value=\"yes\" checked",
    ] {
        assert!(html.contains(kept), "{kept} kept");
    }
    // A custom amount comes back in the custom box.
    let confirm = app
        .post_checkout(&Checkout {
            package: "custom",
            coins: "2500",
            ..Checkout::default()
        })
        .await
        .text()
        .await
        .unwrap();
    let html = app
        .post_form(
            "/checkout/back",
            &[
                (
                    "csrf_token",
                    &extract_hidden(&confirm, "csrf_token").unwrap(),
                ),
                ("quote", &extract_hidden(&confirm, "quote").unwrap()),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("value=\"custom\" checked") && html.contains("value=\"2500\""));
}

async fn held_order(app: &TestApp) -> String {
    let path = app
        .buy(&Checkout {
            email: "held@mailinator.com",
            ..Checkout::default()
        })
        .await;
    app.wait_for_status(&path, "in_review").await;
    path
}

/// The only order's id and number.
async fn the_order(app: &TestApp) -> (String, String) {
    use sqlx::Row;
    let r = sqlx::query("SELECT id, order_number FROM orders")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    (r.get("id"), r.get("order_number"))
}

fn hold_throwaway_emails(s: &mut coinfront::config::Settings) {
    s.risk.disposable_email.points = 70;
}

#[tokio::test]
async fn the_held_order_page_says_one_thing_and_updates_itself_with_a_way_to_stop() {
    let app = spawn_app_with(hold_throwaway_emails).await;
    let path = held_order(&app).await;
    let html = app.get_html(&path).await;
    // One expected time, not "a few hours" beside "within minutes".
    assert!(html.contains("Expected by about"));
    assert!(!html.contains("few hours"));
    assert!(html.contains("<meta http-equiv=\"refresh\" content=\"60\">"));
    assert!(html.contains(&format!(
        "href=\"{path}?refresh=off\">Stop updating this page"
    )));
    let html = app.get_html(&format!("{path}?refresh=off")).await;
    assert!(!html.contains("http-equiv=\"refresh\""));
    assert!(html.contains("This page no longer updates by itself"));
}

#[tokio::test]
async fn the_buyer_reads_why_a_payment_failed_without_the_providers_code() {
    let app = spawn_app().await;
    let started = app.start_order(&Checkout::default()).await;
    assert_eq!(
        app.pay_card(&started, "4000000000000002", "123")
            .await
            .status(),
        402
    );
    eventually("the decline recorded", || async {
        app.count("SELECT COUNT(*) FROM order_events WHERE kind = 'payment_failed'")
            .await
            == 1
    })
    .await;
    let path = app
        .order_path_after(app.pay_card(&started, "4242424242424242", "123").await)
        .await;
    let html = app.get_html(&path).await;
    assert!(html.contains("Payment not accepted: Visa •••• 0002 — declined"));
    assert!(!html.contains("card_declined"));
    assert!(!html.contains("US$7.28 USD") && html.contains("US$7.28<"));
}

#[tokio::test]
async fn the_dashboard_shows_refund_and_support_queues_and_agents_actions_are_audited() {
    let app = spawn_app_with(hold_throwaway_emails).await;
    let held = held_order(&app).await;
    let (order_id, number) = the_order(&app).await;
    // The buyer writes to support.
    let html = app.get_html(&held).await;
    let r = app
        .post_form(
            &format!("{held}/messages"),
            &[
                ("csrf_token", &extract_hidden(&html, "csrf_token").unwrap()),
                ("message", "Is my order stuck?"),
            ],
        )
        .await;
    assert!(r.status().is_redirection(), "{}", r.status());

    let agent = app.sign_in_as_agent("agent@example.com").await;
    let html = agent.get_html("/console/").await;
    for queue in ["Held for review", "Refund requests", "Support messages"] {
        assert!(html.contains(queue), "{queue}");
    }
    let support_row = html.split("Support messages").nth(1).unwrap();
    assert!(support_row.contains("<td class=\"queue-count\">1</td>"));
    assert!(support_row.contains(&number), "the oldest waiting");

    let page = format!("/console/orders/{number}");
    let r = post_from(
        &agent,
        &page,
        &format!("/console/orders/{number}/notes"),
        &[("back", ""), ("note", "Checked the buyer's history.")],
    )
    .await;
    assert!(r.status().is_redirection());
    let r = post_from(
        &agent,
        &page,
        &format!("/console/orders/{number}/approve"),
        &[("back", "")],
    )
    .await;
    assert!(r.status().is_redirection());
    app.wait_for_status(&held, "delivered").await;
    let r = post_from(
        &agent,
        "/console/support",
        &format!("/console/support/{order_id}"),
        &[("message", "All good now.")],
    )
    .await;
    assert!(r.status().is_redirection());
    for action in ["note_added", "order_approved", "support_reply"] {
        let sql = format!(
            "SELECT COUNT(*) FROM audit_log WHERE action = '{action}' AND actor = 'staff:agent@example.com' AND subject = '{number}'"
        );
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
        assert_eq!(n, 1, "{action} in the audit history");
    }
}

#[tokio::test]
async fn the_console_lists_an_orders_emails_and_resends_one() {
    let app = spawn_app().await;
    let path = app.buy(&Checkout::default()).await;
    app.wait_for_status(&path, "delivered").await;
    eventually("the emails sent", || async {
        app.count("SELECT COUNT(*) FROM emails WHERE sent_at IS NULL")
            .await
            == 0
    })
    .await;
    let (order_id, number) = the_order(&app).await;
    let agent = app.sign_in_as_agent("agent@example.com").await;
    let page = format!("/console/orders/{number}");
    let html = agent.get_html(&page).await;
    assert!(!html.contains("not part of this version"));
    assert!(html.contains("<td>delivered</td>") && html.contains("Sent "));
    let email_id: String =
        sqlx::query_scalar("SELECT id FROM emails WHERE order_id = $1 AND kind = 'delivered'")
            .bind(&order_id)
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
    let action = format!("/console/orders/{number}/emails/{email_id}/resend");
    assert!(html.contains(&action));
    let r = post_from(&agent, &page, &action, &[]).await;
    assert_is_redirect_to(&r, &format!("{page}?done=email-resent"));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM order_events WHERE kind = 'email_resent'")
            .await,
        1
    );
    eventually("the email sent again", || async {
        app.count("SELECT COUNT(*) FROM emails WHERE sent_at IS NULL")
            .await
            == 0
    })
    .await;
    // Another order's email cannot be resent from this order's page.
    let r = post_from(
        &agent,
        &page,
        &format!("/console/orders/{number}/emails/em_not_this_orders/resend"),
        &[],
    )
    .await;
    assert_eq!(r.status(), 404);
}
