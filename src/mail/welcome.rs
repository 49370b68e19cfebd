//! The welcome message a subscriber gets once, after confirming: where to
//! read the latest edition, where to change topics or pause, how to leave.
//! It carries the list headers of every digest (one-click unsubscribe).

use chrono::{DateTime, NaiveDate, Utc};
use lettre::Message;

use super::message::{build, MessageSettings};
use crate::render::Rendered;
use crate::store::Subscriber;

/// The welcome for `subscriber`; `latest` is the newest sent edition's
/// date, when there is one.
pub fn welcome(
    subscriber: &Subscriber,
    title: &str,
    settings: &MessageSettings,
    latest: Option<NaiveDate>,
    date: DateTime<Utc>,
) -> Result<Message, String> {
    let base = settings.base_url.trim_end_matches('/');
    let preferences = settings.preferences_url(subscriber);
    let unsubscribe = settings.unsubscribe_url(subscriber);
    let latest = latest.map(|d| {
        (
            format!("{base}/editions/{d}"),
            d.format("%A %-d %B %Y").to_string(),
        )
    });
    let name = subscriber.name.as_deref().unwrap_or("there");
    let (latest_text, latest_html) = match &latest {
        Some((url, day)) => (
            format!("Read the latest edition, of {day}:\n{url}"),
            format!(
                "<p>Read <a href=\"{}\">the latest edition</a>, of {}.</p>",
                htmlize::escape_attribute(url),
                htmlize::escape_text(day)
            ),
        ),
        None => (
            "The first edition comes with the next day's news.".to_owned(),
            "<p>The first edition comes with the next day's news.</p>".to_owned(),
        ),
    };
    let text = format!(
        "Hello {name},\n\nYou are subscribed to {title}: the day's news in one message, once a day.\n\n\
         {latest_text}\n\nChoose topics, or pause the digest while you are away:\n{preferences}\n\n\
         To stop receiving it, open this link (every digest carries it too):\n{unsubscribe}\n"
    );
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><body style=\"font-family:Arial,Helvetica,sans-serif;font-size:16px;line-height:1.5;color:#1b1f24;\">\
         <p>Hello {n},</p><p>You are subscribed to {t}: the day's news in one message, once a day.</p>{latest_html}\
         <p><a href=\"{p}\">Choose topics, or pause the digest</a> while you are away.</p>\
         <p style=\"font-size:13px;color:#5f6b7a;\">To stop receiving it, <a href=\"{u}\">unsubscribe</a>; every digest carries the same link.</p>\
         </body></html>",
        n = htmlize::escape_text(name),
        t = htmlize::escape_text(title),
        p = htmlize::escape_attribute(&preferences),
        u = htmlize::escape_attribute(&unsubscribe),
    );
    let rendered = Rendered {
        subject: crate::text::shorten(&format!("Welcome to {title}"), 120),
        text,
        html,
    };
    build(
        &rendered,
        subscriber,
        settings,
        super::MessageId::welcome(&subscriber.token, settings.domain()).as_str(),
        date,
    )
}
