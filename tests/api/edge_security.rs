//! Findings of the outside security review (issue 14) on the buyer's side and the HTTP edge:
//! each test here failed on the code before its fix.

use crate::helpers::{extract_hidden, spawn_app, spawn_app_with, Browser, Checkout, TestApp};

async fn post_on_page(
    app: &TestApp,
    page_path: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let page = app.get_html(page_path).await;
    let csrf = extract_hidden(&page, "csrf_token").expect("page has a form");
    let mut form = vec![("csrf_token", csrf.as_str())];
    form.extend_from_slice(fields);
    app.post_form(action, &form).await
}

// Finding 7: a huge amount overflowed a Decimal multiply and panicked the request.
#[tokio::test]
async fn a_huge_crypto_amount_is_refused_with_422_not_a_panic() {
    let app = spawn_app().await;
    let started = app
        .start_order(&Checkout {
            method: "crypto",
            ..Default::default()
        })
        .await;
    let asked = post_on_page(&app, &started.session_path, &started.session_path, &[]).await;
    assert_eq!(asked.status(), 200);
    let session = started.session_path.trim_start_matches("/sandbox/pay/");
    for amount in [
        "79228162514264337593543950335",
        "-79228162514264337593543950335",
        "7922816251426433759354395033.5",
        "92233720368547758.08",
        "1e30",
        "0.001",
    ] {
        let r = post_on_page(
            &app,
            &started.session_path,
            &format!("/sandbox/crypto/{session}"),
            &[("amount", amount)],
        )
        .await;
        assert_eq!(r.status(), 422, "amount {amount}");
        assert!(r
            .text()
            .await
            .unwrap()
            .contains("Enter the amount to send."));
    }
    // The page still works afterwards: the exact amount pays.
    let r = post_on_page(
        &app,
        &started.session_path,
        &format!("/sandbox/crypto/{session}"),
        &[("amount", "7.28")],
    )
    .await;
    assert!(r.status().is_redirection(), "{}", r.status());
}

