//! One message per subscriber: multipart/alternative (plain text, then
//! HTML), UTF-8 subject and names encoded by lettre, a `Message-ID` stable
//! per (edition, subscriber), and the list headers mail clients use for
//! one-click unsubscribe (RFC 2369, RFC 8058).

use std::str::FromStr;

use chrono::{DateTime, Utc};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::{Address, Message};

use crate::render::Rendered;
use crate::store::Subscriber;

/// What every message of a list shares.
#[derive(Debug, Clone)]
pub struct MessageSettings {
    pub from: Mailbox,
    /// `List-Id` value, e.g. `Daily Digest <daily-digest.example.com>`.
    pub list_id: String,
    /// Base URL of `digest serve`, for the one-click unsubscribe link.
    pub base_url: String,
    /// Optional `mailto:` address for unsubscribing by email.
    pub unsubscribe_mailto: Option<String>,
    /// Signs every message when set (`dkim_key_file`).
    pub dkim: Option<std::sync::Arc<super::dkim::Signer>>,
    /// The envelope sender, with each subscriber's VERP token inserted
    /// (`bounces+TOKEN@example.com`); unset: the `from` address.
    pub bounce_address: Option<Address>,
}

impl MessageSettings {
    /// The subscriber's unsubscribe link.
    pub fn unsubscribe_url(&self, subscriber: &Subscriber) -> String {
        format!(
            "{}/unsubscribe/{}",
            self.base_url.trim_end_matches('/'),
            subscriber.token
        )
    }

    /// The subscriber's preferences page (topics, pause).
    pub fn preferences_url(&self, subscriber: &Subscriber) -> String {
        format!(
            "{}/preferences/{}",
            self.base_url.trim_end_matches('/'),
            subscriber.token
        )
    }

    /// Who the subscriber's copy is rendered for: their name, address and
    /// links.
    pub fn recipient(&self, subscriber: &Subscriber) -> crate::render::Recipient {
        crate::render::Recipient {
            name: subscriber.name.clone(),
            email: subscriber.email.clone(),
            unsubscribe_url: self.unsubscribe_url(subscriber),
            preferences_url: self.preferences_url(subscriber),
            web_copy: false,
        }
    }

    /// The subscriber's envelope sender: `bounce_address` with their VERP
    /// token after a `+`, so a bounce names them however mangled it is.
    pub fn envelope_from(&self, subscriber: &Subscriber) -> Option<Address> {
        let bounce = self.bounce_address.as_ref()?;
        Address::new(
            format!(
                "{}+{}",
                bounce.user(),
                crate::store::bounce_token(&subscriber.token)
            ),
            bounce.domain(),
        )
        .ok()
    }

    /// The `List-Unsubscribe` header: the one-click link, and the mailto
    /// address with the subscriber's VERP token in its subject.
    pub fn list_unsubscribe(&self, subscriber: &Subscriber) -> String {
        let unsubscribe = self.unsubscribe_url(subscriber);
        match &self.unsubscribe_mailto {
            Some(mailto) => format!(
                "<{unsubscribe}>, <mailto:{mailto}?subject=unsubscribe%20{}>",
                crate::store::bounce_token(&subscriber.token)
            ),
            None => format!("<{unsubscribe}>"),
        }
    }

    /// The domain of the sender address (for Message-IDs).
    pub fn domain(&self) -> &str {
        self.from.email.domain()
    }
}

/// Longest address (RFC 5321's path limit, less its angle brackets).
pub const MAX_ADDRESS_OCTETS: usize = 254;

