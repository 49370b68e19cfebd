//! Reading what comes back: bounces, complaints and unsubscribe requests.
//!
//! - **Delivery status notifications** (RFC 3464): `multipart/report` with a
//!   `message/delivery-status` part; the first recipient's `Action` and
//!   `Status` decide (`failed` 5.x.x: permanent; `failed` 4.x.x or
//!   `delayed`: temporary; `delivered`, `relayed`, `expanded`: success).
//! - **Feedback reports** (ARF, RFC 5965): a `message/feedback-report`
//!   part; every type but `not-spam` is a complaint.
//! - **Plain-text bounces** without a status part, as Postfix, Exim,
//!   Sendmail, Exchange and Gmail write them: a message that looks like a
//!   bounce (sent by a mailer daemon, a bounce subject, or addressed to the
//!   bounce address) and carries a status code (`5.1.1`, or a reply code
//!   such as `550`) before the copy of the original message.
//! - **Unsubscribe requests**: mail to the `unsubscribe_mailto` address.
//!
//! A report names its subscriber by the VERP token of the bounce address
//! (`bounces+TOKEN@…`, found anywhere in the message, so a mangled report
//! still names it), by the Message-ID of the digest it returns, or by the
//! failed recipient's address. Anything else is an error that says why: it
//! is left for a person, never guessed at.

use std::sync::LazyLock;

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use regex::Regex;

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
    pub message_ids: Vec<String>,
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

    /// The edition a returned digest belongs to (from its Message-ID).
    pub fn edition(&self) -> Option<String> {
        self.message_ids.iter().find_map(|id| {
            let date = id.strip_prefix("<digest.")?.get(..10)?;
            chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
                .ok()
                .map(|d| d.to_string())
        })
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

static ENHANCED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[\s#(\[;:'<\x22=])([245])\.(\d{1,3})\.(\d{1,3})(?:$|[\s;:,)\]>'.\x22-])")
        .expect("valid")
});
static REPLY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)(?:^\s*|said:\s*|<<<\s*|smtp;\s*|returned\s+'|error:\s*)([45])\d\d[\s-]")
        .expect("valid")
});
static OUR_MESSAGE_ID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"<digest\.\d{4}-\d{2}-\d{2}\.[0-9a-f]{24}@[A-Za-z0-9.\-]+>").expect("valid")
});
static BOUNCE_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)undeliver|returned (mail|to sender)|delivery (status notification|has failed|failure|failed)|mail delivery failed|failure notice|could not be delivered|non.?delivery|delivery problem|warning: message .* delayed",
    )
    .expect("valid")
});
/// A VERP token in an unsubscribe request's subject.
static SUBJECT_TOKEN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b([0-9a-f]{20})\b").expect("valid"));
/// A temporary failure that is a delay warning.
static DELAYED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\bdelayed\b|not yet been delivered|will (keep|continue) trying|still trying")
        .expect("valid")
});
/// Where a plain-text bounce starts quoting the original message.
static QUOTE_START: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?im)^[ \t]*-{2,}.*(copy of the message|original message|message headers follow|undelivered message|returned message).*$|^.*below this line is a copy of the message.*$")
        .expect("valid")
});

fn status_of(text: &str) -> Option<(String, String)> {
    let line_of = |at: usize| {
        let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
        shorten(text[start..end].trim())
    };
    if let Some(c) = ENHANCED.captures(text) {
        let code = format!("{}.{}.{}", &c[1], &c[2], &c[3]);
        return Some((code, line_of(c.get(1).expect("group").start())));
    }
    let c = REPLY.captures(text)?;
    let class = &c[1];
    Some((
        format!("{class}.0.0"),
        line_of(c.get(1).expect("group").start()),
    ))
}

