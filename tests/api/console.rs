//! The support console over real HTTP: sign-in, lock-out, sessions and their timeouts, roles,
//! CSRF and cross-site refusal, two-factor sign-in, the review queue's decisions (alone and
//! racing each other), order search and pages, the audit trail, the one-time setup link and
//! `coinfront staff add` through the real binary.

use crate::helpers::{
    assert_is_redirect_to, extract_hidden, fresh_database, post_from, spawn_app, spawn_app_with,
    Browser, Checkout, TestApp, STAFF_PASSWORD,
};
use coinfront::console::totp;
use coinfront::db::sign_in_throttle as throttle;
use coinfront::db::staff::{self, Role};
use sqlx::Row;

const AGENT: &str = "agent@example.com";
const WRONG: &str = "That email and password don&#39;t match a staff account";

/// An order held for review: a stolen-card decline, then a good card.
async fn held_order(app: &TestApp, email: &str, username: &str) -> (String, String) {
    let started = app
        .start_order(&Checkout {
            email,
            username,
            ..Default::default()
        })
        .await;
    let failed = |n: i64| async move {
        let sql = "SELECT COUNT(*) FROM payments WHERE status = 'failed' AND email = $1";
        count_where(app, sql, email).await >= n
    };
    let before = if failed(1).await {
        count_where(
            app,
            "SELECT COUNT(*) FROM payments WHERE status = 'failed' AND email = $1",
            email,
        )
        .await
    } else {
        0
    };
    let r = app.pay_card(&started, "4000000000009979", "123").await;
    assert_eq!(r.status(), 402);
    // The decline reaches the shop by webhook: let it land before the good card does.
    crate::helpers::eventually("the decline recorded", || failed(before + 1)).await;
    let path = app
        .order_path_after(app.pay_card(&started, "4242424242424242", "123").await)
        .await;
    app.wait_for_status(&path, "in_review").await;
    let number = order_number(app, &path).await;
    (path, number)
}

async fn order_number(app: &TestApp, order_path: &str) -> String {
    let token = order_path.trim_start_matches("/orders/");
    sqlx::query("SELECT order_number FROM orders WHERE token_hash = $1")
        .bind(coinfront::domain::ids::token_hash(token))
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get("order_number")
}

fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("cf_staff=") || v.starts_with("__Host-cf_staff="))
        .map(str::to_owned)
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default()
}

/// A GET with a hand-made cookie header (no cookie jar).
async fn get_with_cookie(app: &TestApp, path: &str, cookie: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

async fn count_where(app: &TestApp, sql: &str, arg: &str) -> i64 {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(arg.to_owned())
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get::<i64, _>(0)
}

async fn enter_code(browser: &Browser, code: &str) -> reqwest::Response {
    post_from(
        browser,
        "/console/login/code",
        "/console/login/code",
        &[("code", code)],
    )
    .await
}

#[tokio::test]
async fn staff_sign_in_works_and_a_wrong_password_looks_like_an_unknown_email() {
    let app = spawn_app().await;
    app.add_staff(AGENT, Role::Agent).await;
    let browser = Browser::new(app.address.clone());

    // Not signed in: the console sends you to sign in.
    let resp = browser.get("/console/").await;
    assert_is_redirect_to(&resp, "/console/login");
    assert_eq!(resp.headers()["cache-control"], "no-store");

    let wrong = app
        .console_sign_in(&browser, AGENT, "not the password at all")
        .await;
    let unknown = app
        .console_sign_in(&browser, "nobody@example.com", STAFF_PASSWORD)
        .await;
    assert_eq!(wrong.status(), 422);
    assert_eq!(unknown.status(), 422);
    assert!(session_cookie(&wrong).is_none() && session_cookie(&unknown).is_none());
    let (wrong, unknown) = (wrong.text().await.unwrap(), unknown.text().await.unwrap());
    assert!(wrong.contains(WRONG), "{wrong}");
    // The same page but for the email typed back into the form.
    assert_eq!(
        wrong.replace(AGENT, "").split("csrf_token").next(),
        unknown
            .replace("nobody@example.com", "")
            .split("csrf_token")
            .next()
    );

    let ok = app.console_sign_in(&browser, AGENT, STAFF_PASSWORD).await;
    assert_is_redirect_to(&ok, "/console/");
    let cookie = session_cookie(&ok).expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    // Plain-HTTP test settings: no Secure flag, so no __Host- prefix (see console::session).
    assert!(cookie.starts_with("cf_staff=") && !cookie.contains("Secure"));
    let dash = browser.get("/console/").await;
    assert_eq!(dash.status(), 200);
    assert_eq!(dash.headers()["cache-control"], "no-store");
    assert!(dash.text().await.unwrap().contains("Dashboard"));

    assert_eq!(
        count_where(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = $1",
            "sign_in_failed"
        )
        .await,
        2
    );
    assert_eq!(
        count_where(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = $1",
            "sign_in"
        )
        .await,
        1
    );
    // The password only ever exists hashed.
    let hash: String = sqlx::query("SELECT password_hash FROM staff")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );

    // Signing out ends the session on the server, not just in the browser.
    let out = post_from(&browser, "/console/", "/console/logout", &[]).await;
    assert_is_redirect_to(&out, "/console/login?signed_out=1");
    assert_eq!(app.count("SELECT COUNT(*) FROM staff_sessions").await, 0);
    assert_is_redirect_to(&browser.get("/console/").await, "/console/login");
}

