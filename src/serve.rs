//! `digest serve`: one-click unsubscribe (RFC 8058), the subscribe page
//! with its confirmation links (double opt-in), and the editor's preview of
//! stored editions, over HTTP (axum on hyper).
//!
//! Database work runs on tokio's blocking pool, never on the thread that
//! answers requests: a database another process holds locked slows only the
//! requests that need to write, and an unsubscribe that meets such a lock is
//! queued durably beside the database (`Store::unsubscribe_by_token`) before
//! the client hears 200, and every sign-up is queued durably before the page
//! answers (`Pipeline::queue_sign_up`), then recorded and mailed by a
//! background task.
//!
//! Hostile clients: a connection carries one request, which must arrive
//! whole (headers and body) within `http_request_timeout_secs` of the
//! connection getting its slot; at most `MAX_CONNECTIONS` are served at once
//! and at most `MAX_CLIENT_CONNECTIONS` of them from one client (an IPv4
//! address, an IPv6 /64), so one client cannot take every slot. A connection
//! over a cap waits up to `SLOT_WAIT` for a slot, then gets a 503; every page
//! carries security headers.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{NaiveDate, Utc};

use crate::pipeline::{Error, Pipeline, Result};
use crate::store::{Confirmed, Status, Unsubscribed};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 512;
/// Connections served at once for one client (an IPv4 address or an IPv6
/// /64; not counted behind a proxy, see `trust_forwarded_for`).
pub const MAX_CLIENT_CONNECTIONS: usize = 32;
/// How long a connection over a cap waits for a slot before it gets a 503.
pub const SLOT_WAIT: Duration = Duration::from_secs(2);
/// Connections waiting for a slot (or hearing their 503) at once; more are
/// closed as they arrive.
pub const MAX_WAITING: usize = 1024;
/// Longest a connection stays open, whatever it does (a response read a
/// byte at a time cannot hold a slot).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Largest request body (an unsubscribe form is a few dozen bytes).
pub const MAX_BODY: usize = 4096;

struct App {
    pipeline: Mutex<Pipeline>,
    /// Where sign-ups wait (appended without holding the pipeline).
    sign_ups: crate::store::QueueFile,
    /// Wakes the background task: a sign-up was queued.
    queued: tokio::sync::Notify,
    /// Confirmations for the mailer task, which sends one at a time.
    mailer: tokio::sync::mpsc::Sender<crate::pipeline::Confirmation>,
    title: String,
    /// Sign-ups per client network in the last hour.
    signups: Mutex<std::collections::HashMap<IpAddr, Vec<std::time::Instant>>>,
    signup_limit: u32,
    trust_forwarded_for: bool,
    confirm_days: u32,
}

/// The network a client is counted by: its IPv4 address, or its IPv6 /64
/// (one host usually holds a whole /64).
fn client_network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// The client's address: the connection's peer, or with
/// `trust_forwarded_for` the last address of `X-Forwarded-For` (the one the
/// proxy on this machine added).
fn client_ip(app: &App, peer: SocketAddr, headers: &axum::http::HeaderMap) -> IpAddr {
    if app.trust_forwarded_for {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse::<IpAddr>().ok())
            .next_back();
        if let Some(ip) = forwarded {
            return ip;
        }
    }
    peer.ip()
}

/// Counts a sign-up from `ip`; false when its hour's allowance is spent.
fn allow_signup(app: &App, ip: IpAddr) -> bool {
    let now = std::time::Instant::now();
    let hour = Duration::from_secs(3600);
    let mut map = app.signups.lock().unwrap_or_else(|p| p.into_inner());
    // Forget clients whose hour is over, so the map cannot grow without end.
    if map.len() > 10_000 {
        map.retain(|_, times| times.iter().any(|t| now.duration_since(*t) < hour));
    }
    let times = map.entry(client_network(ip)).or_default();
    times.retain(|t| now.duration_since(*t) < hour);
    if times.len() >= app.signup_limit as usize {
        return false;
    }
    times.push(now);
    true
}

const FIELD_STYLE: &str = "display:block;width:100%;max-width:24em;font-size:1em;padding:0.4em;margin:0.2em 0 1em;box-sizing:border-box;";