/// When an SMTP server's refusal is about the recipient's mailbox itself
/// (5.1.0-5.1.6, 5.1.10: no such address; 5.2.1: disabled), its status and
/// words: a bounce as sure as a returned report. Other permanent refusals
/// (policy, content, the sender) are not the address's fault.
pub fn rejected_mailbox(reply: &str) -> Option<String> {
    let (status, line) = status_of(reply)?;
    let recipient = matches!(
        status.as_str(),
        "5.1.0" | "5.1.1" | "5.1.2" | "5.1.3" | "5.1.4" | "5.1.5" | "5.1.6" | "5.1.10" | "5.2.1"
    );
    recipient.then(|| format!("{status}: {line}"))
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

/// A recipient group's `Action`, lowercased, without comments.
fn action_of(group: &[(String, String)]) -> String {
    field(group, "action")
        .and_then(|a| a.split_whitespace().next())
        .unwrap_or("")
        .to_ascii_lowercase()
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

/// Raw header values of the top-level message named `name` (any case).
fn headers<'a>(message: &'a Message<'a>, name: &str) -> Vec<String> {
    message
        .headers_raw()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// Reads one message.
pub fn read(raw: &[u8], mailboxes: &Mailboxes) -> Result<Report, String> {
    let message = MessageParser::default()
        .parse(raw)
        .filter(|m| m.headers_raw().next().is_some())
        .ok_or("not a mail message: no headers")?;
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
    let mut message_ids: Vec<String> = Vec::new();
    for m in OUR_MESSAGE_ID.find_iter(&haystack) {
        if !message_ids.iter().any(|x| x == m.as_str()) {
            message_ids.push(m.as_str().to_owned());
        }
    }
    let mut report = Report {
        kind: Kind::Ignored { why: String::new() },
        format: "",
        status: None,
        diagnostic: None,
        recipients: Vec::new(),
        tokens,
        message_ids,
    };

    // ARF (RFC 5965).
    if let Some(part) = parts
        .iter()
        .find(|p| content_type(p) == "message/feedback-report")
    {
        let text = String::from_utf8_lossy(part.contents());
        let fields: Vec<(String, String)> = field_groups(&text).into_iter().flatten().collect();
        let feedback_type = field(&fields, "feedback-type")
            .unwrap_or("abuse")
            .to_ascii_lowercase();
        for name in ["original-rcpt-to", "removal-recipient"] {
            for (_, v) in fields.iter().filter(|(n, _)| n == name) {
                report.recipients.push(address_field(v));
            }
        }
        report.format = "ARF (RFC 5965)";
        report.kind = if feedback_type == "not-spam" {
            Kind::Ignored {
                why: "a not-spam feedback report".into(),
            }
        } else {
            Kind::Complaint { feedback_type }
        };
        return Ok(report);
    }

    // DSN (RFC 3464).
    if let Some(part) = parts.iter().find(|p| {
        matches!(
            content_type(p).as_str(),
            "message/delivery-status" | "message/global-delivery-status"
        )
    }) {
        report.format = "RFC 3464";
        let text = String::from_utf8_lossy(part.contents());
        let groups = field_groups(&text);
        let recipients: Vec<&Vec<(String, String)>> = groups
            .iter()
            .filter(|g| field(g, "action").is_some())
            .collect();
        let rank = |g: &&&Vec<(String, String)>| match action_of(g).as_str() {
            "failed" => 0,
            "delayed" => 1,
            "delivered" | "relayed" | "expanded" => 2,
            _ => 3,
        };
        let Some(group) = recipients.iter().min_by_key(rank) else {
            return Err("a delivery status notification with no recipient's Action".into());
        };
        let action = action_of(group);
        for name in ["final-recipient", "original-recipient"] {
            if let Some(v) = field(group, name) {
                let a = address_field(v);
                if !report.recipients.contains(&a) {
                    report.recipients.push(a);
                }
            }
        }
        let diagnostic = field(group, "diagnostic-code")
            .map(|d| shorten(d.split_once(';').map_or(d, |(_, t)| t)));
        let status = field(group, "status")
            .and_then(|s| status_of(&format!(" {s} ")).map(|(code, _)| code))
            .or_else(|| diagnostic.as_deref().and_then(status_of).map(|(c, _)| c));
        report.diagnostic = diagnostic;
        report.status = status.clone();
        report.kind = match (action.as_str(), status.as_deref()) {
            ("failed", Some(s)) if s.starts_with('5') => Kind::Failed { permanent: true },
            ("failed", Some(s)) if s.starts_with('4') => Kind::Failed { permanent: false },
            ("failed", _) => {
                return Err("a failure notification without a 4.x.x or 5.x.x status".into())
            }
            ("delayed", _) => Kind::Delayed,
            ("delivered" | "relayed" | "expanded", _) => Kind::Delivered,
            (other, _) => {
                return Err(format!(
                    "a delivery status notification with Action {other:?}"
                ))
            }
        };
        return Ok(report);
    }

    // Mail to the unsubscribe address.
    if let Some(plus) = &mailboxes.unsubscribe {
        let recipient_headers: Vec<String> =
            ["delivered-to", "x-original-to", "envelope-to", "to", "cc"]
                .iter()
                .flat_map(|h| headers(&message, h))
                .collect();
        let addressed: Vec<regex::Captures<'_>> = recipient_headers
            .iter()
            .filter_map(|h| plus.captures(h))
            .collect();
        if !addressed.is_empty() {
            report.format = "mail to the unsubscribe address";
            let token = addressed
                .iter()
                .find_map(|c| c.get(1).map(|m| m.as_str().to_ascii_lowercase()))
                .or_else(|| {
                    message
                        .subject()
                        .and_then(|s| SUBJECT_TOKEN.captures(s))
                        .map(|c| c[1].to_ascii_lowercase())
                });
            let Some(token) = token else {
                let from = message
                    .from()
                    .and_then(|f| f.first())
                    .and_then(|a| a.address())
                    .unwrap_or("an unknown sender")
                    .to_owned();
                return Err(format!(
                    "a message to the unsubscribe address from {from} carries no subscriber token (neither in the address nor in the subject)"
                ));
            };
            report.kind = Kind::Unsubscribe;
            report.tokens = vec![token];
            return Ok(report);
        }
    }

    // A plain-text bounce.
    let from = message
        .from()
        .and_then(|f| f.first())
        .map(|a| {
            format!(
                "{} {}",
                a.name().unwrap_or_default(),
                a.address().unwrap_or_default()
            )
            .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let subject = message.subject().unwrap_or_default().to_owned();
    let failed_recipients = headers(&message, "x-failed-recipients");
    let looks_like_bounce = from.contains("mailer-daemon")
        || from.contains("postmaster")
        || from.contains("mail delivery")
        || BOUNCE_SUBJECT.is_match(&subject)
        || !failed_recipients.is_empty()
        || (!report.tokens.is_empty()
            && ["delivered-to", "x-original-to", "envelope-to", "to"]
                .iter()
                .flat_map(|h| headers(&message, h))
                .any(|v| v.to_ascii_lowercase().contains(&report.tokens[0])));
    let auto_reply = headers(&message, "auto-submitted")
        .iter()
        .any(|v| v.to_ascii_lowercase().starts_with("auto-replied"));
    if auto_reply && !looks_like_bounce {
        report.kind = Kind::Ignored {
            why: "an automatic reply (Auto-Submitted: auto-replied)".into(),
        };
        report.format = "automatic reply";
        return Ok(report);
    }
    if !looks_like_bounce {
        return Err(format!(
            "not a bounce, complaint or unsubscribe request (from {}, subject {:?})",
            from.trim(),
            crate::text::shorten(&subject, 80)
        ));
    }
    let body: String = message
        .text_bodies()
        .filter_map(|p| p.text_contents())
        .collect::<Vec<_>>()
        .join("\n");
    let body = if body.trim().is_empty() {
        String::from_utf8_lossy(raw).into_owned()
    } else {
        body
    };
    // Only the report itself: not the copy of the original message.
    let own = match QUOTE_START.find(&body) {
        Some(m) => &body[..m.start()],
        None => &body[..],
    };
    let Some((status, line)) = status_of(own) else {
        return Err(format!(
            "a bounce without a status code (from {}, subject {:?})",
            from.trim(),
            crate::text::shorten(&subject, 80)
        ));
    };
    report.format = if own.contains("This is the mail system at host") {
        "Postfix"
    } else if own.contains("created automatically by mail delivery software") {
        "Exim"
    } else if own.contains("Transcript of session follows")
        || own.contains("The following addresses had permanent fatal errors")
    {
        "Sendmail"
    } else if own.contains("Diagnostic information for administrators")
        || own.contains("Remote Server returned")
    {
        "Exchange"
    } else if from.contains("googlemail.com") || from.contains("gmail.com") {
        "Gmail"
    } else {
        "plain-text bounce"
    };
    for v in &failed_recipients {
        for a in v.split(',') {
            let a = a.trim().trim_matches(['<', '>']).to_ascii_lowercase();
            if a.contains('@') && !report.recipients.contains(&a) {
                report.recipients.push(a);
            }
        }
    }
    report.kind = if status.starts_with('5') {
        Kind::Failed { permanent: true }
    } else if status.starts_with('4') {
        if DELAYED.is_match(own) || DELAYED.is_match(&subject) {
            Kind::Delayed
        } else {
            Kind::Failed { permanent: false }
        }
    } else {
        return Err(format!(
            "a bounce whose status code {status} is not a failure (from {})",
            from.trim()
        ));
    };
    report.status = Some(status);
    report.diagnostic = Some(line);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_are_found_and_addresses_are_not_taken_for_them() {
        assert_eq!(
            status_of("host mx[10.2.3.4] said: 550 5.1.1 <a@b>: User unknown")
                .unwrap()
                .0,
            "5.1.1"
        );
        assert_eq!(
            status_of("Remote Server returned '< #5.1.10 smtp;550 5.1.10 RESOLVER>'")
                .unwrap()
                .0,
            "5.1.10"
        );
        assert_eq!(status_of("<<< 452 Mailbox full").unwrap().0, "4.0.0");
        assert!(status_of("Postfix 3.5.6 on 10.2.3.4 at 1.2.3.4").is_none());
        assert!(status_of("we sent 550 messages").is_none());
    }

    #[test]
    fn dsn_fields_group_and_unfold() {
        let g = field_groups(
            "Reporting-MTA: dns; mx.example.com\r\n\r\nFinal-Recipient: rfc822; A@Example.com\r\nAction: failed\r\nDiagnostic-Code: smtp; 550 5.1.1\r\n  user unknown\r\n",
        );
        assert_eq!(g.len(), 2);
        assert_eq!(
            field(&g[1], "diagnostic-code"),
            Some("smtp; 550 5.1.1 user unknown")
        );
        assert_eq!(
            address_field(field(&g[1], "final-recipient").unwrap()),
            "a@example.com"
        );
    }

    fn fixture(name: &str) -> Vec<u8> {
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

    fn mailboxes() -> Mailboxes {
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
                assert_eq!(r.edition().as_deref(), Some("2022-03-14"), "{name}");
            }
        }
        for (name, why) in [
            ("not-a-bounce.eml", "not a bounce"),
            ("bounce-without-code.eml", "without a status code"),
        ] {
            let e = read(&fixture(name), &mailboxes()).unwrap_err();
            assert!(e.contains(why), "{name}: {e}");
        }
        assert!(read(b"no headers here", &mailboxes()).is_err());
    }

    #[test]
    fn a_mangled_bounce_still_names_its_subscriber_by_verp() {
        // Only the envelope address survived: no report part, no copy.
        let raw = b"From: MAILER-DAEMON@mx.example.org\nTo: bounces+0123456789abcdef0123@example.com\nSubject: failure notice\n\nSorry. 550 5.2.1 mailbox disabled\n";
        let r = read(raw, &mailboxes()).unwrap();
        assert_eq!(r.kind, Kind::Failed { permanent: true });
        assert_eq!(r.tokens, vec!["0123456789abcdef0123".to_owned()]);
        // An out-of-office reply is nobody's bounce.
        let raw = b"From: a@example.org\nTo: digest@example.com\nAuto-Submitted: auto-replied\nSubject: Out of office\n\nBack on Monday.\n";
        assert!(matches!(
            read(raw, &mailboxes()).unwrap().kind,
            Kind::Ignored { .. }
        ));
        // The message key: its Message-ID, else a hash.
        assert_eq!(key(b"Message-ID: <a@b>\n\nx"), "<a@b>");
        assert!(key(b"Subject: x\n\nx").starts_with("sha256:"));
    }

    #[test]
    fn the_edition_comes_from_our_message_id() {
        let r = Report {
            kind: Kind::Delayed,
            format: "",
            status: None,
            diagnostic: None,
            recipients: vec![],
            tokens: vec![],
            message_ids: vec!["<digest.2022-03-14.0123456789abcdef01234567@example.com>".into()],
        };
        assert_eq!(r.edition().as_deref(), Some("2022-03-14"));
    }
}
