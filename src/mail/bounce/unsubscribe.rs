//! Mail a person sent to the unsubscribe address (the `List-Unsubscribe`
//! mailto): the subscriber's token is the `+TOKEN` of the address or the
//! word the mailto put in the subject. A From address alone is never
//! trusted: it is forgeable.

use std::sync::LazyLock;

use regex::Regex;

use super::text::from_mail_system;
use super::{headers, Kind, Mail, Report, Unread};

/// A VERP token in an unsubscribe request's subject.
static SUBJECT_TOKEN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b([0-9a-f]{20})\b").expect("valid"));

/// Reads `mail` as a request to unsubscribe, if it was sent to the
/// unsubscribe address (`plus`) by a person; `None` when it was not.
pub(super) fn read(
    mail: &Mail<'_>,
    plus: &Regex,
    report: &mut Report,
) -> Option<Result<(), Unread>> {
    let recipient_headers: Vec<String> =
        ["delivered-to", "x-original-to", "envelope-to", "to", "cc"]
            .iter()
            .flat_map(|h| headers(mail.message, h))
            .collect();
    let addressed: Vec<regex::Captures<'_>> = recipient_headers
        .iter()
        .filter_map(|h| plus.captures(h))
        .collect();
    if addressed.is_empty() || from_mail_system(&mail.from) {
        return None;
    }
    if let Some(why) = &mail.automatic {
        return Some(Err(Unread::NotAReport(why.clone())));
    }
    report.format = "mail to the unsubscribe address";
    let token = addressed
        .iter()
        .find_map(|c| c.get(1).map(|m| m.as_str().to_ascii_lowercase()))
        .or_else(|| {
            SUBJECT_TOKEN
                .captures(&mail.subject)
                .map(|c| c[1].to_ascii_lowercase())
        });
    let Some(token) = token else {
        let from = if mail.from.is_empty() {
            "an unknown sender"
        } else {
            &mail.from
        };
        return Some(Err(Unread::Unusable(format!(
            "a message to the unsubscribe address from {from} carries no subscriber token (neither in the address nor in the subject)"
        ))));
    };
    report.kind = Kind::Unsubscribe;
    report.tokens = vec![token];
    Some(Ok(()))
}
