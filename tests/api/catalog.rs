use crate::helpers::spawn_app;

#[tokio::test]
async fn catalog_shows_every_package_with_price_and_price_per_coin() {
    let app = spawn_app().await;
    let r = app.get("/").await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    for coins in [
        "70 coins",
        "350 coins",
        "700 coins",
        "1,400 coins",
        "3,500 coins",
        "7,000 coins",
        "17,500 coins",
    ] {
        assert!(html.contains(coins), "missing package {coins}");
    }
    // 70 coins at US$0.0104 = 0.728 -> US$0.73; per coin 0.73 / 70 = 0.010428...
    assert!(html.contains("US$0.73"), "70-coin price");
    assert!(
        html.contains("0.01043 USD per coin"),
        "70-coin price per coin"
    );
    // 1,400 coins: 1,000 at 0.0104 + 400 at 0.0102 = 14.48
    assert!(html.contains("US$14.48"));
    assert!(html.contains("never ask for your TikTok password"));
    assert!(!html.to_lowercase().contains("type=\"password\""));
    assert!(!html.contains("<script"), "the page needs no JavaScript");
    assert!(
        html.contains("name=\"viewport\""),
        "phone-friendly viewport"
    );
}

#[tokio::test]
async fn prices_switch_currency_with_its_own_minor_unit() {
    let app = spawn_app().await;
    let html = app.get_html("/?currency=JPY").await;
    // 0.728 USD * 150 = 109.2 -> ¥109, no decimals.
    assert!(html.contains("¥109"), "yen price");
    let html = app.get_html("/?currency=eur").await;
    // 0.728 * 0.92 = 0.66976 -> €0.67
    assert!(html.contains("€0.67"));
    let html = app.get_html("/?currency=IDR").await;
    // 0.728 * 15800 = 11502.4 -> Rp11,502: the rupiah is priced and shown in whole rupiah
    assert!(html.contains("Rp11,502<"));
    for code in ["USD", "EUR", "GBP", "JPY", "IDR", "PHP", "BRL", "MXN"] {
        assert!(
            html.contains(&format!("value=\"{code}\"")),
            "currency {code} offered"
        );
    }
}

#[tokio::test]
async fn an_unknown_currency_gets_a_message_not_an_error() {
    let app = spawn_app().await;
    let r = app.get("/?currency=XYZ").await;
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Choose one of the currencies in the list."));
}

#[tokio::test]
async fn custom_amounts_are_priced_and_bad_ones_explained() {
    let app = spawn_app().await;
    let html = app.get_html("/?coins=2500").await;
    // 1,000 at 0.0104 + 1,500 at 0.0102 = 25.70
    assert!(html.contains("US$25.70"));

    for (input, message) in [
        ("abc", "Enter a number of coins, like 1500."),
        ("12.5", "Enter a number of coins, like 1500."),
        ("-40", "Enter a number of coins, like 1500."),
        ("29", "The smallest custom amount is 30 coins."),
        ("2500001", "The largest custom amount is 2,500,000 coins."),
        (
            "99999999999999999999999999",
            "The largest custom amount is 2,500,000 coins.",
        ),
    ] {
        let r = app.get(&format!("/?coins={input}")).await;
        assert_eq!(r.status(), 422, "{input}");
        let html = r.text().await.unwrap();
        assert!(html.contains(message), "{input}: expected {message:?}");
        assert!(
            html.contains(&format!("value=\"{}\"", input)),
            "{input}: the typed value is kept"
        );
    }
}

#[tokio::test]
async fn custom_limits_come_from_configuration() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.catalog.custom_min = 100;
        s.catalog.custom_max = 1000;
    })
    .await;
    assert!(app
        .get_html("/?coins=99")
        .await
        .contains("The smallest custom amount is 100 coins."));
    assert!(app
        .get_html("/?coins=1001")
        .await
        .contains("The largest custom amount is 1,000 coins."));
}

#[tokio::test]
async fn typed_input_is_escaped() {
    let app = spawn_app().await;
    let html = app
        .get_html("/?coins=%3Cscript%3Ealert(1)%3C/script%3E")
        .await;
    assert!(!html.contains("<script>alert(1)</script>"));
    assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));
}
