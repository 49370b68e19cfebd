//! `digest serve`: one-click unsubscribe (RFC 8058) and the editor's
//! preview of stored editions, over HTTP (axum).

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{NaiveDate, Utc};

use crate::pipeline::{Error, Pipeline, Result};
use crate::store::Status;

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

fn lock(app: &App) -> std::sync::MutexGuard<'_, Pipeline> {
    app.pipeline.lock().unwrap_or_else(|p| p.into_inner())
}

/// The confirmation page: unsubscribing takes a deliberate click (mail
/// scanners follow GET links; they do not submit forms).
async fn unsubscribe_page(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    let known = lock(&app)
        .store()
        .subscriber_by_token(&token)
        .ok()
        .flatten();
    match known {
        Some(s) if s.status == Status::Active => page(
            &format!("Unsubscribe from {}", app.title),
            "<p>Stop receiving this digest?</p><form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
             <button type=\"submit\" style=\"font-size: 1em; padding: 0.5em 1.2em;\">Unsubscribe</button></form>",
        )
        .into_response(),
        Some(_) => page(&format!("Unsubscribe from {}", app.title), "<p>You are already unsubscribed.</p>").into_response(),
        None => not_found(&app.title),
    }
}

/// RFC 8058 one-click unsubscribe: `POST` with `List-Unsubscribe=One-Click`.
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
    let pipeline = lock(&app);
    let store = pipeline.store();
    let Some(sub) = store.subscriber_by_token(&token).ok().flatten() else {
        return not_found(&app.title);
    };
    if let Err(e) = store.set_status(&sub.email, Status::Unsubscribed, Utc::now()) {
        tracing::error!("unsubscribe: {e}");
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            page(&app.title, "<p>Something went wrong; please try again.</p>"),
        )
            .into_response();
    }
    tracing::info!("a subscriber unsubscribed");
    page(
        &format!("Unsubscribed from {}", app.title),
        "<p>You are unsubscribed and will not receive the digest again.</p>",
    )
    .into_response()
}

fn render_edition(app: &App, date: &str) -> Option<crate::render::Rendered> {
    let date: NaiveDate = date.parse().ok()?;
    let pipeline = lock(app);
    let stored = pipeline.stored_edition(date).ok().flatten()?;
    pipeline
        .renderer()
        .ok()?
        .render(&stored.edition, &pipeline.preview_recipient())
        .ok()
}

async fn edition_html(State(app): State<Arc<App>>, Path(date): Path<String>) -> Response {
    match render_edition(&app, &date) {
        Some(r) => Html(r.html).into_response(),
        None => not_found(&app.title),
    }
}

async fn edition_text(State(app): State<Arc<App>>, Path(date): Path<String>) -> Response {
    match render_edition(&app, &date) {
        Some(r) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("Subject: {}\n\n{}", r.subject, r.text),
        )
            .into_response(),
        None => not_found(&app.title),
    }
}

/// Serves until Ctrl-C: one-click unsubscribe and the stored editions.
/// The templates are checked before the server listens.
pub fn serve(pipeline: Pipeline, listen: Option<String>) -> Result<()> {
    pipeline.renderer()?;
    let addr = listen.unwrap_or_else(|| pipeline.config().listen.clone());
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
        .with_state(app);
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
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(io("serving".into()))
    })
}
