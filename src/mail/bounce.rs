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

/// Largest message read (a bounce is a few kilobytes; one that quotes the
/// digest, a few hundred).
pub const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;
/// Most MIME parts a message may have, counted (as lines that could open
/// a part, `--boundary`) before it is parsed.
pub const MAX_MIME_PARTS: usize = 1000;

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

/// An enhanced status code (RFC 3463) in an SMTP reply or a DSN field.
static ENHANCED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[\s#(\[;:'<\x22=])([245])\.(\d{1,3})\.(\d{1,3})(?:$|[\s;:,)\]>'.\x22-])")
        .expect("valid")
});
/// An SMTP reply code at the start of a reply.
static REPLY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*([245])\d\d(?:[\s-]|$)").expect("valid"));
static OUR_MESSAGE_ID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"<digest\.\d{4}-\d{2}-\d{2}\.[0-9a-f]{24}@[A-Za-z0-9.\-]+>").expect("valid")
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
    Regex::new(r"(?im)^[ \t]*-{2,}.*(copy of the message|original message|message headers follow|undelivered message|returned message).*$|^.*below this line is a copy of the message.*$|^original message headers:")
        .expect("valid")
});
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

/// Whether the sender is a mail system's own mailbox: a mailer daemon or
/// postmaster, or Exchange's system mailbox (`MicrosoftExchange` and 32
/// hex digits).
fn from_mail_system(sender: &str) -> bool {
    let local = sender.rsplit_once('@').map_or(sender, |(l, _)| l);
    matches!(local, "mailer-daemon" | "postmaster" | "mail-daemon")
        || local
            .strip_prefix("microsoftexchange")
            .is_some_and(|rest| rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The mail programs whose plain-text bounces are read: how each is
/// recognised, and the pattern for the spot where it writes the remote
/// server's reply (group 1: the reply code, group 2: the enhanced status
/// code, when it gives one).
struct TextFormat {
    name: &'static str,
    recognise: fn(&str, &str) -> bool,
    status: &'static LazyLock<Regex>,
}

static POSTFIX_STATUS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)^<[^>\n]+>:[^\n]*\bsaid:\s+([245]\d\d)(?:[ -]+([245]\.\d{1,3}\.\d{1,3}))?")
        .expect("valid")
});
static EXIM_STATUS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"SMTP error from remote (?:mail server|mailer) after [^\n]*:\s*(?:host [^\n]*?\]:\s*)?([245]\d\d)(?:[ -]+([245]\.\d{1,3}\.\d{1,3}))?")
        .expect("valid")
});
static SENDMAIL_STATUS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)\(reason:\s*([245]\d\d)(?:[ -]+([245]\.\d{1,3}\.\d{1,3}))?|^<<<\s*([245]\d\d)(?:[ -]+([245]\.\d{1,3}\.\d{1,3}))?")
        .expect("valid")
});
static EXCHANGE_STATUS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)Remote Server returned '(?:<\s*#?(?:[245]\.\d{1,3}\.\d{1,3})\s+smtp;\s*)?([245]\d\d)(?:[ -]+([245]\.\d{1,3}\.\d{1,3}))?")
        .expect("valid")
});
static GMAIL_STATUS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"The response (?:from the remote server )?was:\s*([245]\d\d)(?:[ -]+([245]\.\d{1,3}\.\d{1,3}))?")
        .expect("valid")
});
static QMAIL_STATUS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"Remote host said:\s*([245]\d\d)(?:[ -]+([245]\.\d{1,3}\.\d{1,3}))?")
        .expect("valid")
});

const TEXT_FORMATS: [TextFormat; 6] = [
    TextFormat {
        name: "Postfix",
        recognise: |own, _| {
            own.contains("This is the mail system at host")
                || own.contains("This is the Postfix program at host")
        },
        status: &POSTFIX_STATUS,
    },
    TextFormat {
        name: "Exim",
        recognise: |own, _| own.contains("created automatically by mail delivery software"),
        status: &EXIM_STATUS,
    },
    TextFormat {
        name: "Sendmail",
        recognise: |own, _| {
            own.contains("Transcript of session follows")
                || own.contains("The following addresses had permanent fatal errors")
        },
        status: &SENDMAIL_STATUS,
    },
    TextFormat {
        name: "Exchange",
        recognise: |own, _| {
            own.contains("Diagnostic information for administrators")
                || own.contains("Remote Server returned")
        },
        status: &EXCHANGE_STATUS,
    },
    TextFormat {
        name: "Gmail",
        recognise: |_, sender| {
            sender.ends_with("@googlemail.com") || sender.ends_with("@google.com")
        },
        status: &GMAIL_STATUS,
    },
    TextFormat {
        name: "qmail",
        recognise: |own, _| own.contains("This is the qmail-send program"),
        status: &QMAIL_STATUS,
    },
];

