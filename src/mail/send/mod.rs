//! The delivery loop: every active subscriber gets the edition exactly once.
//!
//! Each (edition, subscriber) is a row in `deliveries`, moved through
//! pending → sending → sent | failed | retry, each change committed on its
//! own before the next step. Workers (the send concurrency) take subscribers
//! from a shared queue and record through one shared SQLite connection
//! (commits are microseconds; separate connections would contend for the
//! write lock and sleep in SQLite's busy handler):
//!
//! 1. render the subscriber's message (name, unsubscribe link);
//! 2. commit `sending` — from here a crash is visible to the next run;
//! 3. hand the message to the transport;
//! 4. commit `sent`, `failed` (5xx, with the server's reply) or `retry`
//!    (4xx, dropped connection, timeout: retried with exponential backoff
//!    within the run, and by the next run).
//!
//! A re-run sends only what is not `sent` or `failed`. A row left in
//! `sending` by a crash is sent again with the same `Message-ID`. That is
//! the one window SMTP cannot close: the server accepted the message (step
//! 3 finished) and the process died before step 4 committed, a few
//! microseconds later. Such a copy is a recognisable duplicate (same
//! Message-ID), never a missing one.

use std::sync::atomic::AtomicUsize;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;

mod queue;
mod record;

use queue::{next_job, Pages, Queue, RateLimit};
use record::Run;

use super::message::{self, MessageSettings};
use super::transport::{SendError, Transport};
use crate::edition::Edition;
use crate::progress::Progress;
use crate::render::Renderer;
use crate::store::{DeliveryState, Store, StoreError};

/// The stored edition a run sends.
type StoredEdition = crate::store::StoredEdition<Edition>;

/// How a run sends.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// Messages in flight at once (and SMTP connections in the pool).
    pub concurrency: usize,
    /// At most this many messages per second; 0 for no limit.
    pub rate_limit: f64,
    /// Send at most this many messages this run.
    pub limit: Option<usize>,
    /// Attempts per subscriber within one run (transient failures).
    pub max_attempts: u32,
    /// First retry delay; doubled at each further attempt.
    pub retry_base: Duration,
}

/// A failure recorded for one subscriber.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub email: String,
    pub error: String,
    #[serde(skip)]
    subscriber_id: i64,
}

/// Permanent failures in a row, with nothing sent yet in the run, that mean
/// the server refuses the sender rather than the recipients (a relay that
/// denies us, a rejected From address): the run stops and they stay open.
pub const FAILURE_BREAKER: usize = 10;

/// The longest wait before a retry within a run.
const MAX_BACKOFF: Duration = Duration::from_secs(24 * 3600);

/// Why a run stopped early. Shown (and serialized in the run summary) as
/// a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The server refused the login, or TLS failed: nothing can be sent
    /// until the configuration is fixed.
    Refused(String),
    /// `FAILURE_BREAKER` permanent failures in a row with nothing sent: the
    /// server refuses the sender, not the recipients.
    Breaker { failures: usize, last_reply: String },
    /// A message could not be made (a template, a send that panicked).
    Message(String),
    /// The delivery log could not be written.
    Database(String),
}

impl StopReason {
    /// A problem with the configuration (the login, TLS, the sender), not
    /// with this run: exit status 2.
    pub fn is_config(&self) -> bool {
        matches!(self, StopReason::Refused(_) | StopReason::Breaker { .. })
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Refused(why) | StopReason::Message(why) => f.write_str(why),
            StopReason::Breaker {
                failures,
                last_reply,
            } => write!(
                f,
                "{failures} permanent failures in a row and nothing sent; the server's last reply: {last_reply}"
            ),
            StopReason::Database(e) => write!(f, "database error: {e}"),
        }
    }
}

