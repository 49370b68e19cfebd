//! Plain-text bounces, as Postfix, Exim, Sendmail, Exchange, Gmail and
//! qmail write them: only from a mail system's own mailbox, and only with
//! the status code at the spot where that program writes the remote
//! server's reply (never a number anywhere in the body).

use std::sync::LazyLock;

use regex::Regex;

use super::{headers, shorten, Kind, Mail, Report, Unread};

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

/// Whether the sender is a mail system's own mailbox: a mailer daemon or
/// postmaster, or Exchange's system mailbox (`MicrosoftExchange` and 32
/// hex digits).
pub(super) fn from_mail_system(sender: &str) -> bool {
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

/// Reads `mail` as a mail system's plain-text bounce: `Unread` when it is
/// not one (a reply: not a report) or cannot be used (no status code, a
/// form digest does not read).
pub(super) fn read(mail: &Mail<'_>, report: &mut Report) -> Result<(), Unread> {
    let (from, subject) = (&mail.from, &mail.subject);
    if !from_mail_system(from) {
        return Err(Unread::NotAReport(mail.automatic.clone().unwrap_or_else(
            || {
                format!(
                "a message from {} (subject {:?}): not a bounce, complaint or unsubscribe request",
                if from.is_empty() { "nobody" } else { from },
                crate::text::shorten(subject, 80)
            )
            },
        )));
    }
    let body: String = mail
        .message
        .text_bodies()
        .filter_map(|p| p.text_contents())
        .collect::<Vec<_>>()
        .join("\n");
    // Only the report itself: not the copy of the original message.
    let own = match QUOTE_START.find(&body) {
        Some(m) => &body[..m.start()],
        None => &body[..],
    };
    let Some(format) = TEXT_FORMATS.iter().find(|f| (f.recognise)(own, from)) else {
        return Err(Unread::Unusable(format!(
            "a message from {from} (subject {:?}) in no bounce form digest reads",
            crate::text::shorten(subject, 80)
        )));
    };
    report.format = format.name;
    let Some((status, line)) = text_status(format, own) else {
        return Err(Unread::Unusable(format!(
            "a bounce without a status code ({} form, from {from}, subject {:?})",
            format.name,
            crate::text::shorten(subject, 80)
        )));
    };
    for v in headers(mail.message, "x-failed-recipients") {
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
        if DELAYED.is_match(own) || DELAYED.is_match(subject) {
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::mail::bounce::tests::{fixture, mailboxes};
    use crate::mail::bounce::{read, Unread};

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
}