/// The status code at the spot `format` writes it: the enhanced code when
/// given, else the reply code's class; and the line it stands on.
fn text_status(format: &TextFormat, own: &str) -> Option<(String, String)> {
    let c = format.status.captures(own)?;
    // Groups come in (reply, enhanced) pairs, one pair per alternative.
    let (reply, enhanced) = match c.get(1) {
        Some(reply) => (reply, c.get(2)),
        None => (c.get(3)?, c.get(4)),
    };
    let class = &reply.as_str()[..1];
    let status = match enhanced {
        Some(e) if e.as_str().starts_with(class) => e.as_str().to_owned(),
        _ => format!("{class}.0.0"),
    };
    let at = reply.start();
    let start = own[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = own[at..].find('\n').map_or(own.len(), |i| at + i);
    Some((status, shorten(own[start..end].trim())))
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
    let own_parts = report_parts(&message);

    // ARF (RFC 5965).
    if let Some(part) = own_parts
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
    if let Some(part) = own_parts.iter().find(|p| {
        matches!(
            content_type(p).as_str(),
            "message/delivery-status" | "message/global-delivery-status"
        )
    }) {
        report.format = "RFC 3464";
        let unusable = |why: String| Err(Unread::Unusable(why));
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
            return unusable("a delivery status notification with no recipient's Action".into());
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
        // `Diagnostic-Code: smtp; 550 5.1.1 …`: the remote server's reply.
        let diagnostic = field(group, "diagnostic-code")
            .map(|d| shorten(d.split_once(';').map_or(d, |(_, t)| t)));
        let status = field(group, "status")
            .and_then(|s| status_of(&format!(" {s} ")))
            .or_else(|| diagnostic.as_deref().and_then(status_of));
        report.diagnostic = diagnostic;
        report.status = status.clone();
        report.kind = match (action.as_str(), status.as_deref()) {
            ("failed", Some(s)) if s.starts_with('5') => Kind::Failed { permanent: true },
            ("failed", Some(s)) if s.starts_with('4') => Kind::Failed { permanent: false },
            ("failed", _) => {
                return unusable("a failure notification without a 4.x.x or 5.x.x status".into())
            }
            ("delayed", _) => Kind::Delayed,
            ("delivered" | "relayed" | "expanded", _) => Kind::Delivered,
            (other, _) => {
                return unusable(format!(
                    "a delivery status notification with Action {other:?}"
                ))
            }
        };
        return Ok(report);
    }
    if !own_parts.is_empty() {
        return Err(Unread::Unusable(
            "a multipart/report with neither a delivery-status nor a feedback-report part".into(),
        ));
    }

    let from = sender(&message);
    let subject = message.subject().unwrap_or_default().to_owned();
    let automatic = automatic_reply(&message);

    // Mail a person sent to the unsubscribe address.
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
        if !addressed.is_empty() && !from_mail_system(&from) {
            if let Some(why) = automatic {
                return Err(Unread::NotAReport(why));
            }
            report.format = "mail to the unsubscribe address";
            let token = addressed
                .iter()
                .find_map(|c| c.get(1).map(|m| m.as_str().to_ascii_lowercase()))
                .or_else(|| {
                    SUBJECT_TOKEN
                        .captures(&subject)
                        .map(|c| c[1].to_ascii_lowercase())
                });
            let Some(token) = token else {
                let from = if from.is_empty() {
                    "an unknown sender"
                } else {
                    &from
                };
                return Err(Unread::Unusable(format!(
                    "a message to the unsubscribe address from {from} carries no subscriber token (neither in the address nor in the subject)"
                )));
            };
            report.kind = Kind::Unsubscribe;
            report.tokens = vec![token];
            return Ok(report);
        }
    }

    // A plain-text bounce: a mail system's, in a form we know.
    if !from_mail_system(&from) {
        return Err(Unread::NotAReport(automatic.unwrap_or_else(|| {
            format!(
                "a message from {} (subject {:?}): not a bounce, complaint or unsubscribe request",
                if from.is_empty() { "nobody" } else { &from },
                crate::text::shorten(&subject, 80)
            )
        })));
    }
    let body: String = message
        .text_bodies()
        .filter_map(|p| p.text_contents())
        .collect::<Vec<_>>()
        .join("\n");
    // Only the report itself: not the copy of the original message.
    let own = match QUOTE_START.find(&body) {
        Some(m) => &body[..m.start()],
        None => &body[..],
    };
    let Some(format) = TEXT_FORMATS.iter().find(|f| (f.recognise)(own, &from)) else {
        return Err(Unread::Unusable(format!(
            "a message from {from} (subject {:?}) in no bounce form digest reads",
            crate::text::shorten(&subject, 80)
        )));
    };
    report.format = format.name;
    let Some((status, line)) = text_status(format, own) else {
        return Err(Unread::Unusable(format!(
            "a bounce without a status code ({} form, from {from}, subject {:?})",
            format.name,
            crate::text::shorten(&subject, 80)
        )));
    };
    for v in headers(&message, "x-failed-recipients") {
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
        return Err(Unread::Unusable(format!(
            "a bounce whose status code {status} is not a failure (from {from})"
        )));
    };
    report.status = Some(status);
    report.diagnostic = Some(line);
    Ok(report)
}

