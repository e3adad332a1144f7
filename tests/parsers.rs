//! Property tests over every parser of outside input (issue 14, finding 7): form bodies,
//! usernames, emails, amounts and money, webhook bodies and signature headers, list values,
//! sealed quotes, tokens, client-IP headers, log paths, free text and config values. Each target
//! runs `PARSER_CASES` generated cases (100,000 unless the environment says otherwise) and must
//! never panic; many also check a property of what they accept. Run with `--nocapture` to see
//! the count per target.

use coinfront::config::{Secret, Settings};
use coinfront::domain::pricing::Catalog;
use coinfront::domain::{BuyerEmail, Coins, Currency, Money, PaymentMethod, TikTokUsername};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

fn cases() -> u32 {
    std::env::var("PARSER_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// Runs `check` over `cases()` values of `strategy`; a panic or a failed property fails the test
/// (proptest catches the panic and shrinks the input). Prints how many cases ran.
fn run<S: Strategy>(
    target: &str,
    strategy: S,
    check: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    });
    let ran = AtomicU64::new(0);
    let result = runner.run(&strategy, |v| {
        ran.fetch_add(1, Ordering::Relaxed);
        check(v)
    });
    let ran = ran.into_inner();
    if let Err(e) = result {
        panic!("{target}: {e}");
    }
    eprintln!("{target}: {ran} cases, 0 panics");
    assert!(ran >= u64::from(cases()), "{target}: only {ran} cases ran");
}

/// Text as people and attackers type it: anything at all, printable text, and text made of
/// the characters parsers care about.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,40}",
        "[ -~]{0,40}",
        "[0-9.,eE+\\- _\u{a0}]{0,40}",
        "[@a-zA-Z0-9._+\\-\u{202E}\u{FEFF}\u{200B} ]{0,40}",
    ]
}

/// Numbers written every which way, including ones far beyond any type's range.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?[0-9]{0,40}(\\.[0-9]{0,40})?",
        "-?[0-9]{1,30}[eE][+-]?[0-9]{1,4}",
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| n.to_string()),
        Just("79228162514264337593543950335".to_owned()),
        Just("-79228162514264337593543950335".to_owned()),
        Just("7922816251426433759354395033.5".to_owned()),
        text(),
    ]
}

fn catalog() -> Catalog {
    Settings::default()
        .catalog
        .build()
        .expect("the default catalog builds")
}

#[test]
fn usernames() {
    run("usernames", text(), |s| {
        if let Ok(u) = TikTokUsername::parse(&s) {
            prop_assert!(!u.as_str().is_empty());
            prop_assert!(TikTokUsername::parse(u.as_str()).is_ok());
        }
        Ok(())
    });
}

#[test]
fn emails() {
    run("emails", text(), |s| {
        if let Ok(e) = BuyerEmail::parse(&s) {
            prop_assert!(!e.as_str().contains(['\r', '\n']));
            prop_assert!(e.as_str().contains('@'));
        }
        Ok(())
    });
}

#[test]
fn coin_amounts_and_their_prices() {
    let catalog = catalog();
    run(
        "coin amounts",
        (number_text(), number_text()),
        |(custom, package)| {
            let parsed = [
                catalog.parse_custom_amount(&custom),
                catalog.parse_package(&package),
            ];
            for coins in parsed.into_iter().flatten() {
                for currency in catalog.currencies() {
                    let quote = catalog.quote(coins, currency);
                    prop_assert!(quote.is_some(), "an accepted amount can be priced");
                }
            }
            Ok(())
        },
    );
}

#[test]
fn pricing_any_number_of_coins_never_panics() {
    let catalog = catalog();
    let fee = Settings::default().payments.fee_for(PaymentMethod::Paypal);
    run("pricing (any u64 coins)", any::<u64>(), |n| {
        for currency in catalog.currencies() {
            if let Some(q) = catalog.quote(Coins::new(n), currency) {
                let _ = q.per_coin_text();
                if let Some(f) = catalog.fee(q.total, &fee) {
                    let _ = q.total.checked_add(f);
                }
                let _ = catalog.to_base(q.total);
            }
        }
        Ok(())
    });
}

