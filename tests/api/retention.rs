//! Running for years: old records are pruned in batches while the accounts are kept, and a
//! buyer's personal data is erased on request from the console.

use crate::helpers::{
    assert_is_redirect_to, extract_hidden, post_from, spawn_app, spawn_app_with, Browser, Checkout,
    TestApp,
};
use coinfront::db::staff::Role;
use sqlx::Row;

const DAY_S: i64 = 86_400;

/// What the shop keeps for its accounts, as one comparable snapshot.
async fn accounts(app: &TestApp) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for table in [
        "orders",
        "payments",
        "refunds",
        "refund_requests",
        "disputes",
        "order_events",
        "audit_log",
        "risk_assessments",
        "webhook_events",
        "emails",
    ] {
        let n: i64 = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
            .get(0);
        out.push((table.to_owned(), n));
    }
    let rows =
        sqlx::query("SELECT id, status, amount_minor, refunded_minor FROM orders ORDER BY id")
            .fetch_all(app.state.db.pool())
            .await
            .unwrap();
    for r in rows {
        out.push((
            format!(
                "{} {}",
                r.get::<String, _>("id"),
                r.get::<String, _>("status")
            ),
            r.get::<i64, _>("amount_minor") * 1_000_000 + r.get::<i64, _>("refunded_minor"),
        ));
    }
    out
}

async fn wait_for_sent_emails(app: &TestApp, n: i64) {
    crate::helpers::eventually("the emails to be sent", || async {
        app.count("SELECT COUNT(*) FROM emails WHERE sent_at IS NOT NULL")
            .await
            >= n
    })
    .await;
}

