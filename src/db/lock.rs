//! Who is using a SQLite database file: a lock file beside it (`coinfront.db.lock`). Every
//! serving shop and every backup holds a shared lock on it for as long as it runs; a restore
//! takes it exclusively, so it cannot start while the shop serves, and the shop cannot start
//! while a restore is under way. The locks are the kernel's (`flock`): they end with the
//! process however it ends, a SIGKILL or a power cut included, so a lock is never left stale.
//! (PostgreSQL needs none: it is backed up and restored with its own tools.)

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DatabaseLock {
    _file: File,
}

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("a restore is replacing {db} (`coinfront restore` holds {lock}); wait until it has finished")]
    BeingRestored { db: String, lock: String },
    #[error("the shop is running on {db} (a coinfront process holds {lock}); stop it first")]
    InUse { db: String, lock: String },
    #[error("cannot open the lock file {lock}: {source}")]
    Io {
        lock: String,
        source: std::io::Error,
    },
}

/// `coinfront.db` → `coinfront.db.lock`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn open(db: &Path) -> Result<(File, String), LockError> {
    let path = lock_path(db);
    let shown = path.display().to_string();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| LockError::Io {
            lock: shown.clone(),
            source,
        })?;
    }
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(&path).map_err(|source| LockError::Io {
        lock: shown.clone(),
        source,
    })?;
    Ok((file, shown))
}

impl DatabaseLock {
    /// A shared lock, for a shop that serves from `db` or a backup that reads it: any number
    /// of them at once, none while a restore runs.
    pub fn shared(db: &Path) -> Result<DatabaseLock, LockError> {
        let (file, lock) = open(db)?;
        match file.try_lock_shared() {
            Ok(()) => Ok(DatabaseLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(LockError::BeingRestored {
                db: db.display().to_string(),
                lock,
            }),
            Err(TryLockError::Error(source)) => Err(LockError::Io { lock, source }),
        }
    }

    /// The exclusive lock a restore needs: only when nothing else uses `db`.
    pub fn exclusive(db: &Path) -> Result<DatabaseLock, LockError> {
        let (file, lock) = open(db)?;
        match file.try_lock() {
            Ok(()) => Ok(DatabaseLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(LockError::InUse {
                db: db.display().to_string(),
                lock,
            }),
            Err(TryLockError::Error(source)) => Err(LockError::Io { lock, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restore_waits_for_every_user_and_users_wait_for_a_restore() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("coinfront.db");
        let serving = DatabaseLock::shared(&db).unwrap();
        let backup = DatabaseLock::shared(&db).unwrap();
        assert!(matches!(
            DatabaseLock::exclusive(&db),
            Err(LockError::InUse { .. })
        ));
        drop(serving);
        assert!(
            DatabaseLock::exclusive(&db).is_err(),
            "the backup still reads"
        );
        drop(backup);
        let restoring = DatabaseLock::exclusive(&db).unwrap();
        assert!(matches!(
            DatabaseLock::shared(&db),
            Err(LockError::BeingRestored { .. })
        ));
        drop(restoring);
        DatabaseLock::shared(&db).unwrap();
    }
}