fn subscribe_form(
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

async fn subscribe_page(State(app): State<Arc<App>>) -> Response {
    page(
        &format!("Subscribe to {}", app.title),
        &subscribe_form(&app.title, None, "", "", ""),
    )
    .into_response()
}

#[derive(serde::Deserialize)]
struct SignUpForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    topics: String,
    /// The field people never see: bots fill it in.
    #[serde(default)]
    website: String,
}

/// `POST /subscribe`: checks the form, queues the sign-up durably and
/// answers; the background task records it and mails its link, so that
/// neither the page nor its timing says whether the address is already on
/// the list, and a busy database loses nothing (a queue that cannot be
/// written is a 503, never a 200).
async fn subscribe(
    State(app): State<Arc<App>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    axum::extract::Form(form): axum::extract::Form<SignUpForm>,
) -> Response {
    let title = format!("Subscribe to {}", app.title);
    let name = form.name.trim().to_owned();
    let topics = form.topics.trim().to_owned();
    // The form again, with what was typed and what to fix.
    let invalid = |message: &str, email: &str, name: &str, topics: &str| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            page(
                &title,
                &subscribe_form(&app.title, Some(message), email, name, topics),
            ),
        )
            .into_response()
    };
    use crate::pipeline::BadField;
    let row = match crate::pipeline::check_subscriber(&form.email, Some(&name), &topics) {
        Ok(row) => row,
        Err(BadField::Email(_)) => {
            return invalid(
                "Please enter an email address, like name@example.com.",
                &form.email,
                &name,
                &topics,
            )
        }
        Err(BadField::Name(_)) => {
            return invalid(
                &format!(
                    "Please check your name: one line of at most {} characters.",
                    crate::mail::message::MAX_NAME_CHARS
                ),
                &form.email,
                "",
                &topics,
            )
        }
        Err(BadField::Topics(_)) => {
            return invalid(
                &format!(
                    "Please keep topics to one line of at most {} characters.",
                    crate::pipeline::MAX_TOPICS_CHARS
                ),
                &form.email,
                &name,
                "",
            )
        }
    };
    let email = row.email;
    if !allow_signup(&app, client_ip(&app, peer, &headers)) {
        tracing::warn!("sign-up refused: the client's hourly limit is reached");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "3600")],
            page(&title, "<p>Too many sign-ups have come from your network in the last hour. Please try again later.</p>"),
        )
            .into_response();
    }
    let done = format!(
        "<p>Thank you. If {} can receive {}, a message with a confirmation link is on its way to it. \
         Open the link within {} days to start receiving the digest.</p><p>Nothing arrived? Check your spam folder; \
         you can ask again in an hour.</p>",
        htmlize::escape_text(&email),
        htmlize::escape_text(&app.title),
        app.confirm_days
    );
    if !form.website.is_empty() {
        tracing::info!("sign-up ignored: the hidden field was filled in (a bot)");
        return page("Check your inbox", &done).into_response();
    }
    // Queued (and synced) before the answer, whatever the database is
    // doing; recorded and mailed by the background task. Every address
    // takes the same path, so neither the page nor its timing says whether
    // it is on the list.
    let line = crate::pipeline::sign_up_line(&email, row.name.as_deref(), &row.topics);
    let queue = app.sign_ups.clone();
    let queued = tokio::task::spawn_blocking(move || queue.append(&line)).await;
    match queued {
        Ok(Ok(())) => {
            app.queued.notify_one();
            page("Check your inbox", &done).into_response()
        }
        Ok(Err(e)) => {
            tracing::error!("sign-up not queued: {}: {e}", app.sign_ups.path().display());
            unavailable(&app.title)
        }
        Err(_) => unavailable(&app.title),
    }
}

/// Records the queued sign-ups, and takes the confirmations that are due
/// another try, and hands them to the mailer task.
async fn apply_sign_ups(app: &Arc<App>) {
    let work = with_pipeline(app, |p| {
        let mut mail = p.apply_queued_sign_ups();
        match p.confirmations_to_retry() {
            Ok(again) => mail.extend(again),
            Err(e) => tracing::warn!("confirmation mails to try again: {e}"),
        }
        mail
    });
    for confirmation in work.await.unwrap_or_default() {
        // A full channel: the mail is tried again later (it is recorded as
        // not sent yet).
        if app.mailer.try_send(confirmation).is_err() {
            tracing::warn!("the mailer is busy: a confirmation waits for its next try");
        }
    }
}

