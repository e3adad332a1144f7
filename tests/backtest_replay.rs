//! The rule backtest's whole `Comparison` on a known history, against the real database
//! (a temporary SQLite file, or a new PostgreSQL database when `TEST_POSTGRES_URL` is set, as
//! in `tests/api`): every count of every tally checked against a replay computed here from the
//! seeded signals and fates with `risk::rules::evaluate`. The history has every outcome the
//! replay reads — refunded, partially refunded, rejected, rejected as fraud (once and twice),
//! disputed (open, won, refunded after), signals that do not parse — spread over the whole
//! period, with assessments that must be left out: other stages, before the period.

use coinfront::db::Db;
use coinfront::risk::backtest::{self, Comparison, Tally};
use coinfront::risk::rules::{evaluate, Decision};
use coinfront::risk::signals::{PerScope, Signals, Velocity};
use coinfront::risk::{self, RiskSettings, Stage};

const DAY: i64 = 86_400_000;
const ORDERS: usize = 3_000;

/// A database for one test, dropped afterwards on PostgreSQL.
struct TestDb {
    url: String,
    postgres: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

impl TestDb {
    async fn new() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        match std::env::var("TEST_POSTGRES_URL") {
            Ok(admin_url) if !admin_url.is_empty() => {
                use sqlx::Connection;
                sqlx::any::install_default_drivers();
                let name = format!("cf_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::AnyConnection::connect(&admin_url)
                    .await
                    .expect("TEST_POSTGRES_URL is set but PostgreSQL cannot be reached");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let base = admin_url.split('?').next().unwrap();
                let root = &base[..base.rfind('/').expect("database URL has a path")];
                TestDb {
                    url: format!("{root}/{name}"),
                    postgres: Some((admin_url, name)),
                    _dir: dir,
                }
            }
            _ => TestDb {
                url: format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display()),
                postgres: None,
                _dir: dir,
            },
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((url, name)) = self.postgres.take() {
            // Drop runs inside the test's runtime: use a thread with its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    use sqlx::Connection;
                    if let Ok(mut conn) = sqlx::AnyConnection::connect(&url).await {
                        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                            .execute(&mut conn)
                            .await;
                    }
                })
            })
            .join();
        }
    }
}

/// What became of order `n`: its status, block-list events and disputes.
fn fate(n: usize) -> (&'static str, usize, usize) {
    let status = match n % 10 {
        0 => "refunded",
        1 => "partially_refunded",
        2 | 3 => "rejected",
        4 if n % 20 == 4 => "disputed",
        _ => "delivered",
    };
    // Rejected as fraud: once, or twice (rejected again after a reopen).
    let fraud_events = match (status, n % 7) {
        ("rejected", 0) => 2,
        ("rejected", 1 | 2) => 1,
        _ => 0,
    };
    // Chargebacks: the open ones (status disputed), won ones on delivered orders, one after a
    // refund, and two on one order.
    let disputes = match (status, n % 13) {
        ("disputed", _) => 1,
        ("delivered", 0) => 1,
        ("refunded", 5) => 1,
        ("delivered", 6) => 2,
        _ => 0,
    };
    (status, fraud_events, disputes)
}

/// Varied signals, so that both settings decide differently for some orders.
fn signals(n: usize) -> Signals {
    Signals {
        coins: 700,
        amount_base_minor: 728,
        price_per_coin: "0.0104".parse().unwrap(),
        reference_price_per_coin: "0.0106".parse().unwrap(),
        disposable_email: n.is_multiple_of(3),
        price_mismatch: n.is_multiple_of(5),
        failed_payments_1h: PerScope {
            email: n.is_multiple_of(11) as u32 * 3,
            ip: (n % 4) as u32,
            ..Default::default()
        },
        velocity_24h_username: Velocity {
            orders: (n % 9) as u32,
            amount_minor: 728 * (n % 9) as i64,
        },
        prior_paid_orders: (n % 6) as u32,
        rate_limited_1h: n.is_multiple_of(17) as u32 * 4,
        ..Default::default()
    }
}

/// Stored signals that do not parse as `Signals`.
fn unreadable(n: usize) -> bool {
    n.is_multiple_of(97)
}

