//! The run lock: one sending run at a time per database.
//!
//! An advisory lock on `<db>.lock`, released by the kernel when the process
//! ends, however it ends (`kill -9` included), so a crashed run never leaves
//! a stale lock behind. `digest send` and `digest run` hold it while they
//! send; a second one finds it taken and stops. A PostgreSQL store has no
//! file and needs none: its workers share an edition by claiming
//! deliveries (`RunLock::shared`).

use std::fs::File;
use std::path::{Path, PathBuf};

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct RunLock {
    _file: Option<File>,
}

/// Another process holds the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked {
    pub path: PathBuf,
}

impl std::fmt::Display for Locked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "another run holds {}; not running", self.path.display())
    }
}

/// Why the lock could not be taken or tested.
#[derive(Debug, thiserror::Error)]
#[error("{context} {}: {source}", path.display())]
pub struct LockError {
    pub context: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The lock file beside a database: `<db>.lock`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

impl RunLock {
    /// No lock: for a store that several processes may send from at once.
    pub fn shared() -> RunLock {
        RunLock { _file: None }
    }

    /// Takes the lock of the database at `db`, or says who holds it.
    pub fn acquire(db: &Path) -> Result<Result<RunLock, Locked>, LockError> {
        let path = lock_path(db);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| LockError {
                context: "opening the lock file",
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(Ok(RunLock { _file: Some(file) })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(Err(Locked { path })),
            Err(std::fs::TryLockError::Error(source)) => Err(LockError {
                context: "locking",
                path,
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_database_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("d.db");
        let first = RunLock::acquire(&db).unwrap().unwrap();
        let second = RunLock::acquire(&db).unwrap().unwrap_err();
        assert_eq!(second.path, dir.path().join("d.db.lock"));
        drop(first);
        assert!(RunLock::acquire(&db).unwrap().is_ok());
    }
}
