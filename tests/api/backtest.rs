//! Replaying a proposed rule change over a seeded history, checked against a hand count.

use crate::helpers::{spawn_app, TestApp};
use coinfront::risk::backtest;
use coinfront::risk::signals::{PerScope, Signals};
use coinfront::risk::RiskSettings;

pub const HISTORY: i64 = 1200;
/// Assessed 40 days ago: outside a 30-day replay.
const OLD: i64 = 50;
const DAY_MS: i64 = 86_400_000;

/// 1,200 orders assessed an hour ago with known signals and fates, plus 50 older ones: order
/// n has a disposable email when n % 3 == 0 (30 points), a price mismatch when n % 5 == 0
/// (40 points) and 3 failed payments (a forced review) when n % 11 == 0; it was refunded when
/// n % 4 == 0, rejected when n % 4 == 1 (as fraud when also n % 8 == 1), else delivered.
pub async fn seed_history(app: &TestApp) {
    let now = app.now_ms();
    let mut tx = app.state.db.begin().await.unwrap();
    for n in 0..HISTORY + OLD {
        let at = if n < HISTORY {
            now - 3_600_000
        } else {
            now - 40 * DAY_MS
        };
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
        .bind(at)
        .execute(&mut *tx)
        .await
        .unwrap();
        if n % 4 == 1 && n % 8 == 1 {
            coinfront::db::events::record(
                &mut tx,
                &id,
                at,
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
            at,
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

/// The hand count over the 1,200 recent orders: orders per decision [allow, review, block]
/// with these thresholds, and how many blocked ones were rejected as fraud.
///
/// Points = 30·disposable + 40·mismatch; 3 failures force a review and, like every forced
/// review, weigh as much as the review threshold (so with more signals they can block).
pub fn hand_count(review: u32, block: u32) -> ([u64; 3], u64) {
    let mut decided = [0u64; 3];
    let mut fraud_blocked = 0;
    for n in 0..HISTORY {
        let points = 30 * (n % 3 == 0) as u32 + 40 * (n % 5 == 0) as u32;
        let forced_review = n % 11 == 0;
        let points = (points + if forced_review { review } else { 0 }).min(100);
        let d = if points >= block {
            2
        } else if points >= review || forced_review {
            1
        } else {
            0
        };
        decided[d] += 1;
        if d == 2 && n % 4 == 1 && n % 8 == 1 {
            fraud_blocked += 1;
        }
    }
    (decided, fraud_blocked)
}

#[tokio::test]
async fn a_backtest_matches_a_hand_computed_replay_over_1200_orders() {
    let app = spawn_app().await;
    let now = app.now_ms();
    seed_history(&app).await;

    let current = RiskSettings::default(); // review 65, block 75
    let proposed = RiskSettings {
        review_threshold: 30,
        block_threshold: 70,
        ..RiskSettings::default()
    };
    let c = backtest::run(&app.state.db, &current, &proposed, now - 30 * 86_400_000)
        .await
        .unwrap();

    let (cur, _) = hand_count(65, 75);
    let (pro, fraud_blocked_proposed) = hand_count(30, 70);
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
