//! Where bounces are read from: message files, mbox files (RFC 4155) and
//! Maildir folders, one bounded message at a time, and the filing of a
//! Maildir message once it is processed (`cur/`, seen or not) or can never
//! be (the Maildir++ folder `.Unprocessed/`).
//!
//! Only regular files are read (never a device, a pipe or, in a Maildir, a
//! link), each at most `MAX_MESSAGE_BYTES`. mail-parser's own mbox reader
//! holds a whole message however large, so mboxes are split here, with the
//! same bound.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use super::bounce::MAX_MESSAGE_BYTES;
use crate::config::files::{open_regular, read_regular, FileError};

/// One message found: where it is, its bytes (or why they cannot be
/// read), and for a Maildir message its file.
pub struct Found {
    pub location: String,
    pub bytes: Result<Vec<u8>, NotRead>,
    pub maildir_file: Option<PathBuf>,
}

/// Why a message's bytes were not read.
#[derive(Debug)]
pub enum NotRead {
    /// Never will be: too large, or not a message file at all.
    Never(String),
    /// Not now (permissions, an I/O error): perhaps later.
    NotNow(String),
}

impl From<FileError> for NotRead {
    fn from(e: FileError) -> NotRead {
        match e {
            FileError::Io(_) | FileError::Missing => NotRead::NotNow(e.to_string()),
            FileError::TooBig { .. } | FileError::NotRegular(_) => NotRead::Never(e.to_string()),
        }
    }
}

/// What one path holds.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    Maildir(&'a Path),
    Mbox(&'a Path),
    File(&'a Path),
}

/// A path that holds no messages digest can read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}: {1}")]
    Unreadable(String, std::io::Error),
    #[error("{0}: not a Maildir (it has no new/ or cur/ folder)")]
    NotAMaildir(String),
    #[error("{0}: not a message file, an mbox or a Maildir folder (only regular files are read)")]
    NotAFile(String),
}

impl<'a> Source<'a> {
    /// What `path` is: a Maildir folder, an mbox (a regular file that
    /// starts with `From `) or one message file.
    pub fn of(path: &'a Path) -> Result<Source<'a>, SourceError> {
        let shown = || path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| SourceError::Unreadable(shown(), e))?;
        if meta.is_dir() {
            if !path.join("new").is_dir() && !path.join("cur").is_dir() {
                return Err(SourceError::NotAMaildir(shown()));
            }
            return Ok(Source::Maildir(path));
        }
        let (mut f, _) = open_regular(path, true).map_err(|e| match e {
            FileError::Io(e) => SourceError::Unreadable(shown(), e),
            _ => SourceError::NotAFile(shown()),
        })?;
        let mut head = [0u8; 5];
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => return Err(SourceError::Unreadable(shown(), e)),
            }
        }
        Ok(if &head[..n] == b"From " {
            Source::Mbox(path)
        } else {
            Source::File(path)
        })
    }
}

/// A Maildir file's unique name: its name before the `:2,` flags, which
/// moving it keeps.
pub fn maildir_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.split(':').next().unwrap_or_default().to_owned()
}

/// Whether a Maildir file is in `cur/` (a mail client, or an earlier
/// import, moved it there).
pub fn in_cur(path: &Path) -> bool {
    path.parent().and_then(Path::file_name) == Some("cur".as_ref())
}

/// The files of a Maildir: `new/` first, then `cur/` (a mail client may
/// have moved unprocessed ones there), by name. Whether each is a message
/// file is checked when it is read.
pub fn maildir_files(dir: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        let folder = dir.join(sub);
        let entries = match std::fs::read_dir(&folder) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(SourceError::Unreadable(folder.display().to_string(), e)),
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                !p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
            })
            .collect();
        paths.sort();
        out.extend(paths);
    }
    Ok(out)
}

/// One Maildir file (never through a link); `None` when it vanished
/// before it was read (an IMAP server or another import moved it).
pub fn maildir_message(path: PathBuf) -> Option<Found> {
    let bytes = match read_regular(&path, MAX_MESSAGE_BYTES as u64, false) {
        Ok(b) => Ok(b),
        Err(FileError::Missing) => return None,
        Err(e) => Err(NotRead::from(e)),
    };
    Some(Found {
        location: path.display().to_string(),
        bytes,
        maildir_file: Some(path),
    })
}

/// One message file named on the command line.
pub fn file_message(path: &Path) -> Found {
    Found {
        location: path.display().to_string(),
        bytes: read_regular(path, MAX_MESSAGE_BYTES as u64, true).map_err(NotRead::from),
        maildir_file: None,
    }
}

/// Reads one line of at most `limit` bytes into `line` (the rest of a
/// longer line is passed over, and the line marked cut); returns the bytes
/// consumed, 0 at the end.
fn read_line_bounded(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    limit: usize,
    cut: &mut bool,
) -> std::io::Result<usize> {
    let mut consumed = 0;
    *cut = false;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(consumed);
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let room = limit.saturating_sub(line.len());
        if chunk.len() > room {
            *cut = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let n = chunk.len();
        reader.consume(n);
        consumed += n;
        if done {
            return Ok(consumed);
        }
    }
}

