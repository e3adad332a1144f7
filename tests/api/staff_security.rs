//! Issue 14, the staff console's findings, over real HTTP on both backends: memory under failed
//! sign-ins, second-factor guessing, cookies under built-in TLS, two-factor re-enrolment,
//! lock-outs a stranger could cause, and how credentials are stored.

use crate::helpers::{
    assert_is_redirect_to, extract_hidden, fresh_database, post_from, spawn_app_with, Browser,
    TestApp, STAFF_PASSWORD,
};
use crate::process::ServerProcess;
use coinfront::db::staff::Role;
use coinfront::staff::totp;
use sqlx::Row;
use std::time::{Duration, Instant};

const AGENT: &str = "agent@example.com";

/// The app behind a trusted proxy on 127.0.0.1, so each test request can come "from" its own
/// address through `X-Forwarded-For`.
async fn behind_proxy(configure: impl FnOnce(&mut coinfront::config::Settings)) -> TestApp {
    spawn_app_with(|s| {
        s.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        configure(s);
    })
    .await
}

/// A sign-in with email and password from the client address `ip`.
async fn sign_in_from(
    browser: &Browser,
    email: &str,
    password: &str,
    ip: &str,
) -> reqwest::Response {
    let page = browser.get_html("/console/login").await;
    let csrf = extract_hidden(&page, "csrf_token").unwrap();
    browser
        .client
        .post(browser.url("/console/login"))
        .header("X-Forwarded-For", ip)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
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

fn retry_after(r: &reqwest::Response) -> i64 {
    r.headers()
        .get("retry-after")
        .expect("a lock-out carries Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect()
}

fn vm_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

// --- 0: failed sign-ins exhaust memory --------------------------------------------------------

#[tokio::test]
async fn a_flood_of_failed_sign_ins_keeps_the_process_small() {
    // A separate process, so that only its memory is measured.
    let dir = tempfile::tempdir().unwrap();
    let (url, _db) = fresh_database(dir.path()).await;
    // (The process's rate limits are roomy; each attempt has its own email, so no lock-out.)
    // A setting only this version knows: a stale binary in a shared target dir refuses to
    // start with a clear message instead of measuring the wrong code.
    let server = ServerProcess::start(
        dir.path(),
        &url,
        "memory.log",
        &[("COINFRONT_CONSOLE__CODE_LOCKOUT_AFTER_FAILURES", "5")],
    );
    let pid = server.pid();
    let browser = Browser::new(server.address.clone());
    let page = browser.get_html("/console/login").await;
    let csrf = extract_hidden(&page, "csrf_token").unwrap();
    let before = vm_kib(pid, "VmRSS:");
    // 96 failed sign-ins, 32 at a time, each for its own unknown email (no lock-out answers
    // before the hash; the dummy hash costs what a wrong password costs): unbounded, that is 32
    // argon2id working memories of 19 MiB at once, kept by the allocator afterwards.
    let mut peak = before;
    for round in 0..3 {
        let attempts: Vec<_> = (0..32)
            .map(|i| {
                let (client, url, csrf) = (
                    browser.client.clone(),
                    browser.url("/console/login"),
                    csrf.clone(),
                );
                tokio::spawn(async move {
                    client
                        .post(url)
                        .form(&[
                            ("csrf_token", csrf.as_str()),
                            ("email", &format!("nobody-{round}-{i}@example.com")),
                            ("password", "not the password at all"),
                        ])
                        .send()
                        .await
                        .unwrap()
                        .status()
                })
            })
            .collect();
        for a in attempts {
            assert_eq!(a.await.unwrap(), 422);
        }
        peak = peak.max(vm_kib(pid, "VmHWM:"));
    }
    let grown_mib = peak.saturating_sub(before) / 1024;
    println!(
        "resident before {} MiB, peak {} MiB",
        before / 1024,
        peak / 1024
    );
    assert!(
        grown_mib < 80,
        "failed sign-ins grew the process by {grown_mib} MiB (peak {} MiB)",
        peak / 1024
    );
}

// --- 1: the second factor can be guessed without lock-out -------------------------------------

#[tokio::test]
async fn wrong_codes_lock_the_code_step_and_a_right_password_does_not_reset_them() {
    let app = behind_proxy(|_| {}).await;
    let secret = app.add_admin_with_totp(AGENT).await;
    let mut wrong_codes = 0;
    let mut locked = None;
    // Four rounds of the right password and four wrong codes: 16 guesses on the old code.
    'rounds: for _ in 0..4 {
        let browser = Browser::new(app.address.clone());
        let r = sign_in_from(&browser, AGENT, STAFF_PASSWORD, "198.51.100.7").await;
        assert_is_redirect_to(&r, "/console/login/code");
        for _ in 0..4 {
            let r = enter_code(&browser, "000000").await;
            wrong_codes += 1;
            if r.status() == 429 {
                locked = Some(retry_after(&r));
                break 'rounds;
            }
            assert_eq!(r.status(), 422);
        }
    }
    assert_eq!(
        locked.map(|_| wrong_codes),
        Some(5),
        "locked after five wrong codes"
    );
    assert!((1..=300).contains(&locked.unwrap()));
    // The right password still leads to the code step, but even the right code waits.
    let browser = Browser::new(app.address.clone());
    let r = sign_in_from(&browser, AGENT, STAFF_PASSWORD, "198.51.100.7").await;
    assert_is_redirect_to(&r, "/console/login/code");
    let right = totp::code_at(&secret, app.now_ms() / 1000);
    let r = enter_code(&browser, &right).await;
    assert_eq!(r.status(), 429);
    assert!(retry_after(&r) > 0);
    assert!(r.text().await.unwrap().contains("two-factor codes"));
    // After the pause the right code works, and the count starts again.
    app.clock.advance_secs(5 * 60 + 1);
    let browser = Browser::new(app.address.clone());
    let r = sign_in_from(&browser, AGENT, STAFF_PASSWORD, "198.51.100.7").await;
    assert_is_redirect_to(&r, "/console/login/code");
    let r = enter_code(&browser, &totp::code_at(&secret, app.now_ms() / 1000)).await;
    assert_is_redirect_to(&r, "/console/");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM staff_code_throttle").await,
        0
    );
}