#[tokio::test]
async fn the_secure_cookie_is_host_prefixed() {
    let app = spawn_app_with(|s| s.http.secure_cookies = true).await;
    app.add_staff(AGENT, Role::Agent).await;
    // A Secure cookie is not sent back over plain HTTP by a cookie jar: carry it by hand.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client.get(app.url("/console/login")).send().await.unwrap();
    let csrf_cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-cf_csrf="))
        .map(|v| v.split(';').next().unwrap().to_owned())
        .unwrap();
    let html = page.text().await.unwrap();
    let csrf = extract_hidden(&html, "csrf_token").unwrap();
    let resp = client
        .post(app.url("/console/login"))
        .header("cookie", csrf_cookie)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", AGENT),
            ("password", STAFF_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_is_redirect_to(&resp, "/console/");
    let cookie = session_cookie(&resp).unwrap();
    assert!(cookie.starts_with("__Host-cf_staff="), "{cookie}");
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
}

#[tokio::test]
async fn repeated_failures_lock_the_account_briefly_with_a_clear_message() {
    let app = spawn_app().await;
    app.add_staff(AGENT, Role::Agent).await;
    let browser = Browser::new(app.address.clone());
    for n in 1..=5 {
        let r = app
            .console_sign_in(&browser, AGENT, "wrong password number")
            .await;
        if n < 5 {
            assert_eq!(r.status(), 422, "attempt {n}");
        } else {
            assert_eq!(r.status(), 429, "attempt {n}");
            let html = r.text().await.unwrap();
            assert!(
                html.contains("sign-in from here is paused for 5 minutes"),
                "{html}"
            );
        }
    }
    // Even the right password waits out the lock-out, from this address.
    let r = app.console_sign_in(&browser, AGENT, STAFF_PASSWORD).await;
    assert_eq!(r.status(), 429);
    let wait: i64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&wait), "Retry-After {wait}");
    assert!(session_cookie(&r).is_none());
    // An unknown email locks the same way, so the lock-out does not tell staff emails apart.
    for n in 1..=5 {
        let r = app
            .console_sign_in(&browser, "nobody@example.com", "wrong password number")
            .await;
        assert_eq!(
            r.status(),
            if n < 5 { 422 } else { 429 },
            "unknown attempt {n}"
        );
    }
    assert_eq!(
        count_where(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = $1",
            "locked_out"
        )
        .await,
        2
    );
    // Short: five minutes later the agent is back in.
    app.clock.advance_secs(5 * 60 + 1);
    assert_is_redirect_to(
        &app.console_sign_in(&browser, AGENT, STAFF_PASSWORD).await,
        "/console/",
    );
}

#[tokio::test]
async fn an_address_never_gets_more_than_100_tries_an_hour_at_one_account() {
    let app = spawn_app().await;
    let start = app.now_ms();
    let (mut allowed, mut locked_since, mut longest_lock) = (0, None::<i64>, 0);
    // An attacker trying every 10 seconds for an hour, never right.
    for i in 0..360 {
        let now = start + i * 10_000;
        let rule = throttle::Rule {
            window_ms: 15 * 60_000,
            after_failures: 5,
            lockout_ms: 5 * 60_000,
        };
        match throttle::reserve_source(&app.state.db, AGENT, "203.0.113.7", now, rule)
            .await
            .unwrap()
        {
            throttle::Attempt::Allowed { .. } => {
                allowed += 1;
                if let Some(since) = locked_since.take() {
                    longest_lock = longest_lock.max(now - since);
                }
            }
            throttle::Attempt::Locked { .. } => {
                locked_since.get_or_insert(now);
            }
        }
    }
    assert!(allowed <= 100, "{allowed} tries in an hour");
    assert!(
        allowed >= 50,
        "lock-outs too long: {allowed} tries in an hour"
    );
    assert!(
        longest_lock <= 5 * 60_000,
        "locked out for {longest_lock} ms"
    );
}

