//! Screening that tells strangers from attackers, over real HTTP: shared addresses, a surge of
//! failures during honest traffic, an impostor typing a known buyer's email, a cash-out
//! funnel and a family buying for its children. Every test client comes from 127.0.0.1, so
//! each of these buyers shares one address, as phones behind a carrier NAT do.

use crate::helpers::{spawn_app, spawn_app_with, Browser, Checkout, TestApp};
use sqlx::Row;

/// A Luhn-valid card: issuer prefix `bin` (six digits), a middle drawn from `n`, then `last4`
/// (which picks the sandbox's outcome: `0002` declines, `9979` is a stolen card, most others
/// succeed).
fn card(bin: &str, n: u32, last4: &str) -> String {
    (0..10)
        .map(|d| format!("{bin}{n:05}{d}{last4}"))
        .find(|c| coinfront::payments::sandbox::cards::luhn_valid(c))
        .expect("one check digit works")
}

async fn reasons(app: &TestApp, order_path: &str) -> String {
    let hash = coinfront::domain::ids::token_hash(order_path.trim_start_matches("/orders/"));
    sqlx::query(
        "SELECT ra.reasons FROM risk_assessments ra JOIN orders o ON o.id = ra.order_id
         WHERE o.token_hash = $1 ORDER BY ra.created_at DESC, ra.id DESC",
    )
    .bind(hash)
    .fetch_all(app.state.db.pool())
    .await
    .unwrap()
    .first()
    .map(|r| r.get::<String, _>(0))
    .unwrap_or_default()
}

#[tokio::test]
async fn strangers_behind_one_address_all_pay_and_get_their_coins() {
    let app = spawn_app().await;
    let mut orders = Vec::new();
    for n in 0..8u32 {
        let (email, user) = (format!("phone{n}@example.com"), format!("fan_{n}"));
        let checkout = Checkout {
            email: &email,
            username: &user,
            ..Default::default()
        };
        let started = app.start_order(&checkout).await;
        // Every third stranger's first card is declined for an honest reason.
        if n % 3 == 0 {
            let r = app
                .pay_card(&started, &card("414720", n, "9995"), "123")
                .await;
            assert_eq!(r.status(), 402);
        }
        let paid = app
            .pay_card(
                &started,
                &card("426684", n, &format!("{:04}", 4000 + n)),
                "123",
            )
            .await;
        orders.push(app.order_path_after(paid).await);
    }
    for o in &orders {
        app.wait_for_status(o, "delivered").await;
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM sandbox_ledger").await, 8);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM risk_assessments WHERE decision <> 'allow'")
            .await,
        0,
        "eight different working cards from one address are eight buyers, not a card test"
    );
}

/// A wave of declined cards sharing one issuer prefix, from rotating addresses and emails.
async fn wave_of_declines(app: &TestApp, n: u32) {
    for k in 0..n {
        let (email, user) = (format!("rot{k}@wave.test"), format!("drop_{k}"));
        let tester = Browser::from_address(app.address.clone(), &format!("203.0.{k}.9"));
        let started = tester
            .start_order(&Checkout {
                email: &email,
                username: &user,
                package: "70",
                ..Default::default()
            })
            .await;
        let r = tester
            .pay_card(&started, &card("455555", k, "0002"), "123")
            .await;
        assert_eq!(r.status(), 402, "a decline, never a pause");
    }
    app.wait_until_idle().await;
}

fn surge_settings(s: &mut coinfront::config::Settings) {
    s.risk.surge.min_failures = 5;
    s.risk.surge.trait_min_failures = 4;
    s.risk.surge.check_seconds = 0;
    s.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
}