#[test]
fn money_typed_in_major_units() {
    run(
        "money (major units, e.g. the crypto amount)",
        (number_text(), prop::sample::select(Currency::ALL.to_vec())),
        |(s, currency)| {
            if let Some(m) = Money::parse_major_truncated(&s, currency) {
                prop_assert!(m.minor() > 0);
                let _ = m.to_string();
            }
            let _ = rust_decimal::Decimal::from_str(&s)
                .ok()
                .and_then(|d| Money::round_from_major(d, currency));
            Ok(())
        },
    );
}

#[test]
fn currencies_and_payment_methods() {
    run("currency and payment method codes", text(), |s| {
        if let Ok(c) = Currency::from_str(&s) {
            prop_assert_eq!(Currency::from_str(c.code()), Ok(c));
        }
        if let Ok(m) = PaymentMethod::from_str(&s) {
            prop_assert_eq!(PaymentMethod::from_str(m.as_str()).ok(), Some(m));
        }
        Ok(())
    });
}

#[test]
fn card_fields() {
    use coinfront::payments::sandbox::cards::{check_cvc, check_expiry, CardNumber};
    run(
        "card number, expiry, CVC",
        (text(), text(), text(), any::<i64>()),
        |(number, expiry, cvc, now)| {
            if let Ok(n) = CardNumber::parse(&number) {
                prop_assert_eq!(n.last4().len(), 4);
            }
            let _ = check_expiry(&expiry, now);
            let _ = check_cvc(&cvc);
            Ok(())
        },
    );
}

fn signature_header() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        any::<i64>().prop_map(|t| format!("t={t}")),
        "t=[0-9a-z\\-]{0,25}",
        "v1=[0-9a-f]{0,70}",
        "v1=[ -~]{0,20}",
        "v0=[0-9a-f]{0,10}",
        "[ -~]{0,12}",
    ];
    prop_oneof![
        prop::collection::vec(part, 0..6).prop_map(|parts| parts.join(",")),
        text(),
    ]
}

#[test]
fn webhook_signature_headers() {
    use coinfront::payments::signature::{sign, verify};
    run(
        "webhook signature headers",
        (
            signature_header(),
            any::<i64>(),
            0i64..100_000,
            any::<Vec<u8>>(),
        ),
        |(header, now, tolerance, body)| {
            // Random headers never verify (and never panic).
            prop_assert!(verify(&[b"key"], Some(&header), &body, now, tolerance).is_err());
            // A good signature beside anything else verifies when fresh.
            let t = now.saturating_sub(tolerance / 2);
            let good = sign(b"key", t, &body);
            let mixed = format!("{good},{header}");
            if !header.contains("t=") {
                prop_assert!(verify(&[b"key"], Some(&mixed), &body, now, tolerance).is_ok());
            }
            Ok(())
        },
    );
}

#[test]
fn webhook_bodies() {
    use coinfront::payments::ProviderEvent;
    let json_like = prop_oneof![
        any::<Vec<u8>>(),
        "[{}\\[\\]\",:0-9a-z_. -]{0,120}".prop_map(String::into_bytes),
        (any::<i64>(), any::<i64>(), text()).prop_map(|(amount, created, s)| {
            serde_json::json!({
                "id": s, "type": "payment.succeeded", "created": created,
                "data": { "order_reference": "o", "session_id": "s", "object_id": "p",
                          "method": "card", "amount_minor": amount, "currency": "USD" }
            })
            .to_string()
            .into_bytes()
        }),
    ];
    run("webhook bodies", json_like, |body| {
        let _ = serde_json::from_slice::<ProviderEvent>(&body);
        Ok(())
    });
}

