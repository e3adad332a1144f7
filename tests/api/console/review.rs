//! The review queue: why an order is held, approving, rejecting (also as fraud), two agents
//! at once, notes.

use super::*;

#[tokio::test]
async fn the_review_queue_shows_why_an_order_is_held() {
    let app = spawn_app().await;
    let (_, first) = held_order(&app, "ana@example.com", "ana_buyer").await;
    // An hour later, or six failures in an hour would block the second order outright.
    app.clock.advance_secs(61 * 60);
    let (_, second) = held_order(&app, "ana@example.com", "ana_buyer").await;
    let agent = app.sign_in_as_agent(AGENT).await;
    let html = agent.get_html("/console/review").await;
    let (a, b) = (html.find(&first).unwrap(), html.find(&second).unwrap());
    assert!(a < b, "oldest first");
    for needle in [
        "declined as lost, stolen or fraudulent",
        "Failed payments, last hour",
        "Cards that failed, last hour",
        "Fraud declines, last 24 h",
        "Orders in 24 h",
        "of the reference",
        "The buyer's other orders (1)",
        "Score ",
    ] {
        assert!(html.contains(needle), "{needle} in {html}");
    }
    let dash = agent.get_html("/console/").await;
    assert!(
        dash.contains("Held for review") && dash.contains(&first),
        "{dash}"
    );
}

#[tokio::test]
async fn approving_a_held_order_delivers_it_with_the_agent_in_the_timeline() {
    let app = spawn_app().await;
    let (path, number) = held_order(&app, "ana@example.com", "ana_buyer").await;
    let agent = app.sign_in_as_agent(AGENT).await;
    let r = post_from(
        &agent,
        "/console/review",
        &format!("/console/orders/{number}/approve"),
        &[
            ("back", "review"),
            ("note", "Known buyer, card verified by phone"),
        ],
    )
    .await;
    assert_is_redirect_to(&r, "/console/review?done=approved");
    let html = agent
        .get_html(r.headers()["location"].to_str().unwrap())
        .await;
    assert!(html.contains(&format!("Approved {number}")));
    app.wait_for_status(&path, "delivered").await;
    let actor: String = sqlx::query(
        "SELECT actor FROM order_events WHERE from_status = 'in_review' AND to_status = 'queued'",
    )
    .fetch_one(app.state.db.pool())
    .await
    .unwrap()
    .get(0);
    assert_eq!(actor, "staff:agent@example.com");
    let page = agent.get_html(&format!("/console/orders/{number}")).await;
    assert!(page.contains("staff:agent@example.com") && page.contains("Known buyer"));
    // Approving again: already handled, nothing happens.
    let r = post_from(
        &agent,
        &format!("/console/orders/{number}"),
        &format!("/console/orders/{number}/approve"),
        &[],
    )
    .await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("already handled"));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM jobs WHERE kind = 'fulfill_order'")
            .await,
        1
    );
}

#[tokio::test]
async fn rejecting_a_held_order_refunds_it_in_full() {
    let app = spawn_app().await;
    let (path, number) = held_order(&app, "ana@example.com", "ana_buyer").await;
    let agent = app.sign_in_as_agent(AGENT).await;
    let r = post_from(
        &agent,
        "/console/review",
        &format!("/console/orders/{number}/reject"),
        &[
            ("back", "review"),
            ("reason", "Buyer could not confirm the card"),
        ],
    )
    .await;
    assert_is_redirect_to(&r, "/console/review?done=rejected");
    app.wait_for_status(&path, "refunded").await;
    assert_eq!(app.count("SELECT COUNT(*) FROM sandbox_refunds").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM sandbox_ledger").await, 0);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM order_events WHERE kind = 'refund_requested'")
            .await,
        1,
        "the refund job asked the provider (and emailed the buyer) once"
    );
    let detail: String =
        sqlx::query("SELECT actor, detail FROM order_events WHERE to_status = 'rejected'")
            .fetch_one(app.state.db.pool())
            .await
            .map(|r| {
                format!(
                    "{} {}",
                    r.get::<String, _>("actor"),
                    r.get::<String, _>("detail")
                )
            })
            .unwrap();
    assert_eq!(
        detail,
        "staff:agent@example.com Rejected after review: Buyer could not confirm the card"
    );
    // Nothing on the block list for a plain rejection.
    assert_eq!(app.count("SELECT COUNT(*) FROM risk_lists").await, 0);
}

