//! Start-up as an operator sees it: the real binary, configured by environment.

use std::process::Command;

fn coinfront() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coinfront"));
    let dir = tempfile::tempdir().unwrap().keep();
    cmd.current_dir(&dir)
        .env("COINFRONT_DATA_DIR", dir.join("data"))
        .env_remove("DATABASE_URL");
    cmd
}

fn assert_fails_naming(key_env: &str, value: &str, named: &str) {
    let out = coinfront().env(key_env, value).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{key_env}={value} should stop start-up"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr.lines().next().unwrap_or("");
    assert!(
        first.contains(named),
        "{key_env}: the error line names {named}: {stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one clear line: {stderr}");
}

#[test]
fn a_bad_config_value_stops_start_up_with_one_line_naming_the_key() {
    assert_fails_naming("COINFRONT_BIND", "not-an-address", "bind");
    assert_fails_naming(
        "COINFRONT_CATALOG__CUSTOM_MIN",
        "lots",
        "catalog.custom_min",
    );
    assert_fails_naming(
        "COINFRONT_CATALOG__BASE_CURRENCY",
        "XYZ",
        "catalog.base_currency",
    );
    assert_fails_naming(
        "COINFRONT_PAYMENTS__ORDER_EXPIRY_MINUTES",
        "-3",
        "payments.order_expiry_minutes",
    );
    assert_fails_naming(
        "COINFRONT_RISK__REVIEW_THRESHOLD",
        "90",
        "risk.review_threshold",
    );
    assert_fails_naming("DATABASE_URL", "mysql://x", "database_url");
}

#[test]
fn a_bad_config_file_value_names_the_key_too() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("coinfront.toml");
    std::fs::write(&file, "[catalog]\ntiers = [{ from_coins = 0, price_per_coin = \"0.01\" }, { from_coins = 10, price_per_coin = \"0.02\" }]\n").unwrap();
    let out = coinfront().arg("--config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("catalog") && stderr.contains("never higher"),
        "{stderr}"
    );
}

#[test]
fn migrate_creates_the_sqlite_database_on_first_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = coinfront()
        .env("COINFRONT_DATA_DIR", dir.path().join("data"))
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("data/coinfront.db").exists());
}

/// The key paths a TOML document sets, dotted, walked like the code's own (`key_paths`).
fn set_keys(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                set_keys(&path, v, out);
            }
        }
        // A table with only commented-out keys.
        serde_json::Value::Object(_) => {}
        _ => out.push(prefix.to_owned()),
    }
}

