//! The database: one code base for SQLite (default) and PostgreSQL, through `sqlx::Any` and a
//! portable schema (`BIGINT` money and epoch-millisecond times, `TEXT` ids, enums and JSON).
//! Queries live per aggregate in the files beside this one.

pub mod audit;
pub mod backup;
pub mod disputes;
pub mod emails;
pub mod erasure;
pub mod events;
pub mod jobs;
pub mod live_settings;
pub mod lock;
pub mod notes;
pub mod orders;
pub mod params;
pub mod payments;
pub mod rate_limits;
pub mod refunds;
pub mod retention;
pub mod risk_assessments;
pub mod risk_counts;
pub mod risk_lists;
pub mod sandbox_payments;
pub mod sandbox_supplier;
pub mod sign_in_throttle;
pub mod staff;
pub mod staff_digests;
pub mod staff_sessions;
pub mod support;
pub mod surge;
pub mod webhook_events;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyConnection, AnyPool, Executor, Transaction};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A write transaction ([`Db::begin`]). On SQLite it holds the process's write turn until it
/// commits or is dropped. Used as a connection (`&mut *tx`) by the queries.
pub struct Tx {
    inner: Transaction<'static, Any>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.inner.commit().await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.inner.rollback().await
    }
}

impl std::ops::Deref for Tx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.inner
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// SQLite only: whose turn it is to write (see [`Db::begin`]).
    write_turn: Option<Arc<tokio::sync::Mutex<()>>>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Db {
    /// Connects to `url` (`sqlite://…` or `postgres://…`). For SQLite the file and its folder
    /// are created on first start, with WAL, foreign keys and a busy timeout on every
    /// connection.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        if backend == Backend::Sqlite {
            if let Some(parent) =
                sqlite_path(url).and_then(|p| Path::new(p).parent().map(Path::to_path_buf))
            {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(&parent)?;
                }
            }
            if let Some(path) = sqlite_path(url) {
                private_sqlite_files(Path::new(path))?;
            }
        }
        let mut options = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10));
        if backend == Backend::Sqlite {
            // A local file does not go stale like a network connection: skip the ping before
            // every checkout, which costs more than most of the shop's queries.
            options = options.test_before_acquire(false);
            options = options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    // DISTINCT counts and GROUP BY build temporary b-trees; on disk each one
                    // opens a temporary file, which cost risk scoring ~50 µs per count. They
                    // hold only the rows of one key's window, so memory stays small.
                    conn.execute("PRAGMA temp_store = MEMORY").await?;
                    // No memory-mapped reads (`mmap_size`): at 100 checkouts/s they saved no
                    // measurable CPU, and every mapped page of the file counted in the
                    // process's resident memory (peak 133 MiB in the sustained bench, 60 MiB
                    // without).
                    Ok(())
                })
            });
        }
        if backend == Backend::Postgres {
            options = ping_only_after_idle(options);
        }
        let pool = options.connect(url).await?;
        let write_turn =
            (backend == Backend::Sqlite).then(|| Arc::new(tokio::sync::Mutex::new(())));
        Ok(Db {
            pool,
            backend,
            write_turn,
        })
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Begins a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes can fail with
    /// "database is locked" without waiting, while an immediate one waits its turn.
    ///
    /// SQLite has one writer at a time, and a connection that finds the lock taken sleeps in
    /// SQLite's busy handler (1, 2, 5, 10 … 100 ms) while newcomers may take the lock before
    /// it: under load, a write that needs 100 µs waited seconds. So this process's write
    /// transactions first queue for their turn here (first come, first served, woken the moment
    /// the previous one ends) and meet the busy handler only against another process.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        let turn = match &self.write_turn {
            Some(turn) => Some(turn.clone().lock_owned().await),
            None => None,
        };
        let inner = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(Tx { inner, _turn: turn })
    }

    /// A second pool on the same database, as large as this one, for state that may lose its
    /// last fraction of a second when the database server itself crashes: the shared rate
    /// limits. On PostgreSQL its commits do not wait for the write-ahead log to reach the disk
    /// (`synchronous_commit = off`, per connection), which makes a one-statement write one
    /// round trip instead of a round trip and a disk flush; orders never go through it. On
    /// SQLite it is this pool (commits there wait for no flush in WAL mode with
    /// `synchronous = NORMAL`, and a second pool would only queue for the same write lock).
    pub fn without_commit_flush(&self) -> Db {
        match self.backend {
            Backend::Sqlite => self.clone(),
            Backend::Postgres => {
                let options = self.pool.connect_options().as_ref().clone();
                let pool = ping_only_after_idle(AnyPoolOptions::new())
                    .max_connections(self.pool.options().get_max_connections())
                    .acquire_timeout(Duration::from_secs(10))
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute("SET synchronous_commit = off").await?;
                            Ok(())
                        })
                    })
                    .connect_lazy_with(options);
                Db {
                    pool,
                    backend: Backend::Postgres,
                    write_turn: None,
                }
            }
        }
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    pub async fn close(&self) {
        self.pool.close().await
    }
}

/// The database holds staff password hashes, buyers' emails and orders: owner-only, like
/// `secrets.toml`. A new file is created 0600 before SQLite opens it (SQLite gives its `-wal`
/// and `-shm` files the database file's mode); files an older version created 0644 are
/// narrowed.
fn private_sqlite_files(db: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if !db.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(db)?;
        }
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = db.as_os_str().to_owned();
            name.push(suffix);
            let path = Path::new(&name);
            if let Ok(meta) = std::fs::metadata(path) {
                if meta.permissions().mode() & 0o077 != 0 {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = db;
    Ok(())
}

/// The file path of a `sqlite:` URL (`None` for PostgreSQL or an in-memory database).
pub fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// Whether an error is a unique-constraint violation (works on both backends).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(e) if e.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// Reads a column, turning a type or name mismatch into an error rather than a panic.
pub fn col<'r, T>(row: &'r AnyRow, name: &str) -> Result<T, sqlx::Error>
where
    T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    use sqlx::Row;
    row.try_get(name)
}

/// A pooled PostgreSQL connection idle for longer than this is pinged before it is handed out.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// sqlx pings every connection before handing it out, by default: one more round trip for
/// every statement run outside a transaction (most of a checkout's reads, every job claim).
/// A connection used less than a second ago is known to be alive; one idle for longer may
/// have been dropped by the server or the network (a restart, a proxy's idle timeout), and is
/// pinged, and replaced if the ping fails, as before.
fn ping_only_after_idle(options: AnyPoolOptions) -> AnyPoolOptions {
    options
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}
