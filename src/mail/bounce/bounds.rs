//! Bounds checked before a message is parsed: its size, and how many MIME
//! parts it could make the parser build.

use std::sync::LazyLock;

/// Largest message read (a bounce is a few kilobytes; one that quotes the
/// digest, a few hundred).
pub const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;
/// Most MIME parts a message may have, counted (as lines that could open
/// a part, `--boundary`) before it is parsed.
pub const MAX_MIME_PARTS: usize = 1000;

/// A multipart boundary declared anywhere in a message.
static BOUNDARY: LazyLock<regex::bytes::Regex> = LazyLock::new(|| {
    regex::bytes::Regex::new(r#"(?i)boundary[ \t]*=[ \t]*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))"#)
        .expect("valid")
});
/// A part's Content-Type header line.
static CONTENT_TYPE: LazyLock<regex::bytes::Regex> = LazyLock::new(|| {
    regex::bytes::Regex::new(r"(?im)^content-type:[ \t]*(message|multipart)/").expect("valid")
});
static ANY_CONTENT_TYPE: LazyLock<regex::bytes::Regex> =
    LazyLock::new(|| regex::bytes::Regex::new(r"(?im)^content-type:").expect("valid"));
/// A transfer encoding that hides what is inside from a scan of the bytes.
static HIDING_ENCODING: LazyLock<regex::bytes::Regex> = LazyLock::new(|| {
    regex::bytes::Regex::new(r"(?im)^content-transfer-encoding:[ \t]*(base64|quoted-printable)")
        .expect("valid")
});

/// Checks a message's size and part count before anything parses it. The
/// parser splits parts at `--boundary` wherever it stands in a line, so
/// every occurrence of every declared boundary is counted; and it decodes
/// an encoded `message/*` part to parse it again, so a `message/*` or
/// `multipart/*` part in base64 or quoted-printable (which RFC 2045 and
/// 2046 do not allow: those take 7bit, 8bit or binary only) is refused, as
/// its inner parts cannot be counted from the outside.
pub fn check_bounds(raw: &[u8]) -> Result<(), String> {
    if raw.len() > MAX_MESSAGE_BYTES {
        return Err(format!(
            "{} bytes, over the limit of {MAX_MESSAGE_BYTES}",
            raw.len()
        ));
    }
    let too_many = || Err(format!("more than {MAX_MIME_PARTS} MIME parts"));
    if ANY_CONTENT_TYPE
        .find_iter(raw)
        .nth(MAX_MIME_PARTS)
        .is_some()
    {
        return too_many();
    }
    let mut boundaries: Vec<&[u8]> = Vec::new();
    for c in BOUNDARY.captures_iter(raw) {
        let b = c
            .get(1)
            .or_else(|| c.get(2))
            .expect("one of the two")
            .as_bytes();
        if !boundaries.contains(&b) {
            if boundaries.len() == MAX_MIME_PARTS {
                return too_many();
            }
            boundaries.push(b);
        }
    }
    let mut parts = 0;
    for b in boundaries {
        let mut delimiter = b"--".to_vec();
        delimiter.extend_from_slice(b);
        parts += memchr::memmem::find_iter(raw, &delimiter)
            .take(MAX_MIME_PARTS + 1)
            .count();
        if parts > MAX_MIME_PARTS {
            return too_many();
        }
    }
    for m in CONTENT_TYPE.find_iter(raw) {
        let head_start = memchr::memmem::rfind(&raw[..m.start()], b"\n\n")
            .or_else(|| memchr::memmem::rfind(&raw[..m.start()], b"\n\r\n"))
            .map_or(0, |i| i + 1);
        let rest = &raw[m.start()..];
        let head_end = [b"\n\n".as_slice(), b"\n\r\n".as_slice()]
            .iter()
            .filter_map(|sep| memchr::memmem::find(rest, sep))
            .min()
            .map_or(raw.len(), |i| m.start() + i);
        if HIDING_ENCODING.is_match(&raw[head_start..head_end]) {
            return Err(
                "a message/* or multipart/* part in base64 or quoted-printable (only 7bit, 8bit or binary are allowed there)".into(),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::bounce::tests::{fixture, mailboxes};
    use crate::mail::bounce::{read, Unread};

    #[test]
    fn messages_are_bounded_before_they_are_parsed() {
        let mut raw =
            b"From: MAILER-DAEMON@mx.example.org\nContent-Type: multipart/mixed; boundary=b\n\n"
                .to_vec();
        for _ in 0..1_000_000 {
            raw.extend_from_slice(b"--b\n\n");
        }
        assert!(raw.len() < MAX_MESSAGE_BYTES);
        assert!(matches!(
            read(&raw, &mailboxes()),
            Err(Unread::Unusable(why)) if why.contains("MIME parts")
        ));
        let big = vec![b'a'; MAX_MESSAGE_BYTES + 1];
        assert!(check_bounds(&big).unwrap_err().contains("over the limit"));
        // Boundaries not at the start of a line split parts too.
        let mut indented = b"From: MAILER-DAEMON@mx.example.org\nContent-Type: multipart/mixed; boundary=\"b\"\n\n".to_vec();
        for _ in 0..2000 {
            indented.extend_from_slice(b" --b\n\n");
        }
        assert!(check_bounds(&indented).unwrap_err().contains("MIME parts"));
        // A message part in base64 hides its parts from the count.
        let encoded = b"From: MAILER-DAEMON@mx.example.org\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: text/plain\n\nx\n--b\nContent-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nRnJvbTogeAoK\n--b--\n";
        assert!(check_bounds(encoded).unwrap_err().contains("base64"));
        // As every fixture, an ordinary DSN passes.
        let dsn = fixture("postfix-dsn-5.1.1.eml");
        assert!(check_bounds(&dsn).is_ok());
    }
}
