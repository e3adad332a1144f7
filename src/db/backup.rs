//! Backing up and restoring a SQLite database file while keeping it whole.
//!
//! A backup is `VACUUM INTO`: one read transaction, so it is a consistent snapshot of the
//! database at one moment, taken while the shop goes on writing (WAL lets writers carry on
//! beside a reader). It is written to `FILE.partial`, checked with `PRAGMA integrity_check`,
//! and only then renamed to `FILE`, so a file with the backup's name is always a whole one.
//!
//! A restore needs the shop stopped (the exclusive lock of `lock.rs`). It copies the backup
//! beside the database, checks the copy, sets the current database aside (checkpointed first,
//! so nothing of it is left in its WAL file) as `coinfront.db.before-restore-<time>`, and
//! renames the copy into place. The next start runs any migrations the backup lacks.

use super::lock::DatabaseLock;
use anyhow::{bail, Context};
use sqlx::{AnyConnection, Connection, Row};
use std::path::{Path, PathBuf};

/// What a backup or restore did, for its one line of output.
#[derive(Debug)]
pub struct Copied {
    pub orders: i64,
    pub bytes: u64,
    /// Restore only: where the database it replaced was kept.
    pub replaced_kept_as: Option<PathBuf>,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn url_of(path: &Path, mode: &str) -> String {
    format!("sqlite://{}?mode={mode}", path.display())
}

async fn open(path: &Path, mode: &str) -> anyhow::Result<AnyConnection> {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(&url_of(path, mode))
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    sqlx::query("PRAGMA busy_timeout = 10000")
        .execute(&mut conn)
        .await?;
    Ok(conn)
}

/// `PRAGMA integrity_check` says "ok", and the file is a coinfront database (it has the
/// migrations table and orders). Returns the number of orders.
pub async fn check(conn: &mut AnyConnection, shown: &Path) -> anyhow::Result<i64> {
    let rows = sqlx::query("PRAGMA integrity_check")
        .fetch_all(&mut *conn)
        .await
        .with_context(|| format!("{} is not a SQLite database", shown.display()))?;
    let verdict: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()?;
    if verdict != ["ok"] {
        bail!(
            "{} is damaged: integrity check says {}",
            shown.display(),
            verdict.join("; ")
        );
    }
    let not_ours = || format!("{} is not a coinfront database", shown.display());
    sqlx::query("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&mut *conn)
        .await
        .with_context(not_ours)?;
    sqlx::query("SELECT COUNT(*) FROM orders")
        .fetch_one(&mut *conn)
        .await
        .and_then(|r| r.try_get(0))
        .with_context(not_ours)
}

fn create_private_empty(path: &Path) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    Ok(())
}

fn sync(path: &Path) -> anyhow::Result<()> {
    std::fs::File::open(path)?.sync_all()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename itself is durable only once the folder is synced.
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

/// Copies the database at `db` into the new file `to`, while the shop may be serving.
pub async fn backup(db: &Path, to: &Path) -> anyhow::Result<Copied> {
    if !db.exists() {
        bail!("there is no database at {}", db.display());
    }
    if to.exists() {
        bail!(
            "{} exists already; a backup never overwrites a file, so give a new name",
            to.display()
        );
    }
    let _lock = DatabaseLock::shared(db)?;
    let partial = with_suffix(to, ".partial");
    // A partial file is what an interrupted backup left: never a backup, safe to replace.
    let _ = std::fs::remove_file(&partial);
    // Created owner-only before SQLite writes into it: it holds what the database holds.
    create_private_empty(&partial)?;
    let result = async {
        let mut live = open(db, "rw").await?;
        let target = partial
            .to_str()
            .context("the backup's path is not valid UTF-8")?;
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(&mut live)
            .await
            .with_context(|| format!("copying {} into {}", db.display(), partial.display()))?;
        live.close().await?;
        let mut copy = open(&partial, "rw").await?;
        let orders = check(&mut copy, &partial).await?;
        copy.close().await?;
        sync(&partial)?;
        std::fs::rename(&partial, to)
            .with_context(|| format!("renaming {} to {}", partial.display(), to.display()))?;
        sync(to)?;
        Ok(Copied {
            orders,
            bytes: std::fs::metadata(to)?.len(),
            replaced_kept_as: None,
        })
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Puts the backup `from` in place of the database at `db`. Refuses while anything uses `db`.
/// `now` names the file the replaced database is kept as.
pub async fn restore(db: &Path, from: &Path, now: &str) -> anyhow::Result<Copied> {
    if !from.is_file() {
        bail!("there is no backup file at {}", from.display());
    }
    let _lock = DatabaseLock::exclusive(db)?;
    let incoming = with_suffix(db, ".restoring");
    let _ = std::fs::remove_file(&incoming);
    create_private_empty(&incoming)?;
    let result = async {
        std::fs::copy(from, &incoming)
            .with_context(|| format!("copying {} to {}", from.display(), incoming.display()))?;
        let mut copy = open(&incoming, "rw").await?;
        let orders = check(&mut copy, from).await?;
        copy.close().await?;
        sync(&incoming)?;
        let replaced_kept_as = if db.exists() {
            // Everything the current database holds into its main file, so that the file set
            // aside is whole on its own.
            let mut current = open(db, "rw").await?;
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&mut current)
                .await
                .with_context(|| format!("checkpointing {}", db.display()))?;
            current.close().await?;
            let kept = with_suffix(db, &format!(".before-restore-{now}"));
            std::fs::rename(db, &kept)
                .with_context(|| format!("setting {} aside", db.display()))?;
            Some(kept)
        } else {
            None
        };
        // A WAL file left beside the restored database would be replayed into it.
        for suffix in ["-wal", "-shm", "-journal"] {
            let stale = with_suffix(db, suffix);
            if stale.exists() {
                std::fs::remove_file(&stale)
                    .with_context(|| format!("removing {}", stale.display()))?;
            }
        }
        std::fs::rename(&incoming, db)
            .with_context(|| format!("renaming {} to {}", incoming.display(), db.display()))?;
        sync(db)?;
        Ok(Copied {
            orders,
            bytes: std::fs::metadata(db)?.len(),
            replaced_kept_as,
        })
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&incoming);
    }
    result
}