#[test]
fn list_values() {
    use coinfront::domain::risk_list::{parse_value, ListKind};
    run(
        "block/allow list values",
        (prop::sample::select(ListKind::ALL.to_vec()), text()),
        |(kind, s)| {
            if let Ok(v) = parse_value(kind, &s) {
                prop_assert!(!v.is_empty());
            }
            Ok(())
        },
    );
}

#[test]
fn sealed_quotes_and_tokens() {
    use coinfront::store::quote::open;
    let key = Secret::new("property-test-key");
    let sealed = prop_oneof![text(), "[A-Za-z0-9_\\-]{0,80}\\.[0-9a-f]{0,64}",];
    run(
        "sealed quotes, order tokens, order numbers",
        (sealed, any::<i64>(), any::<i64>()),
        |(s, now, age)| {
            prop_assert!(
                open(&key, &s, now, age).is_none(),
                "a forged quote never opens"
            );
            let _ = coinfront::domain::order_token::well_formed(&s);
            let _ = coinfront::domain::ids::normalise_order_number(&s);
            Ok(())
        },
    );
}

#[test]
fn client_ip_headers() {
    use coinfront::web::client_ip::{ProxyRange, TrustedProxies};
    let trusted = TrustedProxies {
        proxies: vec!["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()],
        header: "X-Forwarded-For".into(),
    };
    let entry = prop_oneof![
        any::<std::net::IpAddr>().prop_map(|ip| ip.to_string()),
        any::<std::net::SocketAddr>().prop_map(|a| a.to_string()),
        "10\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
        text(),
    ];
    let lines = prop::collection::vec(
        prop::collection::vec(entry, 0..4).prop_map(|e| e.join(", ")),
        0..4,
    );
    run(
        "client-IP header lines and proxy ranges",
        (lines, any::<std::net::IpAddr>(), text()),
        |(lines, peer, range)| {
            let ip = trusted.client_ip(peer, lines.iter().map(String::as_str));
            // An untrusted peer is always the client.
            if ![
                "127.0.0.1".parse::<ProxyRange>().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
            ]
            .iter()
            .any(|p| p.contains(peer))
            {
                prop_assert_eq!(ip, peer.to_canonical());
            }
            if let Ok(r) = ProxyRange::from_str(&range) {
                prop_assert_eq!(ProxyRange::from_str(&r.to_string()), Ok(r));
            }
            Ok(())
        },
    );
}

#[test]
fn log_paths_never_carry_tokens() {
    use coinfront::web::middleware::redact_path;
    let token = "[a-f0-9]{64}";
    let path = prop_oneof![
        (
            prop::sample::select(vec![
                "/orders/",
                "/console/setup/",
                "/sandbox/pay/cs_test_",
                "/sandbox/paypal/cs_test_",
                "/sandbox/crypto/cs_test_",
                "/x/"
            ]),
            token,
            "(/[a-z]{0,8})?"
        )
            .prop_map(|(prefix, t, tail)| format!("{prefix}{t}{tail}")),
        text(),
    ];
    run("log paths", path, |p| {
        let logged = redact_path(&p);
        for segment in p.split('/') {
            if segment.len() >= 64 && segment.bytes().all(|b| b.is_ascii_hexdigit()) {
                prop_assert!(
                    !logged.contains(segment),
                    "{} leaked in {}",
                    segment,
                    logged
                );
            }
        }
        Ok(())
    });
}

#[test]
fn free_text() {
    use coinfront::domain::text::{is_invisible, normalise};
    run(
        "free text (messages, notes, reasons)",
        (text(), any::<bool>()),
        |(s, multiline)| {
            let n = normalise(&s, multiline);
            prop_assert!(!n.chars().any(|c| is_invisible(c) && c != '\n' && c != '\t'));
            prop_assert_eq!(n.trim(), n.as_str());
            Ok(())
        },
    );
}

/// A form post as a browser (or anyone) sends it: the shop's own field names, others, and
/// anything urlencoded or not.
fn form_body() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        prop::sample::select(vec![
            "csrf_token",
            "package",
            "coins",
            "tiktok_username",
            "email",
            "currency",
            "payment_method",
            "age_confirmed",
            "quote",
            "shown_total_minor",
            "shown_currency",
            "card_number",
            "expiry",
            "cvc",
            "gift_code",
            "amount",
            "reason",
            "message",
            "order_number",
            "password",
        ])
        .prop_map(str::to_owned),
        "[ -~]{0,10}",
    ];
    prop_oneof![
        prop::collection::vec((name, text()), 0..8).prop_map(|pairs| {
            serde_urlencoded::to_string(&pairs)
                .unwrap_or_default()
                .into_bytes()
        }),
        "[a-z_=&%0-9A-F+]{0,80}".prop_map(String::into_bytes),
        any::<Vec<u8>>(),
    ]
}

