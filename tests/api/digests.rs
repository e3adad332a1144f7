//! Staff notification digests over real HTTP: a staff member chooses them in the console,
//! work becomes waiting (a held order, a refund request, a support message, a dead job, a
//! surge of failed payments), the clock moves past the period, and exactly one email arrives
//! listing it all with links into the console — once, however many instances run.

use crate::helpers::{
    assert_is_redirect_to, eventually, extract_hidden, post_from, spawn_app_with, Browser,
    Checkout, TestApp,
};
use coinfront::db::emails::StoredEmail;
use sqlx::Row;
use std::sync::Arc;

const AGENT: &str = "night.agent@shop.test";
const QUIET_AGENT: &str = "quiet.agent@shop.test";
const QUARTER_MS: i64 = 15 * 60_000;
const ALL_KINDS: [(&str, &str); 5] = [
    ("held", "on"),
    ("refunds", "on"),
    ("support", "on"),
    ("dead_jobs", "on"),
    ("screening", "on"),
];

fn settings(s: &mut coinfront::config::Settings) {
    s.notifications.check_seconds = 1;
    s.notifications.held_after_minutes = 30;
    // The surge of declines below comes "from" many addresses through the local proxy.
    s.risk.surge.min_failures = 5;
    s.risk.surge.trait_min_failures = 4;
    s.risk.surge.check_seconds = 0;
    s.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
}

/// Moves the clock just past a quarter-hour (and the settling minute), so that a test's
/// events all fall in one 15-minute period whatever the time of day.
fn start_of_a_quarter(app: &TestApp) {
    let now = app.now_ms();
    app.clock
        .advance_ms(QUARTER_MS - now.rem_euclid(QUARTER_MS) + 61_000);
}

async fn choose(browser: &Browser, fields: &[(&str, &str)]) -> reqwest::Response {
    post_from(
        browser,
        "/console/account/notifications",
        "/console/account/notifications",
        fields,
    )
    .await
}