#[tokio::test]
async fn sign_in_is_rate_limited_per_ip() {
    let app = spawn_app_with(|s| {
        s.rate_limits.staff_login = coinfront::config::Limit {
            per_minute: 2,
            burst: 2,
        }
    })
    .await;
    let browser = Browser::new(app.address.clone());
    for _ in 0..2 {
        let r = app
            .console_sign_in(&browser, AGENT, "wrong password number")
            .await;
        assert_eq!(r.status(), 422);
    }
    let r = app
        .console_sign_in(&browser, AGENT, "wrong password number")
        .await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(r.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn each_sign_in_gets_a_new_session_id_and_the_old_one_dies() {
    let app = spawn_app().await;
    app.add_staff(AGENT, Role::Agent).await;
    let browser = Browser::new(app.address.clone());
    let first = app.console_sign_in(&browser, AGENT, STAFF_PASSWORD).await;
    let first = cookie_value(&session_cookie(&first).unwrap());
    let second = app.console_sign_in(&browser, AGENT, STAFF_PASSWORD).await;
    let second = cookie_value(&session_cookie(&second).unwrap());
    assert_ne!(first, second);
    assert_is_redirect_to(
        &get_with_cookie(&app, "/console/", &format!("cf_staff={first}")).await,
        "/console/login",
    );
    assert_eq!(
        get_with_cookie(&app, "/console/", &format!("cf_staff={second}"))
            .await
            .status(),
        200
    );
    // Only the hash of the session id is stored.
    assert_eq!(
        count_where(
            &app,
            "SELECT COUNT(*) FROM staff_sessions WHERE id_hash = $1",
            &second
        )
        .await,
        0
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM staff_sessions").await, 1);
}

#[tokio::test]
async fn sessions_end_after_15_idle_minutes_and_after_8_hours() {
    let app = spawn_app().await;
    let browser = app.sign_in_as_agent(AGENT).await;
    // Activity keeps a session alive…
    for _ in 0..3 {
        app.clock.advance_secs(14 * 60);
        assert_eq!(browser.get("/console/").await.status(), 200);
    }
    // …idleness ends it.
    app.clock.advance_secs(15 * 60 + 1);
    let r = browser.get("/console/").await;
    assert_is_redirect_to(&r, "/console/login?expired=1");
    let page = browser.get_html("/console/login?expired=1").await;
    assert!(page.contains("Your session ended"));

    // However busy, a session lasts 8 hours at most.
    let browser = app.sign_in_as_agent(AGENT).await;
    for _ in 0..47 {
        app.clock.advance_secs(10 * 60);
        assert_eq!(browser.get("/console/").await.status(), 200);
    }
    app.clock.advance_secs(10 * 60 + 1);
    assert_is_redirect_to(&browser.get("/console/").await, "/console/login?expired=1");
}

#[tokio::test]
async fn a_new_password_or_a_disabled_account_ends_every_session() {
    let app = spawn_app().await;
    let here = app.sign_in_as_agent(AGENT).await;
    let elsewhere = app.sign_in_as_agent(AGENT).await;
    let r = post_from(
        &here,
        "/console/account",
        "/console/account/password",
        &[
            ("current_password", STAFF_PASSWORD),
            ("new_password", "password1234"),
            ("confirm_password", "password1234"),
        ],
    )
    .await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("common passwords"));
    let r = post_from(
        &here,
        "/console/account",
        "/console/account/password",
        &[
            ("current_password", STAFF_PASSWORD),
            ("new_password", "a brand new passphrase"),
            ("confirm_password", "a brand new passphrase"),
        ],
    )
    .await;
    assert_is_redirect_to(&r, "/console/account?changed=1");
    // This browser goes on in a new session; the other one is out.
    assert_eq!(here.get("/console/").await.status(), 200);
    assert_is_redirect_to(&elsewhere.get("/console/").await, "/console/login");

    let id: String = staff::by_email(app.state.db.pool(), AGENT)
        .await
        .unwrap()
        .unwrap()
        .id;
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    staff::disable(&mut conn, &id, app.now_ms()).await.unwrap();
    assert_is_redirect_to(&here.get("/console/").await, "/console/login");
    let r = app
        .console_sign_in(&here, AGENT, "a brand new passphrase")
        .await;
    assert_eq!(r.status(), 422);
}

#[tokio::test]
async fn a_weaker_hash_is_upgraded_at_sign_in() {
    let app = spawn_app_with(|s| s.console.argon2_iterations = 3).await;
    // add_staff hashes with the minimum parameters (t=2).
    app.sign_in_as_agent(AGENT).await;
    let hash: String = sqlx::query("SELECT password_hash FROM staff")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=3,p=1$"),
        "{hash}"
    );
    // And it still opens the account.
    app.sign_in_as_agent(AGENT).await;
}

#[tokio::test]
async fn agents_are_refused_admin_pages() {
    let app = spawn_app().await;
    let agent = app.sign_in_as_agent(AGENT).await;
    let r = agent.get("/console/settings").await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.text().await.unwrap().contains("This page is for admins"));
    assert_eq!(agent.get("/console/review").await.status(), 200);
    assert_eq!(agent.get("/console/orders").await.status(), 200);

    let admin = app.sign_in_as_admin("boss@example.com").await;
    // The index links the admin pages and shows the latest changes (the agent's sign-in).
    let html = admin.get_html("/console/settings").await;
    assert!(
        html.contains(AGENT) && html.contains("Recent changes"),
        "{html}"
    );
    for page in ["staff", "lists", "risk", "prices", "history"] {
        assert!(
            html.contains(&format!("href=\"/console/settings/{page}\"")),
            "{page}"
        );
    }
}

