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
