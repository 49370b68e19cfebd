//! Queue files beside the database (`<db>.unsubscribes`, `<db>.signups`):
//! what a visitor asked for while the database was busy, appended and
//! synced to disk before the visitor hears "done", and applied later.
//!
//! Appends and the drain hold the file's lock, so a drain never loses a
//! line appended while it worked. The file is emptied only once every line
//! is applied; a drain that stops part-way leaves them all, and the next
//! applies the first ones again (what the queues hold is harmless to apply
//! twice), so no write that could fail half-way ever rewrites a line. A
//! line that is not UTF-8 (a damaged disk, a hand edit) is dropped with a
//! warning: it cannot hold up the lines after it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// One queue file.
#[derive(Debug, Clone)]
pub struct QueueFile {
    path: PathBuf,
}

impl QueueFile {
    pub fn new(path: PathBuf) -> QueueFile {
        QueueFile { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line (no line breaks in it) and syncs it to disk. The
    /// file is created readable by its owner only: it holds addresses.
    pub fn append(&self, line: &str) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        debug_assert!(!line.contains('\n'));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)?;
        file.lock()?;
        file.write_all(format!("{line}\n").as_bytes())?;
        file.sync_all()
    }

    /// Gives the queued lines to `apply`, which says whether it applied
    /// them all; then (and only then) the file is emptied. The file stays
    /// locked throughout. Returns how many lines were removed; a queue that
    /// cannot be read is left as it is, with a warning.
    pub fn drain(&self, apply: impl FnOnce(&[String]) -> bool) -> usize {
        let warn = |e: std::io::Error| {
            tracing::warn!(
                "{}: {e}; what it holds waits for the next try",
                self.path.display()
            );
            0
        };
        let mut file = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return 0,
            Err(e) => return warn(e),
        };
        if let Err(e) = file.lock() {
            return warn(e);
        }
        let mut bytes = Vec::new();
        if let Err(e) = file.read_to_end(&mut bytes) {
            return warn(e);
        }
        let mut lines = Vec::new();
        let mut dropped = 0;
        for raw in bytes.split(|&b| b == b'\n') {
            match std::str::from_utf8(raw) {
                Ok(l) if l.trim().is_empty() => {}
                Ok(l) => lines.push(l.trim().to_owned()),
                Err(_) => dropped += 1,
            }
        }
        if dropped > 0 {
            tracing::warn!(
                "{}: {dropped} damaged lines (not UTF-8) dropped",
                self.path.display()
            );
        }
        if lines.is_empty() && dropped == 0 {
            return 0;
        }
        if !apply(&lines) {
            return 0;
        }
        // Everything is recorded durably by now: the queue can go.
        if let Err(e) = file.set_len(0).and_then(|_| file.sync_all()) {
            tracing::warn!(
                "{}: {e} (what it held is applied; applying it again is harmless)",
                self.path.display()
            );
        }
        lines.len() + dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_kept_until_all_are_done_and_damaged_ones_do_not_block_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let q = QueueFile::new(dir.path().join("q"));
        assert_eq!(q.drain(|_| panic!("nothing queued")), 0);
        q.append("a").unwrap();
        q.append("b").unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(q.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Stopped part-way: everything stays, in order.
        assert_eq!(
            q.drain(|lines| {
                assert_eq!(lines, ["a", "b"]);
                false
            }),
            0
        );
        // A byte that is not UTF-8 in the middle.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(q.path())
            .unwrap();
        f.write_all(b"\xff\xfe\n").unwrap();
        q.append("c").unwrap();
        let mut seen = Vec::new();
        assert_eq!(
            q.drain(|lines| {
                seen = lines.to_vec();
                true
            }),
            4
        );
        assert_eq!(seen, ["a", "b", "c"]);
        assert_eq!(std::fs::read(q.path()).unwrap(), b"");
    }
}