#[tokio::test]
async fn an_admin_without_two_factor_must_enrol_first() {
    let app = spawn_app().await;
    app.add_staff("boss@example.com", Role::Admin).await;
    let browser = Browser::new(app.address.clone());
    let r = app
        .console_sign_in(&browser, "boss@example.com", STAFF_PASSWORD)
        .await;
    assert_is_redirect_to(&r, "/console/account/totp");
    for page in ["/console/", "/console/review", "/console/settings"] {
        assert_is_redirect_to(&browser.get(page).await, "/console/account/totp");
    }
    let html = browser.get_html("/console/account/totp").await;
    assert!(html.contains("Admins must use two-factor sign-in"));
    assert!(html.contains("data:image/svg+xml;base64,"), "a QR code");
    let secret = extract_hidden(&html, "secret").unwrap();
    let code = totp::code_at(&totp::base32_decode(&secret).unwrap(), app.now_ms() / 1000);
    let r = post_from(
        &browser,
        "/console/account/totp",
        "/console/account/totp",
        &[
            ("password", STAFF_PASSWORD),
            ("secret", &secret),
            ("secret_mac", &extract_hidden(&html, "secret_mac").unwrap()),
            ("code", &code),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(browser.get("/console/settings").await.status(), 200);
}

/// The test's own RFC 6238 code: HMAC-SHA-1 over the 30-second step, truncated to 6 digits.
fn code_now(secret_base32: &str, unix_secs: i64) -> String {
    let secret = totp::base32_decode(secret_base32).unwrap();
    format!("{:06}", totp::hotp(&secret, (unix_secs / 30) as u64, 6))
}

#[tokio::test]
async fn two_factor_enrolment_and_sign_in_with_codes_and_recovery_codes() {
    let app = spawn_app().await;
    let browser = app.sign_in_as_agent(AGENT).await;
    // Optional for agents: enrol from the account page.
    let html = browser.get_html("/console/account/totp").await;
    let secret = extract_hidden(&html, "secret").unwrap();
    let mac = extract_hidden(&html, "secret_mac").unwrap();
    assert!(html.contains(&secret[..4]), "the text secret is shown");

    // A wrong code, or a tampered secret, changes nothing.
    let r = post_from(
        &browser,
        "/console/account/totp",
        "/console/account/totp",
        &[
            ("password", STAFF_PASSWORD),
            ("secret", &secret),
            ("secret_mac", &mac),
            ("code", "000000"),
        ],
    )
    .await;
    assert_eq!(r.status(), 422);
    let forged = totp::base32_encode(&[7u8; 20]);
    let r = post_from(
        &browser,
        "/console/account/totp",
        "/console/account/totp",
        &[
            ("password", STAFF_PASSWORD),
            ("secret", &forged),
            ("secret_mac", &mac),
            ("code", &code_now(&forged, app.now_ms() / 1000)),
        ],
    )
    .await;
    assert_eq!(r.status(), 400);

    let code = code_now(&secret, app.now_ms() / 1000);
    let r = post_from(
        &browser,
        "/console/account/totp",
        "/console/account/totp",
        &[
            ("password", STAFF_PASSWORD),
            ("secret", &secret),
            ("secret_mac", &mac),
            ("code", &code),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    let codes: Vec<String> = html
        .split("<code class=\"recovery-code\">")
        .skip(1)
        .filter_map(|s| s.split("</code>").next().map(str::to_owned))
        .collect();
    assert_eq!(codes.len(), 10);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM staff_recovery_codes WHERE used_at IS NULL")
            .await,
        10
    );

    // Next sign-in: password, then a code.
    let browser = Browser::new(app.address.clone());
    let r = app.console_sign_in(&browser, AGENT, STAFF_PASSWORD).await;
    assert_is_redirect_to(&r, "/console/login/code");
    let pending = cookie_value(&session_cookie(&r).unwrap());
    // Half-signed-in is not signed in.
    assert_is_redirect_to(&browser.get("/console/").await, "/console/login");
    // The code used for enrolment cannot be replayed.
    assert_eq!(enter_code(&browser, &code).await.status(), 422);
    app.clock.advance_secs(30);
    let r = enter_code(&browser, &code_now(&secret, app.now_ms() / 1000)).await;
    assert_is_redirect_to(&r, "/console/");
    let active = cookie_value(&session_cookie(&r).unwrap());
    assert_ne!(pending, active, "a new session id once fully signed in");
    assert_eq!(browser.get("/console/").await.status(), 200);

    // A recovery code works once.
    for (n, expect) in [(0, "/console/"), (1, "")] {
        let browser = Browser::new(app.address.clone());
        let r = app.console_sign_in(&browser, AGENT, STAFF_PASSWORD).await;
        assert_is_redirect_to(&r, "/console/login/code");
        let r = enter_code(&browser, &codes[0].to_uppercase()).await;
        if n == 0 {
            assert_is_redirect_to(&r, expect);
        } else {
            assert_eq!(r.status(), 422);
        }
    }
    let detail: String = sqlx::query(
        "SELECT detail FROM audit_log WHERE action = 'sign_in' ORDER BY at DESC, id DESC",
    )
    .fetch_all(app.state.db.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| r.get::<String, _>("detail"))
    .collect::<Vec<_>>()
    .join("\n");
    assert!(detail.contains("recovery code (9 left)"), "{detail}");
}

#[tokio::test]
async fn forms_need_the_session_bound_token_and_cross_site_posts_are_refused() {
    let app = spawn_app().await;
    let (path, number) = held_order(&app, "ana@example.com", "ana_buyer").await;
    let a = app.sign_in_as_agent(AGENT).await;
    let b = app.sign_in_as_agent("other@example.com").await;
    let approve = format!("/console/orders/{number}/approve");

    // No token, a made-up one, and another session's token: all refused.
    let other_token = extract_hidden(&b.get_html("/console/").await, "csrf_token").unwrap();
    for token in ["", "deadbeef", other_token.as_str()] {
        let r = a.post_form(&approve, &[("csrf_token", token)]).await;
        assert_eq!(r.status(), 403, "token {token:?}");
        assert!(r.text().await.unwrap().contains("security token"));
    }
    // A valid token from another site's page.
    let token = extract_hidden(&a.get_html("/console/review").await, "csrf_token").unwrap();
    let r = a
        .client
        .post(a.url(&approve))
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["cache-control"], "no-store");
    // The shop's own CSRF token does not open console forms either.
    let shop_token = app.csrf().await;
    let r = app
        .post_form(&approve, &[("csrf_token", shop_token.as_str())])
        .await;
    assert_is_redirect_to(&r, "/console/login");
    assert_eq!(app.order_status(&path).await, "in_review");

    let r = a
        .post_form(&approve, &[("csrf_token", token.as_str())])
        .await;
    assert_is_redirect_to(&r, "/console/orders/");
    app.wait_for_status(&path, "delivered").await;
}

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

#[tokio::test]
async fn orders_are_found_by_number_email_username_and_card() {
    let app = spawn_app().await;
    let ana = app
        .buy(&Checkout {
            email: "ana@example.com",
            username: "ana_buyer",
            ..Default::default()
        })
        .await;
    let bob = app
        .buy(&Checkout {
            email: "bob@example.com",
            username: "bob.builder",
            ..Default::default()
        })
        .await;
    app.wait_for_status(&ana, "delivered").await;
    app.wait_for_status(&bob, "delivered").await;
    let (ana_no, bob_no) = (
        order_number(&app, &ana).await,
        order_number(&app, &bob).await,
    );
    let agent = app.sign_in_as_agent(AGENT).await;
    let search = |q: String| {
        let agent = &agent;
        async move { agent.get_html(&format!("/console/orders?{q}")).await }
    };
    let html = search(format!("q={}", ana_no.to_lowercase())).await;
    assert!(
        html.contains(&ana_no) && !html.contains(&bob_no),
        "by number"
    );
    let html = search("q=BOB%40example.com".into()).await;
    assert!(
        html.contains(&bob_no) && !html.contains(&ana_no),
        "by email"
    );
    let html = search("q=%40ana_".into()).await;
    assert!(
        html.contains(&ana_no) && !html.contains(&bob_no),
        "by username"
    );
    let html = search("q=4242".into()).await;
    assert!(
        html.contains(&ana_no) && html.contains(&bob_no),
        "by card last 4"
    );
    let html = search("q=&status=delivered".into()).await;
    assert!(html.contains(&ana_no) && html.contains(&bob_no));
    let html = search("q=&status=in_review".into()).await;
    assert!(!html.contains(&ana_no) && html.contains("No orders match"));
    let today = chrono::DateTime::from_timestamp_millis(app.now_ms())
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    let tomorrow = chrono::DateTime::from_timestamp_millis(app.now_ms() + 86_400_000)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    let html = search(format!("from={today}&to={today}")).await;
    assert!(html.contains(&ana_no) && html.contains(&bob_no), "by date");
    let html = search(format!("from={tomorrow}")).await;
    assert!(!html.contains(&ana_no), "nothing tomorrow");
    let r = agent.get("/console/orders?from=yesterday").await;
    assert_eq!(r.status(), 422);

    // The order page has everything.
    let html = agent.get_html(&format!("/console/orders/{ana_no}")).await;
    for needle in [
        "Timeline",
        "order created",
        "Visa •••• 4242",
        "Risk assessments",
        "pre-payment",
        "pre-fulfillment",
        "Emails sent",
        "supplier",
        "Resend receipt",
    ] {
        assert!(html.contains(needle), "{needle} missing");
    }
    let r = post_from(
        &agent,
        &format!("/console/orders/{ana_no}"),
        &format!("/console/orders/{ana_no}/resend-receipt"),
        &[],
    )
    .await;
    assert_is_redirect_to(&r, "?done=resent");
    assert_eq!(
        count_where(
            &app,
            "SELECT COUNT(*) FROM order_events WHERE kind = 'receipt_resent' AND actor = $1",
            "staff:agent@example.com"
        )
        .await,
        1
    );
    assert_eq!(agent.get("/console/orders/CF-NOTHERE").await.status(), 404);
}

#[tokio::test]
async fn a_failed_delivery_can_be_retried_unless_it_is_being_refunded() {
    let app = spawn_app_with(|s| {
        s.jobs.max_attempts = 2;
        s.fulfillment.auto_refund_on_failure = false;
    })
    .await;
    let path = app
        .buy(&Checkout {
            username: "broken_link",
            ..Default::default()
        })
        .await;
    app.wait_for_status_advancing(&path, "fulfillment_failed")
        .await;
    let number = order_number(&app, &path).await;
    let agent = app.sign_in_as_agent(AGENT).await;
    let dash = agent.get_html("/console/").await;
    assert!(dash.contains("Delivery failed") && dash.contains(&number));
    let r = post_from(
        &agent,
        &format!("/console/orders/{number}"),
        &format!("/console/orders/{number}/retry"),
        &[],
    )
    .await;
    assert_is_redirect_to(&r, "?done=retried");
    assert_eq!(
        count_where(
            &app,
            "SELECT COUNT(*) FROM order_events WHERE from_status = 'fulfillment_failed' AND to_status = 'queued' AND actor = $1",
            "staff:agent@example.com"
        )
        .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM jobs WHERE kind = 'fulfill_order'")
            .await,
        2
    );
    // It fails again; this time an automatic refund is under way: no retry over it.
    app.wait_for_status_advancing(&path, "fulfillment_failed")
        .await;
    let mut tx = app.state.db.begin().await.unwrap();
    let id: String = sqlx::query("SELECT id FROM orders")
        .fetch_one(&mut *tx)
        .await
        .unwrap()
        .get(0);
    // A refund queued (for later, so that it is still under way when the agent clicks).
    let job = coinfront::jobs::NewJob {
        kind: "refund_order",
        payload: serde_json::json!({ "order_id": id, "reason": "test" }),
        dedupe_key: Some(format!("refund_order:{id}:full")),
        run_at: app.now_ms() + 86_400_000,
    };
    coinfront::jobs::enqueue(&mut tx, job, app.now_ms())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let r = post_from(
        &agent,
        &format!("/console/orders/{number}"),
        &format!("/console/orders/{number}/retry"),
        &[],
    )
    .await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("being refunded"));
}

#[tokio::test]
async fn the_setup_link_creates_the_first_admin_once() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _db) = fresh_database(dir.path()).await;
    let server = crate::process::ServerProcess::start(dir.path(), &url, "setup.log", &[]);
    let log = std::fs::read_to_string(&server.log).unwrap();
    let at = log
        .find("/console/setup/")
        .expect("a setup link in the log");
    let path: String = log[at..]
        .chars()
        .take("/console/setup/".len() + 64)
        .collect();
    let browser = Browser::new(server.address.clone());
    let page = browser.get_html(&path).await;
    assert!(page.contains("Create the first admin"));
    let csrf = extract_hidden(&page, "csrf_token").unwrap();
    let form = [
        ("csrf_token", csrf.as_str()),
        ("email", "Owner@Example.com"),
        ("password", STAFF_PASSWORD),
        ("confirm_password", STAFF_PASSWORD),
    ];
    let r = browser.post_form(&path, &form).await;
    assert_is_redirect_to(&r, "/console/account/totp");
    assert_eq!(browser.get("/console/account/totp").await.status(), 200);
    // Used: the link is dead, for a GET and for a second post.
    let other = Browser::new(server.address.clone());
    let r = other.get(&path).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("used already"));
    let r = browser.post_form(&path, &form).await;
    assert_eq!(r.status(), 400);
    // And the admin signs in with what was set (then must enrol two-factor).
    let html = other.get_html("/console/login").await;
    let csrf = extract_hidden(&html, "csrf_token").unwrap();
    let r = other
        .post_form(
            "/console/login",
            &[
                ("csrf_token", &csrf),
                ("email", "owner@example.com"),
                ("password", STAFF_PASSWORD),
            ],
        )
        .await;
    assert_is_redirect_to(&r, "/console/account/totp");
}