/// The mailer task: one confirmation at a time, without holding the
/// pipeline (a slow mail server delays no request), each recorded as sent
/// or to be tried again.
async fn mail_confirmations(
    app: Arc<App>,
    mut queue: tokio::sync::mpsc::Receiver<crate::pipeline::Confirmation>,
) {
    while let Some(confirmation) = queue.recv().await {
        let sent = tokio::task::spawn_blocking(move || {
            let sent = confirmation.send();
            (confirmation, sent)
        })
        .await;
        let Ok((confirmation, sent)) = sent else {
            continue;
        };
        if let Err(e) = &sent {
            tracing::error!("sign-up: {e}; it is mailed again later");
        }
        with_pipeline(&app, move |p| {
            if let Err(e) = p.confirmation_mailed(&confirmation, sent.is_ok()) {
                tracing::error!("sign-up: {e}");
            }
        })
        .await;
    }
}

/// The confirmation form: the address, and the name and topics the
/// sign-up asked for, which the owner of the address may change here
/// (someone else may have typed them).
fn confirm_form(app: &App, waiting: &crate::store::Waiting, error: Option<&str>) -> Response {
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

/// The confirmation page: a form with a button, since mail scanners follow
/// links (and never change anything: GET only reads).
async fn confirm_page(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    let waiting = with_pipeline(&app, move |p| p.sign_up_waiting(&token)).await;
    match waiting {
        Some(Ok(Some(waiting))) => confirm_form(&app, &waiting, None),
        Some(Ok(None)) => expired(&app.title),
        Some(Err(e)) => {
            tracing::error!("confirm page: {e}");
            unavailable(&app.title)
        }
        None => unavailable(&app.title),
    }
}

fn expired(title: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        page(
            title,
            "<p>This confirmation link is not valid or has expired. You can <a href=\"/subscribe\">sign up again</a>.</p>",
        ),
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct ConfirmForm {
    name: Option<String>,
    topics: Option<String>,
}

async fn confirm(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    axum::extract::Form(form): axum::extract::Form<ConfirmForm>,
) -> Response {
    let name = form.name.map(|n| n.trim().to_owned());
    let topics = form.topics.map(|t| t.trim().to_owned());
    let again = token.clone();
    let done = with_pipeline(&app, move |p| {
        p.confirm_subscription(&token, name.as_deref(), topics.as_deref())
    })
    .await;
    match done {
        Some(Ok(Confirmed::Activated)) => {
            tracing::info!("a subscription was confirmed");
            page(
                &format!("Subscribed to {}", app.title),
                "<p>You are subscribed. The next digest will come to your inbox; every one has a link to unsubscribe.</p>",
            )
            .into_response()
        }
        Some(Ok(Confirmed::Unknown)) => expired(&app.title),
        Some(Err(Error::Invalid(why))) => {
            let waiting = with_pipeline(&app, move |p| p.sign_up_waiting(&again)).await;
            match waiting {
                Some(Ok(Some(waiting))) => {
                    let mut response = confirm_form(&app, &waiting, Some(&why));
                    *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
                    response
                }
                _ => expired(&app.title),
            }
        }
        Some(Err(e)) => {
            tracing::error!("confirm: {e}");
            unavailable(&app.title)
        }
        None => unavailable(&app.title),
    }
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title></head><body style=\"font-family: system-ui, sans-serif; max-width: 36em; margin: 3em auto; padding: 0 1em; line-height: 1.5;\">\
         <h1 style=\"font-size: 1.5em;\">{t}</h1>{body}</body></html>\n",
        t = htmlize::escape_text(title)
    ))
}

fn not_found(title: &str) -> Response {
    (StatusCode::NOT_FOUND, page(title, "<p>This link is not valid. If you followed it from a digest, it may have been copied incompletely.</p>")).into_response()
}

fn unavailable(title: &str) -> Response {
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

tokio::task_local! {
    /// When the request being answered must be done by: work that only gets
    /// the pipeline after it is skipped (its client has been answered 503
    /// or has gone), so a backlog cannot outlive an attack.
    static DEADLINE: tokio::time::Instant;
}

/// Runs `work` with the pipeline on the blocking pool. Within a request,
/// work that gets the pipeline only after the request's deadline is not
/// done (`None`).
async fn with_pipeline<T: Send + 'static>(
    app: &Arc<App>,
    work: impl FnOnce(&Pipeline) -> T + Send + 'static,
) -> Option<T> {
    let app = app.clone();
    let deadline = DEADLINE.try_with(|d| d.into_std()).ok();
    tokio::task::spawn_blocking(move || {
        let pipeline = app.pipeline.lock().unwrap_or_else(|p| p.into_inner());
        if deadline.is_some_and(|d| std::time::Instant::now() > d) {
            return None;
        }
        Some(work(&pipeline))
    })
    .await
    .ok()
    .flatten()
}