// --- 2: cookies under built-in TLS ----------------------------------------------------------

#[tokio::test]
async fn with_built_in_tls_every_cookie_is_secure_and_host_prefixed() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let app = spawn_app_with(move |s| {
        s.http.tls_cert = Some(cert_path);
        s.http.tls_key = Some(key_path);
        assert!(!s.http.secure_cookies, "TLS alone must be enough");
    })
    .await;
    app.add_staff(AGENT, Role::Agent).await;
    let browser = Browser {
        address: format!("https://127.0.0.1:{}", app.port),
        client: reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    };
    // The buyer's CSRF cookie.
    let r = browser.get("/").await;
    let csrf_cookie = set_cookies(&r).join("\n");
    assert!(csrf_cookie.starts_with("__Host-cf_csrf="), "{csrf_cookie}");
    for attr in ["Secure", "HttpOnly", "Path=/"] {
        assert!(csrf_cookie.contains(attr), "{csrf_cookie}");
    }
    assert!(!csrf_cookie.contains("Domain"), "{csrf_cookie}");
    // The staff session cookie, and both are read back under their names: the sign-in form's
    // CSRF check passes and the session opens the console.
    let r = app.console_sign_in(&browser, AGENT, STAFF_PASSWORD).await;
    assert_is_redirect_to(&r, "/console/");
    let staff_cookie = set_cookies(&r)
        .into_iter()
        .find(|c| c.contains("cf_staff="))
        .expect("a session cookie");
    assert!(
        staff_cookie.starts_with("__Host-cf_staff="),
        "{staff_cookie}"
    );
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(staff_cookie.contains(attr), "{staff_cookie}");
    }
    let dash = browser.get("/console/").await;
    assert_eq!(dash.status(), 200);
    // A checkout form posts with the prefixed CSRF cookie too.
    let r = browser
        .post_checkout(&crate::helpers::Checkout::default())
        .await;
    assert_eq!(r.status(), 200);
}

// --- 3: two-factor re-enrolment without re-authentication ------------------------------------