#[tokio::test]
async fn rejecting_as_fraud_refunds_and_block_lists_the_buyer() {
    let app = spawn_app().await;
    let (path, number) = held_order(&app, "thief@example.com", "stolen_stuff").await;
    let agent = app.sign_in_as_agent(AGENT).await;
    // A reason is required.
    let r = post_from(
        &agent,
        "/console/review",
        &format!("/console/orders/{number}/reject-fraud"),
        &[("back", "review"), ("reason", "  ")],
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = post_from(
        &agent,
        "/console/review",
        &format!("/console/orders/{number}/reject-fraud"),
        &[
            ("back", "review"),
            ("reason", "Cardholder says the card was stolen"),
        ],
    )
    .await;
    assert_is_redirect_to(&r, "/console/review?done=fraud");
    app.wait_for_status(&path, "refunded").await;
    let rows = sqlx::query(
        "SELECT kind, value, reason, added_by FROM risk_lists WHERE list = 'block' ORDER BY kind",
    )
    .fetch_all(app.state.db.pool())
    .await
    .unwrap();
    let kinds: Vec<String> = rows.iter().map(|r| r.get("kind")).collect();
    // Both cards tried on the order, the buyer's email and TikTok username.
    assert_eq!(
        kinds,
        [
            "card_fingerprint",
            "card_fingerprint",
            "email",
            "tiktok_username"
        ]
    );
    for r in &rows {
        assert_eq!(r.get::<String, _>("added_by"), "staff:agent@example.com");
        assert!(r
            .get::<String, _>("reason")
            .contains("Cardholder says the card was stolen"));
    }
    // The next order from this buyer is declined before payment.
    let confirm = app
        .post_checkout(&Checkout {
            email: "thief@example.com",
            username: "someone_else",
            ..Default::default()
        })
        .await;
    let html = confirm.text().await.unwrap();
    let r = app.confirm(&html).await;
    assert!(
        !r.status().is_redirection()
            || !r.headers()["location"]
                .to_str()
                .unwrap()
                .contains("/sandbox/pay/")
    );
}

#[tokio::test]
async fn two_agents_deciding_at_once_one_wins_and_nothing_happens_twice() {
    let app = spawn_app().await;
    for round in 0..3 {
        // Each held order comes from three declines on this IP: an hour apart, so the
        // shop does not block the third round outright as a card-testing IP.
        app.clock.advance_secs(61 * 60);
        let a = app.sign_in_as_agent(AGENT).await;
        let b = app.sign_in_as_agent("other@example.com").await;
        let email = format!("buyer{round}@example.com");
        let user = format!("buyer_{round}");
        let (path, number) = held_order(&app, &email, &user).await;
        let token_a = extract_hidden(&a.get_html("/console/review").await, "csrf_token").unwrap();
        let token_b = extract_hidden(&b.get_html("/console/review").await, "csrf_token").unwrap();
        let approve = format!("/console/orders/{number}/approve");
        let reject = format!("/console/orders/{number}/reject");
        let form_a = [("csrf_token", token_a.as_str()), ("back", "review")];
        let form_b = [
            ("csrf_token", token_b.as_str()),
            ("back", "review"),
            ("reason", "race"),
        ];
        let (ra, rb) = tokio::join!(
            a.post_form(&approve, &form_a),
            b.post_form(&reject, &form_b),
        );
        let statuses = [ra.status().as_u16(), rb.status().as_u16()];
        assert!(
            statuses.contains(&303) && statuses.contains(&409),
            "round {round}: {statuses:?}"
        );
        let loser = if ra.status() == 409 { ra } else { rb };
        assert!(loser
            .text()
            .await
            .unwrap()
            .contains("already handled by someone else"));
        let order_id: String = sqlx::query("SELECT id FROM orders WHERE order_number = $1")
            .bind(&number)
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
            .get(0);
        let like = format!("%{order_id}%");
        let fulfil = count_where(
            &app,
            "SELECT COUNT(*) FROM jobs WHERE kind = 'fulfill_order' AND payload LIKE $1",
            &like,
        )
        .await;
        let refund = count_where(
            &app,
            "SELECT COUNT(*) FROM jobs WHERE kind = 'refund_order' AND payload LIKE $1",
            &like,
        )
        .await;
        assert_eq!(
            fulfil + refund,
            1,
            "round {round}: {fulfil} fulfilments, {refund} refunds"
        );
        let decided = count_where(
            &app,
            "SELECT COUNT(*) FROM order_events WHERE order_id = $1 AND from_status = 'in_review'",
            &order_id,
        )
        .await;
        assert_eq!(decided, 1);
        let end = if fulfil == 1 { "delivered" } else { "refunded" };
        app.wait_for_status(&path, end).await;
    }
}

#[tokio::test]
async fn notes_land_on_the_order_and_in_its_timeline() {
    let app = spawn_app().await;
    let (buyer_page, number) = held_order(&app, "ana@example.com", "ana_buyer").await;
    let agent = app.sign_in_as_agent(AGENT).await;
    let r = post_from(
        &agent,
        &format!("/console/orders/{number}"),
        &format!("/console/orders/{number}/notes"),
        &[("note", "Called the buyer <b>twice</b>")],
    )
    .await;
    assert_is_redirect_to(&r, &format!("/console/orders/{number}?done=noted"));
    let html = agent.get_html(&format!("/console/orders/{number}")).await;
    assert!(
        html.contains("Called the buyer &#60;b&#62;twice&#60;/b&#62;"),
        "escaped"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM notes").await, 1);
    assert_eq!(
        count_where(
            &app,
            "SELECT COUNT(*) FROM order_events WHERE kind = 'note_added' AND actor = $1",
            "staff:agent@example.com"
        )
        .await,
        1
    );
    // The buyer never sees notes.
    assert!(!app.get_html(&buyer_page).await.contains("Called the buyer"));
}