/// The confirmation page: unsubscribing takes a deliberate click (mail
/// scanners follow GET links; they do not submit forms).
async fn unsubscribe_page(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    let known = with_pipeline(&app, move |p| p.store().subscriber_by_token(&token)).await;
    match known {
        Some(Ok(Some(s))) if s.status == Status::Active => page(
            &format!("Unsubscribe from {}", app.title),
            "<p>Stop receiving this digest?</p><form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
             <button type=\"submit\" style=\"font-size: 1em; padding: 0.5em 1.2em;\">Unsubscribe</button></form>",
        )
        .into_response(),
        Some(Ok(Some(_))) => page(&format!("Unsubscribe from {}", app.title), "<p>You are already unsubscribed.</p>").into_response(),
        Some(Ok(None)) => not_found(&app.title),
        Some(Err(e)) => {
            tracing::error!("unsubscribe page: {e}");
            unavailable(&app.title)
        }
        None => unavailable(&app.title),
    }
}

/// RFC 8058 one-click unsubscribe: `POST` with `List-Unsubscribe=One-Click`.
/// 200 only once the unsubscribe is recorded (in the database, or durably
/// in the queue beside it when the database is busy).
async fn unsubscribe(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    // RFC 8058 asks senders for multipart/form-data; browsers and most mail
    // providers send application/x-www-form-urlencoded. Accept both.
    let body = String::from_utf8_lossy(&body);
    let one_click = body.contains("List-Unsubscribe=One-Click")
        || (body.contains("name=\"List-Unsubscribe\"") && body.contains("One-Click"));
    if !one_click {
        return (
            StatusCode::BAD_REQUEST,
            page(&app.title, "<p>Expected List-Unsubscribe=One-Click.</p>"),
        )
            .into_response();
    }
    let done = with_pipeline(&app, move |p| {
        p.store().unsubscribe_by_token(&token, Utc::now())
    })
    .await;
    match done {
        Some(Ok(Unsubscribed::Unknown)) => not_found(&app.title),
        Some(Ok(how)) => {
            match how {
                Unsubscribed::Queued => {
                    tracing::warn!("a subscriber unsubscribed; the database is busy, so it waits in the queue beside it")
                }
                _ => tracing::info!("a subscriber unsubscribed"),
            }
            page(
                &format!("Unsubscribed from {}", app.title),
                "<p>You are unsubscribed and will not receive the digest again.</p>",
            )
            .into_response()
        }
        Some(Err(e)) => {
            tracing::error!("unsubscribe: {e}");
            unavailable(&app.title)
        }
        None => unavailable(&app.title),
    }
}

async fn render_edition(app: &Arc<App>, date: String) -> Option<crate::render::Rendered> {
    let date: NaiveDate = date.parse().ok()?;
    with_pipeline(app, move |pipeline| {
        let stored = pipeline.stored_edition(date).ok().flatten()?;
        // Drafts stay private: only what is approved or being sent is shown.
        let public =
            stored.approved.is_some() || pipeline.store().sending_started(stored.id).ok()?;
        if !public {
            return None;
        }
        pipeline
            .renderer()
            .ok()?
            .render(&stored.edition, &pipeline.preview_recipient())
            .ok()
    })
    .await
    .flatten()
}

async fn edition_html(State(app): State<Arc<App>>, Path(date): Path<String>) -> Response {
    match render_edition(&app, date).await {
        Some(r) => Html(r.html).into_response(),
        None => not_found(&app.title),
    }
}

async fn edition_text(State(app): State<Arc<App>>, Path(date): Path<String>) -> Response {
    match render_edition(&app, date).await {
        Some(r) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("Subject: {}\n\n{}", r.subject, r.text),
        )
            .into_response(),
        None => not_found(&app.title),
    }
}

