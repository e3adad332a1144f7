//! A buyer's conversation with support about an order.

use crate::helpers::{extract_hidden, spawn_app, spawn_app_with, Checkout, TestApp};

async fn write(app: &TestApp, order_path: &str, message: &str) -> reqwest::Response {
    let page = app.get_html(order_path).await;
    let csrf = extract_hidden(&page, "csrf_token").unwrap();
    app.post_form(
        &format!("{order_path}/messages"),
        &[("csrf_token", &csrf), ("message", message)],
    )
    .await
}

#[tokio::test]
async fn a_conversation_end_to_end_with_plain_text_safely_shown() {
    let app = spawn_app().await;
    let path = app.buy(&Checkout::default()).await;
    app.wait_for_status(&path, "delivered").await;
    let r = write(
        &app,
        &path,
        "Hi <b>there</b>\n<script>alert(1)</script>\nWhere are my coins?",
    )
    .await;
    crate::helpers::assert_is_redirect_to(&r, "?message=sent");
    let html = app.get_html(&path).await;
    assert!(
        html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
        "escaped"
    );
    assert!(!html.contains("<script>alert(1)"));
    // The agents' queue, oldest first.
    let other = app
        .buy(&Checkout {
            username: "second_fan",
            ..Default::default()
        })
        .await;
    app.clock.advance_secs(5);
    write(&app, &other, "Me too").await;
    let queue = coinfront::db::support::open_queue(app.state.db.pool(), 10)
        .await
        .unwrap();
    assert_eq!(queue.len(), 2);
    let (first_order, _) = &queue[0];
    use sqlx::Row;
    let first_email: String = sqlx::query("SELECT tiktok_username FROM orders WHERE id = $1")
        .bind(first_order.clone())
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(first_email, "ana_buyer", "oldest first");
    // An agent replies: the conversation leaves the queue and the buyer sees the answer.
    coinfront::orders::support::staff_replies(
        &app.state,
        first_order,
        "staff:agent@shop.test",
        "They arrived at 16:02 — check your balance.",
    )
    .await
    .unwrap();
    assert_eq!(
        coinfront::db::support::open_queue(app.state.db.pool(), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let html = app.get_html(&path).await;
    assert!(html.contains("They arrived at 16:02") && html.contains("coinfront support"));
    // A follow-up reopens it.
    write(&app, &path, "Thanks, found them").await;
    assert_eq!(
        coinfront::db::support::open_queue(app.state.db.pool(), 10)
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn empty_and_overlong_messages_are_explained() {
    let app = spawn_app().await;
    let path = app.buy(&Checkout::default()).await;
    let r = write(&app, &path, "   ").await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("Write a message first."));
    let r = write(&app, &path, &"x".repeat(4001)).await;
    assert!(r.text().await.unwrap().contains("under 4,000 characters"));
    assert_eq!(app.count("SELECT COUNT(*) FROM support_messages").await, 0);
}

#[tokio::test]
async fn messages_are_rate_limited() {
    let app = spawn_app_with(|s| {
        s.rate_limits.support_message = coinfront::config::Limit {
            per_minute: 2,
            burst: 2,
        }
    })
    .await;
    let path = app.buy(&Checkout::default()).await;
    assert!(write(&app, &path, "one").await.status().is_redirection());
    assert!(write(&app, &path, "two").await.status().is_redirection());
    let r = write(&app, &path, "three").await;
    assert_eq!(r.status(), 429);
    assert_eq!(app.count("SELECT COUNT(*) FROM support_messages").await, 2);
}

#[tokio::test]
async fn an_agent_replies_from_the_console_and_the_buyer_gets_it_by_email() {
    let app = spawn_app().await;
    let path = app.buy(&Checkout::default()).await;
    write(&app, &path, "Did it work?").await;
    let agent = app.sign_in_as_agent("agent@shop.test").await;
    let queue = agent.get_html("/console/support").await;
    assert!(queue.contains("Did it work?") && queue.contains("1 waiting"));
    let csrf = extract_hidden(&queue, "csrf_token").unwrap();
    use sqlx::Row;
    let order_id: String = sqlx::query("SELECT id FROM orders")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    let r = agent
        .post_form(
            &format!("/console/support/{order_id}"),
            &[
                ("csrf_token", &csrf),
                ("message", "Yes — 700 coins arrived."),
            ],
        )
        .await;
    crate::helpers::assert_is_redirect_to(&r, "/console/support?sent=1");
    assert!(app
        .get_html(&path)
        .await
        .contains("Yes — 700 coins arrived."));
    assert!(agent
        .get_html("/console/support")
        .await
        .contains("0 waiting"));
    crate::helpers::eventually("the reply email", || async {
        app.count("SELECT COUNT(*) FROM emails WHERE kind = 'support_reply'")
            .await
            == 1
    })
    .await;
}
