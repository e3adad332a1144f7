//! The commands besides `serve`. `coinfront staff …` manages staff from the command line:
//! passwords are read from the terminal without echo, or from the first line of standard input
//! when it is not a terminal (for scripts) — never from an argument, where `ps` and shell
//! history would show it. `coinfront check-config` prints the settings in force;
//! `coinfront backup` and `restore` copy a SQLite database out and back (`db::backup`).

use crate::clock::{Clock, SystemClock};
use crate::config::{ConfigError, Secret, Settings};
use crate::db::staff::{self, Role};
use crate::db::{audit, Db};
use crate::domain::BuyerEmail;
use crate::staff::password::{self, HashParams};
use anyhow::{bail, Context};
use std::io::{BufRead, IsTerminal};

fn read_password(email: &str) -> anyhow::Result<Secret> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("Password for {email}: "))
            .context("reading the password")?;
        let again = rpassword::prompt_password("The same password again: ")
            .context("reading the password")?;
        if first != again {
            bail!("the two passwords are not the same; nothing was changed");
        }
        Ok(Secret::new(first))
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        Ok(Secret::new(line.trim_end_matches(['\r', '\n'])))
    }
}

/// `coinfront check-config`: the settings in force as TOML (secrets redacted), after the checks
/// start-up makes beyond the settings' own validation. Touches neither the database nor the
/// data folder.
pub fn check_config(
    settings: &Settings,
    config_file: Option<&std::path::Path>,
) -> Result<String, ConfigError> {
    // The file transport would create its outbox folder; its settings are checked already.
    if settings.mail.transport == "smtp" {
        crate::mail::Mailer::from_settings(settings)?;
    }
    crate::startup::tls_config(&settings.http).map_err(|e| {
        // Its messages start with the key they are about.
        let message = format!("{e:#}");
        match message.split_once(": ") {
            Some((key, problem)) if key.starts_with("http.") => ConfigError::new(key, problem),
            _ => ConfigError::new("http.tls_cert", message),
        }
    })?;
    let source = match config_file {
        Some(path) => path.display().to_string(),
        None if std::path::Path::new("coinfront.toml").exists() => "./coinfront.toml".into(),
        None => "no file".into(),
    };
    Ok(format!(
        "# The settings in force: the defaults, then {source}, then COINFRONT_* and DATABASE_URL.\n\
         # Secrets are shown as \"{redacted}\". The database in use: {url}\n{body}",
        redacted = crate::config::print::REDACTED,
        url = crate::config::print::redact_url(&settings.database_url()),
        body = crate::config::print::effective_toml(settings),
    ))
}

async fn open(settings: &Settings) -> anyhow::Result<Db> {
    std::fs::create_dir_all(&settings.data_dir)?;
    let db = Db::connect(&settings.database_url(), 1).await?;
    db.migrate().await?;
    Ok(db)
}

/// `coinfront staff add --email E --role R`.
pub async fn add(settings: Settings, email: &str, role: &str) -> anyhow::Result<()> {
    let role: Role = role.parse().map_err(|e: String| anyhow::anyhow!(e))?;
    let email = BuyerEmail::parse(email).map_err(|e| anyhow::anyhow!("--email: {e}"))?;
    let password = read_password(email.as_str())?;
    if let Err(e) = password::check_policy(password.expose(), email.as_str()) {
        bail!("{e} Nothing was changed.");
    }
    let hash = password::hash(password, HashParams::from_settings(&settings.console)).await?;
    let db = open(&settings).await?;
    let now = SystemClock.now_ms();
    let mut tx = db.begin().await?;
    if staff::insert(&mut tx, email.as_str(), role, &hash, now)
        .await?
        .is_none()
    {
        bail!(
            "a staff account for {} exists already; nothing was changed",
            email.as_str()
        );
    }
    audit::record(
        &mut tx,
        audit::Entry {
            actor: "cli",
            action: "staff_added",
            subject: email.as_str(),
            detail: "Added with `coinfront staff add`",
            new_value: Some(role.as_str()),
            ..Default::default()
        },
        now,
    )
    .await?;
    tx.commit().await?;
    db.close().await;
    println!(
        "Added {} {}.{}",
        role,
        email.as_str(),
        if role == Role::Admin {
            " At the first sign-in they set up two-factor sign-in (admins must)."
        } else {
            ""
        }
    );
    Ok(())
}

/// `coinfront staff disable --email E`: the account stops working and its sessions end.
pub async fn disable(settings: Settings, email: &str) -> anyhow::Result<()> {
    let db = open(&settings).await?;
    let Some(member) = staff::by_email(db.pool(), email).await? else {
        bail!("no staff account for {email}");
    };
    let now = SystemClock.now_ms();
    let mut tx = db.begin().await?;
    staff::disable(&mut tx, &member.id, now).await?;
    audit::record(
        &mut tx,
        audit::Entry {
            actor: "cli",
            action: "staff_disabled",
            subject: &member.email,
            detail: "Disabled with `coinfront staff disable`; sessions ended",
            ..Default::default()
        },
        now,
    )
    .await?;
    tx.commit().await?;
    db.close().await;
    println!("Disabled {}; their sessions have ended.", member.email);
    Ok(())
}

/// The SQLite database file the settings point at, or why there is none to copy.
fn sqlite_file(settings: &Settings) -> anyhow::Result<std::path::PathBuf> {
    let url = settings.database_url();
    match crate::db::sqlite_path(&url) {
        Some(path) => Ok(path.into()),
        None if url.starts_with("sqlite:") => bail!("an in-memory database has nothing to copy"),
        None => bail!(
            "the database is PostgreSQL: back it up with pg_dump and restore it with pg_restore \
             (see \"Backups\" in the README)"
        ),
    }
}

/// `coinfront backup FILE`: a consistent copy of the SQLite database, taken while the shop
/// serves.
pub async fn backup(settings: &Settings, to: &std::path::Path) -> anyhow::Result<()> {
    let db = sqlite_file(settings)?;
    let copied = crate::db::backup::backup(&db, to).await?;
    println!(
        "Backed up {} to {}: {} orders, {} bytes, integrity checked. Keep {} with it (the keys \
         that sign cookies and encrypt two-factor seeds), unless they are set in the config.",
        db.display(),
        to.display(),
        copied.orders,
        copied.bytes,
        settings.data_dir.join("secrets.toml").display()
    );
    Ok(())
}

/// `coinfront restore FILE`: the backup in place of the SQLite database. Refuses while a shop
/// (or a backup) uses the database.
pub async fn restore(settings: &Settings, from: &std::path::Path) -> anyhow::Result<()> {
    let db = sqlite_file(settings)?;
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let copied = crate::db::backup::restore(&db, from, &now).await?;
    let kept = match &copied.replaced_kept_as {
        Some(path) => format!(" The database it replaced is kept as {}.", path.display()),
        None => String::new(),
    };
    println!(
        "Restored {} into {}: {} orders, integrity checked.{kept} Start the shop to serve it \
         (it runs any newer migrations first).",
        from.display(),
        db.display(),
        copied.orders,
    );
    Ok(())
}