/// Security headers on every response: no script may run (the pages have
/// none; an edition's HTML keeps its inline styles), nothing is sniffed,
/// framed, referred or cached.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Reads the whole body before the handler runs, by the request's
/// deadline: a client that promises a body and never sends it is answered
/// 408 and its connection closed.
async fn whole_request(request: Request, next: Next) -> Response {
    let deadline = DEADLINE
        .try_with(|d| *d)
        .unwrap_or_else(|_| tokio::time::Instant::now() + CONNECTION_LIFETIME);
    let (parts, body) = request.into_parts();
    match tokio::time::timeout_at(deadline, axum::body::to_bytes(body, MAX_BODY)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        Ok(Err(_)) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            page("Too large", "<p>The request is too large.</p>"),
        )
            .into_response(),
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            page("Too slow", "<p>The request did not arrive in time.</p>"),
        )
            .into_response(),
    }
}

/// The connection slots: `MAX_CONNECTIONS` in all, `MAX_CLIENT_CONNECTIONS`
/// a client, and how many connections wait for one.
struct Slots {
    all: Arc<tokio::sync::Semaphore>,
    clients: Mutex<std::collections::HashMap<IpAddr, Arc<tokio::sync::Semaphore>>>,
    /// Count clients (off behind a proxy: every connection is the proxy's).
    per_client: bool,
    waiting: AtomicUsize,
}

/// A connection's slot; given back when dropped.
struct Slot {
    _all: tokio::sync::OwnedSemaphorePermit,
    _client: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Slots {
    fn new(per_client: bool) -> Slots {
        Slots {
            all: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
            clients: Mutex::new(std::collections::HashMap::new()),
            per_client,
            waiting: AtomicUsize::new(0),
        }
    }

    fn client(&self, peer: IpAddr) -> Option<Arc<tokio::sync::Semaphore>> {
        if !self.per_client {
            return None;
        }
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        // Forget clients with nothing open, so the map cannot grow without end.
        if clients.len() > 10_000 {
            clients.retain(|_, s| {
                Arc::strong_count(s) > 1 || s.available_permits() < MAX_CLIENT_CONNECTIONS
            });
        }
        Some(
            clients
                .entry(client_network(peer))
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(MAX_CLIENT_CONNECTIONS)))
                .clone(),
        )
    }

    /// A slot at once, if one is free.
    fn try_take(&self, client: &Option<Arc<tokio::sync::Semaphore>>) -> Option<Slot> {
        let client = match client {
            Some(c) => Some(c.clone().try_acquire_owned().ok()?),
            None => None,
        };
        let all = self.all.clone().try_acquire_owned().ok()?;
        Some(Slot {
            _all: all,
            _client: client,
        })
    }

    /// A slot within `SLOT_WAIT`, in turn.
    async fn wait(&self, client: Option<Arc<tokio::sync::Semaphore>>) -> Option<Slot> {
        let take = async {
            let client = match client {
                Some(c) => Some(c.acquire_owned().await.ok()?),
                None => None,
            };
            let all = self.all.clone().acquire_owned().await.ok()?;
            Some(Slot {
                _all: all,
                _client: client,
            })
        };
        tokio::time::timeout(SLOT_WAIT, take).await.ok().flatten()
    }
}

/// What a connection that found no slot hears before it is closed: a 503,
/// then what it sent is read and dropped for a moment (closing a socket
/// with unread data would reset it, and the client would never see the
/// answer).
async fn busy(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let reply = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 37\r\nConnection: close\r\n\r\nBusy: please try again in a moment.\r\n";
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(reply).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut left: usize = 64 * 1024;
        while left > 0 {
            let n = stream.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        Ok::<(), std::io::Error>(())
    })
    .await;
}

/// Raises this process's limit on open files to what the system allows
/// (up to 65,536): every served and every waiting connection is a file.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `limit`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        let wanted = limit.rlim_max.min(65_536);
        if limit.rlim_cur < wanted {
            limit.rlim_cur = wanted;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    let needed = (MAX_CONNECTIONS + MAX_WAITING + 64) as u64;
    if limit.rlim_cur < needed {
        tracing::warn!(
            "this process may open only {} files; serve needs {needed} at its busiest (`ulimit -n`)",
            limit.rlim_cur
        );
    }
}