async fn seed(db: &Db, now: i64) {
    let settings = RiskSettings::default();
    let mut tx = db.begin().await.unwrap();
    for n in 0..ORDERS {
        // Spread over the whole 30 days (and, for one in 50, 31 to 40 days ago: outside).
        let at = if n % 50 == 49 {
            now - 31 * DAY - (n as i64 * 7_919) % (9 * DAY)
        } else {
            now - 60_000 - (n as i64 * 104_729_000) % (30 * DAY - 120_000)
        };
        let (status, fraud_events, disputes) = fate(n);
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
        for _ in 0..fraud_events {
            coinfront::db::events::record(
                &mut tx,
                &id,
                at + 1,
                "staff:a",
                "block_listed",
                None,
                None,
                "fraud",
            )
            .await
            .unwrap();
        }
        // Other events on every order: only `block_listed` means fraud.
        coinfront::db::events::record(&mut tx, &id, at, "risk", "status_changed", None, None, "")
            .await
            .unwrap();
        for d in 0..disputes {
            sqlx::query(
                "INSERT INTO disputes (id, order_id, provider, amount_minor, currency, reason, status, created_at, updated_at)
                 VALUES ($1, $2, 'stripe', 728, 'USD', 'fraudulent', 'needs_response', $3, $3)",
            )
            .bind(format!("dp-{n}-{d}"))
            .bind(&id)
            .bind(at + DAY)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        let s = signals(n);
        let a = evaluate(&s, &settings);
        if unreadable(n) {
            sqlx::query(
                "INSERT INTO risk_assessments (id, order_id, stage, score, decision, reasons, signals, created_at)
                 VALUES ($1, $2, 'pre_fulfillment', 0, 'allow', '[]', '{\"coins\": \"many\"', $3)",
            )
            .bind(format!("ra-{n}"))
            .bind(&id)
            .bind(at)
            .execute(&mut *tx)
            .await
            .unwrap();
        } else {
            risk::record(&mut tx, &id, Stage::PreFulfillment, &a, &s, at)
                .await
                .unwrap();
        }
        // The other stages' assessments are not replayed.
        risk::record(&mut tx, &id, Stage::PrePayment, &a, &s, at - 60_000)
            .await
            .unwrap();
        if n.is_multiple_of(8) {
            risk::record(&mut tx, &id, Stage::PreCredit, &a, &s, at + 1_000)
                .await
                .unwrap();
        }
    }
    tx.commit().await.unwrap();
}

/// The replay computed here, order by order, from what was seeded.
fn expected(current: &RiskSettings, proposed: &RiskSettings) -> Comparison {
    let mut c = Comparison::default();
    let add = |t: &mut Tally, d: Decision, refunded: bool, rejected: bool, fraud: bool| {
        let i = d as usize;
        t.decided[i] += 1;
        t.refunded[i] += refunded as u64;
        t.rejected[i] += rejected as u64;
        t.fraud[i] += fraud as u64;
    };
    for n in 0..ORDERS {
        if n % 50 == 49 {
            continue;
        }
        if unreadable(n) {
            c.unreadable += 1;
            continue;
        }
        let (status, fraud_events, disputes) = fate(n);
        let refunded = matches!(status, "refunded" | "partially_refunded");
        let disputed = disputes > 0;
        let rejected = disputed || matches!(status, "rejected" | "disputed");
        let fraud = disputed || fraud_events > 0;
        let s = signals(n);
        let now = evaluate(&s, current).decision;
        let then = evaluate(&s, proposed).decision;
        c.orders += 1;
        c.changed += (now != then) as u64;
        add(&mut c.current, now, refunded, rejected, fraud);
        add(&mut c.proposed, then, refunded, rejected, fraud);
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_counts_every_decision_and_outcome_of_a_known_history() {
    let test_db = TestDb::new().await;
    let db = Db::connect(&test_db.url, 8).await.unwrap();
    db.migrate().await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    seed(&db, now).await;

    let current = RiskSettings::default();
    let proposed = RiskSettings {
        review_threshold: 30,
        block_threshold: 60,
        ..RiskSettings::default()
    };
    let want = expected(&current, &proposed);
    // The history is what it claims to be: every outcome is there, and the rules disagree.
    assert!(want.changed > 100 && want.unreadable > 10, "{want:?}");
    for t in [&want.current, &want.proposed] {
        assert!(t.decided.iter().all(|&n| n > 0), "{t:?}");
        assert!(t.fraud.iter().sum::<u64>() > 0 && t.refunded.iter().sum::<u64>() > 0);
    }

    let got = backtest::run(&db, &current, &proposed, now - 30 * DAY)
        .await
        .unwrap();
    assert_eq!(got, want);

    // The same settings on both sides change nothing; an empty period replays nothing.
    let same = backtest::run(&db, &current, &current, now - 30 * DAY)
        .await
        .unwrap();
    assert_eq!(same.changed, 0);
    assert_eq!(same.current, same.proposed);
    assert_eq!(same.current, want.current);
    let none = backtest::run(&db, &current, &proposed, now + DAY)
        .await
        .unwrap();
    assert_eq!(none, Comparison::default());
    db.close().await;
}