/// Checks and normalises an email address: trimmed, a valid addr-spec
/// (lettre's parser), domain lowercased. Refused besides: more than 254
/// octets or a local part over 64 (RFC 5321), control characters and the
/// replacement character (bytes that were not UTF-8), address literals
/// (`x@[127.0.0.1]`) and domains that are not public DNS names
/// (`x@localhost`): a subscriber is someone on the internet.
pub fn validate_address(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    let shown = crate::text::shorten(trimmed, 80);
    if trimmed.len() > MAX_ADDRESS_OCTETS {
        return Err(format!(
            "invalid address {shown:?}: longer than {MAX_ADDRESS_OCTETS} octets"
        ));
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() || c == char::REPLACEMENT_CHARACTER)
    {
        return Err(format!(
            "invalid address {shown:?}: control characters or bytes that are not UTF-8"
        ));
    }
    let address =
        Address::from_str(trimmed).map_err(|e| format!("invalid address {shown:?}: {e}"))?;
    if address.user().len() > 64 {
        return Err(format!(
            "invalid address {shown:?}: the part before @ is longer than 64 octets"
        ));
    }
    let domain = address.domain().to_lowercase();
    let labels: Vec<&str> = domain.split('.').collect();
    let public = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.chars().count() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && !labels
            .last()
            .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()));
    if !public {
        return Err(format!(
            "invalid address {shown:?}: {domain:?} is not an internet domain name"
        ));
    }
    Ok(format!("{}@{}", address.user(), domain))
}

/// Longest display name.
pub const MAX_NAME_CHARS: usize = 100;

/// Rejects display names that could break a header: CR, LF and other
/// control characters.
pub fn validate_name(name: &str) -> Result<Option<String>, String> {
    if name.chars().any(|c| c.is_control()) {
        return Err(format!(
            "invalid name {name:?}: control characters (line breaks) are not allowed"
        ));
    }
    if name.trim().chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "invalid name: longer than {MAX_NAME_CHARS} characters"
        ));
    }
    let name = name.trim();
    Ok((!name.is_empty()).then(|| name.to_owned()))
}

fn header(name: &'static str, value: String) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
}

/// A message to an editor (not a subscriber: no list headers): the
/// rendered edition with `note` before the text and atop the HTML.
pub fn notice(
    rendered: &Rendered,
    to: &str,
    note: &str,
    settings: &MessageSettings,
    message_id: &str,
    date: DateTime<Utc>,
) -> Result<Message, String> {
    let to_address = Address::from_str(to).map_err(|e| format!("invalid address {to:?}: {e}"))?;
    let banner = format!(
        "<div style=\"padding:12px 16px;margin:0;background:#fff4ce;color:#1b1f24;font-family:Arial,Helvetica,sans-serif;font-size:15px;\">{}</div>",
        htmlize::escape_text(note)
    );
    let html = match rendered.html.find("<body") {
        Some(at) => {
            let end = rendered.html[at..].find('>').map_or(at, |e| at + e + 1);
            format!("{}{banner}{}", &rendered.html[..end], &rendered.html[end..])
        }
        None => format!("{banner}{}", rendered.html),
    };
    Message::builder()
        .from(settings.from.clone())
        .to(Mailbox::new(None, to_address))
        .subject(crate::text::shorten(
            &format!("[Awaiting approval] {}", rendered.subject),
            120,
        ))
        .date(date.into())
        .message_id(Some(message_id.to_owned()))
        .raw_header(header("Auto-Submitted", "auto-generated".into()))
        .multipart(MultiPart::alternative_plain_html(
            format!("{note}\n\n{}", rendered.text),
            html,
        ))
        .map(|message| signed(message, settings))
        .map_err(|e| format!("building the message: {e}"))
}

/// Sets the VERP envelope sender when there is a bounce address.
fn with_envelope(
    builder: lettre::message::MessageBuilder,
    settings: &MessageSettings,
    subscriber: &Subscriber,
    to: &Mailbox,
) -> lettre::message::MessageBuilder {
    match settings.envelope_from(subscriber) {
        Some(from) => match lettre::address::Envelope::new(Some(from), vec![to.email.clone()]) {
            Ok(envelope) => builder.envelope(envelope),
            Err(_) => builder,
        },
        None => builder,
    }
}

