//! Reading what comes back: bounces, complaints and unsubscribe requests.
//!
//! Only what a machine generates about a message counts, read where that
//! machine writes it; nothing is taken from the free text of a body:
//!
//! - **Delivery status notifications** (RFC 3464, `dsn.rs`): a
//!   `multipart/report` whose own part is `message/delivery-status`.
//! - **Feedback reports** (ARF, RFC 5965, `arf.rs`): a `multipart/report`
//!   whose own part is `message/feedback-report`.
//! - **Plain-text bounces** (`text.rs`) from a mail system's own mailbox, in
//!   the form Postfix, Exim, Sendmail, Exchange, Gmail or qmail write them,
//!   with the status code taken from the spot where that program puts it.
//! - **Unsubscribe requests** (`unsubscribe.rs`): mail a person sent to
//!   `unsubscribe_mailto`.
//!
//! Everything else is not a report: automatic replies and ordinary
//! replies, which go to the envelope sender too, are left alone. Messages
//! are bounded before they are parsed (`bounds.rs`).
//!
//! A report carries the VERP token of the bounce address (`bounces+TOKEN@…`,
//! found anywhere in the message, so a mangled report still names it), the
//! Message-IDs of our digests it returns, and the recipients it names;
//! which subscriber that binds to is the pipeline's decision
//! (`pipeline/bounces.rs`): never an address alone.

mod arf;
mod bounds;
mod dsn;
mod text;
mod unsubscribe;

use std::sync::LazyLock;

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use regex::Regex;

pub use bounds::{check_bounds, MAX_MESSAGE_BYTES, MAX_MIME_PARTS};

/// The addresses replies come to, as the patterns that find them: the
/// bounce address with a VERP token, and the unsubscribe address with or
/// without one. Built once per import.
#[derive(Debug, Clone, Default)]
pub struct Mailboxes {
    bounce: Option<Regex>,
    unsubscribe: Option<Regex>,
}

/// `local(+TOKEN)@domain` anywhere in a text, the token captured; with
/// `optional`, the plain address too.
fn address_regex(address: &str, optional: bool) -> Option<Regex> {
    let (local, domain) = address.rsplit_once('@')?;
    Some(
        Regex::new(&format!(
            r"(?i)(?:^|[^A-Za-z0-9._%+\-]){}(?:\+([0-9a-f]{{20}})){}@{}\b",
            regex::escape(local),
            if optional { "?" } else { "" },
            regex::escape(domain)
        ))
        .expect("valid"),
    )
}

impl Mailboxes {
    /// From the configured addresses (`user@domain`).
    pub fn new(bounce: Option<&str>, unsubscribe: Option<&str>) -> Mailboxes {
        Mailboxes {
            bounce: bounce.and_then(|a| address_regex(a, false)),
            unsubscribe: unsubscribe.and_then(|a| address_regex(a, true)),
        }
    }
}

/// What a message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// The digest was not delivered: permanently (5.x.x) or not.
    Failed { permanent: bool },
    /// Not delivered yet (a delay warning): temporary.
    Delayed,
    /// Delivered (a success notification).
    Delivered,
    /// An abuse report.
    Complaint { feedback_type: String },
    /// A request to unsubscribe, by mail.
    Unsubscribe,
    /// Understood, and about nobody: a `not-spam` report, an automatic reply.
    Ignored { why: String },
}

/// One message read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub kind: Kind,
    /// The format it was read as (`RFC 3464`, `ARF`, `Exim`...).
    pub format: &'static str,
    /// The enhanced status code (`5.1.1`).
    pub status: Option<String>,
    /// The server's words, shortened.
    pub diagnostic: Option<String>,
    /// Failed (or complained-about) recipients the report names.
    pub recipients: Vec<String>,
    /// VERP tokens found in the message.
    pub tokens: Vec<String>,
    /// Message-IDs of digests it returns.
    pub message_ids: Vec<crate::mail::MessageId>,
}

impl Report {
    /// Status and diagnostic, for the subscriber's record.
    pub fn describe(&self) -> String {
        match (&self.status, &self.diagnostic) {
            (Some(s), Some(d)) => format!("{s}: {d}"),
            (Some(s), None) => s.clone(),
            (None, Some(d)) => d.clone(),
            (None, None) => String::new(),
        }
    }
}

/// The key a message is recorded under: its Message-ID, or a hash of its
/// bytes when it has none.
pub fn key(raw: &[u8]) -> String {
    match MessageParser::default()
        .parse_headers(raw)
        .as_ref()
        .and_then(Message::message_id)
    {
        Some(id) if !id.trim().is_empty() => format!("<{}>", id.trim()),
        _ => {
            use sha2::{Digest, Sha256};
            let h: String = Sha256::digest(raw)
                .iter()
                .take(16)
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("sha256:{h}")
        }
    }
}