#[test]
fn form_bodies() {
    use actix_web::web::Data;
    use coinfront::web::csrf::CsrfKey;
    use coinfront::web::form::parse_form;
    let req = actix_web::test::TestRequest::default()
        .app_data(Data::new(CsrfKey(
            Secret::new("form-key"),
            coinfront::web::csrf::CookiePolicy { secure: false },
        )))
        .to_http_request();
    run(
        "form bodies (urlencoded, every buyer form)",
        form_body(),
        |body| {
            // The checks before decoding (cross-site, password-like fields, the CSRF token: there
            // is no CSRF cookie here, so every form is refused)...
            prop_assert!(parse_form::<coinfront::store::checkout::CheckoutForm>(
                &req, &body, false
            )
            .is_err());
            // ...and the decoding step itself, into every buyer form.
            use serde_urlencoded::from_bytes;
            let _ = from_bytes::<coinfront::store::checkout::CheckoutForm>(&body);
            let _ = from_bytes::<coinfront::store::checkout::ConfirmForm>(&body);
            let _ = from_bytes::<coinfront::store::sandbox_page::PayForm>(&body);
            let _ = from_bytes::<coinfront::store::sandbox_page::TransferForm>(&body);
            let _ = from_bytes::<coinfront::store::orders::RefundForm>(&body);
            let _ = from_bytes::<coinfront::store::orders::LookupForm>(&body);
            Ok(())
        },
    );
}

/// Every key the settings have, for generated config files.
fn setting_keys() -> Vec<String> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&p, v, out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }
    let mut keys = Vec::new();
    walk(
        "",
        &serde_json::to_value(Settings::default()).unwrap(),
        &mut keys,
    );
    keys
}

#[test]
fn config_values() {
    use figment::providers::{Format, Toml};
    use figment::Figment;
    let keys = setting_keys();
    let value = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("TOML float", |f| f.is_finite())
            .prop_map(|f| format!("{f:?}")),
        number_text().prop_map(|s| format!("{s:?}")),
        any::<bool>().prop_map(|b| b.to_string()),
        text().prop_map(|s| format!("{s:?}")),
        prop::collection::vec(any::<u32>(), 0..4).prop_map(|v| format!("{v:?}")),
        Just("[{ from_coins = 0, price_per_coin = \"79228162514264337593543950335\" }]".to_owned()),
        Just("{ EUR = \"0.0000000000000000000000000001\" }".to_owned()),
    ];
    let file = prop_oneof![
        prop::collection::vec((prop::sample::select(keys), value), 0..4).prop_map(|lines| {
            lines
                .into_iter()
                .map(|(k, v)| format!("{k} = {v}\n"))
                .collect::<String>()
        }),
        text(),
    ];
    run("config values (TOML)", file, |toml| {
        if let Ok(settings) = Settings::from_figment(Figment::new().merge(Toml::string(&toml))) {
            // Whatever a valid config says, pricing and fees never panic.
            let catalog = settings.catalog.build().expect("validated");
            let (_, max) = catalog.custom_limits();
            for currency in catalog.currencies() {
                if let Some(q) = catalog.quote(max, currency) {
                    for method in PaymentMethod::ALL {
                        let _ = catalog.fee(q.total, &settings.payments.fee_for(method));
                    }
                }
            }
        }
        Ok(())
    });
}
