use crate::helpers::{assert_is_redirect_to, extract_hidden, spawn_app, Checkout};

#[tokio::test]
async fn happy_path_from_catalog_to_paid() {
    let app = spawn_app().await;
    let confirm = app
        .post_checkout(&Checkout {
            username: "https://www.tiktok.com/@Ana_Buyer?lang=en",
            ..Default::default()
        })
        .await;
    assert_eq!(confirm.status(), 200);
    let html = confirm.text().await.unwrap();
    assert!(html.contains("Is this the right account?"));
    assert!(
        html.contains("Ana Buyer") && html.contains("@ana_buyer"),
        "verified account shown"
    );
    assert!(
        html.contains("class=\"avatar\" aria-hidden=\"true\">A<"),
        "avatar initial"
    );
    assert!(html.contains("US$7.28"), "700 coins at 0.0104");

    let resp = app.confirm(&html).await;
    assert_is_redirect_to(&resp, "/sandbox/pay/cs_test_");
    let pay_path = resp.headers()["location"]
        .to_str()
        .unwrap()
        .trim_start_matches(&app.address)
        .to_owned();
    let page = app.get_html(&pay_path).await;
    assert!(page.contains("TEST MODE"));
    assert!(page.contains("US$7.28"));

    let started = crate::helpers::Started {
        pay_url: String::new(),
        session_path: pay_path,
    };
    let paid = app.pay_card(&started, "4242 4242 4242 4242", "123").await;
    let order_path = app.order_path_after(paid).await;
    app.wait_for_status(&order_path, "delivered").await;

    let order_page = app.get(&order_path).await;
    assert_eq!(order_page.status(), 200);
    assert_eq!(order_page.headers()["cache-control"], "no-store");
    let html = order_page.text().await.unwrap();
    assert!(html.contains("Coins delivered"), "status shown");
    assert!(html.contains("Visa •••• 4242"), "method summary");
    assert!(html.contains("700") && html.contains("@ana_buyer") && html.contains("US$7.28"));
    assert!(
        html.contains("Order placed") && html.contains("Paid with Visa •••• 4242"),
        "timeline"
    );

    // Exactly one order, one payment, one paid transition with its audit event.
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM payments WHERE status = 'succeeded'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM order_events WHERE to_status = 'paid'")
            .await,
        1
    );
    let number: String = {
        use sqlx::Row;
        sqlx::query("SELECT order_number FROM orders")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
            .get(0)
    };
    assert!(number.starts_with("CF-") && number.len() == 11);
}

#[tokio::test]
async fn each_bad_field_gets_its_own_message_and_values_are_kept() {
    let app = spawn_app().await;
    let r = app
        .post_checkout(&Checkout {
            package: "custom",
            coins: "12",
            username: "bad name!",
            email: "not-an-email",
            currency: "USD",
            method: "cheque",
        })
        .await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("The smallest custom amount is 30 coins."));
    assert!(html.contains("A TikTok username has only letters, numbers, underscores and periods."));
    assert!(html.contains("Enter an email address like name@example.com."));
    assert!(html.contains("Choose how you would like to pay."));
    assert!(
        html.contains("value=\"bad name!\"")
            && html.contains("value=\"not-an-email\"")
            && html.contains("value=\"12\"")
    );

    let r = app
        .post_checkout(&Checkout {
            package: "701",
            ..Default::default()
        })
        .await;
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("That package is not in the catalog."));
    let r = app
        .post_checkout(&Checkout {
            username: "name.",
            ..Default::default()
        })
        .await;
    assert!(r.text().await.unwrap().contains("cannot end with a period"));
    let r = app
        .post_checkout(&Checkout {
            currency: "XYZ",
            ..Default::default()
        })
        .await;
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Choose one of the currencies in the list."));
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 0);
}

#[tokio::test]
async fn unknown_accounts_are_explained() {
    let app = spawn_app().await;
    let r = app
        .post_checkout(&Checkout {
            username: "missing_person",
            ..Default::default()
        })
        .await;
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("We could not find a TikTok account called @missing_person"));
}

#[tokio::test]
async fn a_flaky_account_lookup_is_retried() {
    let app = spawn_app().await;
    let r = app
        .post_checkout(&Checkout {
            username: "flaky_fan",
            ..Default::default()
        })
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Flaky Fan"));
}

#[tokio::test]
async fn the_client_price_is_ignored_and_a_mismatch_recorded() {
    let app = spawn_app().await;
    let html = app
        .post_checkout(&Checkout::default())
        .await
        .text()
        .await
        .unwrap();
    let r = app.confirm_claiming(&html, "1").await;
    assert_is_redirect_to(&r, "/sandbox/pay/");
    use sqlx::Row;
    let row = sqlx::query("SELECT amount_minor, client_amount_minor FROM orders")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(row.get::<i64, _>("amount_minor"), 728);
    assert_eq!(row.get::<Option<i64>, _>("client_amount_minor"), Some(1));
}