/// Why a message is not acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unread {
    /// Not a machine's report: an automatic reply, a person's mail. Left
    /// alone.
    NotAReport(String),
    /// A report, or something that claims to be one, that can never be
    /// acted on: too large, malformed, without a status code. Left for a
    /// person.
    Unusable(String),
}

impl std::fmt::Display for Unread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unread::NotAReport(why) => write!(f, "not a report: {why}"),
            Unread::Unusable(why) => f.write_str(why),
        }
    }
}

/// An enhanced status code (RFC 3463) in an SMTP reply or a DSN field.
static ENHANCED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[\s#(\[;:'<\x22=])([245])\.(\d{1,3})\.(\d{1,3})(?:$|[\s;:,)\]>'.\x22-])")
        .expect("valid")
});
/// An SMTP reply code at the start of a reply.
static REPLY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*([245])\d\d(?:[\s-]|$)").expect("valid"));
/// Subjects of automatic replies.
static AUTO_REPLY_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(auto(matic)?[ -]?(reply|response|antwort)|auto:|out of (the )?office|ooo\b|on vacation|vacation|away from|abwesen|absence|r[ée]ponse automatique|respuesta autom[áa]tica|risposta automatica)")
        .expect("valid")
});

/// The enhanced status code of an SMTP reply or a DSN field (`550 5.1.1
/// …` → `5.1.1`), else the class of its reply code (`452 …` → `4.0.0`).
fn status_of(text: &str) -> Option<String> {
    if let Some(c) = ENHANCED.captures(text) {
        return Some(format!("{}.{}.{}", &c[1], &c[2], &c[3]));
    }
    REPLY.captures(text).map(|c| format!("{}.0.0", &c[1]))
}

/// When an SMTP server's refusal is about the recipient's mailbox itself
/// (5.1.0-5.1.6, 5.1.10: no such address; 5.2.1: disabled), its status and
/// words: a bounce as sure as a returned report. Other permanent refusals
/// (policy, content, the sender) are not the address's fault.
pub fn rejected_mailbox(reply: &str) -> Option<String> {
    let status = status_of(reply)?;
    let recipient = matches!(
        status.as_str(),
        "5.1.0" | "5.1.1" | "5.1.2" | "5.1.3" | "5.1.4" | "5.1.5" | "5.1.6" | "5.1.10" | "5.2.1"
    );
    recipient.then(|| format!("{status}: {}", shorten(reply)))
}

fn shorten(s: &str) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::text::shorten(&s, 200)
}

/// Header-style fields (`Name: value`, folded lines joined), grouped by
/// blank lines, names lowercased.
fn field_groups(text: &str) -> Vec<Vec<(String, String)>> {
    let mut groups = vec![Vec::new()];
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !groups.last().expect("one").is_empty() {
                groups.push(Vec::new());
            }
            continue;
        }
        let group: &mut Vec<(String, String)> = groups.last_mut().expect("one");
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = group.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            group.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    groups.retain(|g| !g.is_empty());
    groups
}

fn field<'a>(group: &'a [(String, String)], name: &str) -> Option<&'a str> {
    group
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// `rfc822; user@example.com` → `user@example.com`.
fn address_field(value: &str) -> String {
    let v = value.split_once(';').map_or(value, |(_, a)| a).trim();
    v.trim_start_matches('<')
        .trim_end_matches('>')
        .to_ascii_lowercase()
}

/// Every part of the message (nested messages included), depth first.
fn walk<'a>(message: &'a Message<'a>, out: &mut Vec<&'a mail_parser::MessagePart<'a>>) {
    for part in &message.parts {
        out.push(part);
        if let PartType::Message(inner) = &part.body {
            walk(inner, out);
        }
    }
}