fn is_key_line(line: &str) -> Option<&str> {
    let (key, _) = line.split_once(" = ")?;
    (!key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')).then_some(key)
}

#[test]
fn the_example_config_lists_every_setting_at_its_default_and_nothing_else() {
    use coinfront::config::{print::key_paths, Settings};
    use figment::providers::{Format, Toml};
    use figment::Figment;
    let text = include_str!("../../coinfront.example.toml");
    let defaults = Settings::default();

    // Read by the shop's own loader, it gives exactly the defaults.
    let loaded = Settings::from_figment(Figment::new().merge(Toml::string(text)))
        .unwrap_or_else(|e| panic!("coinfront.example.toml does not load: {e}"));
    let (loaded, expected) = (
        serde_json::to_value(&loaded).unwrap(),
        serde_json::to_value(&defaults).unwrap(),
    );
    let differ: Vec<String> = key_paths(&defaults)
        .into_iter()
        .filter(|k| {
            let pointer = format!("/{}", k.replace('.', "/"));
            loaded.pointer(&pointer) != expected.pointer(&pointer)
        })
        .collect();
    assert!(
        differ.is_empty(),
        "coinfront.example.toml differs from the defaults at {differ:?}"
    );
    assert_eq!(loaded, expected);

    // The keys it sets, and the keys it shows commented out (those with no default).
    let mut listed = Vec::new();
    let parsed: serde_json::Value = Figment::from(Toml::string(text)).extract().unwrap();
    set_keys("", &parsed, &mut listed);
    let mut section = String::new();
    let mut uncommented = String::new();
    let mut commented_header = false;
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let previous = if i > 0 { lines[i - 1] } else { "" };
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = header.to_owned();
            commented_header = previous.starts_with('#');
            uncommented.push_str(line);
        } else if let Some(key) = line.strip_prefix("# ").and_then(is_key_line) {
            listed.push(if section.is_empty() {
                key.to_owned()
            } else {
                format!("{section}.{key}")
            });
            uncommented.push_str(&line[2..]);
        } else {
            uncommented.push_str(line);
        }
        uncommented.push('\n');
        // One line of explanation above each key (a table whose header is explained lists
        // its entries below it).
        if let Some(key) = is_key_line(line).or(line.strip_prefix("# ").and_then(is_key_line)) {
            let explained = previous.starts_with('#')
                && is_key_line(previous[1..].trim_start()).is_none()
                || commented_header
                    && (is_key_line(previous).is_some() || previous.starts_with('['));
            assert!(
                explained,
                "coinfront.example.toml: `{key}` (line {}) has no comment above it",
                i + 1
            );
        }
    }
    let mut known = key_paths(&defaults);
    known.sort();
    listed.sort();
    let missing: Vec<_> = known.iter().filter(|k| !listed.contains(k)).collect();
    let unknown: Vec<_> = listed.iter().filter(|k| !known.contains(k)).collect();
    assert!(
        missing.is_empty(),
        "coinfront.example.toml lacks {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "coinfront.example.toml lists keys the code does not know: {unknown:?}"
    );
    let mut deduped = listed.clone();
    deduped.dedup();
    assert_eq!(deduped, listed, "a key is listed twice");

    // The examples given for the keys with no default are valid values too.
    Settings::from_figment(Figment::new().merge(Toml::string(&uncommented)))
        .unwrap_or_else(|e| panic!("an example value in coinfront.example.toml is refused: {e}"));
}

#[test]
fn check_config_prints_the_settings_in_force_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let out = coinfront()
        .env("COINFRONT_SECRETS__COOKIE_KEY", "hunter2-cookie-key")
        .env("COINFRONT_METRICS__TOKEN", "hunter2-metrics")
        .env("COINFRONT_MAIL__SMTP_PASSWORD", "hunter2-smtp")
        .env("COINFRONT_SHOP_NAME", "Checked Coins")
        .env("COINFRONT_DATA_DIR", dir.path().join("data"))
        .env(
            "DATABASE_URL",
            "postgres://shop:hunter2-db@db.example.com/coins",
        )
        .arg("check-config")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !stdout.contains("hunter2"),
        "a secret was printed:\n{stdout}"
    );
    assert!(stdout.contains("cookie_key = \"[redacted]\""), "{stdout}");
    assert!(stdout.contains("token = \"[redacted]\""), "{stdout}");
    assert!(
        stdout.contains("database_url = \"postgres://shop:[redacted]@db.example.com/coins\""),
        "{stdout}"
    );
    // What it prints is a config file the shop reads back to the same settings.
    use figment::providers::{Format, Toml};
    let read = coinfront::config::Settings::from_figment(
        figment::Figment::new().merge(Toml::string(&stdout)),
    )
    .unwrap_or_else(|e| panic!("{e}\n{stdout}"));
    assert_eq!(read.shop_name, "Checked Coins");
    assert!(
        !dir.path().join("data").exists(),
        "check-config touches nothing"
    );
}

#[test]
fn check_config_exits_non_zero_with_one_line_on_a_bad_setting() {
    for (key, value, named) in [
        ("COINFRONT_JOBS__MAX_ATTEMPTS", "0", "jobs.max_attempts"),
        ("COINFRONT_MAIL__FROM", "not an address", "mail.from"),
        (
            "COINFRONT_HTTP__TLS_CERT",
            "/nonexistent/cert.pem",
            "http.tls_",
        ),
    ] {
        let mut cmd = coinfront();
        cmd.env(key, value).arg("check-config");
        if key == "COINFRONT_HTTP__TLS_CERT" {
            cmd.env("COINFRONT_HTTP__TLS_KEY", "/nonexistent/key.pem");
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{key}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(named), "{key}: {stderr}");
        assert!(out.stdout.is_empty(), "nothing printed as if it were fine");
    }
}
