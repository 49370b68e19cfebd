//! `digest serve`: one-click unsubscribe (RFC 8058), the subscribe page
//! with its confirmation links (double opt-in) and the welcome after them,
//! the readers' pages (each published edition's web copy, the archive, its
//! Atom feed, a subscriber's preferences), over HTTP (axum on hyper).
//!
//! Database work runs on tokio's blocking pool, never on the thread that
//! answers requests: a database another process holds locked slows only the
//! requests that need to write, and an unsubscribe that meets such a lock is
//! queued durably beside the database (`Store::unsubscribe_by_token`) before
//! the client hears 200, and every sign-up is queued durably before the page
//! answers (`Pipeline::sign_up_queue`), then recorded and mailed by a
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

mod connections;
mod editions;
mod pages;
mod preferences;
mod signup;
mod unsubscribe;

use connections::{client_network, raise_open_files_limit, security_headers, whole_request, Slots};
use pages::{not_found, page, unavailable};

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
    /// Where sign-ups wait (appended without holding the pipeline); none
    /// with PostgreSQL, where each is recorded at once.
    sign_ups: Option<crate::store::QueueFile>,
    /// Wakes the background task: a sign-up was queued.
    queued: tokio::sync::Notify,
    /// Confirmations for the mailer task, which sends one at a time.
    mailer: tokio::sync::mpsc::Sender<crate::pipeline::Confirmation>,
    title: String,
    /// A connection of its own for counting sign-ups (none: the database
    /// could not be opened twice, counted in memory).
    counter: Option<Mutex<crate::store::Store>>,
    /// Sign-ups per client network in the last hour, counted here when the
    /// database cannot count them at the moment.
    signups: Mutex<std::collections::HashMap<IpAddr, Vec<std::time::Instant>>>,
    signup_limit: u32,
    trust_forwarded_for: bool,
    confirm_days: u32,
    /// The Atom feed as last built: a client asking for it again and again
    /// costs a read of the editions it lists, not twenty rendered each time.
    feed: Mutex<Option<Arc<crate::pipeline::Feed>>>,
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
        counter: match pipeline.connect_again() {
            Ok(store) => Some(Mutex::new(store)),
            Err(e) => {
                tracing::warn!("sign-ups are counted in memory: {e}");
                None
            }
        },
        signups: Mutex::new(std::collections::HashMap::new()),
        signup_limit: pipeline.config().subscribe_limit_per_hour,
        trust_forwarded_for: pipeline.config().trust_forwarded_for,
        confirm_days: pipeline.config().confirm_days,
        feed: Mutex::new(None),
        pipeline: Mutex::new(pipeline),
    });
    let router = Router::new()
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe::ask).post(unsubscribe::one_click),
        )
        .route(
            "/subscribe",
            get(signup::subscribe_page).post(signup::subscribe),
        )
        .route(
            "/confirm/{token}",
            get(signup::confirm_page).post(signup::confirm),
        )
        .route("/", get(editions::home))
        .route("/editions", get(editions::archive))
        .route("/editions.atom", get(editions::atom))
        .route(
            "/preferences/{token}",
            get(preferences::show).post(preferences::change),
        )
        .route("/editions/{date}", get(editions::html))
        .route("/editions/{date}/text", get(editions::text))
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
        tokio::spawn(signup::mail_confirmations(app.clone(), mail_queue));
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
                signup::apply_sign_ups(&drainer).await;
                signup::mail_welcomes(&drainer).await;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = drainer.queued.notified() => {}
                }
            }
        });
        connections::accept(listener, router, slots, request_timeout, header_timeout).await;
        Ok(())
    })
}
