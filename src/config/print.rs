//! The settings written back out as TOML, for `coinfront check-config`: every key the code
//! knows, in the file's own layout, with secrets shown as `[redacted]` (`Secret`'s own
//! serialisation) and a password in `database_url` blanked out the same way. Keys with no value
//! are printed commented out, so the output also lists what could be set.

use super::Settings;
use serde_json::Value;
use std::fmt::Write;

/// Shown in place of a secret.
pub const REDACTED: &str = "[redacted]";

/// The effective settings as a TOML document (sections in the order of the code).
pub fn effective_toml(settings: &Settings) -> String {
    let mut value = serde_json::to_value(settings).expect("settings serialise");
    if let Some(Value::String(url)) = value.get_mut("database_url") {
        *url = redact_url(url);
    }
    let mut out = String::new();
    write_table(&mut out, "", &value);
    out
}

/// `postgres://user:pass@host/db?password=x` with both passwords replaced by `[redacted]`.
pub fn redact_url(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let mut out = match head.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let authority = match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _)) => format!("{user}:{REDACTED}@{host}"),
                    None => authority.to_owned(),
                },
                None => authority.to_owned(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => head.to_owned(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.to_ascii_lowercase().contains("password") => {
                    format!("{k}={REDACTED}")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// The key paths of every setting, dotted (`jobs.lease_seconds`; map entries such as
/// `catalog.exchange_rates.EUR` too), walked from their serialised form so that the list can
/// never fall behind the code.
pub fn key_paths(settings: &Settings) -> Vec<String> {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    walk(&join(prefix, k), v, out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }
    let mut out = Vec::new();
    walk(
        "",
        &serde_json::to_value(settings).expect("settings serialise"),
        &mut out,
    );
    out
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// A table: its plain values first (TOML wants them before any sub-table), then each non-empty
/// sub-table under its own `[header]`.
fn write_table(out: &mut String, path: &str, table: &Value) {
    let Value::Object(map) = table else { return };
    for (k, v) in map {
        match v {
            Value::Object(sub) if !sub.is_empty() => {}
            Value::Null => {
                let _ = writeln!(out, "# {} is not set", toml_key(k));
            }
            _ => {
                let _ = writeln!(out, "{} = {}", toml_key(k), inline(v));
            }
        }
    }
    for (k, v) in map {
        if let Value::Object(sub) = v {
            if !sub.is_empty() {
                let sub_path = join(path, &toml_key(k));
                // A table of tables needs no header of its own.
                if sub
                    .values()
                    .any(|v| !matches!(v, Value::Object(m) if !m.is_empty()))
                {
                    let _ = writeln!(out, "\n[{sub_path}]");
                }
                write_table(out, &sub_path, v);
            }
        }
    }
}

fn toml_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        key.to_owned()
    } else {
        inline(&Value::String(key.to_owned()))
    }
}

/// One value on one line. JSON's string escapes are all valid in a TOML basic string.
fn inline(value: &Value) -> String {
    match value {
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(inline).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{} = {}", toml_key(k), inline(v)))
                .collect();
            if items.is_empty() {
                "{}".to_owned()
            } else {
                format!("{{ {} }}", items.join(", "))
            }
        }
        // Only inside an array or inline table, where TOML has no way to say "unset".
        Value::Null => "\"\"".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::{Format, Toml};
    use figment::Figment;

    #[test]
    fn passwords_in_database_urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://shop:hunter2@db.example.com:5432/coins?sslmode=require"),
            "postgres://shop:[redacted]@db.example.com:5432/coins?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://shop@db/coins?password=hunter2&sslmode=require"),
            "postgres://shop@db/coins?password=[redacted]&sslmode=require"
        );
        assert_eq!(
            redact_url("sqlite://./data/coinfront.db?mode=rwc"),
            "sqlite://./data/coinfront.db?mode=rwc"
        );
    }

    #[test]
    fn the_printed_settings_read_back_as_the_same_settings() {
        let mut settings = Settings {
            shop_name: "Quote \" and \\ backslash".into(),
            ..Default::default()
        };
        settings.catalog.packages = vec![1, 2];
        let printed = effective_toml(&settings);
        let read = Settings::from_figment(Figment::new().merge(Toml::string(&printed)))
            .unwrap_or_else(|e| panic!("{e}\n{printed}"));
        assert_eq!(
            serde_json::to_value(&read).unwrap(),
            serde_json::to_value(&settings).unwrap()
        );
    }

    #[test]
    fn secrets_print_redacted() {
        let mut settings = Settings {
            database_url: Some("postgres://u:hunter2-db@h/d".into()),
            ..Default::default()
        };
        settings.secrets.cookie_key = Some(super::super::Secret::new("hunter2-cookie"));
        settings.mail.smtp_password = Some(super::super::Secret::new("hunter2-smtp"));
        let printed = effective_toml(&settings);
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("cookie_key = \"[redacted]\""), "{printed}");
    }
}
