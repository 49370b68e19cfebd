//! Reading a file a setting or a mailbox names: only a regular file (never
//! a device such as `/dev/zero`, a pipe or a folder), and only up to a
//! limit, checked before anything is read.

use std::io::Read;
use std::path::Path;

/// The most a key or password file may hold.
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// It does not exist (or vanished: a Maildir file another program
    /// moved).
    #[error("no such file")]
    Missing,
    /// A folder, device, pipe or socket (or, when links are refused, a
    /// symbolic link).
    #[error("is {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("is {size} bytes, over the limit of {limit}")]
    TooBig { size: u64, limit: u64 },
    #[error("{0}")]
    Io(std::io::Error),
}

fn kind_of(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_fifo() {
        "a pipe"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// An opened regular file and its size. The file is opened without
/// blocking (a pipe cannot hang the open) and its type checked on the open
/// handle, so nothing can swap it between the check and the read. With
/// `follow_links` false a symbolic link is refused.
pub fn open_regular(path: &Path, follow_links: bool) -> Result<(std::fs::File, u64), FileError> {
    use std::os::unix::fs::OpenOptionsExt;
    // Not even opened when it is something else (opening a device can do
    // things); the check on the open handle below closes the race.
    let before = if follow_links {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    };
    match before {
        Ok(m) if !m.file_type().is_file() => {
            return Err(FileError::NotRegular(kind_of(m.file_type())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(FileError::Missing),
        _ => {}
    }
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if !follow_links {
        flags |= libc::O_NOFOLLOW;
    }
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(FileError::Missing),
        // O_NOFOLLOW on a link: ELOOP.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(FileError::NotRegular("a symbolic link"))
        }
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
            return Err(FileError::NotRegular("a directory"))
        }
        Err(e) => return Err(FileError::Io(e)),
    };
    let meta = file.metadata().map_err(FileError::Io)?;
    if !meta.file_type().is_file() {
        return Err(FileError::NotRegular(kind_of(meta.file_type())));
    }
    Ok((file, meta.len()))
}

/// Reads a regular file of at most `limit` bytes.
pub fn read_regular(path: &Path, limit: u64, follow_links: bool) -> Result<Vec<u8>, FileError> {
    let (file, size) = open_regular(path, follow_links)?;
    if size > limit {
        return Err(FileError::TooBig { size, limit });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // The file may grow after the check: never read past the limit.
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(FileError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(FileError::TooBig {
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// A key or password file named by setting `key`: a regular file of at
/// most `MAX_SECRET_BYTES`, as text. The error names the setting and the
/// file, never its contents.
pub fn read_secret(key: &'static str, path: &Path) -> Result<String, super::ConfigError> {
    let invalid = |message: String| super::ConfigError::Invalid { key, message };
    let bytes = read_regular(path, MAX_SECRET_BYTES, true)
        .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    String::from_utf8(bytes).map_err(|_| invalid(format!("{}: not UTF-8 text", path.display())))
}

/// Whether other users of the machine may read the file (its mode has the
/// "others may read" bit).
pub fn world_readable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_folders_and_big_files_are_refused_before_reading() {
        assert!(matches!(
            read_regular(Path::new("/dev/zero"), 10, true),
            Err(FileError::NotRegular("a device"))
        ));
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_regular(dir.path(), 10, true),
            Err(FileError::NotRegular("a directory"))
        ));
        let f = dir.path().join("f");
        std::fs::write(&f, "0123456789x").unwrap();
        assert!(matches!(
            read_regular(&f, 10, true),
            Err(FileError::TooBig { size: 11, .. })
        ));
        assert_eq!(read_regular(&f, 11, true).unwrap(), b"0123456789x");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert!(read_regular(&link, 11, true).is_ok());
        assert!(matches!(
            read_regular(&link, 11, false),
            Err(FileError::NotRegular("a symbolic link"))
        ));
        assert!(matches!(
            read_regular(&dir.path().join("gone"), 11, true),
            Err(FileError::Missing)
        ));
        let err = read_secret("dkim_key_file", dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("dkim_key_file") && err.contains("directory"),
            "{err}"
        );
    }
}
