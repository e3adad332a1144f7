//! Fraud screening scenarios over real HTTP.

use crate::helpers::{spawn_app, spawn_app_with, Checkout};
use coinfront::db::risk_lists::{self as lists, NewEntry};
use coinfront::domain::risk_list::{List, ListKind};
use sqlx::Row;

/// Luhn-valid test cards that all decline and all differ: ...0002 with a varying middle.
fn declining_card(n: u32) -> String {
    // "4", ten digits of n, one check digit, then 0002 (the sandbox's generic decline). One
    // digit position always has a value that makes the Luhn sum work.
    (0..10)
        .map(|d| format!("4{n:010}{d}0002"))
        .find(|c| coinfront::payments::sandbox::cards::luhn_valid(c))
        .expect("one check digit works")
}

async fn assessment_codes(app: &crate::helpers::TestApp, stage: &str) -> Vec<String> {
    let rows =
        sqlx::query("SELECT reasons FROM risk_assessments WHERE stage = $1 ORDER BY created_at")
            .bind(stage.to_owned())
            .fetch_all(app.state.db.pool())
            .await
            .unwrap();
    rows.iter()
        .flat_map(|r| {
            let reasons: serde_json::Value =
                serde_json::from_str(&r.get::<String, _>("reasons")).unwrap();
            reasons
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["code"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn a_card_testing_burst_is_blocked_and_then_rate_limited() {
    let app = spawn_app_with(|s| {
        s.rate_limits.payment_attempt = coinfront::config::Limit {
            per_minute: 8,
            burst: 8,
        }
    })
    .await;
    let started = app
        .start_order(&Checkout {
            email: "tester@example.com",
            ..Default::default()
        })
        .await;
    // Eight different stolen-looking cards, all declined.
    for n in 0..8 {
        let r = app.pay_card(&started, &declining_card(n), "123").await;
        assert_eq!(r.status(), 402);
    }
    crate::helpers::eventually("eight failures recorded", || async {
        app.count("SELECT COUNT(*) FROM payments WHERE status = 'failed'")
            .await
            == 8
    })
    .await;
    // The ninth attempt in the minute is refused outright, with a plain page and Retry-After.
    let limited = app.pay_card(&started, &declining_card(9), "123").await;
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    let html = limited.text().await.unwrap();
    assert!(
        html.contains(&format!("Too many attempts — try again in {retry} second")),
        "{html}"
    );
    assert_eq!(
        app.count("SELECT CAST(COALESCE(SUM(hits), 0) AS BIGINT) FROM rate_limit_counts")
            .await,
        1,
        "recorded as a risk signal"
    );

    // A new order from the same tester's email is declined before any charge, neutrally.
    let html = app
        .post_checkout(&Checkout {
            email: "tester@example.com",
            username: "other_target",
            ..Default::default()
        })
        .await
        .text()
        .await
        .unwrap();
    let r = app.confirm(&html).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("We could not accept this order") && page.contains("Nothing was charged")
    );
    for tell in ["cards", "failed", "risk", "score", "block", "limit"] {
        assert!(
            !page.to_lowercase().contains(tell),
            "the message gives nothing to tune against: {tell}"
        );
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM orders WHERE status = 'declined'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sandbox_sessions").await,
        1,
        "no payment session for the declined order"
    );
    let codes = assessment_codes(&app, "pre_payment").await;
    assert!(
        codes.contains(&"card_testing".to_owned())
            && codes.contains(&"repeated_failed_payments".to_owned()),
        "{codes:?}"
    );
}

#[tokio::test]
async fn three_declined_cards_then_a_success_is_never_credited() {
    let app = spawn_app().await;
    let started = app.start_order(&Checkout::default()).await;
    for n in 0..3 {
        assert_eq!(
            app.pay_card(&started, &declining_card(n), "123")
                .await
                .status(),
            402
        );
    }
    // Webhooks may arrive in any order; this scenario is about declines the shop has seen.
    crate::helpers::eventually("three declines recorded", || async {
        app.count("SELECT COUNT(*) FROM payments WHERE status = 'failed'")
            .await
            == 3
    })
    .await;
    let order_path = app
        .order_path_after(app.pay_card(&started, "4242424242424242", "123").await)
        .await;
    // Three different cards declined on one order, then one that works: a card test. The
    // order is blocked and refunded in full.
    app.wait_for_status(&order_path, "refunded").await;
    let codes = assessment_codes(&app, "pre_fulfillment").await;
    for code in ["repeated_failed_payments", "card_testing"] {
        assert!(codes.contains(&code.to_owned()), "{codes:?}");
    }
    let sentence: String =
        sqlx::query("SELECT reasons FROM risk_assessments WHERE stage = 'pre_fulfillment'")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
            .get(0);
    assert!(
        sentence.contains("3 failed payments for this order in the last hour"),
        "{sentence}"
    );
    // The buyer sees a calm message, not the reasons.
    let html = app.get_html(&order_path).await;
    assert!(!html.contains("failed payments for"));
    // Never credited: everything the order set off has run, and no coins went out.
    app.wait_until_idle().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM sandbox_ledger").await, 0);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM jobs WHERE kind = 'fulfill_order'")
            .await,
        0
    );
}

#[tokio::test]
async fn two_declined_cards_then_a_success_is_held_for_review_and_never_credited() {
    let app = spawn_app_with(|s| s.risk.repeated_failed_payments.review_at_1h = 2).await;
    let started = app.start_order(&Checkout::default()).await;
    for n in 0..2 {
        assert_eq!(
            app.pay_card(&started, &declining_card(n), "123")
                .await
                .status(),
            402
        );
    }
    app.wait_until_idle().await;
    let order_path = app
        .order_path_after(app.pay_card(&started, "4242424242424242", "123").await)
        .await;
    app.wait_for_status(&order_path, "in_review").await;
    let html = app.get_html(&order_path).await;
    assert!(html.contains("routine check") && !html.contains("failed payments for"));
    // Held orders never reach fulfillment.
    app.wait_until_idle().await;
    assert_eq!(app.order_status(&order_path).await, "in_review");
    assert_eq!(app.count("SELECT COUNT(*) FROM sandbox_ledger").await, 0);
}

#[tokio::test]
async fn a_legitimate_repeat_buyer_of_large_packages_is_allowed() {
    let app = spawn_app().await;
    for _ in 0..3 {
        let order_path = app
            .buy(&Checkout {
                package: "17500",
                email: "whale@example.com",
                username: "big_fan",
                ..Default::default()
            })
            .await;
        // A new payer's first large order waits the hold-back (5 minutes) before crediting.
        app.wait_until_idle().await;
        app.clock.advance_secs(5 * 60);
        app.wait_for_status(&order_path, "delivered").await;
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM sandbox_ledger").await, 3);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM order_events WHERE kind = 'delivery_scheduled'")
            .await,
        1,
        "only the first order waited: after it, the card and email are a known payer"
    );
    let decisions: Vec<String> = app.texts("SELECT decision FROM risk_assessments").await;
    assert!(decisions.iter().all(|d| d == "allow"), "{decisions:?}");
}