#[tokio::test]
async fn a_surge_during_honest_traffic_refuses_nobody_and_holds_only_what_the_wave_shares() {
    let app = spawn_app_with(surge_settings).await;
    wave_of_declines(&app, 8).await;
    let (detail, tightened): (String, String) = {
        let row = sqlx::query("SELECT detail, tightened FROM screening_events")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert!(
        detail.starts_with("8 cards failed in the last 10 minutes"),
        "{detail}"
    );
    assert!(
        tightened.contains("\"455555\""),
        "the shared prefix: {tightened}"
    );
    assert!(!tightened.contains("new_payer"), "{tightened}");

    // Honest buyers keep paying and get their coins: none is refused or paused.
    let mut honest = Vec::new();
    for n in 0..4u32 {
        let (email, user) = (format!("honest{n}@example.com"), format!("honest_{n}"));
        let path = app
            .buy_with_card(
                &Checkout {
                    email: &email,
                    username: &user,
                    ..Default::default()
                },
                &card("520082", n, &format!("{:04}", 5000 + n)),
            )
            .await;
        honest.push(path);
    }
    for p in &honest {
        app.wait_for_status(p, "delivered").await;
    }
    // A card from the wave's prefix that works, from an unknown payer, waits for an agent.
    let tester = app
        .buy_with_card(
            &Checkout {
                email: "late@wave.test",
                username: "drop_0",
                package: "70",
                ..Default::default()
            },
            &card("455555", 99, "4242"),
        )
        .await;
    app.wait_for_status(&tester, "in_review").await;
    assert!(
        reasons(&app, &tester).await.contains("card prefix 455555"),
        "the agent reads why"
    );

    // The console shows when it engaged, why and what it tightened.
    let agent = app.sign_in_as_agent("agent@shop.test").await;
    let html = agent.get_html("/console/").await;
    assert!(html.contains("Surge of failed payments"), "{html}");
    assert!(html.contains("card prefix 455555"), "{html}");
    assert!(
        html.contains("8 cards failed in the last 10 minutes"),
        "{html}"
    );
}

#[tokio::test]
async fn typing_a_known_buyers_email_is_no_exemption_but_their_own_card_is() {
    let app = spawn_app_with(surge_settings).await;
    let regular = Checkout {
        email: "regular@example.com",
        username: "regular_fan",
        ..Default::default()
    };
    let own_card = card("455555", 1, "1881");
    let first = app.buy_with_card(&regular, &own_card).await;
    app.wait_for_status(&first, "delivered").await;
    wave_of_declines(&app, 8).await;

    // An impostor types the regular's email, with a working card from the wave's prefix.
    let impostor = app
        .buy_with_card(
            &Checkout {
                username: "drop_9",
                ..regular
            },
            &card("455555", 77, "3333"),
        )
        .await;
    app.wait_for_status(&impostor, "in_review").await;
    assert!(reasons(&app, &impostor).await.contains("surge"));

    // The regular, with the card that paid before, is exempt.
    let again = app.buy_with_card(&regular, &own_card).await;
    app.wait_for_status(&again, "delivered").await;
}

#[tokio::test]
async fn a_cash_out_funnel_is_held_with_a_sentence_an_agent_can_act_on() {
    let app = spawn_app().await;
    let mut paths = Vec::new();
    for n in 0..4u32 {
        let email = format!("mule{n}@example.com");
        let path = app
            .buy_with_card(
                &Checkout {
                    email: &email,
                    username: "cashout_target",
                    package: "17500",
                    ..Default::default()
                },
                &card("431940", n, &format!("{:04}", 6100 + n)),
            )
            .await;
        app.wait_until_idle().await;
        app.clock.advance_secs(120);
        paths.push(path);
    }
    // The first payer looks like anyone buying a gift, so its large order waits the hold-back
    // (5 minutes, over by the fourth payer); from the second on, it is a funnel, and the
    // first is held too when its wait ends and the screening runs again.
    for p in &paths {
        app.wait_for_status(p, "in_review").await;
    }
    app.wait_until_idle().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM sandbox_ledger").await, 0);
    assert!(reasons(&app, &paths[0]).await.contains("recipient_funnel"));
    let why = reasons(&app, &paths[3]).await;
    assert!(
        why.contains("4 different payers sent 708.80 to this TikTok username in 6 minutes"),
        "{why}"
    );
    let agent = app.sign_in_as_agent("agent@shop.test").await;
    let html = agent.get_html("/console/review").await;
    assert!(html.contains("different payers sent"), "{html}");
}

#[tokio::test]
async fn a_parent_buying_for_three_children_with_one_card_is_not_a_funnel() {
    let app = spawn_app().await;
    let family_card = card("476173", 5, "8431");
    let mut paths = Vec::new();
    for child in ["kid_one", "kid_two", "kid_three"] {
        let path = app
            .buy_with_card(
                &Checkout {
                    email: "mum@example.com",
                    username: child,
                    package: "3500",
                    ..Default::default()
                },
                &family_card,
            )
            .await;
        app.clock.advance_secs(60);
        paths.push(path);
    }
    // And a second top-up for one of them.
    paths.push(
        app.buy_with_card(
            &Checkout {
                email: "mum@example.com",
                username: "kid_one",
                ..Default::default()
            },
            &family_card,
        )
        .await,
    );
    for p in &paths {
        app.wait_for_status(p, "delivered").await;
    }
}

#[tokio::test]
async fn a_stolen_card_decline_before_a_card_that_works_is_held() {
    let app = spawn_app().await;
    let started = app.start_order(&Checkout::default()).await;
    let r = app.pay_card(&started, "4000000000009979", "123").await;
    assert_eq!(r.status(), 402);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Your card was declined.") && !page.to_lowercase().contains("stolen"),
        "the holder of a stolen card learns nothing"
    );
    // Webhooks arrive in any order; this scenario is about a decline the shop has seen.
    app.wait_until_idle().await;
    let path = app
        .order_path_after(app.pay_card(&started, "4242424242424242", "123").await)
        .await;
    app.wait_for_status(&path, "in_review").await;
    assert!(reasons(&app, &path).await.contains("fraud_decline"));
}

