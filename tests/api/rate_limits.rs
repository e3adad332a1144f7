//! Rate limits that hold across instances: the database store answers exactly as governor does
//! in memory, two instances on one database share one budget per client, and the table keeps
//! only clients that are being limited.

use crate::helpers::{spawn_app_with, Browser, TestApp};
use coinfront::config::{Limit, LimitStore, RateLimitSettings};
use coinfront::web::rate_limit::{Action, RateLimits};
use rand::{Rng, SeedableRng};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

fn limits() -> RateLimitSettings {
    let limit = |per_minute, burst| Limit { per_minute, burst };
    RateLimitSettings {
        store: None,
        checkout: limit(5, 5),
        payment_attempt: limit(10, 3),
        account_lookup: limit(7, 1),
        order_lookup: limit(1, 2),
        refund_request: limit(3, 3),
        staff_login: limit(600, 20),
        support_message: limit(3, 5),
    }
}

#[tokio::test]
async fn the_database_store_answers_exactly_as_governor_does() {
    let app = spawn_app_with(|_| {}).await;
    let clock: coinfront::clock::SharedClock = Arc::new(app.clock.clone());
    let memory = RateLimits::in_memory(&limits(), clock.clone());
    let shared = RateLimits::in_database(&limits(), &app.state.db, clock);
    let actions = [
        Action::Checkout,
        Action::PaymentAttempt,
        Action::AccountLookup,
        Action::OrderLookup,
        Action::StaffLogin,
        Action::SupportMessage,
    ];
    let ips: Vec<IpAddr> = ["192.0.2.1", "192.0.2.2", "2001:db8::1"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let (mut allowed, mut refused) = (0, 0);
    for n in 0..1500 {
        // Bursts (no time passes) and pauses of up to 20 s.
        if rng.gen_bool(0.3) {
            app.clock.advance_ms(rng.gen_range(0..20_000));
        }
        let action = actions[rng.gen_range(0..actions.len())];
        let ip = ips[rng.gen_range(0..ips.len())];
        let a = memory.check(action, ip).await.unwrap();
        let b = shared.check(action, ip).await.unwrap();
        assert_eq!(a, b, "check {n}: {action:?} from {ip}");
        match a {
            Ok(()) => allowed += 1,
            Err(_) => refused += 1,
        }
    }
    assert!(
        allowed > 100 && refused > 100,
        "{allowed} allowed, {refused} refused"
    );
}

/// A second instance of `app`'s shop on the same database and clock.
async fn second_instance(app: &TestApp) -> Browser {
    let second = coinfront::startup::Application::build(
        app.state.settings.clone(),
        Arc::new(app.clock.clone()),
    )
    .await
    .expect("a second instance builds");
    let address = format!("http://127.0.0.1:{}", second.port());
    tokio::spawn(second.run_until_stopped());
    Browser::new(address)
}

async fn look_up(browser: &Browser) -> u16 {
    let csrf = browser.csrf().await;
    let form = [
        ("csrf_token", csrf.as_str()),
        ("order_number", "CF-0000-0000"),
        ("email", "nobody@example.com"),
    ];
    browser
        .post_form("/orders/lookup", &form)
        .await
        .status()
        .as_u16()
}

/// Order look-ups allowed from one client across two instances, 3 at once and 1 a minute.
async fn allowed_across_two(store: LimitStore) -> (usize, TestApp) {
    let app = spawn_app_with(|s| {
        s.rate_limits.store = Some(store);
        s.rate_limits.order_lookup = Limit {
            per_minute: 1,
            burst: 3,
        };
    })
    .await;
    let other = second_instance(&app).await;
    let mut allowed = 0;
    for n in 0..8 {
        let browser = if n % 2 == 0 { &app.browser } else { &other };
        match look_up(browser).await {
            429 => {}
            _ => allowed += 1,
        }
    }
    (allowed, app)
}

#[tokio::test]
async fn a_shared_limit_holds_across_instances_and_a_memory_one_per_instance() {
    let (shared, app) = allowed_across_two(LimitStore::Database).await;
    assert_eq!(shared, 3, "one budget for the shop");
    // The refusals were counted for the risk rule, by whichever instance refused.
    let refusals: i64 = sqlx::query_scalar::<_, i64>(
        "SELECT CAST(COALESCE(SUM(hits), 0) AS BIGINT) FROM rate_limit_counts",
    )
    .fetch_one(app.state.db.pool())
    .await
    .unwrap();
    assert_eq!(refusals, 5);
    let (per_instance, _) = allowed_across_two(LimitStore::Memory).await;
    assert_eq!(per_instance, 6, "each instance counts alone");
}

#[tokio::test]
async fn the_default_store_is_memory_on_sqlite_and_the_database_on_postgresql() {
    let app = spawn_app_with(|_| {}).await;
    let expected = match app.state.db.backend() {
        coinfront::db::Backend::Sqlite => LimitStore::Memory,
        coinfront::db::Backend::Postgres => LimitStore::Database,
    };
    assert_eq!(app.state.limits.store(), expected);
}

#[tokio::test]
async fn the_shared_table_keeps_only_clients_being_limited() {
    let app = spawn_app_with(|s| {
        s.rate_limits.store = Some(LimitStore::Database);
        s.rate_limits.checkout = Limit {
            per_minute: 5,
            burst: 5,
        };
    })
    .await;
    let shared = &app.state.limits;
    let pool = app.state.db.pool();
    for n in 0..50u8 {
        let ip: IpAddr = format!("198.51.100.{n}").parse().unwrap();
        shared.check(Action::Checkout, ip).await.unwrap().unwrap();
    }
    assert_eq!(
        coinfront::db::rate_limits::state_rows(pool).await.unwrap(),
        50
    );
    // Within a request's interval (12 s at 5 a minute) the rows still say something.
    app.clock.advance_ms(11_000);
    shared.forget_idle().await.unwrap();
    assert_eq!(
        coinfront::db::rate_limits::state_rows(pool).await.unwrap(),
        50
    );
    app.clock.advance_ms(1_000);
    shared.forget_idle().await.unwrap();
    assert_eq!(
        coinfront::db::rate_limits::state_rows(pool).await.unwrap(),
        0
    );
    // A client forgotten is a client with a full bucket: five at once again.
    let ip: IpAddr = "198.51.100.1".parse().unwrap();
    for _ in 0..5 {
        shared.check(Action::Checkout, ip).await.unwrap().unwrap();
    }
    let wait = shared
        .check(Action::Checkout, ip)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(wait, Duration::from_secs(12));
}
