//! The preferences page, `/preferences/<token>`: a subscriber's topics
//! (with what the latest edition's stories matched), "only these topics",
//! and a pause until a date. The token is the capability, as on the
//! unsubscribe page: GET only shows, a form POST to the same address
//! changes, and no script runs.

use super::pages::FIELD_STYLE;
use super::*;
use crate::pipeline::PreferencesView;

/// The form, with what it holds (`topics`, `only`, `pause` as typed after
/// an error) and a message.
fn form(
    app: &App,
    view: &PreferencesView,
    token: &str,
    topics: &str,
    only: bool,
    pause: &str,
    message: Option<(&str, bool)>,
) -> Html<String> {
    let s = &view.subscriber;
    let today = Utc::now().date_naive();
    let message = message.map_or(String::new(), |(m, error)| {
        let color = if error { "#a50e0e" } else { "#146c2e" };
        format!(
            "<p id=\"message\" role=\"{}\" style=\"color:{color};font-weight:bold;\">{}</p>",
            if error { "alert" } else { "status" },
            htmlize::escape_text(m)
        )
    });
    let paused = match s.paused_until {
        Some(d) if d > today => format!(
            "<p><strong>Paused:</strong> no digest until {}.</p>",
            d.format("%A %-d %B %Y")
        ),
        _ => String::new(),
    };
    let hints = match &view.hints {
        Some((date, matched)) if !matched.is_empty() => {
            let items: Vec<String> = matched
                .iter()
                .map(|(topic, n)| {
                    let count = match n {
                        0 => "no story".to_owned(),
                        1 => "1 story".to_owned(),
                        n => format!("{n} stories"),
                    };
                    format!("<li>{}: {count}</li>", htmlize::escape_text(topic))
                })
                .collect();
            format!(
                "<p id=\"hints\" style=\"margin:0;font-size:0.9em;\">In the edition of <a href=\"/editions/{date}\">{}</a>, your topics matched:</p>\
                 <ul style=\"margin:0 0 1em;font-size:0.9em;\">{}</ul>",
                date.format("%-d %B %Y"),
                items.join("")
            )
        }
        _ => String::new(),
    };
    Html(page(
        &format!("Your preferences for {}", app.title),
        &format!(
            "<p>For <strong>{email}</strong>.</p>{paused}{message}\
             <form method=\"post\">\
             <label for=\"topics\">Topics</label>\
             <input id=\"topics\" name=\"topics\" type=\"text\" maxlength=\"{max}\" aria-describedby=\"topics-help\" value=\"{topics}\" style=\"{FIELD_STYLE}margin-bottom:0.2em;\">\
             <p id=\"topics-help\" style=\"margin-top:0;font-size:0.9em;\">Comma-separated, for example: climate, football. Matching stories come first.</p>\
             {hints}\
             <p><input id=\"topics_only\" name=\"topics_only\" type=\"checkbox\" value=\"yes\"{checked}> \
             <label for=\"topics_only\">Only stories that match my topics</label></p>\
             <label for=\"pause_until\">Pause the digest until</label>\
             <input id=\"pause_until\" name=\"pause_until\" type=\"date\" min=\"{min}\" max=\"{max_day}\" value=\"{pause}\" aria-describedby=\"pause-help\" style=\"{FIELD_STYLE}margin-bottom:0.2em;\">\
             <p id=\"pause-help\" style=\"margin-top:0;font-size:0.9em;\">Leave empty to receive every edition. A pause lasts up to a year.</p>\
             <button type=\"submit\" style=\"font-size:1em;padding:0.5em 1.2em;\">Save</button></form>\
             <p style=\"font-size:0.9em;\"><a href=\"/editions\">Past editions</a> · <a href=\"/unsubscribe/{token}\">Unsubscribe</a></p>",
            email = htmlize::escape_text(&s.email),
            max = crate::pipeline::MAX_TOPICS_CHARS,
            topics = htmlize::escape_attribute(topics),
            checked = if only { " checked" } else { "" },
            min = today + chrono::Duration::days(1),
            max_day = today + chrono::Duration::days(crate::pipeline::MAX_PAUSE_DAYS),
            pause = htmlize::escape_attribute(pause),
            token = htmlize::escape_attribute(token),
        ),
    )
    .0)
}

/// The page of someone who is not (or no longer) subscribed.
fn not_subscribed(app: &App, status: Status) -> Response {
    page(
        &format!("Your preferences for {}", app.title),
        &format!(
            "<p>This address is not subscribed now ({}). You can <a href=\"/subscribe\">subscribe again</a>.</p>",
            status.as_str()
        ),
    )
    .into_response()
}

/// The page for `token`: `active` draws it for an active subscriber; anyone
/// else is told they are not subscribed, and an unknown token is a 404.
async fn answer(
    app: &Arc<App>,
    token: String,
    active: impl FnOnce(&PreferencesView) -> Response,
) -> Response {
    match with_pipeline(app, move |p| p.preferences(&token)).await {
        Some(Ok(Some(v))) if v.subscriber.status == Status::Active => active(&v),
        Some(Ok(Some(v))) => not_subscribed(app, v.subscriber.status),
        Some(Ok(None)) => not_found(&app.title),
        Some(Err(e)) => {
            tracing::error!("preferences page: {e}");
            unavailable(&app.title)
        }
        None => unavailable(&app.title),
    }
}

pub(super) async fn show(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    answer(&app, token.clone(), |v| {
        let s = &v.subscriber;
        let pause = s
            .paused_until
            .filter(|d| *d > Utc::now().date_naive())
            .map(|d| d.to_string())
            .unwrap_or_default();
        form(&app, v, &token, &s.topics, s.topics_only, &pause, None).into_response()
    })
    .await
}

#[derive(serde::Deserialize)]
pub(super) struct PreferencesForm {
    #[serde(default)]
    topics: String,
    topics_only: Option<String>,
    #[serde(default)]
    pause_until: String,
}

pub(super) async fn change(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    axum::extract::Form(f): axum::extract::Form<PreferencesForm>,
) -> Response {
    let only = f.topics_only.is_some();
    let (t, topics, pause) = (token.clone(), f.topics.clone(), f.pause_until.clone());
    let changed = with_pipeline(&app, move |p| {
        p.change_preferences(&t, &topics, only, &pause)
    })
    .await;
    let message = match changed {
        Some(Ok(true)) => {
            tracing::info!("a subscriber changed their preferences");
            Ok("Saved. The next digest follows these preferences.".to_owned())
        }
        Some(Ok(false)) => {
            // Unknown, or not active: what GET shows.
            return show(State(app), Path(token)).await;
        }
        Some(Err(Error::Invalid(why))) => Err(why),
        Some(Err(e)) => {
            tracing::error!("preferences: {e}");
            return unavailable(&app.title);
        }
        None => return unavailable(&app.title),
    };
    answer(&app, token.clone(), |v| match message {
        Ok(saved) => {
            let s = &v.subscriber;
            let pause = s.paused_until.map(|d| d.to_string()).unwrap_or_default();
            form(
                &app,
                v,
                &token,
                &s.topics,
                s.topics_only,
                &pause,
                Some((&saved, false)),
            )
            .into_response()
        }
        Err(why) => {
            // What was typed, with what to fix.
            let mut r = form(
                &app,
                v,
                &token,
                &f.topics,
                only,
                &f.pause_until,
                Some((&why, true)),
            )
            .into_response();
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            r
        }
    })
    .await
}