#[tokio::test]
async fn replacing_two_factor_needs_the_password_and_a_current_code_and_ends_other_sessions() {
    let app = behind_proxy(|_| {}).await;
    let old_secret = app.add_admin_with_totp(AGENT).await;
    let sign_in = |app: &TestApp, secret: Vec<u8>, ip: &'static str| {
        let browser = Browser::new(app.address.clone());
        let clock = app.clock.clone();
        async move {
            let r = sign_in_from(&browser, AGENT, STAFF_PASSWORD, ip).await;
            assert_is_redirect_to(&r, "/console/login/code");
            clock.advance_secs(30);
            let code = totp::code_at(&secret, coinfront::clock::Clock::now_ms(&clock) / 1000);
            assert_is_redirect_to(&enter_code(&browser, &code).await, "/console/");
            browser
        }
    };
    let here = sign_in(&app, old_secret.clone(), "198.51.100.7").await;
    let elsewhere = sign_in(&app, old_secret.clone(), "203.0.113.50").await;
    let html = here.get_html("/console/account/totp").await;
    assert!(html.contains("name=\"password\"") && html.contains("name=\"current_code\""));
    let new_secret = extract_hidden(&html, "secret").unwrap();
    let mac = extract_hidden(&html, "secret_mac").unwrap();
    let new_code = |app: &TestApp| {
        totp::code_at(
            &totp::base32_decode(&new_secret).unwrap(),
            app.now_ms() / 1000,
        )
    };
    let stored = || async {
        sqlx::query("SELECT totp_secret FROM staff")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
            .get::<String, _>(0)
    };
    let before = stored().await;
    app.clock.advance_secs(30);
    let current = totp::code_at(&old_secret, app.now_ms() / 1000);
    // A session alone (no password), a wrong password, or no current code: nothing changes.
    for fields in [
        vec![("current_code", current.as_str())],
        vec![
            ("password", "not the password at all"),
            ("current_code", current.as_str()),
        ],
        vec![("password", STAFF_PASSWORD), ("current_code", "000000")],
    ] {
        let mut form = fields.clone();
        let code = new_code(&app);
        form.extend([
            ("secret", new_secret.as_str()),
            ("secret_mac", mac.as_str()),
            ("code", code.as_str()),
        ]);
        let r = post_from(
            &here,
            "/console/account/totp",
            "/console/account/totp",
            &form,
        )
        .await;
        assert_eq!(r.status(), 422, "{fields:?}");
        assert_eq!(stored().await, before, "{fields:?}");
    }
    assert_eq!(elsewhere.get("/console/").await.status(), 200);
    // With both: replaced, and the other session is over while this one goes on.
    let code = new_code(&app);
    let r = post_from(
        &here,
        "/console/account/totp",
        "/console/account/totp",
        &[
            ("password", STAFF_PASSWORD),
            ("current_code", &current),
            ("secret", &new_secret),
            ("secret_mac", &mac),
            ("code", &code),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("recovery-code"));
    assert_ne!(stored().await, before);
    assert_is_redirect_to(&elsewhere.get("/console/").await, "/console/login");
    assert_eq!(here.get("/console/").await.status(), 200);
    assert_eq!(app.count("SELECT COUNT(*) FROM staff_sessions").await, 1);
    // The old authenticator no longer signs in; the new one does.
    app.clock.advance_secs(30);
    let browser = Browser::new(app.address.clone());
    let r = sign_in_from(&browser, AGENT, STAFF_PASSWORD, "198.51.100.7").await;
    assert_is_redirect_to(&r, "/console/login/code");
    let old = totp::code_at(&old_secret, app.now_ms() / 1000);
    assert_eq!(enter_code(&browser, &old).await.status(), 422);
    assert_is_redirect_to(&enter_code(&browser, &new_code(&app)).await, "/console/");
}