fn cache_control(r: &reqwest::Response) -> &str {
    r.headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

// Finding 10: a confirm page's quote, posted from another browser, led to the buyer's private
// order page.
#[tokio::test]
async fn a_quote_posted_from_another_browser_leads_nowhere() {
    let app = spawn_app().await;
    let confirm = app.post_checkout(&Checkout::default()).await;
    assert_eq!(confirm.status(), 200);
    assert_eq!(cache_control(&confirm), "no-store");
    let html = confirm.text().await.unwrap();
    let quote = extract_hidden(&html, "quote").unwrap();
    // The buyer pays; their order is private.
    let first = app.confirm(&html).await;
    let started = app.started_from(&first);
    let paid = app.pay_card(&started, "4242424242424242", "123").await;
    let order_path = app.order_path_after(paid).await;
    app.wait_for_status(&order_path, "delivered").await;
    // The same session submitting again is led to the same order.
    let again = app.confirm(&html).await;
    crate::helpers::assert_is_redirect_to(&again, &order_path);

    // Someone else, with a session (and valid CSRF token) of their own, posts the quote.
    let other = Browser::new(app.address.clone());
    let csrf = other.csrf().await;
    let r = other
        .post_form(
            "/checkout/confirm",
            &[
                ("csrf_token", csrf.as_str()),
                ("quote", quote.as_str()),
                ("shown_total_minor", "728"),
                ("shown_currency", "USD"),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("location").is_none());
    let body = r.text().await.unwrap();
    assert!(body.contains("opened in another browser"), "{body}");
    assert!(!body.contains(order_path.trim_start_matches("/orders/")));
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 1);

    // Before anyone paid, too: a stolen quote creates no order and opens no payment page.
    let confirm2 = app
        .post_checkout(&Checkout {
            username: "second_buyer",
            ..Default::default()
        })
        .await;
    let quote2 = extract_hidden(&confirm2.text().await.unwrap(), "quote").unwrap();
    let r = other
        .post_form(
            "/checkout/confirm",
            &[("csrf_token", csrf.as_str()), ("quote", quote2.as_str())],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 1);
}

#[tokio::test]
async fn confirm_look_up_and_payment_pages_are_not_cached() {
    let app = spawn_app().await;
    let lookup = app.get("/orders/lookup").await;
    assert_eq!(lookup.status(), 200);
    assert_eq!(cache_control(&lookup), "no-store");
    let csrf = app.csrf().await;
    let looked = app
        .post_form(
            "/orders/lookup",
            &[
                ("csrf_token", csrf.as_str()),
                ("order_number", "CF-0000-0000"),
                ("email", "nobody@example.com"),
            ],
        )
        .await;
    assert_eq!(cache_control(&looked), "no-store", "{}", looked.status());
    let started = app.start_order(&Checkout::default()).await;
    let page = app.get(&started.session_path).await;
    assert_eq!(page.status(), 200);
    assert_eq!(cache_control(&page), "no-store");
    let declined = app.pay_card(&started, "4000000000000002", "123").await;
    assert_eq!(cache_control(&declined), "no-store");
}

// Finding 12: a valid v1 next to a non-hex v1 was refused, and a timestamp near i64::MIN
// wrapped the freshness check.
#[tokio::test]
async fn webhook_signatures_skip_non_hex_entries_and_do_not_wrap_timestamps() {
    use crate::helpers::{event_json, signed, WEBHOOK_KEY};
    let app = spawn_app().await;
    let _ = app.start_order(&Checkout::default()).await;
    let (order, amount, currency, session) = app.only_order().await;
    let body = event_json(
        "evt_edge",
        "payment.succeeded",
        &order,
        &session,
        "pay_edge",
        amount,
        &currency,
    );
    // A signature from the far past, made with the right key: stale, never accepted.
    for t in [i64::MIN, i64::MIN + 1, i64::MAX] {
        let sig = coinfront::payments::signature::sign(WEBHOOK_KEY.as_bytes(), t, body.as_bytes());
        let r = app.post_webhook(&body, Some(&sig)).await;
        assert_eq!(r.status(), 400, "t={t}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM webhook_events").await, 0);
    let good = signed(&app, &body);
    let (t, v1) = good.split_once(',').unwrap();
    let header = format!("{t},v1=not-hex,{v1}");
    assert_eq!(app.post_webhook(&body, Some(&header)).await.status(), 200);
    assert_eq!(app.count("SELECT COUNT(*) FROM webhook_events").await, 1);
}

// Finding 5: behind a proxy that appends its own header line, the first line (the client's
// own) chose the address.
#[tokio::test]
async fn the_client_ip_is_the_right_most_across_header_lines_behind_trusted_ranges() {
    let app = spawn_app_with(|s| {
        s.http.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        s.rate_limits.order_lookup = coinfront::config::Limit {
            per_minute: 1,
            burst: 1,
        };
    })
    .await;
    let csrf = app.csrf().await;
    let look_up = |forged: &'static str| {
        let csrf = csrf.clone();
        let app = &app;
        async move {
            app.client
                .post(app.url("/orders/lookup"))
                .header("X-Forwarded-For", forged)
                // What HAProxy's `option forwardfor` adds: a line of its own.
                .header("X-Forwarded-For", "203.0.113.9")
                .form(&[
                    ("csrf_token", csrf.as_str()),
                    ("order_number", "CF-0000-0000"),
                    ("email", "nobody@example.com"),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    assert_ne!(look_up("198.51.100.1").await.status(), 429);
    // A different forged first line does not make a different client.
    assert_eq!(look_up("198.51.100.2").await.status(), 429);
    let ips: Vec<String> = sqlx::query("SELECT client_ip FROM rate_limit_counts")
        .fetch_all(app.state.db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| sqlx::Row::get(r, 0))
        .collect();
    assert_eq!(ips, ["203.0.113.9"]);
}

// Finding 11: text of only control or invisible characters passed the emptiness check and was
// stored empty (or invisible).
#[tokio::test]
async fn invisible_only_text_is_refused_as_empty_everywhere() {
    let app = spawn_app().await;
    let path = app.buy(&Checkout::default()).await;
    app.wait_for_status(&path, "delivered").await;
    let invisible = ["\u{202E}", "\u{FEFF}", " \u{200B}\u{7} ", "\u{E0041}\r\n"];

    // A buyer's support message.
    for text in invisible {
        let r = post_on_page(
            &app,
            &path,
            &format!("{path}/messages"),
            &[("message", text)],
        )
        .await;
        assert_eq!(r.status(), 422, "{text:?}");
        assert!(r.text().await.unwrap().contains("Write a message first."));
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM support_messages").await, 0);
    // Kept text loses its invisible characters.
    let r = post_on_page(
        &app,
        &path,
        &format!("{path}/messages"),
        &[("message", "\u{202E}Where are\u{FEFF} my coins?\u{7}")],
    )
    .await;
    assert!(r.status().is_redirection(), "{}", r.status());
    let stored: String = sqlx::query("SELECT body FROM support_messages")
        .fetch_one(app.state.db.pool())
        .await
        .map(|r| sqlx::Row::get(&r, 0))
        .unwrap();
    assert_eq!(stored, "Where are my coins?");

    // A refund request whose reason needs a message.
    for text in invisible {
        let r = post_on_page(
            &app,
            &path,
            &format!("{path}/refund"),
            &[("reason", "other"), ("message", text)],
        )
        .await;
        assert_eq!(r.status(), 422, "{text:?}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM refund_requests").await, 0);

    // An agent's note, and a fraud rejection's reason.
    let agent = app.sign_in_as_agent("agent@example.com").await;
    let number: String = sqlx::query("SELECT order_number FROM orders")
        .fetch_one(app.state.db.pool())
        .await
        .map(|r| sqlx::Row::get(&r, 0))
        .unwrap();
    let page = format!("/console/orders/{number}");
    let notes_before = app.count("SELECT COUNT(*) FROM notes").await;
    for text in invisible {
        let r =
            crate::helpers::post_from(&agent, &page, &format!("{page}/notes"), &[("note", text)])
                .await;
        assert_eq!(r.status(), 400, "{text:?}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM notes").await, notes_before);

    // A block-list entry's reason.
    let admin = app.sign_in_as_admin("admin@example.com").await;
    let lists = "/console/settings/lists";
    let entries_before = app.count("SELECT COUNT(*) FROM risk_lists").await;
    for text in invisible {
        let r = crate::helpers::post_from(
            &admin,
            lists,
            lists,
            &[
                ("list", "block"),
                ("kind", "tiktok_username"),
                ("value", "@someone"),
                ("reason", text),
                ("expires_in", ""),
                ("expires_unit", "hours"),
                ("expires_on", ""),
            ],
        )
        .await;
        assert!(!r.status().is_redirection(), "{text:?}");
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM risk_lists").await,
        entries_before
    );
}

// Finding 15: HEAD answered 404 on every GET route, so HEAD-based uptime checks saw the shop
// as down.
#[tokio::test]
async fn head_is_answered_wherever_get_is() {
    let app = spawn_app().await;
    for path in [
        "/",
        "/healthz",
        "/readyz",
        "/orders/lookup",
        "/policies/terms",
        "/console/login",
        "/no-such-page",
    ] {
        let get = app.get(path).await;
        let head = app.client.head(app.url(path)).send().await.unwrap();
        assert_eq!(head.status(), get.status(), "{path}");
        for name in ["content-type", "content-security-policy", "cache-control"] {
            assert_eq!(
                head.headers().get(name),
                get.headers().get(name),
                "{path}: {name}"
            );
        }
        assert!(head.text().await.unwrap().is_empty(), "{path}: no body");
        assert!(
            !get.text().await.unwrap().is_empty(),
            "{path}: GET has a body"
        );
    }
    let head = app.client.head(app.url("/healthz")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    // A route with no GET has no HEAD either.
    let head = app.client.head(app.url("/checkout")).send().await.unwrap();
    assert_ne!(head.status(), 200);
}

// Finding 13: /metrics was public on the shop's port.
#[tokio::test]
async fn metrics_need_the_configured_bearer_token() {
    let closed = spawn_app().await;
    assert_eq!(closed.get("/metrics").await.status(), 404);
    assert_eq!(closed.get("/metrics/shop").await.status(), 404);
    let r = closed
        .client
        .get(closed.url("/metrics"))
        .bearer_auth("")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let token = "metrics-token-7f3a9c0e5b";
    let app =
        spawn_app_with(|s| s.metrics.token = Some(coinfront::config::Secret::new(token))).await;
    for path in ["/metrics", "/metrics/shop"] {
        assert_eq!(app.get(path).await.status(), 401);
        for wrong in ["", "metrics-token", "metrics-token-7f3a9c0e5b0"] {
            let r = app
                .client
                .get(app.url(path))
                .bearer_auth(wrong)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401, "{path} {wrong:?}");
        }
    }
    let r = app
        .client
        .get(app.url("/metrics/shop"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("coinfront_emails_waiting"));
    let r = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("coinfront_http_requests_total"));
    // The token is a secret: never in the settings' Debug output.
    assert!(!format!("{:?}", app.state.settings).contains(token));
}

// Finding 8: every refused request wrote a row that was never pruned.
#[tokio::test]
async fn refusals_are_counted_per_address_and_minute_and_pruned() {
    let app = spawn_app_with(|s| {
        s.rate_limits.order_lookup = coinfront::config::Limit {
            per_minute: 1,
            burst: 1,
        }
    })
    .await;
    let csrf = app.csrf().await;
    let form = [
        ("csrf_token", csrf.as_str()),
        ("order_number", "CF-0000-0000"),
        ("email", "nobody@example.com"),
    ];
    assert_ne!(app.post_form("/orders/lookup", &form).await.status(), 429);
    for _ in 0..40 {
        assert_eq!(app.post_form("/orders/lookup", &form).await.status(), 429);
    }
    // One row, however many refusals: the risk rule still sees them all.
    assert_eq!(app.count("SELECT COUNT(*) FROM rate_limit_counts").await, 1);
    assert_eq!(
        app.count("SELECT CAST(COALESCE(SUM(hits), 0) AS BIGINT) FROM rate_limit_counts")
            .await,
        40
    );
    let signal_query = "SELECT CAST(COALESCE(SUM(hits), 0) AS BIGINT) FROM rate_limit_counts WHERE client_ip = $1 AND window_start > $2 - 60000";
    let recent: i64 = sqlx::query(signal_query)
        .bind("127.0.0.1")
        .bind(app.now_ms() - 3_600_000)
        .fetch_one(app.state.db.pool())
        .await
        .map(|r| sqlx::Row::get(&r, 0))
        .unwrap();
    assert_eq!(recent, 40);
    // Older than the rules look back: pruned.
    let pool = app.state.db.pool();
    assert_eq!(
        coinfront::db::rate_limits::prune(pool, app.now_ms())
            .await
            .unwrap(),
        0
    );
    app.clock.advance_secs(3 * 3600);
    assert_eq!(
        coinfront::db::rate_limits::prune(pool, app.now_ms())
            .await
            .unwrap(),
        1
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM rate_limit_counts").await, 0);
}

/// Every key path of a settings value: `a.b.c` for each leaf (a list is a leaf).
fn key_paths(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                key_paths(&path, v, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

/// The keys the README's settings tables document: the backticked names in each row's first
/// cell.
fn documented_keys(readme: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for line in readme.lines().filter(|l| l.starts_with("| `")) {
        let first_cell = line.split('|').nth(1).unwrap_or("");
        for (i, part) in first_cell.split('`').enumerate() {
            if i % 2 == 1
                && !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
            {
                keys.push(part.to_owned());
            }
        }
    }
    keys
}

// Finding 16: the README's tables missed settings the code reads (rate_limits.support_message).
#[test]
fn every_setting_is_documented_in_the_readme_and_every_documented_one_exists() {
    let readme = include_str!("../../README.md");
    let documented = documented_keys(readme);
    let value = serde_json::to_value(coinfront::config::Settings::default()).unwrap();
    let mut in_code = Vec::new();
    key_paths("", &value, &mut in_code);
    let covers = |doc: &str, path: &str| path == doc || path.starts_with(&format!("{doc}."));
    let undocumented: Vec<&String> = in_code
        .iter()
        .filter(|p| !documented.iter().any(|d| covers(d, p)))
        .collect();
    assert!(
        undocumented.is_empty(),
        "settings missing from the README's tables: {undocumented:?}"
    );
    let unknown: Vec<&String> = documented
        .iter()
        .filter(|d| !in_code.iter().any(|p| covers(d, p)))
        .collect();
    assert!(
        unknown.is_empty(),
        "README documents settings the code does not have: {unknown:?}"
    );
    assert!(in_code.len() > 80, "walked the whole settings tree");
}

// Finding 4: one-time setup links (and order and payment links) were written to the access log
// in full.
#[tokio::test]
async fn secret_links_are_redacted_in_every_log_line() {
    use crate::helpers::fresh_database;
    use crate::process::ServerProcess;
    let dir = tempfile::tempdir().unwrap();
    let (url, _db) = fresh_database(dir.path()).await;
    let server = ServerProcess::start(
        dir.path(),
        &url,
        "server.log",
        &[("COINFRONT_LOG", "debug")],
    );
    let log = std::fs::read_to_string(&server.log).unwrap();
    let at = log
        .find("/console/setup/")
        .expect("the first-start setup link");
    let setup_token: String = log[at + "/console/setup/".len()..]
        .chars()
        .take(64)
        .collect();
    let browser = Browser::new(server.address.clone());
    let setup_path = format!("/console/setup/{setup_token}");
    assert_eq!(browser.get(&setup_path).await.status(), 200);
    let started = browser.start_order(&Checkout::default()).await;
    let session = started
        .session_path
        .trim_start_matches("/sandbox/pay/")
        .to_owned();
    let paid = browser.pay_card(&started, "4242424242424242", "123").await;
    let order_path = browser.order_path_after(paid).await;
    let order_token = order_path.trim_start_matches("/orders/").to_owned();
    assert_eq!(browser.get(&order_path).await.status(), 200);
    let _ = browser
        .client
        .head(browser.url(&order_path))
        .send()
        .await
        .unwrap();
    let _ = browser.get(&format!("{order_path}?again=1")).await;
    let _ = browser.get(&format!("/not/{}", "z".repeat(40))).await;
    // The last request's line is written before its response is sent.
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(
        log.contains(&format!("/orders/{}", coinfront::web::middleware::REDACTED)),
        "{}",
        log.lines()
            .filter(|l| l.contains("path="))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        log.matches(&setup_token).count(),
        1,
        "only the first-start announcement carries the setup link"
    );
    let session_secret = session.trim_start_matches("cs_test_");
    assert!(session_secret.len() >= 32);
    for (what, secret) in [
        ("order token", order_token.as_str()),
        ("payment session", session_secret),
        ("long path segment", &"z".repeat(40)),
    ] {
        assert!(!log.contains(secret), "{what} in the log");
    }
}

// Finding 14: malformed HTTP requests were logged at ERROR by actix's dispatcher.
#[tokio::test]
async fn malformed_requests_are_counted_not_logged_as_errors() {
    use crate::helpers::fresh_database;
    use crate::process::ServerProcess;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let (url, _db) = fresh_database(dir.path()).await;
    let token = "malformed-test-token-0123";
    let server = ServerProcess::start(
        dir.path(),
        &url,
        "server.log",
        &[("COINFRONT_METRICS__TOKEN", token)],
    );
    let addr = server.address.trim_start_matches("http://").to_owned();
    let garbage: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
        b"GET /\x00 HTTP/9.9\r\n\r\n",
    ];
    for bytes in garbage {
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        conn.write_all(bytes).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            conn.read_to_end(&mut answer),
        )
        .await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    }
    let client = reqwest::Client::new();
    crate::helpers::eventually("every malformed request counted", || async {
        let text = client
            .get(format!("{}/metrics", server.address))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines().any(|l| {
            l.starts_with("coinfront_malformed_requests_total{instance=") && l.ends_with("} 4")
        })
    })
    .await;
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(!log.contains("ERROR"), "{log}");
    // A well-formed request still works.
    assert_eq!(
        client
            .get(format!("{}/healthz", server.address))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
