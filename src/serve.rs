//! `digest serve`: one-click unsubscribe (RFC 8058) and the editor's
//! preview of stored editions, over HTTP (axum on hyper).
//!
//! Database work runs on tokio's blocking pool, never on the thread that
//! answers requests: a database another process holds locked slows only the
//! requests that need to write, and an unsubscribe that meets such a lock is
//! queued durably beside the database (`Store::unsubscribe_by_token`) before
//! the client hears 200. Connections get a header-read timeout and a cap, so
//! half-sent requests cannot pile up; every page carries security headers.

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
use crate::store::{Status, Unsubscribed};

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
        pipeline: Mutex::new(pipeline),
    });
    let router = Router::new()
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe_page).post(unsubscribe),
        )
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
        let drainer = app.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                with_pipeline(&drainer, |p| {
                    if let Err(e) = p.store().apply_queued_unsubscribes(Utc::now()) {
                        tracing::debug!("queued unsubscribes wait: {e}");
                    }
                })
                .await;
            }
        });
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let shutdown = tokio::signal::ctrl_c();
        tokio::pin!(shutdown);
        loop {
            let (stream, _) = tokio::select! {
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
            let service = hyper_util::service::TowerToHyperService::new(router.clone());
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