/// The double opt-in mail: a link to confirm the subscription, with the
/// sign-up's own `token` (never the unsubscribe token). Sent only to an
/// address someone typed into the subscribe page (or an operator's
/// `subscribers add --confirm`); it says how to ignore it. Nothing the
/// visitor typed but the address is in it: a name or topics field cannot
/// carry someone's text into a stranger's inbox.
pub fn confirmation(
    subscriber: &Subscriber,
    token: &str,
    title: &str,
    settings: &MessageSettings,
    expires_days: u32,
    date: DateTime<Utc>,
) -> Result<Message, String> {
    let to_address = Address::from_str(&subscriber.email)
        .map_err(|e| format!("invalid address {:?}: {e}", subscriber.email))?;
    let to = Mailbox::new(None, to_address);
    let link = format!(
        "{}/confirm/{token}",
        settings.base_url.trim_end_matches('/'),
    );
    let text = format!(
        "Someone, probably you, asked to receive {title} at this address.\n\n\
         To confirm, open this link and press Confirm:\n\n{link}\n\n\
         The link works once, for {expires_days} days. If you did not ask for this, ignore this message: \
         you will not hear from us again.\n"
    );
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><body style=\"font-family:Arial,Helvetica,sans-serif;font-size:16px;line-height:1.5;color:#1b1f24;\">\
         <p>Someone, probably you, asked to receive {t} at this address.</p>\
         <p><a href=\"{l}\" style=\"display:inline-block;padding:10px 18px;background:#0b57d0;color:#ffffff;text-decoration:none;border-radius:4px;\">Confirm your subscription</a></p>\
         <p>Or open this link: {l}</p>\
         <p>The link works once, for {expires_days} days. If you did not ask for this, ignore this message: you will not hear from us again.</p></body></html>",
        t = htmlize::escape_text(title),
        l = htmlize::escape_attribute(&link),
    );
    with_envelope(Message::builder(), settings, subscriber, &to)
        .from(settings.from.clone())
        .to(to)
        .subject(crate::text::shorten(
            &format!("Confirm your subscription to {title}"),
            120,
        ))
        .date(date.into())
        .message_id(Some(
            super::MessageId::confirmation(token, settings.domain()).into_string(),
        ))
        .raw_header(header("Auto-Submitted", "auto-generated".into()))
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map(|message| signed(message, settings))
        .map_err(|e| format!("building the message: {e}"))
}

fn signed(mut message: Message, settings: &MessageSettings) -> Message {
    if let Some(signer) = &settings.dkim {
        signer.sign(&mut message);
    }
    message
}

