//! The one-time setup link and `coinfront staff add` through the real binary.

use super::*;

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