impl Serialize for StopReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What a run did: printed on stderr, and on stdout with `--json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    pub date: String,
    pub transport: String,
    /// Deliveries planned for this edition (active subscribers).
    pub subscribers: usize,
    /// Sent by this run.
    pub sent: usize,
    /// Permanently failed in this run.
    pub failed: usize,
    /// Still waiting for a retry (the next run picks them up).
    pub retrying: usize,
    /// Already sent or failed by earlier runs, not touched.
    pub skipped: usize,
    /// Not attempted this run (`--limit`, or the run was stopped).
    pub remaining: usize,
    /// Deliveries a crashed run left in `sending`, sent again.
    pub resumed: usize,
    pub failures: Vec<Failure>,
    /// Why the run stopped early, if it did.
    pub stopped: Option<StopReason>,
}

impl RunSummary {
    /// Everything planned is sent (or failed in an earlier run).
    pub fn complete(&self) -> bool {
        self.failed == 0 && self.retrying == 0 && self.remaining == 0 && self.stopped.is_none()
    }
}

/// A run that could not go on.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The edition changed after it was read (an edit made on another
    /// host, before any delivery was planned): nothing was sent; read it
    /// again.
    #[error("the edition of {date} changed since version {version} was read; nothing was sent")]
    Changed {
        date: chrono::NaiveDate,
        version: i64,
    },
}

/// Sends the stored edition to every active subscriber who has not had it,
/// through the process's one store handle (its workers share it).
#[allow(clippy::too_many_arguments)]
pub fn deliver(
    store: &mut Store,
    transport: &Transport,
    renderer: &Renderer,
    stored: &StoredEdition,
    settings: &MessageSettings,
    opts: &SendOptions,
    progress: &dyn Progress,
) -> Result<RunSummary, DeliverError> {
    let date = stored.date;
    let domain = settings.domain().to_owned();
    let planned = store
        .plan_deliveries(
            stored.id,
            stored.version,
            Box::new(move |_, token| {
                crate::mail::MessageId::digest(date, token, &domain).into_string()
            }),
            Utc::now(),
        )?
        .map_err(|_| DeliverError::Changed {
            date: stored.date,
            version: stored.version,
        })?;
    if planned > 0 {
        tracing::debug!("{planned} new deliveries planned");
    }
    // Counted by index; the deliveries themselves are read a page at a time.
    let active = store.active_subscribers()?;
    let open = store.open_counts(stored.id)?;
    let mut summary = RunSummary {
        date: date.to_string(),
        transport: transport.describe(),
        subscribers: active,
        skipped: active.saturating_sub(open.total()),
        ..Default::default()
    };
    progress.set_total(open.total().min(opts.limit.unwrap_or(usize::MAX)) as u64);

    let queue = Mutex::new(Queue {
        pages: Some(Pages {
            after: 0,
            // Read until the pages run out (a delivery that opened after the
            // count is sent too), or up to `--limit`.
            left: opts.limit.unwrap_or(usize::MAX),
        }),
        ..Default::default()
    });
    let wake = Condvar::new();
    let rate = RateLimit::new(opts.rate_limit);
    let sent = AtomicUsize::new(0);
    let failures: Mutex<Vec<Failure>> = Mutex::new(Vec::new());
    let retrying = AtomicUsize::new(0);
    // Jobs that were taken but neither sent nor recorded: the one that hit
    // a stopping error, and those claimed elsewhere (skipped).
    let interrupted = AtomicUsize::new(0);
    let claimed_elsewhere = AtomicUsize::new(0);
    let shared = Mutex::new(store);
    let fetch = |after: i64, n: usize, sweeping: bool| {
        let store = lock(&shared);
        if sweeping {
            store.left_behind(stored.id, after, n)
        } else {
            store.open_deliveries(stored.id, after, n)
        }
    };

    let run = Run {
        shared: &shared,
        transport,
        renderer,
        stored,
        settings,
        opts,
        progress,
        sent: &sent,
        failures: &failures,
        retrying: &retrying,
        interrupted: &interrupted,
        claimed_elsewhere: &claimed_elsewhere,
    };
    std::thread::scope(|scope| {
        for _ in 0..opts.concurrency.max(1) {
            scope.spawn(|| {
                while let Some(job) = next_job(&queue, &wake, &fetch) {
                    rate.wait();
                    // A panic in one send (a template, the transport) stops the
                    // run cleanly instead of leaving the other workers waiting.
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        run.send_one(&job)
                    }))
                    .unwrap_or_else(|_| {
                        Err(Outcome::Render("a send panicked; the run stopped".into()))
                    });
                    let mut q = queue.lock().expect("queue lock");
                    q.in_flight -= 1;
                    run.record(&mut q, job, outcome);
                    drop(q);
                    wake.notify_all();
                }
            });
        }
    });

    let q = queue.into_inner().expect("queue lock");
    summary.sent = sent.into_inner();
    summary.failures = failures.into_inner().expect("lock");
    if matches!(q.stop, Some(StopReason::Breaker { .. })) {
        // Not these subscribers' fault: reopen their deliveries for the next run.
        let store = lock(&shared);
        for f in summary.failures.drain(..) {
            store.mark_done(
                stored.id,
                f.subscriber_id,
                DeliveryState::Pending,
                Some(&f.error),
                None,
                Utc::now(),
            )?;
            summary.remaining += 1;
        }
    }
    summary.failed = summary.failures.len();
    summary.retrying = retrying.into_inner() + q.delayed.len();
    // Not attempted: what was read but not taken, what was never read (a
    // limit, a stop), what a stopping error interrupted.
    let unread = if q.exhausted {
        0
    } else {
        open.total().saturating_sub(q.read)
    };
    summary.resumed = q.resumed;
    summary.remaining += q.ready.len() + unread + interrupted.into_inner();
    summary.skipped += claimed_elsewhere.into_inner();
    summary.stopped = q.stop;
    Ok(summary)
}

enum Outcome {
    /// The delivery was no longer open (sent by another run, or the
    /// subscriber left): nothing was sent.
    Skipped,
    Send(SendError),
    Render(String),
    Store(StoreError),
}

fn lock<'a, 's>(store: &'a Mutex<&'s mut Store>) -> std::sync::MutexGuard<'a, &'s mut Store> {
    store
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