#[tokio::test]
async fn an_order_priced_at_a_fifth_of_the_market_rate_is_blocked() {
    let app = spawn_app_with(|s| {
        // A misconfigured catalog: US$0.00212 a coin, 20% of the reference rate.
        s.catalog.tiers = vec![coinfront::config::TierSettings {
            from_coins: 0,
            price_per_coin: coinfront::config::Dec("0.00212".parse().unwrap()),
        }];
    })
    .await;
    let html = app
        .post_checkout(&Checkout::default())
        .await
        .text()
        .await
        .unwrap();
    let page = app.confirm(&html).await.text().await.unwrap();
    assert!(page.contains("We could not accept this order"));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM orders WHERE status = 'declined'")
            .await,
        1
    );
    let reasons: String = sqlx::query("SELECT reasons FROM risk_assessments")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    assert!(
        reasons.contains("unrealistic_offer")
            && reasons.contains("% of the market rate 0.0106 (block below 50%)"),
        "{reasons}"
    );
}

#[tokio::test]
async fn a_block_listed_buyer_is_blocked_after_paying_and_refunded_in_full() {
    let app = spawn_app().await;
    app.list_value(
        List::Block,
        ListKind::TiktokUsername,
        "@Scam_Target",
        "chargebacks",
    )
    .await;
    // Declined before payment already.
    let html = app
        .post_checkout(&Checkout {
            username: "scam_target",
            ..Default::default()
        })
        .await
        .text()
        .await
        .unwrap();
    assert!(app
        .confirm(&html)
        .await
        .text()
        .await
        .unwrap()
        .contains("We could not accept this order"));
    let codes = assessment_codes(&app, "pre_payment").await;
    assert_eq!(codes, vec!["block_list".to_owned()]);
}

#[tokio::test]
async fn expired_list_entries_no_longer_apply() {
    let app = spawn_app().await;
    let mut tx = app.state.db.begin().await.unwrap();
    let entry = NewEntry {
        list: List::Block,
        kind: ListKind::Email,
        value: "ana@example.com",
        reason: "test",
        added_by: "agent@shop",
        expires_at: Some(app.now_ms() + 60_000),
    };
    lists::add(&mut tx, entry, app.now_ms()).await.unwrap();
    tx.commit().await.unwrap();
    app.clock.advance_secs(61);
    let order_path = app.buy(&Checkout::default()).await;
    app.wait_for_status(&order_path, "delivered").await;
}