#[tokio::test]
async fn a_tampered_quote_is_refused() {
    let app = spawn_app().await;
    let html = app
        .post_checkout(&Checkout::default())
        .await
        .text()
        .await
        .unwrap();
    let csrf = extract_hidden(&html, "csrf_token").unwrap();
    let quote = extract_hidden(&html, "quote").unwrap();
    let tampered = format!("A{}", &quote[1..]);
    let r = app
        .post_form(
            "/checkout/confirm",
            &[("csrf_token", &csrf), ("quote", &tampered)],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("out of date"));
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 0);
}

#[tokio::test]
async fn double_submitting_the_confirm_form_creates_one_order() {
    let app = spawn_app().await;
    let html = app
        .post_checkout(&Checkout::default())
        .await
        .text()
        .await
        .unwrap();
    let (a, b, c) = tokio::join!(app.confirm(&html), app.confirm(&html), app.confirm(&html));
    let locations: Vec<String> = [a, b, c]
        .iter()
        .map(|r| r.headers()["location"].to_str().unwrap().to_owned())
        .collect();
    assert!(
        locations.iter().all(|l| l == &locations[0]),
        "same payment page: {locations:?}"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 1);
    // A submit that loses the race may have opened a session before it found the winner's
    // order; it is never shown to anyone (all three go to the order's one) and expires unused.
    let order_session: String = sqlx::query_scalar("SELECT provider_session_id FROM orders")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert!(
        locations[0].ends_with(&format!("/sandbox/pay/{order_session}")),
        "{locations:?} go to the order's session {order_session}"
    );
    // And again after paying: back to the order, no second order.
    let started = crate::helpers::Started {
        pay_url: String::new(),
        session_path: locations[0].trim_start_matches(&app.address).into(),
    };
    let order_path = app
        .order_path_after(app.pay_card(&started, "4242424242424242", "123").await)
        .await;
    app.wait_for_status(&order_path, "delivered").await;
    let again = app.confirm(&html).await;
    assert_is_redirect_to(&again, &order_path);
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 1);
}

#[tokio::test]
async fn forms_without_a_valid_csrf_token_are_refused_with_a_page() {
    let app = spawn_app().await;
    let _ = app.csrf().await;
    for token in ["", "wrong"] {
        let r = app
            .post_form("/checkout", &[("csrf_token", token), ("package", "70")])
            .await;
        assert_eq!(r.status(), 403);
        assert!(r.text().await.unwrap().contains("security token"));
    }
    // A fresh client with no cookie at all, using someone else's token.
    let token = app.csrf().await;
    let stranger = reqwest::Client::new();
    let r = stranger
        .post(app.url("/checkout"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Cross-site posts are refused outright.
    let r = app
        .client
        .post(app.url("/checkout"))
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn a_password_field_is_refused_and_nothing_of_it_kept() {
    let app = spawn_app().await;
    let csrf = app.csrf().await;
    for field in ["password", "pass", "pwd", "passcode", "tiktok_password"] {
        let r = app
            .post_form(
                "/checkout",
                &[
                    ("csrf_token", &csrf),
                    ("package", "70"),
                    ("tiktok_username", "ana"),
                    ("email", "a@b.co"),
                    (field, "Hunter2Secret!"),
                ],
            )
            .await;
        assert_eq!(r.status(), 400, "{field}");
        let html = r.text().await.unwrap();
        assert!(
            html.contains("never asks for, accepts or keeps a password"),
            "{field}"
        );
        assert!(!html.contains("Hunter2Secret!"));
    }
    // Also on the confirm and payment forms.
    let r = app
        .post_form(
            "/checkout/confirm",
            &[("csrf_token", &csrf), ("password", "Hunter2Secret!")],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 0);
    // No page of the buyer flow has a password input.
    for path in ["/", "/orders/lookup"] {
        assert!(
            !app.get_html(path).await.contains("type=\"password\""),
            "{path}"
        );
    }
}

#[tokio::test]
async fn cancelling_on_the_sandbox_page_goes_back_to_the_orders_confirm_page() {
    let app = spawn_app().await;
    let started = app.start_order(&Checkout::default()).await;
    let page = app.get_html(&started.session_path).await;
    assert!(page.contains("href=\"/checkout/confirm\""), "{page}");
    let back = app.get_html("/checkout/confirm").await;
    assert!(back.contains("You left the payment page before paying"));
    assert!(back.contains("@ana_buyer"));
    // Paying again opens the same payment page; no second order.
    let again = app.confirm(&back).await;
    assert_is_redirect_to(&again, &started.session_path);
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 1);
}