async fn digests(app: &TestApp) -> Vec<StoredEmail> {
    let ids: Vec<String> =
        sqlx::query("SELECT id FROM emails WHERE kind = 'staff_digest' ORDER BY created_at, id")
            .fetch_all(app.state.db.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    let mut out = Vec::new();
    for id in ids {
        out.push(
            coinfront::db::emails::load(app.state.db.pool(), &id)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    out
}

async fn staff_id(app: &TestApp, email: &str) -> String {
    coinfront::db::staff::by_email(app.state.db.pool(), email)
        .await
        .unwrap()
        .unwrap()
        .id
}

async fn covered_until(app: &TestApp, email: &str) -> i64 {
    let id = staff_id(app, email).await;
    coinfront::db::staff_digests::for_staff(app.state.db.pool(), &id)
        .await
        .unwrap()
        .expect("a stored choice")
        .covered_until
}

/// Runs every instance's check once more and lets the queue finish: whatever is due is done.
async fn settle(app: &TestApp) {
    coinfront::staff_digest::schedule_due(
        &app.state.db,
        &app.state.settings.notifications,
        app.now_ms(),
    )
    .await
    .unwrap();
    app.wait_until_idle().await;
}

async fn order_number(app: &TestApp, order_path: &str) -> String {
    let token = order_path.trim_start_matches("/orders/");
    sqlx::query("SELECT order_number FROM orders WHERE token_hash = $1")
        .bind(coinfront::domain::ids::token_hash(token))
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0)
}

/// An order held for review: a stolen-card decline, then a good card.
async fn held_order(app: &TestApp) -> String {
    let started = app
        .start_order(&Checkout {
            email: "held@example.com",
            username: "held_buyer",
            ..Default::default()
        })
        .await;
    let r = app.pay_card(&started, "4000000000009979", "123").await;
    assert_eq!(r.status(), 402);
    eventually("the decline recorded", || async {
        app.count("SELECT COUNT(*) FROM payments WHERE status = 'failed'")
            .await
            >= 1
    })
    .await;
    let path = app
        .order_path_after(app.pay_card(&started, "4242424242424242", "123").await)
        .await;
    app.wait_for_status(&path, "in_review").await;
    path
}

/// A delivered order whose buyer asks for a refund and writes to support.
async fn refund_and_message(app: &TestApp) -> String {
    let path = app
        .buy(&Checkout {
            email: "asker@example.com",
            username: "asker_fan",
            ..Default::default()
        })
        .await;
    app.wait_for_status(&path, "delivered").await;
    let page = app.get_html(&path).await;
    let csrf = extract_hidden(&page, "csrf_token").unwrap();
    let r = app
        .post_form(
            &format!("{path}/refund"),
            &[
                ("csrf_token", &csrf),
                ("reason", "not_delivered"),
                ("message", "Balance did not change"),
            ],
        )
        .await;
    assert!(r.status().is_redirection(), "refund asked: {}", r.status());
    let page = app.get_html(&path).await;
    let csrf = extract_hidden(&page, "csrf_token").unwrap();
    let r = app
        .post_form(
            &format!("{path}/messages"),
            &[("csrf_token", &csrf), ("message", "Hello, anyone there?")],
        )
        .await;
    assert_is_redirect_to(&r, "?message=sent");
    path
}

fn card(bin: &str, n: u32, last4: &str) -> String {
    (0..10)
        .map(|d| format!("{bin}{n:05}{d}{last4}"))
        .find(|c| coinfront::payments::sandbox::cards::luhn_valid(c))
        .expect("one check digit works")
}

/// Declined cards from rotating addresses: the shop's surge response engages.
async fn wave_of_declines(app: &TestApp) {
    for k in 0..8u32 {
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
        assert_eq!(r.status(), 402);
    }
    app.wait_until_idle().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM screening_events").await, 1);
}

/// A job that can never succeed: it dies at its first try.
async fn dead_job(app: &TestApp) {
    // A kind no version handles any more: written as a row, since `jobs::enqueue` only takes
    // the kinds of today's `Job`.
    sqlx::query(
        "INSERT INTO jobs (id, kind, payload, dedupe_key, status, attempts, run_at, created_at, updated_at)
         VALUES ($1, 'retired_kind', '{}', NULL, 'pending', 0, $2, $2, $2)",
    )
    .bind(coinfront::domain::ids::new_id())
    .bind(app.now_ms())
    .execute(app.state.db.pool())
    .await
    .unwrap();
    app.state.jobs_ready.notify_one();
    eventually("the job is dead", || async {
        app.count("SELECT COUNT(*) FROM jobs WHERE status = 'dead'")
            .await
            == 1
    })
    .await;
}

#[tokio::test]
async fn an_agent_who_opts_in_gets_one_digest_of_everything_waiting_with_links() {
    let app = spawn_app_with(settings).await;
    start_of_a_quarter(&app);
    let agent = app.sign_in_as_agent(AGENT).await;
    let _quiet = app.sign_in_as_agent(QUIET_AGENT).await;

    // Agents are off by default.
    let page = agent.get_html("/console/account/notifications").await;
    assert!(page.contains("<h1>Notifications</h1>"), "{page}");
    assert!(
        page.contains(r#"name="enabled" value="on">"#),
        "unticked: {page}"
    );
    assert!(page.contains("default for your role"));

    let mut fields = vec![("enabled", "on"), ("every_minutes", "15")];
    fields.extend_from_slice(&ALL_KINDS);
    let r = choose(&agent, &fields).await;
    assert_is_redirect_to(&r, "/console/account/notifications?saved=1");
    let page = agent
        .get_html("/console/account/notifications?saved=1")
        .await;
    assert!(page.contains("Saved."));
    assert!(page.contains(r#"name="enabled" value="on" checked>"#));
    assert!(page.contains(r#"<option value="15" selected>Every 15 minutes</option>"#));

    // Work becomes waiting.
    let asked = refund_and_message(&app).await;
    let held = held_order(&app).await;
    dead_job(&app).await;
    wave_of_declines(&app).await;
    let (held, asked) = (
        order_number(&app, &held).await,
        order_number(&app, &asked).await,
    );

    // Nothing before the period is over.
    settle(&app).await;
    assert!(digests(&app).await.is_empty());

    // Two hours on: the held order has waited past 30 minutes and the period is over.
    app.clock.advance_secs(2 * 3600);
    eventually("the digest is sent", || async {
        digests(&app).await.iter().any(|e| e.sent_at.is_some())
    })
    .await;
    settle(&app).await;
    let all = digests(&app).await;
    assert_eq!(all.len(), 1, "exactly one digest");
    let d = &all[0];
    assert_eq!(d.to_address, AGENT);
    assert!(d.order_id.is_none());
    assert!(d.subject.contains("waiting for staff"), "{}", d.subject);
    let base = &app.state.base_url;
    for body in [&d.text_body, &d.html_body] {
        for needle in [
            "Held orders waiting more than 30 minutes (1)",
            "New refund requests (1)",
            "not delivered",
            "Support messages awaiting an answer (1)",
            "Background jobs that failed for good (1)",
            "retired_kind",
            "Screening events (1)",
            "cards failed in the last 10 minutes",
            &format!("{base}/console/orders/{held}"),
            &format!("{base}/console/orders/{asked}"),
            &format!("{base}/console/review"),
            &format!("{base}/console/refunds"),
            &format!("{base}/console/support"),
            &format!("{base}/console/account/notifications"),
        ] {
            assert!(body.contains(needle), "{needle} in\n{body}");
        }
    }
    assert!(d
        .html_body
        .contains(&format!(r#"<a href="{base}/console/orders/{held}""#)));
    // Delivered through the configured transport: the file outbox.
    let file = app
        .state
        .settings
        .outbox_dir()
        .join(format!("{}.eml", d.id));
    let raw = std::fs::read_to_string(&file).expect("the digest in the outbox");
    assert!(raw.contains(&format!("To: {AGENT}")));
    assert!(raw.contains("multipart/alternative"));

    // The next periods have nothing new: they are covered, and nothing more is sent.
    let first_covered = covered_until(&app, AGENT).await;
    app.clock.advance_secs(2 * 3600);
    settle(&app).await;
    assert!(covered_until(&app, AGENT).await > first_covered);
    let all = digests(&app).await;
    assert_eq!(all.len(), 1, "an empty digest is not sent");
    assert!(
        all.iter().all(|e| e.to_address != QUIET_AGENT),
        "an agent who did not opt in gets none"
    );
    let quiet = staff_id(&app, QUIET_AGENT).await;
    assert!(
        coinfront::db::staff_digests::for_staff(app.state.db.pool(), &quiet)
            .await
            .unwrap()
            .is_none(),
        "nothing was stored for the agent who never chose"
    );
}

#[tokio::test]
async fn admins_get_digests_by_default_and_turning_them_off_stops_them() {
    let app = spawn_app_with(settings).await;
    start_of_a_quarter(&app);
    let boss = app.sign_in_as_admin("boss@shop.test").await;
    let page = boss.get_html("/console/account/notifications").await;
    assert!(
        page.contains(r#"name="enabled" value="on" checked>"#),
        "{page}"
    );
    // Another admin turns them off before anything happens.
    let quiet = app.sign_in_as_admin("quiet.boss@shop.test").await;
    let r = choose(&quiet, &[("every_minutes", "60"), ("refunds", "on")]).await;
    assert_is_redirect_to(&r, "/console/account/notifications?saved=1");
    // An agent who never chose.
    app.sign_in_as_agent(AGENT).await;
    // The admins' default applies from the first check after they exist.
    settle(&app).await;

    refund_and_message(&app).await;
    app.clock.advance_secs(3 * 3600);
    eventually("the admin's digest", || async {
        digests(&app).await.iter().any(|e| e.sent_at.is_some())
    })
    .await;
    settle(&app).await;
    let to: Vec<String> = digests(&app)
        .await
        .into_iter()
        .map(|e| e.to_address)
        .collect();
    assert_eq!(to, vec!["boss@shop.test"]);
}

#[tokio::test]
async fn two_instances_and_racing_workers_send_one_digest_per_period() {
    let app = spawn_app_with(settings).await;
    // A second instance of the shop on the same database and clock, with its own workers
    // and its own digest check.
    let second = coinfront::startup::Application::build(
        app.state.settings.clone(),
        Arc::new(app.clock.clone()),
    )
    .await
    .expect("a second instance builds");
    let second_state = second.state();
    tokio::spawn(second.run_until_stopped());

    start_of_a_quarter(&app);
    let agent = app.sign_in_as_agent(AGENT).await;
    let mut fields = vec![("enabled", "on"), ("every_minutes", "15")];
    fields.extend_from_slice(&ALL_KINDS);
    assert_is_redirect_to(
        &choose(&agent, &fields).await,
        "/console/account/notifications?saved=1",
    );
    let from = covered_until(&app, AGENT).await;
    refund_and_message(&app).await;

    app.clock.advance_secs(3600);
    // Both instances' checks and workers race, and so do four direct runs of the job.
    let id = staff_id(&app, AGENT).await;
    let states = [&app.state, &second_state, &app.state, &second_state];
    let runs = states.map(|s| {
        let id = id.clone();
        async move {
            coinfront::staff_digest::build_and_queue(
                &coinfront::staff_digest::Deps::of(s),
                &id,
                from,
            )
            .await
            .unwrap()
        }
    });
    let [a, b, c, d] = runs;
    let outcomes = tokio::join!(a, b, c, d);
    let queued = [outcomes.0, outcomes.1, outcomes.2, outcomes.3]
        .iter()
        .filter(|o| **o == coinfront::staff_digest::Outcome::Queued)
        .count();
    assert!(queued <= 1, "at most one of the direct runs wrote it");
    eventually("the digest is sent", || async {
        digests(&app).await.iter().any(|e| e.sent_at.is_some())
    })
    .await;
    settle(&app).await;
    coinfront::staff_digest::schedule_due(
        &second_state.db,
        &second_state.settings.notifications,
        app.now_ms(),
    )
    .await
    .unwrap();
    app.wait_until_idle().await;
    let all = digests(&app).await;
    assert_eq!(all.len(), 1, "one digest for the period");
    assert!(
        app.count("SELECT COUNT(*) FROM jobs WHERE kind = 'staff_digest'")
            .await
            <= 1,
        "at most one digest job for the period (the direct runs may have covered it first)"
    );
    let key = coinfront::staff_digest::dedupe_key(&id, from);
    let row = sqlx::query("SELECT COUNT(*) FROM emails WHERE dedupe_key = $1")
        .bind(&key)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(row.get::<i64, _>(0), 1);
    // Running the same period again does nothing.
    let again = coinfront::staff_digest::build_and_queue(
        &coinfront::staff_digest::Deps::of(&app.state),
        &id,
        from,
    )
    .await
    .unwrap();
    assert_eq!(again, coinfront::staff_digest::Outcome::Skipped);
}

#[tokio::test]
async fn the_form_is_checked_audited_and_admins_can_choose_for_others() {
    let app = spawn_app_with(settings).await;
    let agent = app.sign_in_as_agent(AGENT).await;

    // No CSRF token: refused, nothing stored.
    let r = agent
        .post_form(
            "/console/account/notifications",
            &[("enabled", "on"), ("every_minutes", "15"), ("held", "on")],
        )
        .await;
    assert_eq!(r.status(), 403);
    // An interval not offered, or nothing ticked: a clear message, nothing stored.
    let r = choose(
        &agent,
        &[("enabled", "on"), ("every_minutes", "7"), ("held", "on")],
    )
    .await;
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Choose how often from the list."));
    let r = choose(&agent, &[("enabled", "on"), ("every_minutes", "15")]).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("Tick at least one kind"));
    let r = choose(&agent, &[("enabled", "on")]).await;
    assert_eq!(
        r.status(),
        400,
        "a missing field is a bad request, not a 500"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM staff_digests").await, 0);

    // Agents cannot open someone else's.
    let id = staff_id(&app, AGENT).await;
    let r = agent
        .get(&format!("/console/settings/staff/{id}/notifications"))
        .await;
    assert_eq!(r.status(), 403);

    // An admin chooses for the agent, from the staff page's link.
    let admin = app.sign_in_as_admin("boss@shop.test").await;
    let staff_page = admin.get_html("/console/settings/staff").await;
    let link = format!("/console/settings/staff/{id}/notifications");
    assert!(staff_page.contains(&link), "{staff_page}");
    let page = admin.get_html(&link).await;
    assert!(
        page.contains(&format!("Notifications for {AGENT}")),
        "{page}"
    );
    let r = post_from(
        &admin,
        &link,
        &link,
        &[
            ("enabled", "on"),
            ("every_minutes", "1440"),
            ("support", "on"),
        ],
    )
    .await;
    assert_is_redirect_to(&r, &format!("{link}?saved=1"));
    let stored = coinfront::db::staff_digests::for_staff(app.state.db.pool(), &id)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.choice.enabled && stored.choice.support && !stored.choice.held);
    assert_eq!(stored.choice.every_minutes, 1440);
    let audit = sqlx::query(
        "SELECT actor, subject, old_value, new_value FROM audit_log WHERE action = 'notifications_changed'",
    )
    .fetch_one(app.state.db.pool())
    .await
    .unwrap();
    assert_eq!(audit.get::<String, _>(0), "staff:boss@shop.test");
    assert_eq!(audit.get::<String, _>(1), AGENT);
    assert_eq!(audit.get::<Option<String>, _>(2).as_deref(), Some("off"));
    assert_eq!(
        audit.get::<Option<String>, _>(3).as_deref(),
        Some("every day: support messages")
    );
    // The agent sees the admin's choice on their own page.
    let page = agent.get_html("/console/account/notifications").await;
    assert!(page.contains(r#"<option value="1440" selected>Every day</option>"#));
}
