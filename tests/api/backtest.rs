//! Replaying a proposed rule change over a seeded history, checked against a hand count.

use crate::helpers::spawn_app;
use coinfront::risk::backtest;
use coinfront::risk::signals::{PerScope, Signals};
use coinfront::risk::RiskSettings;

#[tokio::test]
async fn a_backtest_matches_a_hand_computed_replay_over_1200_orders() {
    let app = spawn_app().await;
    let now = app.now_ms();
    let mut tx = app.state.db.begin().await.unwrap();
    for n in 0..1200i64 {
        let disposable = n % 3 == 0; // 30 points
        let mismatch = n % 5 == 0; // 40 points
        let failures = if n % 11 == 0 { 3 } else { 0 }; // forced review
        let signals = Signals {
            coins: 700,
            amount_base_minor: 728,
            price_per_coin: "0.0104".parse().unwrap(),
            reference_price_per_coin: "0.0106".parse().unwrap(),
            disposable_email: disposable,
            price_mismatch: mismatch,
            failed_payments_1h: PerScope {
                email: failures,
                ..Default::default()
            },
            ..Default::default()
        };
        let status = match n % 4 {
            0 => "refunded",
            1 => "rejected",
            _ => "delivered",
        };
        let id = format!("order-{n:05}");
        sqlx::query(
            "INSERT INTO orders (id, order_number, token_hash, idempotency_key, status, coins, amount_minor, currency, base_amount_minor,
                tiktok_username, tiktok_account_id, tiktok_display_name, email, payment_method, client_ip, provider,
                created_at, updated_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, 700, 728, 'USD', 728, 'u', 'tt_u', 'U', 'u@example.com', 'card', '127.0.0.1', 'sandbox', $6, $6, $6)",
        )
        .bind(&id)
        .bind(format!("CF-{n:08}"))
        .bind(format!("hash-{n}"))
        .bind(format!("key-{n}"))
        .bind(status)
        .bind(now - 1000)
        .execute(&mut *tx)
        .await
        .unwrap();
        if n % 4 == 1 && n % 8 == 1 {
            coinfront::db::events::record(
                &mut tx,
                &id,
                now,
                "staff:a",
                "block_listed",
                None,
                None,
                "fraud",
            )
            .await
            .unwrap();
        }
        let a = coinfront::risk::rules::evaluate(&signals, &RiskSettings::default());
        coinfront::risk::record(
            &mut tx,
            &id,
            coinfront::risk::Stage::PreFulfillment,
            &a,
            &signals,
            now - 1000,
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    let current = RiskSettings::default(); // review 65, block 75
    let proposed = RiskSettings {
        review_threshold: 30,
        block_threshold: 70,
        ..RiskSettings::default()
    };
    let c = backtest::run(&app.state.db, &current, &proposed, now - 30 * 86_400_000)
        .await
        .unwrap();

    // By hand: points = 30·disposable + 40·mismatch; 3 failures force a review and, like every
    // forced review, weigh as much as the review threshold (so with more signals they can block).
    let (mut cur, mut pro) = ([0u64; 3], [0u64; 3]);
    let mut fraud_blocked_proposed = 0;
    for n in 0..1200i64 {
        let points = 30 * (n % 3 == 0) as u32 + 40 * (n % 5 == 0) as u32;
        let forced_review = n % 11 == 0;
        let decide = |review: u32, block: u32| {
            let points = (points + if forced_review { review } else { 0 }).min(100);
            if points >= block {
                2
            } else if points >= review || forced_review {
                1
            } else {
                0
            }
        };
        cur[decide(65, 75)] += 1;
        let p = decide(30, 70);
        pro[p] += 1;
        if p == 2 && n % 4 == 1 && n % 8 == 1 {
            fraud_blocked_proposed += 1;
        }
    }
    assert_eq!(c.orders, 1200);
    assert_eq!(
        [c.current.allow(), c.current.review(), c.current.block()],
        cur
    );
    assert_eq!(
        [c.proposed.allow(), c.proposed.review(), c.proposed.block()],
        pro
    );
    assert_eq!(c.proposed.fraud[2], fraud_blocked_proposed);
    assert_eq!(
        c.current.refunded.iter().sum::<u64>(),
        300,
        "every fourth order was refunded"
    );
    assert_eq!(c.current.rejected.iter().sum::<u64>(), 300);
    assert_eq!(c.unreadable, 0);
}