#[tokio::test]
async fn a_block_list_hit_after_payment_blocks_and_refunds() {
    let app = spawn_app().await;
    let started = app.start_order(&Checkout::default()).await;
    // The card is listed between checkout and payment (say, by an agent after a chargeback).
    let fingerprint = {
        let r = app.pay_card(&started, "4000000000000002", "123").await;
        assert_eq!(r.status(), 402);
        crate::helpers::eventually("failure recorded", || async {
            app.count("SELECT COUNT(*) FROM payments").await == 1
        })
        .await;
        sqlx::query("SELECT card_fingerprint FROM payments")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
            .get::<String, _>(0)
    };
    let _ = fingerprint;
    app.list_value(
        List::Block,
        ListKind::Email,
        "ana@example.com",
        "stolen cards",
    )
    .await;
    let order_path = app
        .order_path_after(app.pay_card(&started, "4242424242424242", "123").await)
        .await;
    app.wait_for_status(&order_path, "refunded").await;
    assert_eq!(app.count("SELECT COUNT(*) FROM sandbox_ledger").await, 0);
    let html = app.get_html(&order_path).await;
    assert!(html.contains("Refunded"));
}

#[tokio::test]
async fn an_allow_listed_buyer_skips_a_score_based_review() {
    let app = spawn_app().await;
    // A throwaway email (30) and a mismatched shown price (40) score 70: review.
    let held = {
        let html = app
            .post_checkout(&Checkout {
                email: "someone@mailinator.com",
                ..Default::default()
            })
            .await
            .text()
            .await
            .unwrap();
        let started = app.started_from(&app.confirm_claiming(&html, "1").await);
        app.order_path_after(app.pay_card(&started, "4242424242424242", "123").await)
            .await
    };
    app.wait_for_status(&held, "in_review").await;

    app.list_value(
        List::Allow,
        ListKind::Email,
        "vip@mailinator.com",
        "known buyer",
    )
    .await;
    let html = app
        .post_checkout(&Checkout {
            email: "vip@mailinator.com",
            username: "vip_fan",
            ..Default::default()
        })
        .await
        .text()
        .await
        .unwrap();
    let started = app.started_from(&app.confirm_claiming(&html, "1").await);
    let allowed = app
        .order_path_after(app.pay_card(&started, "4242424242424242", "123").await)
        .await;
    app.wait_for_status(&allowed, "delivered").await;
    assert!(assessment_codes(&app, "pre_fulfillment")
        .await
        .contains(&"allow_list".to_owned()));
}

#[tokio::test]
async fn checkout_is_rate_limited_per_client() {
    let app = spawn_app_with(|s| {
        s.rate_limits.checkout = coinfront::config::Limit {
            per_minute: 2,
            burst: 2,
        }
    })
    .await;
    let html = app
        .post_checkout(&Checkout::default())
        .await
        .text()
        .await
        .unwrap();
    for _ in 0..2 {
        assert!(app.confirm(&html).await.status().is_redirection());
    }
    let r = app.confirm(&html).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    // Other pages are not slowed down.
    assert_eq!(app.get("/").await.status(), 200);
}

#[tokio::test]
async fn the_card_scope_counts_the_worst_card_tried_on_the_order() {
    let app = spawn_app().await;
    let (a, b) = (declining_card(71), declining_card(72));
    // Card A was declined once before, on another buyer's order.
    let earlier = app
        .start_order(&Checkout {
            email: "someone.else@example.com",
            username: "someone_else",
            ..Default::default()
        })
        .await;
    assert_eq!(app.pay_card(&earlier, &a, "123").await.status(), 402);
    // On this order: A declined, then B declined, then a good card pays.
    let started = app.start_order(&Checkout::default()).await;
    assert_eq!(app.pay_card(&started, &a, "123").await.status(), 402);
    assert_eq!(app.pay_card(&started, &b, "123").await.status(), 402);
    crate::helpers::eventually("three declines recorded", || async {
        app.count("SELECT COUNT(*) FROM payments WHERE status = 'failed'")
            .await
            == 3
    })
    .await;
    let order_id: String = sqlx::query("SELECT id FROM orders WHERE email = 'ana@example.com'")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    let signals = || async {
        let order = coinfront::db::orders::by_id(app.state.db.pool(), &order_id)
            .await
            .unwrap()
            .unwrap();
        let live = app.state.live.current();
        coinfront::risk::signals::gather(&app.state.db, &live.catalog, &order, app.now_ms())
            .await
            .unwrap()
    };
    // A failed twice in the shop, B once: the card scope is A's 2, whatever order the
    // webhooks arrived in.
    let s = signals().await;
    assert_eq!(
        (s.failed_payments_1h.card, s.failed_payments_1h.order),
        (2, 2)
    );
    assert_eq!(s.failed_cards_1h.email, 2);

    // A good card paying afterwards does not wash A's failures out.
    app.pay_card(&started, "4242424242424242", "123").await;
    crate::helpers::eventually("the payment recorded", || async {
        app.count("SELECT COUNT(*) FROM payments WHERE status = 'succeeded'")
            .await
            == 1
    })
    .await;
    assert_eq!(signals().await.failed_payments_24h.card, 2);
}
