//! The pages `serve` answers with: plain HTML, no script, labelled forms.

use super::*;

pub(super) fn page(title: &str, body: &str) -> Html<String> {
    page_with_head(title, "", body)
}

/// A page with more in its head (`head` is HTML, trusted).
pub(super) fn page_with_head(title: &str, head: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title>{head}</head><body style=\"font-family: system-ui, sans-serif; max-width: 36em; margin: 3em auto; padding: 0 1em; line-height: 1.5;\">\
         <h1 style=\"font-size: 1.5em;\">{t}</h1>{body}</body></html>\n",
        t = htmlize::escape_text(title)
    ))
}

pub(super) fn not_found(title: &str) -> Response {
    (StatusCode::NOT_FOUND, page(title, "<p>This link is not valid. If you followed it from a digest, it may have been copied incompletely.</p>")).into_response()
}

pub(super) fn unavailable(title: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "10")],
        page(
            title,
            "<p>Something went wrong; please try again in a moment.</p>",
        ),
    )
        .into_response()
}

pub(super) fn expired(title: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        page(
            title,
            "<p>This confirmation link is not valid or has expired. You can <a href=\"/subscribe\">sign up again</a>.</p>",
        ),
    )
        .into_response()
}

pub(super) const FIELD_STYLE: &str = "display:block;width:100%;max-width:24em;font-size:1em;padding:0.4em;margin:0.2em 0 1em;box-sizing:border-box;";

pub(super) fn subscribe_form(
    title: &str,
    error: Option<&str>,
    email: &str,
    name: &str,
    topics: &str,
) -> String {
    let error = error.map_or(String::new(), |e| {
        format!(
            "<p id=\"error\" role=\"alert\" style=\"color:#a50e0e;font-weight:bold;\">{}</p>",
            htmlize::escape_text(e)
        )
    });
    let described = if error.is_empty() {
        ""
    } else {
        " aria-describedby=\"error\" aria-invalid=\"true\""
    };
    format!(
        "<p>Get {t} by email, once a day. We will send a link to confirm your address first.</p>{error}\
         <form method=\"post\" action=\"/subscribe\">\
         <label for=\"email\">Email address</label>\
         <input id=\"email\" name=\"email\" type=\"email\" required autocomplete=\"email\" maxlength=\"254\" value=\"{email}\"{described} style=\"{FIELD_STYLE}\">\
         <label for=\"name\">Name <span>(optional)</span></label>\
         <input id=\"name\" name=\"name\" type=\"text\" autocomplete=\"name\" maxlength=\"100\" value=\"{name}\" style=\"{FIELD_STYLE}\">\
         <label for=\"topics\">Topics <span>(optional)</span></label>\
         <input id=\"topics\" name=\"topics\" type=\"text\" maxlength=\"200\" aria-describedby=\"topics-help\" value=\"{topics}\" style=\"{FIELD_STYLE}margin-bottom:0.2em;\">\
         <p id=\"topics-help\" style=\"margin-top:0;font-size:0.9em;\">Comma-separated, for example: climate, football. Matching stories come first.</p>\
         <div aria-hidden=\"true\" style=\"position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden;\">\
         <label for=\"website\">Leave this field empty</label>\
         <input id=\"website\" name=\"website\" type=\"text\" tabindex=\"-1\" autocomplete=\"off\"></div>\
         <button type=\"submit\" style=\"font-size:1em;padding:0.5em 1.2em;\">Subscribe</button></form>",
        t = htmlize::escape_text(title),
        email = htmlize::escape_attribute(email),
        name = htmlize::escape_attribute(name),
        topics = htmlize::escape_attribute(topics),
    )
}

/// The confirmation form: the address, and the name and topics the
/// sign-up asked for, which the owner of the address may change here
/// (someone else may have typed them).
pub(super) fn confirm_form(
    app: &App,
    waiting: &crate::store::Waiting,
    error: Option<&str>,
) -> Response {
    let error = error.map_or(String::new(), |e| {
        format!(
            "<p id=\"error\" role=\"alert\" style=\"color:#a50e0e;font-weight:bold;\">{}</p>",
            htmlize::escape_text(e)
        )
    });
    page(
        &format!("Confirm your subscription to {}", app.title),
        &format!(
            "<p>Press Confirm to start receiving the digest at <strong>{email}</strong>.</p>{error}\
             <form method=\"post\">\
             <label for=\"name\">Name <span>(optional)</span></label>\
             <input id=\"name\" name=\"name\" type=\"text\" autocomplete=\"name\" maxlength=\"100\" value=\"{name}\" style=\"{FIELD_STYLE}\">\
             <label for=\"topics\">Topics <span>(optional)</span></label>\
             <input id=\"topics\" name=\"topics\" type=\"text\" maxlength=\"200\" value=\"{topics}\" style=\"{FIELD_STYLE}\">\
             <button type=\"submit\" style=\"font-size:1em;padding:0.5em 1.2em;\">Confirm</button></form>\
             <p style=\"font-size:0.9em;\">Check the name and topics: they are what was typed on the sign-up page, and you may change them.</p>",
            email = htmlize::escape_text(&waiting.email),
            name = htmlize::escape_attribute(waiting.name.as_deref().unwrap_or("")),
            topics = htmlize::escape_attribute(&waiting.topics),
        ),
    )
    .into_response()
}