#[tokio::test]
async fn an_admin_enrolling_at_first_sign_in_confirms_with_the_password() {
    let app = behind_proxy(|_| {}).await;
    app.add_staff("boss@example.com", Role::Admin).await;
    let browser = Browser::new(app.address.clone());
    let r = sign_in_from(&browser, "boss@example.com", STAFF_PASSWORD, "198.51.100.7").await;
    assert_is_redirect_to(&r, "/console/account/totp");
    let html = browser.get_html("/console/account/totp").await;
    assert!(html.contains("name=\"password\"") && !html.contains("name=\"current_code\""));
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

// --- 6: anyone can lock any staff member out ------------------------------------------------

#[tokio::test]
async fn a_stranger_cannot_lock_a_staff_member_out_from_elsewhere() {
    let app = behind_proxy(|_| {}).await;
    app.add_staff(AGENT, Role::Agent).await;
    let attacker = Browser::new(app.address.clone());
    for n in 1..=5 {
        let r = sign_in_from(&attacker, AGENT, "wrong password number", "203.0.113.66").await;
        if n < 5 {
            assert_eq!(r.status(), 422, "attempt {n}");
        } else {
            assert_eq!(r.status(), 429, "attempt {n}");
            assert!((1..=300).contains(&retry_after(&r)));
        }
    }
    // The attacker's address stays locked, even with the right password…
    let r = sign_in_from(&attacker, AGENT, STAFF_PASSWORD, "203.0.113.66").await;
    assert_eq!(r.status(), 429);
    assert!(retry_after(&r) > 0);
    // …but the agent, from their own address, signs in at once.
    let agent = Browser::new(app.address.clone());
    let r = sign_in_from(&agent, AGENT, STAFF_PASSWORD, "198.51.100.7").await;
    assert_is_redirect_to(&r, "/console/");
    assert_eq!(agent.get("/console/").await.status(), 200);
}

#[tokio::test]
async fn many_addresses_guessing_slow_the_account_down_but_never_lock_it() {
    let app = behind_proxy(|s| {
        s.console.slowdown_after_failures = 6;
        s.console.slowdown_max_seconds = 2;
    })
    .await;
    app.add_staff(AGENT, Role::Agent).await;
    let attacker = Browser::new(app.address.clone());
    // Six addresses, one wrong guess each: under every address's own limit.
    for i in 0..6 {
        let r = sign_in_from(
            &attacker,
            AGENT,
            "wrong password number",
            &format!("203.0.113.{i}"),
        )
        .await;
        assert_eq!(r.status(), 422);
    }
    // Now every attempt on the account waits (1 s, then 2 s) — the real user's too — but the
    // right password still gets in: no lock.
    let started = Instant::now();
    let r = sign_in_from(&attacker, AGENT, "wrong password number", "203.0.113.99").await;
    assert_eq!(r.status(), 422);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    let agent = Browser::new(app.address.clone());
    let started = Instant::now();
    let r = sign_in_from(&agent, AGENT, STAFF_PASSWORD, "198.51.100.7").await;
    assert_is_redirect_to(&r, "/console/");
    assert!(
        started.elapsed() >= Duration::from_millis(1_900),
        "{:?}",
        started.elapsed()
    );
    // The right password clears the account-wide count: no more delay.
    let started = Instant::now();
    let r = sign_in_from(&attacker, AGENT, "wrong password number", "203.0.113.98").await;
    assert_eq!(r.status(), 422);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

// --- 9: stored credentials ------------------------------------------------------------------

#[tokio::test]
async fn recovery_codes_are_salted_argon2id_and_totp_seeds_are_encrypted() {
    let app = behind_proxy(|_| {}).await;
    let browser = app.sign_in_as_agent(AGENT).await;
    let html = browser.get_html("/console/account/totp").await;
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
    let html = r.text().await.unwrap();
    let codes: Vec<String> = html
        .split("<code class=\"recovery-code\">")
        .skip(1)
        .filter_map(|s| s.split("</code>").next().map(str::to_owned))
        .collect();
    assert_eq!(codes.len(), 10);
    let stored_seed: String = sqlx::query("SELECT totp_secret FROM staff")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    assert!(stored_seed.starts_with("enc1:"), "{stored_seed}");
    assert!(!stored_seed.contains(&secret));
    let hashes: Vec<String> = sqlx::query("SELECT code_hash FROM staff_recovery_codes")
        .fetch_all(app.state.db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let salts: std::collections::HashSet<&str> =
        hashes.iter().filter_map(|h| h.split('$').nth(4)).collect();
    assert_eq!(hashes.len(), 10);
    assert!(
        hashes
            .iter()
            .all(|h| h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$")),
        "{hashes:?}"
    );
    assert_eq!(salts.len(), 10, "a salt per code");
    assert!(!hashes.contains(&totp::recovery_prehash(&codes[0])));
    // A recovery code works once; the authenticator through the encrypted seed too.
    for expect_ok in [true, false] {
        let b = Browser::new(app.address.clone());
        let r = sign_in_from(&b, AGENT, STAFF_PASSWORD, "198.51.100.7").await;
        assert_is_redirect_to(&r, "/console/login/code");
        let r = enter_code(&b, &codes[3]).await;
        if expect_ok {
            assert_is_redirect_to(&r, "/console/");
        } else {
            assert_eq!(r.status(), 422);
        }
    }
    app.clock.advance_secs(30);
    let b = Browser::new(app.address.clone());
    assert_is_redirect_to(
        &sign_in_from(&b, AGENT, STAFF_PASSWORD, "198.51.100.7").await,
        "/console/login/code",
    );
    let code = totp::code_at(&totp::base32_decode(&secret).unwrap(), app.now_ms() / 1000);
    assert_is_redirect_to(&enter_code(&b, &code).await, "/console/");
}

#[tokio::test]
async fn clear_seeds_and_sha256_recovery_codes_from_before_keep_working_and_are_upgraded() {
    let app = behind_proxy(|_| {}).await;
    let id = app.add_staff(AGENT, Role::Agent).await;
    // As an older version stored them: the seed in base32, the codes as bare SHA-256.
    let seed = totp::new_secret();
    let codes = totp::new_recovery_codes();
    let legacy: Vec<String> = codes.iter().map(|c| totp::recovery_prehash(c)).collect();
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    coinfront::db::staff::enable_totp(
        &mut conn,
        &id,
        &totp::base32_encode(&seed),
        0,
        &legacy,
        app.now_ms(),
    )
    .await
    .unwrap();
    drop(conn);
    // A legacy code works before the upgrade…
    let b = Browser::new(app.address.clone());
    sign_in_from(&b, AGENT, STAFF_PASSWORD, "198.51.100.7").await;
    assert_is_redirect_to(&enter_code(&b, &codes[0]).await, "/console/");
    // …a clear seed too, and using it seals it.
    let b = Browser::new(app.address.clone());
    sign_in_from(&b, AGENT, STAFF_PASSWORD, "198.51.100.7").await;
    let code = totp::code_at(&seed, app.now_ms() / 1000);
    assert_is_redirect_to(&enter_code(&b, &code).await, "/console/");
    let stored: String = sqlx::query("SELECT totp_secret FROM staff")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    assert!(stored.starts_with("enc1:"), "{stored}");
    // The start-up upgrade wraps the remaining codes in argon2id; they still work.
    coinfront::console::upgrade_stored_secrets(&app.state)
        .await
        .unwrap();
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM staff_recovery_codes WHERE code_hash NOT LIKE '$argon2id$%'"
        )
        .await,
        0
    );
    let b = Browser::new(app.address.clone());
    sign_in_from(&b, AGENT, STAFF_PASSWORD, "198.51.100.7").await;
    assert_is_redirect_to(&enter_code(&b, &codes[1]).await, "/console/");
}

#[cfg(unix)]
#[tokio::test]
async fn the_sqlite_database_and_its_wal_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    // The default database: a SQLite file in the data dir (PostgreSQL has no files here).
    let app = spawn_app_with(|s| s.database_url = None).await;
    app.add_staff(AGENT, Role::Agent).await;
    let browser = app.sign_in_as_agent(AGENT).await;
    assert_eq!(browser.get("/console/").await.status(), 200);
    let data = app.data_dir.path();
    let mut seen = Vec::new();
    for name in [
        "coinfront.db",
        "coinfront.db-wal",
        "coinfront.db-shm",
        "secrets.toml",
    ] {
        if let Ok(meta) = std::fs::metadata(data.join(name)) {
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
            seen.push(name);
        }
    }
    assert!(
        seen.contains(&"coinfront.db") && seen.contains(&"coinfront.db-wal"),
        "{seen:?}"
    );
}
