//! Two-factor sign-in: enrolment, codes and recovery codes; and the console's CSRF and
//! cross-site refusal.

use super::*;

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