fn content_type(part: &mail_parser::MessagePart<'_>) -> String {
    part.content_type()
        .map(|ct| {
            format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()).to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// The parts of a top-level `multipart/report` (its own, not those of a
/// message quoted inside); empty for any other message.
fn report_parts<'a>(message: &'a Message<'a>) -> Vec<&'a mail_parser::MessagePart<'a>> {
    let Some(root) = message.parts.first() else {
        return Vec::new();
    };
    if content_type(root) != "multipart/report" {
        return Vec::new();
    }
    match &root.body {
        PartType::Multipart(ids) => ids
            .iter()
            .filter_map(|id| message.parts.get(*id as usize))
            .collect(),
        _ => Vec::new(),
    }
}

/// Raw header values of the top-level message named `name` (any case).
fn headers<'a>(message: &'a Message<'a>, name: &str) -> Vec<String> {
    message
        .headers_raw()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// Why a message is an automatic reply, if it says it is one (RFC 3834's
/// `Auto-Submitted`, the older `X-Autoreply` family and `Precedence`, or a
/// vacation subject).
fn automatic_reply(message: &Message<'_>) -> Option<String> {
    for v in headers(message, "auto-submitted") {
        let kind = v
            .split([';', ' ', '('])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if !kind.is_empty() && kind != "no" {
            return Some(format!("an automatic reply (Auto-Submitted: {kind})"));
        }
    }
    for name in [
        "x-autoreply",
        "x-autorespond",
        "x-autoresponse",
        "x-autoresponder",
    ] {
        if !headers(message, name).is_empty() {
            return Some(format!("an automatic reply ({name})"));
        }
    }
    for v in headers(message, "precedence") {
        let v = v.trim().to_ascii_lowercase();
        if matches!(v.as_str(), "auto_reply" | "bulk" | "junk") {
            return Some(format!("an automatic reply (Precedence: {v})"));
        }
    }
    let subject = message.subject().unwrap_or_default();
    AUTO_REPLY_SUBJECT.is_match(subject).then(|| {
        format!(
            "an automatic reply (subject {:?})",
            crate::text::shorten(subject, 60)
        )
    })
}

/// The sender's address, lowercased.
fn sender(message: &Message<'_>) -> String {
    message
        .from()
        .and_then(|f| f.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Reads one message (checked with `check_bounds` first).
pub fn read(raw: &[u8], mailboxes: &Mailboxes) -> Result<Report, Unread> {
    check_bounds(raw).map_err(Unread::Unusable)?;
    let message = MessageParser::default()
        .parse(raw)
        .filter(|m| m.headers_raw().next().is_some())
        .ok_or_else(|| Unread::Unusable("not a mail message: no headers".into()))?;
    let mut parts = Vec::new();
    walk(&message, &mut parts);
    // Everything a token or Message-ID may hide in: the raw bytes and every
    // decoded part (a base64 copy of the original, say).
    let mut haystack = String::from_utf8_lossy(raw).into_owned();
    for part in &parts {
        if !matches!(part.body, PartType::Multipart(_) | PartType::Message(_)) {
            haystack.push('\n');
            haystack.push_str(&String::from_utf8_lossy(part.contents()));
        }
    }
    let mut tokens: Vec<String> = Vec::new();
    if let Some(bounce) = &mailboxes.bounce {
        for c in bounce.captures_iter(&haystack) {
            let t = c[1].to_ascii_lowercase();
            if !tokens.contains(&t) {
                tokens.push(t);
            }
        }
    }
    let message_ids = crate::mail::MessageId::find_digests(&haystack);
    let mut report = Report {
        kind: Kind::Ignored { why: String::new() },
        format: "",
        status: None,
        diagnostic: None,
        recipients: Vec::new(),
        tokens,
        message_ids,
    };
    let own_parts = report_parts(&message);
    if let Some(part) = own_parts
        .iter()
        .find(|p| content_type(p) == "message/feedback-report")
    {
        arf::read(part, &mut report);
        return Ok(report);
    }
    if let Some(part) = own_parts.iter().find(|p| {
        matches!(
            content_type(p).as_str(),
            "message/delivery-status" | "message/global-delivery-status"
        )
    }) {
        dsn::read(part, &mut report)?;
        return Ok(report);
    }
    if !own_parts.is_empty() {
        return Err(Unread::Unusable(
            "a multipart/report with neither a delivery-status nor a feedback-report part".into(),
        ));
    }
    let mail = Mail {
        from: sender(&message),
        subject: message.subject().unwrap_or_default().to_owned(),
        automatic: automatic_reply(&message),
        message: &message,
    };
    if let Some(plus) = &mailboxes.unsubscribe {
        if let Some(request) = unsubscribe::read(&mail, plus, &mut report) {
            return request.map(|()| report);
        }
    }
    text::read(&mail, &mut report)?;
    Ok(report)
}

/// A message that is not a `multipart/report`, as the readers of what is
/// left look at it.
struct Mail<'a> {
    /// The sender's address, lowercased.
    from: String,
    subject: String,
    /// Why it is an automatic reply, if it says it is one.
    automatic: Option<String>,
    message: &'a Message<'a>,
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn status_codes_come_from_replies_not_from_addresses_or_numbers() {
        assert_eq!(
            status_of("550 5.1.1 <a@b>: User unknown").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(
            status_of("< #5.1.10 smtp;550 5.1.10 RESOLVER>").as_deref(),
            Some("5.1.10")
        );
        assert_eq!(status_of("452 Mailbox full").as_deref(), Some("4.0.0"));
        assert!(status_of("Postfix 3.5.6 on 10.2.3.4 at 1.2.3.4").is_none());
        assert!(status_of("we sent 550 messages").is_none());
        assert_eq!(
            rejected_mailbox("550 5.1.1 <a@b>: Recipient address rejected").as_deref(),
            Some("5.1.1: 550 5.1.1 <a@b>: Recipient address rejected")
        );
        assert!(rejected_mailbox("554 5.7.1 relay denied").is_none());
    }

    pub(super) fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/bounces")
            .join(name);
        std::fs::read_to_string(path)
            .unwrap()
            .replace("@@VERP@@", "bounces+0123456789abcdef0123@example.com")
            .replace("@@TOKEN@@", "0123456789abcdef0123")
            .replace("@@RCPT@@", "reader@example.org")
            .replace(
                "@@MESSAGE_ID@@",
                "<digest.2022-03-14.0123456789abcdef01234567@example.com>",
            )
            .replace("@@UNIQUE@@", "1")
            .into_bytes()
    }

    pub(super) fn mailboxes() -> Mailboxes {
        Mailboxes::new(Some("bounces@example.com"), Some("unsubscribe@example.com"))
    }

    #[test]
    fn every_fixture_reads_as_its_format_says() {
        let hard = Kind::Failed { permanent: true };
        for (name, format, kind, status) in [
            (
                "postfix-dsn-5.1.1.eml",
                "RFC 3464",
                hard.clone(),
                Some("5.1.1"),
            ),
            (
                "postfix-dsn-delayed-4.4.1.eml",
                "RFC 3464",
                Kind::Delayed,
                Some("4.4.1"),
            ),
            (
                "postfix-dsn-delivered.eml",
                "RFC 3464",
                Kind::Delivered,
                Some("2.0.0"),
            ),
            (
                "postfix-text-4.2.2.eml",
                "Postfix",
                Kind::Failed { permanent: false },
                Some("4.2.2"),
            ),
            ("exim-text-550.eml", "Exim", hard.clone(), Some("5.1.1")),
            (
                "sendmail-text-550.eml",
                "Sendmail",
                hard.clone(),
                Some("5.1.1"),
            ),
            (
                "exchange-text-5.1.10.eml",
                "Exchange",
                hard.clone(),
                Some("5.1.10"),
            ),
            ("gmail-text-5.1.1.eml", "Gmail", hard.clone(), Some("5.1.1")),
            (
                "arf-abuse.eml",
                "ARF (RFC 5965)",
                Kind::Complaint {
                    feedback_type: "abuse".into(),
                },
                None,
            ),
            (
                "arf-redacted.eml",
                "ARF (RFC 5965)",
                Kind::Complaint {
                    feedback_type: "abuse".into(),
                },
                None,
            ),
            (
                "unsubscribe-request.eml",
                "mail to the unsubscribe address",
                Kind::Unsubscribe,
                None,
            ),
        ] {
            let r = read(&fixture(name), &mailboxes()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(r.format, format, "{name}");
            assert_eq!(r.kind, kind, "{name}");
            assert_eq!(r.status.as_deref(), status, "{name}");
            if name != "arf-redacted.eml" {
                assert_eq!(r.tokens, vec!["0123456789abcdef0123".to_owned()], "{name}");
            } else {
                assert!(r.tokens.is_empty());
            }
            if !name.starts_with("unsubscribe") && name != "postfix-dsn-delivered.eml" {
                assert_eq!(
                    r.message_ids.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
                    ["<digest.2022-03-14.0123456789abcdef01234567@example.com>"],
                    "{name}"
                );
            }
        }
        assert!(matches!(
            read(&fixture("not-a-bounce.eml"), &mailboxes()),
            Err(Unread::NotAReport(_))
        ));
        assert!(matches!(
            read(&fixture("bounce-without-code.eml"), &mailboxes()),
            Err(Unread::Unusable(why)) if why.contains("without a status code")
        ));
        assert!(read(b"no headers here", &mailboxes()).is_err());
    }

    #[test]
    fn the_message_key_is_its_message_id_else_a_hash() {
        assert_eq!(key(b"Message-ID: <a@b>\n\nx"), "<a@b>");
        assert!(key(b"Subject: x\n\nx").starts_with("sha256:"));
    }
}
