//! HTTPS: built-in TLS with rustls, or a TLS-terminating reverse proxy in front.

use crate::helpers::spawn_app_with;

#[tokio::test]
async fn built_in_tls_serves_https_with_hsts_and_secure_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let app = spawn_app_with(move |s| {
        s.http.tls_cert = Some(cert_path);
        s.http.tls_key = Some(key_path);
    })
    .await;
    assert!(app.state.base_url.starts_with("https://"));
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let r = client
        .get(format!("https://127.0.0.1:{}/", app.port))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let hsts = r.headers()["strict-transport-security"].to_str().unwrap();
    assert!(hsts.contains("max-age=63072000"));
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    // Plain HTTP on the TLS port gets nowhere.
    assert!(
        reqwest::get(format!("http://127.0.0.1:{}/healthz", app.port))
            .await
            .map(|r| !r.status().is_success())
            .unwrap_or(true)
    );
}

#[tokio::test]
async fn behind_a_tls_proxy_the_headers_and_cookies_say_https_too() {
    let app = spawn_app_with(|s| {
        s.http.hsts = true;
        s.http.secure_cookies = true;
        s.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let r = app.get("/").await;
    assert!(r.headers().contains_key("strict-transport-security"));
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Secure"));
}

#[tokio::test]
async fn the_client_ip_comes_from_the_proxy_header_only_from_a_trusted_proxy() {
    use coinfront::config::Limit;
    let trusted = spawn_app_with(|s| {
        s.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        s.rate_limits.checkout = Limit {
            per_minute: 1,
            burst: 1,
        };
    })
    .await;
    let html = trusted
        .post_checkout(&crate::helpers::Checkout::default())
        .await
        .text()
        .await
        .unwrap();
    let csrf = crate::helpers::extract_hidden(&html, "csrf_token").unwrap();
    let quote = crate::helpers::extract_hidden(&html, "quote").unwrap();
    let send = |ip: &'static str| {
        trusted
            .client
            .post(trusted.url("/checkout/confirm"))
            .header("X-Forwarded-For", format!("10.9.9.9, {ip}"))
            .form(&[("csrf_token", csrf.as_str()), ("quote", quote.as_str())])
            .send()
    };
    // Two different clients behind the proxy each get their own limit.
    assert!(send("203.0.113.1").await.unwrap().status().is_redirection());
    assert!(send("203.0.113.2").await.unwrap().status().is_redirection());
    assert_eq!(send("203.0.113.1").await.unwrap().status(), 429);
    use sqlx::Row;
    let ip: String = sqlx::query("SELECT client_ip FROM rate_limit_counts")
        .fetch_one(trusted.state.db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(ip, "203.0.113.1", "the last address the proxy appended");
}

#[tokio::test]
async fn a_proxy_header_from_an_untrusted_peer_is_ignored() {
    use coinfront::config::Limit;
    let app = spawn_app_with(|s| {
        s.rate_limits.checkout = Limit {
            per_minute: 1,
            burst: 1,
        }
    })
    .await;
    let html = app
        .post_checkout(&crate::helpers::Checkout::default())
        .await
        .text()
        .await
        .unwrap();
    let csrf = crate::helpers::extract_hidden(&html, "csrf_token").unwrap();
    let quote = crate::helpers::extract_hidden(&html, "quote").unwrap();
    for (ip, expected) in [("203.0.113.1", 303), ("203.0.113.2", 429)] {
        let r = app
            .client
            .post(app.url("/checkout/confirm"))
            .header("X-Forwarded-For", ip)
            .form(&[("csrf_token", csrf.as_str()), ("quote", quote.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            expected,
            "a spoofed header does not buy a fresh limit"
        );
    }
}