/// The messages of an mbox (mboxrd's `>From ` quoting undone), one in
/// memory at a time. A message over `MAX_MESSAGE_BYTES` comes as
/// `NotRead::Never`, never read into memory: the reader passes over it to
/// the next `From ` line.
pub struct Mbox {
    path: PathBuf,
    reader: std::io::BufReader<std::fs::File>,
    /// The `From ` line of the next message was read.
    started: bool,
    count: usize,
    line: Vec<u8>,
}

impl Mbox {
    pub fn open(path: &Path) -> Result<Mbox, SourceError> {
        let (file, _) = open_regular(path, true).map_err(|e| match e {
            FileError::Io(e) => SourceError::Unreadable(path.display().to_string(), e),
            _ => SourceError::NotAFile(path.display().to_string()),
        })?;
        Ok(Mbox {
            path: path.to_path_buf(),
            reader: std::io::BufReader::new(file),
            started: false,
            count: 0,
            line: Vec::new(),
        })
    }
}

impl Iterator for Mbox {
    type Item = std::io::Result<Found>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut bytes = Vec::new();
        let mut too_big = false;
        let mut cut = false;
        loop {
            self.line.clear();
            let n = match read_line_bounded(
                &mut self.reader,
                &mut self.line,
                MAX_MESSAGE_BYTES + 1,
                &mut cut,
            ) {
                Ok(n) => n,
                Err(e) => return Some(Err(e)),
            };
            let at_next = n == 0 || self.line.starts_with(b"From ");
            if at_next {
                let had_one = self.started;
                self.started = n > 0;
                if had_one {
                    self.count += 1;
                    return Some(Ok(Found {
                        location: format!("{} (message {})", self.path.display(), self.count),
                        bytes: if too_big {
                            Err(NotRead::Never(format!(
                                "larger than {MAX_MESSAGE_BYTES} bytes"
                            )))
                        } else {
                            Ok(bytes)
                        },
                        maildir_file: None,
                    }));
                }
                if n == 0 {
                    return None;
                }
                continue;
            }
            if !self.started || too_big {
                continue;
            }
            let line = &self.line;
            let unquoted = match line.iter().position(|&b| b != b'>') {
                Some(i) if i > 0 && line[i..].starts_with(b"From ") => &line[1..],
                _ => &line[..],
            };
            if cut || bytes.len() + unquoted.len() > MAX_MESSAGE_BYTES {
                too_big = true;
                bytes = Vec::new();
            } else {
                bytes.extend_from_slice(unquoted);
            }
        }
    }
}

/// Moves a processed message into `cur/`, marked seen (`S`) or not (a
/// message for a person to read). A message in `cur/` already stays.
pub fn move_to_cur(path: &Path, seen: bool) -> std::io::Result<()> {
    if path.parent().and_then(Path::file_name) != Some("new".as_ref()) {
        return Ok(());
    }
    let cur = path
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("cur"))
        .ok_or_else(|| std::io::Error::other("not in a Maildir"))?;
    std::fs::create_dir_all(&cur)?;
    let flags = if seen { ":2,S" } else { ":2," };
    std::fs::rename(path, cur.join(format!("{}{flags}", maildir_name(path))))
}

/// The Maildir++ folder unprocessable messages are moved to.
pub const ASIDE: &str = ".Unprocessed";

/// Moves a message that can never be processed to the Maildir++ folder
/// `.Unprocessed/` (its `cur/`, unseen): out of the way of every later
/// import, kept for a person. Returns where it went.
pub fn move_aside(path: &Path) -> std::io::Result<PathBuf> {
    let maildir = path
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| std::io::Error::other("not in a Maildir"))?;
    let aside = maildir.join(ASIDE);
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(aside.join(sub))?;
    }
    let to = aside.join("cur").join(format!("{}:2,", maildir_name(path)));
    std::fs::rename(path, &to)?;
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mbox_is_read_one_bounded_message_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("box");
        let mut text =
            String::from("From a Mon Mar 14 06:01:11 2022\nSubject: one\n\n>From the start\n");
        text.push_str("From b Mon Mar 14 06:01:12 2022\nSubject: two\n\n");
        text.push_str(&"x".repeat(MAX_MESSAGE_BYTES + 10));
        text.push_str("\nFrom c Mon Mar 14 06:01:13 2022\nSubject: three\n\nend\n");
        std::fs::write(&path, text).unwrap();
        assert!(matches!(Source::of(&path).unwrap(), Source::Mbox(_)));
        let got: Vec<Found> = Mbox::open(&path).unwrap().map(Result::unwrap).collect();
        assert_eq!(got.len(), 3);
        let bytes = |i: usize| match &got[i].bytes {
            Ok(b) => b.clone(),
            Err(_) => panic!("message {i} not read"),
        };
        assert_eq!(
            bytes(0),
            b"Subject: one\n\nFrom the start\n",
            "mboxrd quoting undone"
        );
        assert!(matches!(&got[1].bytes, Err(NotRead::Never(why)) if why.contains("larger than")));
        assert!(got[1].location.ends_with("(message 2)"));
        assert_eq!(bytes(2), b"Subject: three\n\nend\n");
        assert!(matches!(
            Source::of(Path::new("/dev/zero")),
            Err(SourceError::NotAFile(_))
        ));
    }
}