#[tokio::test]
async fn old_records_are_pruned_in_batches_and_the_accounts_are_kept() {
    let app = spawn_app_with(|s| s.retention.batch_size = 2).await;
    let db = &app.state.db;
    for n in 0..3 {
        let username = format!("keeper_{n}");
        let path = app
            .buy(&Checkout {
                username: &username,
                ..Default::default()
            })
            .await;
        app.wait_for_status(&path, "delivered").await;
    }
    // Each delivered order sends two emails (payment received, receipt).
    wait_for_sent_emails(&app, 6).await;
    app.wait_until_idle().await;
    // What staff and clients leave behind: a failed sign-in (with an unknown email, whose
    // record no later success clears), a session, a setup link, a rate-limit refusal.
    app.add_staff("agent@example.com", Role::Agent).await;
    let r = app
        .console_sign_in(
            &Browser::new(app.address.clone()),
            "nobody@example.com",
            "not the password",
        )
        .await;
    assert_eq!(r.status(), 422);
    let agent = app.sign_in_as_agent("agent@example.com").await;
    sqlx::query(
        "INSERT INTO staff_setup_tokens (token_hash, created_at, expires_at) VALUES ($1, $2, $3)",
    )
    .bind("0".repeat(64))
    .bind(app.now_ms())
    .bind(app.now_ms() + 86_400_000)
    .execute(db.pool())
    .await
    .unwrap();
    coinfront::db::rate_limits::record_refusal(db.pool(), "203.0.113.9", app.now_ms())
        .await
        .unwrap();
    // An instance queues this period's pruning (the app's own look comes a minute after its
    // start); another instance asking in the same period finds it queued, and the next period
    // gets its own.
    let settings = &app.state.settings;
    let prune_jobs =
        "SELECT COUNT(*) FROM jobs WHERE kind = 'prune_old_records' AND status = 'done'";
    // (In a slow run the app's own look may have come first.)
    let _ = coinfront::retention::schedule_due(db, &settings.retention, app.now_ms()).await;
    app.state.jobs_ready.notify_one();
    app.wait_until_idle().await;
    assert_eq!(app.count(prune_jobs).await, 1);
    assert!(
        !coinfront::retention::schedule_due(db, &settings.retention, app.now_ms())
            .await
            .unwrap(),
        "a second instance finds it queued"
    );
    let kept = accounts(&app).await;
    let finished = app
        .count("SELECT COUNT(*) FROM jobs WHERE status = 'done'")
        .await;
    assert!(
        finished >= 10,
        "screening, fulfillment, emails, pruning: {finished}"
    );
    assert_eq!(agent.get("/console/").await.status(), 200);
    app.clock.advance_secs(3600);
    // (The app's own once-a-minute look may get there first in a slow run.)
    let _ = coinfront::retention::schedule_due(db, &settings.retention, app.now_ms()).await;
    app.state.jobs_ready.notify_one();
    app.wait_until_idle().await;
    assert_eq!(
        app.count(prune_jobs).await,
        2,
        "one more for the next period"
    );
    assert!(
        !coinfront::retention::schedule_due(db, &settings.retention, app.now_ms())
            .await
            .unwrap(),
    );
    // Nothing was old yet.
    assert_eq!(accounts(&app).await, kept);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM jobs WHERE status = 'done'")
            .await,
        finished + 1
    );

    // A hundred days on, everything with an age is past it.
    app.clock.advance_secs(100 * DAY_S);
    let pruned =
        coinfront::retention::prune(db, &settings.retention, &settings.console, app.now_ms())
            .await
            .unwrap();
    assert_eq!(pruned.finished_jobs as i64, finished + 1);
    assert_eq!(pruned.rate_limit_counts, 1);
    assert!(pruned.sign_in_records >= 2, "{pruned:?}");
    assert_eq!(pruned.staff_sessions, 1);
    // The one added above and the first-start link.
    assert!(pruned.staff_links >= 1, "{pruned:?}");
    assert_eq!(pruned.email_bodies, 6);
    // Two rows a statement: never one big delete.
    let rows = pruned.total();
    assert!(
        u64::from(pruned.batches) > rows / 2,
        "{rows} rows in {} batches of at most 2",
        pruned.batches
    );
    for table in [
        "jobs",
        "rate_limit_counts",
        "staff_login_throttle",
        "staff_login_sources",
        "staff_sessions",
        "staff_setup_tokens",
    ] {
        let n: i64 = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(db.pool())
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{table} is empty");
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM emails WHERE text_body = '' AND html_body = '' AND body_deleted_at IS NOT NULL")
            .await,
        6
    );
    // The accounts are as they were: every order, payment, event, audit entry and email row.
    assert_eq!(accounts(&app).await, kept);
    // A second run finds nothing.
    let again =
        coinfront::retention::prune(db, &settings.retention, &settings.console, app.now_ms())
            .await
            .unwrap();
    assert_eq!(again.total(), 0);

    // The ended session is gone: sign in again. An email whose body went is listed without a
    // resend button, and a receipt asked for again is written afresh.
    assert_is_redirect_to(&agent.get("/console/").await, "/console/login");
    let agent = app.sign_in_as_agent("agent@example.com").await;
    let number: String = sqlx::query("SELECT order_number FROM orders ORDER BY id LIMIT 1")
        .fetch_one(db.pool())
        .await
        .unwrap()
        .get(0);
    let page = format!("/console/orders/{number}");
    let html = agent.get_html(&page).await;
    assert!(html.contains("Content deleted"), "{html}");
    assert!(
        !html.contains("/resend\""),
        "no resend of an email without a body"
    );
    let r = post_from(&agent, &page, &format!("{page}/resend-receipt"), &[]).await;
    assert_eq!(r.status(), 303);
    wait_for_sent_emails(&app, 7).await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM emails WHERE kind = 'delivered' AND body_deleted_at IS NULL AND text_body <> ''")
            .await,
        1
    );
}

#[tokio::test]
async fn retention_ages_are_validated() {
    use coinfront::config::Settings;
    use figment::providers::{Format, Toml};
    for (line, key) in [
        (
            "retention.rate_limit_hours = 1",
            "retention.rate_limit_hours",
        ),
        ("retention.batch_size = 0", "retention.batch_size"),
        ("retention.batch_size = 1000000", "retention.batch_size"),
        (
            "retention.email_bodies_days = 0",
            "retention.email_bodies_days",
        ),
        ("retention.every_minutes = 0", "retention.every_minutes"),
        (
            "retention.finished_jobs_days = 99999999",
            "retention.finished_jobs_days",
        ),
    ] {
        let err =
            Settings::from_figment(figment::Figment::new().merge(Toml::string(line))).unwrap_err();
        assert_eq!(err.key, key, "{line}: {err}");
    }
}