#[tokio::test]
async fn the_sandbox_declines_as_stripes_test_card_table_does() {
    let app = spawn_app().await;
    for (n, (number, code)) in [
        ("4000000000009987", "lost_card"),
        ("4000000000009979", "stolen_card"),
        ("4000000000006975", "card_velocity_exceeded"),
        ("4100000000000019", "fraudulent"),
    ]
    .into_iter()
    .enumerate()
    {
        let (email, user) = (format!("buyer{n}@example.com"), format!("buyer_{n}"));
        let started = app
            .start_order(&Checkout {
                email: &email,
                username: &user,
                ..Default::default()
            })
            .await;
        assert_eq!(app.pay_card(&started, number, "123").await.status(), 402);
        app.wait_until_idle().await;
        let row = sqlx::query("SELECT failure_code, card_bin FROM payments WHERE card_last4 = $1")
            .bind(number[12..].to_owned())
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
        assert_eq!(row.get::<String, _>(0), code);
        assert_eq!(row.get::<String, _>(1), number[..6]);
    }
}

#[tokio::test]
async fn retrying_one_declined_card_is_one_failure_not_a_card_test() {
    let app = spawn_app().await;
    let started = app.start_order(&Checkout::default()).await;
    for _ in 0..4 {
        assert_eq!(
            app.pay_card(&started, "4000000000009995", "123")
                .await
                .status(),
            402
        );
    }
    let path = app
        .order_path_after(app.pay_card(&started, "4242424242424242", "123").await)
        .await;
    app.wait_for_status(&path, "delivered").await;
}

#[tokio::test]
async fn a_hold_at_the_re_check_before_crediting_says_why_in_the_review_queue() {
    let app = spawn_app().await;
    let path = app
        .buy(&Checkout {
            username: "moved_account",
            ..Default::default()
        })
        .await;
    app.wait_for_status(&path, "in_review").await;
    let agent = app.sign_in_as_agent("agent@shop.test").await;
    let html = agent.get_html("/console/review").await;
    assert!(
        html.contains("now belongs to a different TikTok account"),
        "{html}"
    );
    assert!(!html.contains("No risk signals"), "{html}");
}
