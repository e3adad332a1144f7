//! Staff sign-in over real HTTP: wrong passwords, lock-out and its limits, sessions and their
//! timeouts, hash upgrades, roles.

use super::*;

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