/// Every text column of every table that contains `needle`, as `table.column`.
async fn columns_containing(app: &TestApp, needle: &str) -> Vec<String> {
    let pool = app.state.db.pool();
    let columns: Vec<(String, String)> = match app.state.db.backend() {
        coinfront::db::Backend::Sqlite => {
            let tables: Vec<String> = sqlx::query(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
            let mut out = Vec::new();
            for t in tables {
                for r in sqlx::query("SELECT name, type FROM pragma_table_info($1)")
                    .bind(&t)
                    .fetch_all(pool)
                    .await
                    .unwrap()
                {
                    if r.get::<String, _>(1).eq_ignore_ascii_case("TEXT") {
                        out.push((t.clone(), r.get(0)));
                    }
                }
            }
            out
        }
        coinfront::db::Backend::Postgres => sqlx::query(
            "SELECT CAST(table_name AS TEXT), CAST(column_name AS TEXT) FROM information_schema.columns
             WHERE table_schema = 'public' AND data_type = 'text'",
        )
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect(),
    };
    assert!(
        columns.len() > 50,
        "found the text columns: {}",
        columns.len()
    );
    let mut hits = Vec::new();
    for (table, column) in columns {
        let n: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {table} WHERE {column} LIKE $1"
        )))
        .bind(format!("%{needle}%"))
        .fetch_one(pool)
        .await
        .unwrap()
        .get(0);
        if n > 0 {
            hits.push(format!("{table}.{column}"));
        }
    }
    hits
}