#[cfg(test)]
mod tests {
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
                assert_eq!(
                    r.message_ids,
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

    /// A message to the subscriber's VERP address, as auto-replies and
    /// replies arrive (they go to the envelope sender).
    fn to_verp(headers: &str, body: &str) -> Vec<u8> {
        format!(
            "From: Reader <reader@example.org>\nTo: bounces+0123456789abcdef0123@example.com\n{headers}\n{body}\n"
        )
        .into_bytes()
    }

    #[test]
    fn replies_and_automatic_replies_are_not_reports_whatever_numbers_they_hold() {
        for (headers, body, why) in [
            (
                "Subject: Re: your digest\n",
                "Status 5.1.1 of my project is done.",
                "not a bounce",
            ),
            (
                "Subject: Out of office\n",
                "I am away; see section 5.2.1 of the handbook. 550 days left.",
                "automatic reply",
            ),
            (
                "Subject: Re: your digest\nAuto-Submitted: auto-replied\n",
                "We upgraded to version 4.2.0.",
                "Auto-Submitted: auto-replied",
            ),
            (
                "Subject: Thanks\nX-Autoreply: yes\n",
                "Delivery failed: 550 5.1.1 user unknown",
                "x-autoreply",
            ),
            (
                "Subject: Thanks\nPrecedence: bulk\n",
                "Remote Server returned '550 5.1.1 nope'",
                "Precedence: bulk",
            ),
            (
                "Subject: Automatic reply: Daily Digest\n",
                "Returning on 4.4.7.",
                "automatic reply",
            ),
        ] {
            match read(&to_verp(headers, body), &mailboxes()) {
                Err(Unread::NotAReport(reason)) => {
                    assert!(reason.contains(why), "{headers}{body}: {reason}")
                }
                other => panic!("{headers}{body}: {other:?}"),
            }
        }
        // An auto-reply to the unsubscribe address is no one's request.
        let raw = b"From: a@example.org\nTo: unsubscribe@example.com\nAuto-Submitted: auto-replied\nSubject: unsubscribe 0123456789abcdef0123\n\nAway.\n";
        assert!(matches!(
            read(raw, &mailboxes()),
            Err(Unread::NotAReport(_))
        ));
    }

    #[test]
    fn only_a_mail_systems_bounce_in_a_known_form_counts_with_its_code_where_it_writes_it() {
        // The code sits in the text, but not where any MTA writes it.
        let raw = b"From: MAILER-DAEMON@mx.example.org\nTo: bounces+0123456789abcdef0123@example.com\nSubject: failure notice\n\nSorry. 550 5.2.1 mailbox disabled\n";
        assert!(matches!(
            read(raw, &mailboxes()),
            Err(Unread::Unusable(why)) if why.contains("no bounce form")
        ));
        // qmail writes it after "Remote host said:".
        let raw = b"From: MAILER-DAEMON@mx.example.org\nTo: bounces+0123456789abcdef0123@example.com\nSubject: failure notice\n\nHi. This is the qmail-send program at mx.example.org.\nI'm afraid I wasn't able to deliver your message to the following addresses.\n\n<reader@example.org>:\n192.0.2.25 does not like recipient.\nRemote host said: 550 5.2.1 mailbox disabled\nGiving up on 192.0.2.25.\n";
        let r = read(raw, &mailboxes()).unwrap();
        assert_eq!((r.format, r.status.as_deref()), ("qmail", Some("5.2.1")));
        assert_eq!(r.tokens, vec!["0123456789abcdef0123".to_owned()]);
        // The Postfix form from someone who is not a mail system: a reply.
        let forged = String::from_utf8(fixture("postfix-text-4.2.2.eml"))
            .unwrap()
            .replace(
                "MAILER-DAEMON@mail.example.com (Mail Delivery System)",
                "reader@example.org",
            );
        assert!(matches!(
            read(forged.as_bytes(), &mailboxes()),
            Err(Unread::NotAReport(_))
        ));
        // A DSN forwarded inside another message is not our report.
        let dsn = String::from_utf8(fixture("postfix-dsn-5.1.1.eml")).unwrap();
        let forwarded = format!(
            "From: Reader <reader@example.org>\nTo: bounces+0123456789abcdef0123@example.com\nSubject: Fwd: bounce\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"fw\"\n\n--fw\nContent-Type: text/plain\n\nLook at this.\n--fw\nContent-Type: message/rfc822\n\n{dsn}\n--fw--\n"
        );
        assert!(matches!(
            read(forwarded.as_bytes(), &mailboxes()),
            Err(Unread::NotAReport(_))
        ));
    }

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

    #[test]
    fn the_message_key_is_its_message_id_else_a_hash() {
        assert_eq!(key(b"Message-ID: <a@b>\n\nx"), "<a@b>");
        assert!(key(b"Subject: x\n\nx").starts_with("sha256:"));
    }
}
