//! `digest serve`: one-click unsubscribe (RFC 8058), the subscribe page
//! with its confirmation links (double opt-in), and the editor's preview of
//! stored editions, over HTTP (axum on hyper).
//!
//! Database work runs on tokio's blocking pool, never on the thread that
//! answers requests: a database another process holds locked slows only the
//! requests that need to write, and an unsubscribe that meets such a lock is
//! queued durably beside the database (`Store::unsubscribe_by_token`) before
//! the client hears 200. Connections get a header-read timeout and a cap, so
//! half-sent requests cannot pile up; every page carries security headers.

use std::net::{IpAddr, SocketAddr};
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

/// Connections served at once; more are closed as they arrive.
pub const MAX_CONNECTIONS: usize = 512;
/// Longest a connection stays open, whatever it does (a body trickled a
/// byte at a time cannot hold a slot).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Largest request body (an unsubscribe form is a few dozen bytes).
pub const MAX_BODY: usize = 4096;

struct App {
    pipeline: Mutex<Pipeline>,
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

/// `POST /subscribe`: checks the form, answers at once, and records the
/// sign-up and mails its link in the background, so that neither the page
/// nor its timing says whether the address is already on the list.
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
    let Ok(email) = crate::mail::validate_address(&form.email) else {
        return invalid(
            "Please enter an email address, like name@example.com.",
            &form.email,
            &name,
            &topics,
        );
    };
    if let Err(e) = crate::mail::validate_name(&name) {
        let why = e.split(':').next_back().unwrap_or("").trim().to_owned();
        return invalid(
            &format!("Please check your name: {why}"),
            &email,
            "",
            &topics,
        );
    }
    if topics.chars().count() > 200 || topics.chars().any(char::is_control) {
        return invalid(
            "Please keep topics to one line of at most 200 characters.",
            &email,
            &name,
            "",
        );
    }
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
    } else {
        let worker = app.clone();
        tokio::spawn(async move {
            let recorded = with_pipeline(&worker, move |p| {
                p.record_sign_up(
                    &email,
                    Some(name.as_str()).filter(|n| !n.is_empty()),
                    &topics,
                )
            })
            .await;
            let confirmation = match recorded {
                Some(Ok(Ok(confirmation))) => confirmation,
                Some(Ok(Err(outcome))) => return tracing::info!("sign-up: {outcome:?}"),
                Some(Err(e)) => return tracing::error!("sign-up: {e}"),
                None => return tracing::error!("sign-up: the worker failed"),
            };
            // Mailed without holding the pipeline: a slow mail server
            // delays no unsubscribe.
            let sent = tokio::task::spawn_blocking(move || {
                let sent = confirmation.send();
                (confirmation, sent)
            })
            .await;
            if let Ok((confirmation, Err(e))) = sent {
                tracing::error!("sign-up: {e}");
                with_pipeline(&worker, move |p| {
                    if let Err(e) = p.forget_confirmation(&confirmation) {
                        tracing::error!("sign-up: {e}");
                    }
                })
                .await;
            }
        });
    }
    page("Check your inbox", &done).into_response()
}

/// The confirmation page: a button, since mail scanners follow links.
async fn confirm_page(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    let waiting = with_pipeline(&app, move |p| p.confirmation_waiting(&token)).await;
    match waiting {
        Some(Ok(true)) => page(
            &format!("Confirm your subscription to {}", app.title),
            "<p>Press Confirm to start receiving the digest.</p><form method=\"post\">\
             <button type=\"submit\" style=\"font-size:1em;padding:0.5em 1.2em;\">Confirm</button></form>",
        )
        .into_response(),
        Some(Ok(false)) => expired(&app.title),
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

async fn confirm(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    let done = with_pipeline(&app, move |p| p.confirm_subscription(&token)).await;
    match done {
        Some(Ok(Confirmed::Activated | Confirmed::Already)) => {
            tracing::info!("a subscription was confirmed");
            page(
                &format!("Subscribed to {}", app.title),
                "<p>You are subscribed. The next digest will come to your inbox; every one has a link to unsubscribe.</p>",
            )
            .into_response()
        }
        Some(Ok(Confirmed::Unknown)) => expired(&app.title),
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

/// Runs `work` with the pipeline on the blocking pool.
async fn with_pipeline<T: Send + 'static>(
    app: &Arc<App>,
    work: impl FnOnce(&Pipeline) -> T + Send + 'static,
) -> Option<T> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || {
        let pipeline = app.pipeline.lock().unwrap_or_else(|p| p.into_inner());
        work(&pipeline)
    })
    .await
    .ok()
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

/// Serves until Ctrl-C: one-click unsubscribe and the stored editions.
/// The templates are checked before the server listens.
pub fn serve(pipeline: Pipeline, listen: Option<String>) -> Result<()> {
    pipeline.renderer()?;
    let addr = listen.unwrap_or_else(|| pipeline.config().listen.clone());
    let header_timeout = Duration::from_secs(pipeline.config().http_header_timeout_secs);
    let app = Arc::new(App {
        title: pipeline.config().title.clone(),
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
        // Unsubscribes queued while the database was busy are applied here.
        // So are unconfirmed sign-ups purged, at the start and every ten
        // minutes.
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
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
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
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::warn!("{MAX_CONNECTIONS} connections open; closing a new one");
                continue;
            };
            let service = hyper_util::service::TowerToHyperService::new(
                router
                    .clone()
                    .layer(axum::Extension(axum::extract::ConnectInfo(peer))),
            );
            tokio::spawn(async move {
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
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