async fn order_of(app: &TestApp, path: &str) -> (String, String) {
    let hash = coinfront::domain::ids::token_hash(path.trim_start_matches("/orders/"));
    let r = sqlx::query("SELECT id, order_number FROM orders WHERE token_hash = $1")
        .bind(hash)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

#[tokio::test]
async fn an_admin_erases_a_buyers_personal_data_and_the_accounts_stay() {
    let app = spawn_app().await;
    const ERIN: &str = "erin.fan@example.com";
    let first = app
        .buy(&Checkout {
            email: ERIN,
            username: "erin_fan",
            ..Default::default()
        })
        .await;
    let second = app
        .buy(&Checkout {
            email: ERIN,
            username: "erin_sister",
            package: "350",
            ..Default::default()
        })
        .await;
    let olga = app
        .buy(&Checkout {
            email: "olga@example.com",
            username: "olga_fan",
            ..Default::default()
        })
        .await;
    for p in [&first, &second, &olga] {
        app.wait_for_status(p, "delivered").await;
    }
    // A message to support and a refund request, both naming the buyer.
    let page = app.get_html(&first).await;
    let csrf = extract_hidden(&page, "csrf_token").unwrap();
    let r = app
        .post_form(
            &format!("{first}/messages"),
            &[
                ("csrf_token", &csrf),
                (
                    "message",
                    "It is Erin, write to erin.fan@example.com please",
                ),
            ],
        )
        .await;
    assert_is_redirect_to(&r, "?message=sent");
    let page = app.get_html(&second).await;
    let csrf = extract_hidden(&page, "csrf_token").unwrap();
    let r = app
        .post_form(
            &format!("{second}/refund"),
            &[
                ("csrf_token", &csrf),
                ("reason", "not_delivered"),
                (
                    "message",
                    "Erin here (erin.fan@example.com), nothing arrived",
                ),
            ],
        )
        .await;
    assert!(r.status().is_redirection(), "{}", r.status());
    wait_for_sent_emails(&app, 6).await;
    app.wait_until_idle().await;
    let (first_id, number) = order_of(&app, &first).await;
    let (second_id, second_number) = order_of(&app, &second).await;
    let (olga_id, _) = order_of(&app, &olga).await;
    assert!(!columns_containing(&app, ERIN).await.is_empty());
    let outbox = app.state.settings.outbox_dir();
    let files_naming = |needle: &str| {
        std::fs::read_dir(&outbox)
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
            .filter(|text| text.contains(needle))
            .count()
    };
    assert!(files_naming(ERIN) >= 4);
    let page = format!("/console/orders/{number}");
    let action = format!("{page}/erase");

    // Not for agents, not without the form's token, not without the confirmation.
    let agent = app.sign_in_as_agent("agent@example.com").await;
    assert!(
        !agent.get_html(&page).await.contains("/erase\""),
        "agents see no form"
    );
    let r = post_from(&agent, &page, &action, &[("confirm", "yes")]).await;
    assert_eq!(r.status(), 403);
    let admin = app.sign_in_as_admin("admin@example.com").await;
    let before = accounts(&app).await;
    assert!(admin
        .get_html(&page)
        .await
        .contains(&format!("action=\"{action}\"")));
    let r = admin.post_form(&action, &[("confirm", "yes")]).await;
    assert_eq!(r.status(), 403, "no CSRF token");
    let r = post_from(&admin, &page, &action, &[]).await;
    assert_eq!(r.status(), 400, "not confirmed");
    assert!(
        columns_containing(&app, ERIN).await.len() > 3,
        "nothing erased so far"
    );
    assert_eq!(accounts(&app).await, before);

    let r = post_from(&admin, &page, &action, &[("confirm", "yes")]).await;
    assert_is_redirect_to(&r, &format!("{page}?done=erased"));
    let html = admin
        .get_html(r.headers()["location"].to_str().unwrap())
        .await;
    assert!(html.contains("were erased from"), "{html}");
    assert!(!html.contains(ERIN));
    assert!(
        !html.contains(&format!("action=\"{action}\"")),
        "not offered twice"
    );

    // The address is nowhere in the database, nor in the outbox's files.
    assert_eq!(columns_containing(&app, ERIN).await, Vec::<String>::new());
    assert_eq!(files_naming(ERIN), 0);
    // Their orders' IP addresses and messages are markers; Olga's order is untouched.
    for id in [&first_id, &second_id] {
        let r = sqlx::query("SELECT email, client_ip FROM orders WHERE id = $1")
            .bind(id)
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
        assert!(r.get::<String, _>(0).ends_with("@erased.invalid"));
        assert_eq!(r.get::<String, _>(1), "erased");
        let ips: Vec<String> = sqlx::query("SELECT client_ip FROM payments WHERE order_id = $1")
            .bind(id)
            .fetch_all(app.state.db.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(
            !ips.is_empty() && ips.iter().all(|ip| ip == "erased"),
            "{ips:?}"
        );
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM support_messages WHERE body <> '[erased]'")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM refund_requests WHERE message <> '[erased]'")
            .await,
        0
    );
    let olga_row = sqlx::query("SELECT email, client_ip FROM orders WHERE id = $1")
        .bind(&olga_id)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(olga_row.get::<String, _>(0), "olga@example.com");
    assert_eq!(olga_row.get::<String, _>(1), "127.0.0.1");
    assert!(files_naming("olga@example.com") >= 2);

    // Amounts, states and every record are kept; the erasure is in each order's timeline and,
    // once, in the audit log, naming the orders but not the address.
    let mut expected = before.clone();
    for (key, n) in expected.iter_mut() {
        match key.as_str() {
            "order_events" => *n += 2,
            "audit_log" => *n += 1,
            _ => {}
        }
    }
    assert_eq!(
        accounts(&app).await,
        expected,
        "amounts, states and records are kept; only the erasure's own records are added"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM order_events WHERE kind = 'personal_data_erased'")
            .await,
        2
    );
    let audit =
        sqlx::query("SELECT actor, detail FROM audit_log WHERE action = 'buyer_data_erased'")
            .fetch_all(app.state.db.pool())
            .await
            .unwrap();
    assert_eq!(audit.len(), 1);
    let detail: String = audit[0].get(1);
    assert!(
        detail.contains(&number) && detail.contains(&second_number),
        "{detail}"
    );
    assert_eq!(audit[0].get::<String, _>(0), "staff:admin@example.com");

    // The buyer's own link still shows the order; a second erasure finds nothing to do.
    let html = app.get_html(&first).await;
    assert!(html.contains(&number) && !html.contains(ERIN));
    let r = post_from(&admin, &page, &action, &[("confirm", "yes")]).await;
    assert_is_redirect_to(&r, "?done=erased-already");
    assert_eq!(accounts(&app).await, expected);
}

#[tokio::test]
async fn a_second_erasure_is_a_no_op() {
    let app = spawn_app().await;
    let path = app
        .buy(&Checkout {
            email: "twice@example.com",
            ..Default::default()
        })
        .await;
    app.wait_for_status(&path, "delivered").await;
    let (id, number) = order_of(&app, &path).await;
    let actor = "staff:admin@example.com";
    use coinfront::orders::erasure::{erase_buyer, Erased};
    assert_eq!(
        erase_buyer(&app.state, &id, actor).await.unwrap(),
        Erased::Orders(vec![number])
    );
    assert_eq!(
        erase_buyer(&app.state, &id, actor).await.unwrap(),
        Erased::Already
    );
    assert_eq!(
        erase_buyer(&app.state, "no-such-order", actor)
            .await
            .unwrap(),
        Erased::NotFound
    );
}