/// Builds one subscriber's message.
pub fn build(
    rendered: &Rendered,
    subscriber: &Subscriber,
    settings: &MessageSettings,
    message_id: &str,
    date: DateTime<Utc>,
) -> Result<Message, String> {
    let to_address = Address::from_str(&subscriber.email)
        .map_err(|e| format!("invalid address {:?}: {e}", subscriber.email))?;
    let name = subscriber
        .name
        .as_deref()
        .map(|n| crate::text::shorten(n, MAX_NAME_CHARS));
    let to = Mailbox::new(name, to_address);
    let list_unsubscribe = settings.list_unsubscribe(subscriber);
    with_envelope(Message::builder(), settings, subscriber, &to)
        .from(settings.from.clone())
        .to(to)
        .subject(rendered.subject.clone())
        .date(date.into())
        .message_id(Some(message_id.to_owned()))
        .raw_header(header("List-Id", settings.list_id.clone()))
        .raw_header(header("List-Unsubscribe", list_unsubscribe))
        .raw_header(header(
            "List-Unsubscribe-Post",
            "List-Unsubscribe=One-Click".into(),
        ))
        .raw_header(header("Auto-Submitted", "auto-generated".into()))
        .multipart(MultiPart::alternative_plain_html(
            rendered.text.clone(),
            rendered.html.clone(),
        ))
        .map(|message| signed(message, settings))
        .map_err(|e| format!("building the message: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscriber(name: Option<&str>) -> Subscriber {
        Subscriber {
            id: 7,
            email: "zoe@example.com".into(),
            name: name.map(Into::into),
            status: crate::store::Status::Active,
            topics: String::new(),
            topics_only: false,
            token: "0123456789abcdef0123456789abcdef".into(),
            bounces: 0,
            soft_bounces: 0,
            last_bounce: None,
            paused_until: None,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    fn settings() -> MessageSettings {
        MessageSettings {
            dkim: None,
            bounce_address: None,
            from: "Daily Digest <digest@example.com>".parse().unwrap(),
            list_id: "Daily Digest <daily-digest.example.com>".into(),
            base_url: "https://digest.example.com/".into(),
            unsubscribe_mailto: Some("unsubscribe@example.com".into()),
        }
    }

    #[test]
    fn addresses_and_names() {
        assert_eq!(
            validate_address("  Ann@Example.COM ").unwrap(),
            "Ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann example@x.com",
            "a@b@c",
            "\u{fffd}\u{fffd}@example.com",
            "x@localhost",
            "x@[127.0.0.1]",
            "x@127.0.0.1",
            "x@-bad.example.com",
            "a\u{7}b@example.com",
        ] {
            assert!(validate_address(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(64));
        assert!(validate_address(&long).is_ok());
        let too_long_local = format!("{}@example.com", "a".repeat(65));
        assert!(validate_address(&too_long_local).is_err());
        let too_long = format!("a@{}.com", "b.".repeat(126));
        assert!(too_long.len() > 254 && validate_address(&too_long).is_err());
        assert_eq!(
            validate_address("zoë@Bücher.example").unwrap(),
            "zoë@bücher.example"
        );
        assert_eq!(validate_name(" Ann  ").unwrap().as_deref(), Some("Ann"));
        assert_eq!(validate_name("").unwrap(), None);
        assert!(validate_name("Ann\r\nBcc: evil@example.com").is_err());
        assert!(validate_name("Ann\u{0}").is_err());
    }

    #[test]
    fn headers_and_parts() {
        let rendered = Rendered {
            subject: "Résumé: talks résumé".into(),
            text: "Plain text".into(),
            html: "<p>HTML</p>".into(),
        };
        let date = DateTime::parse_from_rfc3339("2022-03-14T06:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let m = build(
            &rendered,
            &subscriber(Some("Zoë Ünal")),
            &settings(),
            "<id@example.com>",
            date,
        )
        .unwrap();
        // Unfold continuation lines (RFC 5322 folding) before matching headers.
        let raw = String::from_utf8(m.formatted())
            .unwrap()
            .replace("\r\n ", " ");
        assert!(raw.contains("Message-ID: <id@example.com>"), "{raw}");
        let verp = crate::store::bounce_token("0123456789abcdef0123456789abcdef");
        assert_eq!(verp.len(), 20);
        assert!(raw.contains(&format!("List-Unsubscribe: <https://digest.example.com/unsubscribe/0123456789abcdef0123456789abcdef>, <mailto:unsubscribe@example.com?subject=unsubscribe%20{verp}>")), "{raw}");
        // Without a bounce address the envelope sender is `from`; with one,
        // it carries the subscriber's VERP token.
        assert_eq!(
            m.envelope().from().map(|a| a.to_string()).as_deref(),
            Some("digest@example.com")
        );
        let mut with_bounces = settings();
        with_bounces.bounce_address = Some("bounces@example.com".parse().unwrap());
        let m2 = build(
            &rendered,
            &subscriber(Some("Zoë Ünal")),
            &with_bounces,
            "<id@example.com>",
            date,
        )
        .unwrap();
        assert_eq!(
            m2.envelope().from().map(|a| a.to_string()),
            Some(format!("bounces+{verp}@example.com"))
        );
        assert_eq!(m2.envelope().to(), m.envelope().to());
        assert!(raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(raw.contains("List-Id: Daily Digest <daily-digest.example.com>"));
        assert!(
            raw.contains("Subject: =?utf-8?"),
            "UTF-8 subject is encoded: {raw}"
        );
        assert!(
            raw.contains("Date: Mon, 14 Mar 2022 06:00:00 +0000"),
            "{raw}"
        );
        let plain = raw.find("Content-Type: text/plain").unwrap();
        let html = raw.find("Content-Type: text/html").unwrap();
        assert!(
            raw.contains("multipart/alternative") && plain < html,
            "plain text first"
        );
    }
}
