//! The Message-IDs the list writes, and finding them again in what comes
//! back. One place knows the format: the digest's `<digest.DATE.HASH@DOMAIN>`
//! (fixed per edition and subscriber, so a copy re-sent after a crash
//! carries the same one) and the approval request's
//! `<digest.DATE.approval.vN.HASH@DOMAIN>`; the confirmation's and the
//! welcome's `<confirm.HASH@DOMAIN>` and `<welcome.HASH@DOMAIN>`.

use std::sync::LazyLock;

use chrono::NaiveDate;
use regex::Regex;
use sha2::{Digest, Sha256};

/// A Message-ID (with its angle brackets) that this list wrote.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageId(String);

/// A digest's Message-ID as it appears anywhere in a message.
static DIGEST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"<digest\.\d{4}-\d{2}-\d{2}\.[0-9a-f]{24}@[A-Za-z0-9.\-]+>").expect("valid")
});

impl MessageId {
    /// The digest of `date` sent to the subscriber whose unsubscribe token
    /// is `token`: a hash of the token, so it reveals nothing.
    pub fn digest(date: NaiveDate, token: &str, domain: &str) -> MessageId {
        let mut h = Sha256::new();
        h.update(b"dailydigest message-id\0");
        h.update(date.to_string().as_bytes());
        h.update(b"\0");
        h.update(token.as_bytes());
        let digest: String = h.finalize()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        MessageId(format!("<digest.{date}.{digest}@{domain}>"))
    }

    /// The request to approve version `version` of the edition of `date`
    /// sent to the editor at `editor`.
    pub fn approval(date: NaiveDate, version: i64, editor: &str, domain: &str) -> MessageId {
        MessageId(format!(
            "<digest.{date}.approval.v{version}.{}@{domain}>",
            crate::article::short_hash(&[editor])
        ))
    }

    /// The confirmation mail of the sign-up token `token`.
    pub fn confirmation(token: &str, domain: &str) -> MessageId {
        MessageId(format!(
            "<confirm.{}@{domain}>",
            keyed(b"dailydigest confirmation\0", token)
        ))
    }

    /// The welcome to the subscriber whose unsubscribe token is `token`.
    pub fn welcome(token: &str, domain: &str) -> MessageId {
        MessageId(format!(
            "<welcome.{}@{domain}>",
            keyed(b"dailydigest welcome\0", token)
        ))
    }

    /// Every digest Message-ID in `text`, each once, in order of first
    /// appearance (a bounce quotes the one it is about in its headers, its
    /// report or its copy of the message).
    pub fn find_digests(text: &str) -> Vec<MessageId> {
        let mut out: Vec<MessageId> = Vec::new();
        for m in DIGEST.find_iter(text) {
            if !out.iter().any(|x| x.0 == m.as_str()) {
                out.push(MessageId(m.as_str().to_owned()));
            }
        }
        out
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// 96 bits of SHA-256 over `kind` and `token`, hex: names a message after a
/// token without revealing it.
fn keyed(kind: &[u8], token: &str) -> String {
    let mut h = Sha256::new();
    h.update(kind);
    h.update(token.as_bytes());
    h.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_id_is_fixed_per_edition_and_token_and_found_again() {
        let d = NaiveDate::from_ymd_opt(2022, 3, 14).unwrap();
        let a = MessageId::digest(d, "token-a", "example.com");
        assert_eq!(a, MessageId::digest(d, "token-a", "example.com"));
        assert_ne!(a, MessageId::digest(d, "token-b", "example.com"));
        assert_ne!(
            a,
            MessageId::digest(d.succ_opt().unwrap(), "token-a", "example.com")
        );
        assert!(!a.as_str().contains("token-a"));
        let text = format!("In-Reply-To: {a}\r\n\r\nquoted {a} and <other@example.com>");
        assert_eq!(MessageId::find_digests(&text), [a]);
    }

    #[test]
    fn an_approval_id_is_not_taken_for_a_digest() {
        let d = NaiveDate::from_ymd_opt(2022, 3, 14).unwrap();
        let id = MessageId::approval(d, 3, "ed@example.com", "example.com");
        assert!(id.as_str().starts_with("<digest.2022-03-14.approval.v3."));
        assert!(MessageId::find_digests(id.as_str()).is_empty());
    }
}