#[tokio::test]
async fn staff_add_reads_the_password_from_stdin() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let (url, _db) = fresh_database(dir.path()).await;
    let run = |email: &str, password: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_coinfront"))
            .args(["staff", "add", "--email", email, "--role", "admin"])
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("COINFRONT_DATA_DIR", dir.path().join("data"))
            .env("COINFRONT_LOG", "warn")
            .env("DATABASE_URL", &url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let weak = run("ops@example.com", "password1234");
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("common passwords"));
    // Said once, not once as a log line and again as the error.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&weak.stdout),
        String::from_utf8_lossy(&weak.stderr)
    );
    assert_eq!(said.matches("common passwords").count(), 1, "{said}");
    let ok = run("ops@example.com", STAFF_PASSWORD);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("Added admin ops@example.com"));
    let again = run("ops@example.com", STAFF_PASSWORD);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));

    // The server now has staff: no setup link, and the new admin signs in.
    let server = crate::process::ServerProcess::start(dir.path(), &url, "serve.log", &[]);
    assert!(!std::fs::read_to_string(&server.log)
        .unwrap()
        .contains("/console/setup/"));
    let browser = Browser::new(server.address.clone());
    let html = browser.get_html("/console/login").await;
    let csrf = extract_hidden(&html, "csrf_token").unwrap();
    let r = browser
        .post_form(
            "/console/login",
            &[
                ("csrf_token", &csrf),
                ("email", "ops@example.com"),
                ("password", STAFF_PASSWORD),
            ],
        )
        .await;
    assert_is_redirect_to(&r, "/console/account/totp");
}