/// Serves until Ctrl-C: one-click unsubscribe, sign-ups, the stored
/// editions. The templates are checked before the server listens.
pub fn serve(pipeline: Pipeline, listen: Option<String>) -> Result<()> {
    pipeline.renderer()?;
    raise_open_files_limit();
    let addr = listen.unwrap_or_else(|| pipeline.config().listen.clone());
    let request_timeout = Duration::from_secs(pipeline.config().http_request_timeout_secs);
    let header_timeout =
        Duration::from_secs(pipeline.config().http_header_timeout_secs).min(request_timeout);
    let slots = Arc::new(Slots::new(!pipeline.config().trust_forwarded_for));
    let (mailer, mail_queue) = tokio::sync::mpsc::channel(1000);
    let app = Arc::new(App {
        title: pipeline.config().title.clone(),
        sign_ups: pipeline.sign_up_queue(),
        queued: tokio::sync::Notify::new(),
        mailer,
        signups: Mutex::new(std::collections::HashMap::new()),
        signup_limit: pipeline.config().subscribe_limit_per_hour,
        trust_forwarded_for: pipeline.config().trust_forwarded_for,
        confirm_days: pipeline.config().confirm_days,
        pipeline: Mutex::new(pipeline),
    });
    let router = Router::new()
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe_page).post(unsubscribe),
        )
        .route("/subscribe", get(subscribe_page).post(subscribe))
        .route("/confirm/{token}", get(confirm_page).post(confirm))
        .route("/editions/{date}", get(edition_html))
        .route("/editions/{date}/text", get(edition_text))
        .fallback(|State(app): State<Arc<App>>| async move { not_found(&app.title) })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(whole_request))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(app.clone());
    let io = |context: String| move |source| Error::Io { context, source };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io("starting the server".into()))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(io(format!("cannot listen on {addr}")))?;
        let local = listener
            .local_addr()
            .map_err(io(format!("cannot listen on {addr}")))?;
        eprintln!("listening on http://{local}");
        // The background task: queued sign-ups recorded and mailed (at once
        // when one is queued), unsubscribes queued while the database was
        // busy applied, and unconfirmed sign-ups purged, at the start and
        // every ten minutes.
        tokio::spawn(mail_confirmations(app.clone(), mail_queue));
        let drainer = app.clone();
        tokio::spawn(async move {
            let mut last_purge: Option<std::time::Instant> = None;
            loop {
                let purge = last_purge.is_none_or(|t| t.elapsed() >= Duration::from_secs(600));
                if purge {
                    last_purge = Some(std::time::Instant::now());
                }
                with_pipeline(&drainer, move |p| {
                    if let Err(e) = p.store().apply_queued_unsubscribes(Utc::now()) {
                        tracing::debug!("queued unsubscribes wait: {e}");
                    }
                    if purge {
                        if let Err(e) = p.purge_signups() {
                            tracing::warn!("purging unconfirmed sign-ups: {e}");
                        }
                    }
                })
                .await;
                apply_sign_ups(&drainer).await;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = drainer.queued.notified() => {}
                }
            }
        });
        let shutdown = tokio::signal::ctrl_c();
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::warn!("accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let client = slots.client(peer.ip());
            let now = slots.try_take(&client);
            if now.is_none() && slots.waiting.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING {
                slots.waiting.fetch_sub(1, Ordering::SeqCst);
                tracing::warn!("{MAX_WAITING} connections wait for a slot; closing a new one");
                continue;
            }
            let router = router.clone();
            let slots = slots.clone();
            tokio::spawn(async move {
                let slot = match now {
                    Some(slot) => slot,
                    None => {
                        let slot = slots.wait(client).await;
                        match slot {
                            Some(slot) => {
                                slots.waiting.fetch_sub(1, Ordering::SeqCst);
                                slot
                            }
                            None => {
                                tracing::debug!(
                                    "no connection slot within {SLOT_WAIT:?} for {peer}"
                                );
                                busy(stream).await;
                                slots.waiting.fetch_sub(1, Ordering::SeqCst);
                                return;
                            }
                        }
                    }
                };
                let deadline = tokio::time::Instant::now() + request_timeout;
                let service = hyper_util::service::TowerToHyperService::new(
                    router.layer(axum::Extension(axum::extract::ConnectInfo(peer))),
                );
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .keep_alive(false)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                let connection = DEADLINE.scope(deadline, connection);
                match tokio::time::timeout(CONNECTION_LIFETIME, connection).await {
                    Ok(Err(e)) => tracing::debug!("connection: {e}"),
                    Ok(Ok(())) => {}
                    Err(_) => tracing::debug!("connection closed after {CONNECTION_LIFETIME:?}"),
                }
                drop(slot);
            });
        }
        Ok(())
    })
}
