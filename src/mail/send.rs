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

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;

use super::message::{self, MessageSettings};
use super::transport::{SendError, Transport};
use crate::edition::Edition;
use crate::progress::Progress;
use crate::render::{Recipient, Renderer};
use crate::store::{Delivery, DeliveryState, Store, StoreError};

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
}

struct Job {
    delivery: Delivery,
    attempts_this_run: u32,
}

/// Deliveries read from the store a page at a time (keyset pagination by
/// subscriber id), so a run holds at most a page and the retries in memory,
/// whatever the size of the list.
#[derive(Debug, Clone, Copy)]
struct Pages {
    /// The last subscriber id read.
    after: i64,
    /// How many more may be read this run (`--limit`).
    left: usize,
}

/// Deliveries per page.
const PAGE: usize = 512;

#[derive(Default)]
struct Queue {
    ready: VecDeque<Job>,
    delayed: Vec<(Instant, Job)>,
    /// `None` once every open delivery was read.
    pages: Option<Pages>,
    /// Deliveries read in `sending`: left there by a run that stopped.
    resumed: usize,
    /// Deliveries read so far.
    read: usize,
    /// Every open delivery was read (not just up to `--limit`).
    exhausted: bool,
    in_flight: usize,
    stop: Option<StopReason>,
}

/// Spaces sends to at most `rate` per second across all workers.
struct RateLimit {
    interval: Option<Duration>,
    next: Mutex<Instant>,
}

impl RateLimit {
    fn new(rate: f64) -> RateLimit {
        let interval = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
        RateLimit {
            interval,
            next: Mutex::new(Instant::now()),
        }
    }

    fn wait(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let wait_until = {
            let mut next = self.next.lock().expect("rate limiter lock");
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + interval;
            slot
        };
        let now = Instant::now();
        if wait_until > now {
            std::thread::sleep(wait_until - now);
        }
    }
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
    let planned = store.plan_deliveries(
        stored.id,
        move |_, token| message::message_id_for(date, token, &domain),
        Utc::now(),
    )?;
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
    let fetch = |after: i64, n: usize| lock(&shared).open_deliveries(stored.id, after, n);

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

/// What every worker of a run shares besides the queue.
struct Run<'a, 's> {
    shared: &'a Mutex<&'s mut Store>,
    transport: &'a Transport,
    renderer: &'a Renderer,
    stored: &'a StoredEdition,
    settings: &'a MessageSettings,
    opts: &'a SendOptions,
    progress: &'a dyn Progress,
    sent: &'a AtomicUsize,
    failures: &'a Mutex<Vec<Failure>>,
    retrying: &'a AtomicUsize,
    /// Jobs taken but neither sent nor recorded: the one that hit a
    /// stopping error.
    interrupted: &'a AtomicUsize,
    /// Jobs another process had claimed (skipped).
    claimed_elsewhere: &'a AtomicUsize,
}

impl Run<'_, '_> {
    /// Records what one send did, in the delivery log and the run's
    /// counts; a job to try again goes back on the queue; a reason to stop
    /// stops the run.
    fn record(&self, q: &mut Queue, mut job: Job, outcome: Result<(), Outcome>) {
        job.attempts_this_run += 1;
        let now = Utc::now();
        let edition = self.stored.id;
        let sub = job.delivery.subscriber.id;
        let email = job.delivery.subscriber.email.clone();
        let recorded = match outcome {
            Ok(()) => {
                self.sent.fetch_add(1, Ordering::Relaxed);
                self.progress.advance("");
                Ok(())
            }
            Err(Outcome::Skipped) => {
                self.claimed_elsewhere.fetch_add(1, Ordering::Relaxed);
                self.progress.advance("");
                Ok(())
            }
            Err(Outcome::Store(e)) => {
                self.interrupted.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
            Err(Outcome::Send(SendError::Permanent(reason))) => {
                tracing::warn!("{email}: failed permanently: {reason}");
                let mut f = self.failures.lock().expect("lock");
                f.push(Failure {
                    email,
                    error: reason.clone(),
                    subscriber_id: sub,
                });
                if f.len() >= FAILURE_BREAKER && self.sent.load(Ordering::Relaxed) == 0 {
                    q.stop.get_or_insert_with(|| StopReason::Breaker {
                        failures: f.len(),
                        last_reply: reason.clone(),
                    });
                }
                drop(f);
                self.progress.advance("");
                let store = lock(self.shared);
                // The server refused the mailbox itself (5.1.x, 5.2.1): a
                // bounce at once, not only in the delivery log.
                let failed = store.mark_done(
                    edition,
                    sub,
                    DeliveryState::Failed,
                    Some(&reason),
                    None,
                    now,
                );
                match (failed, super::bounce::rejected_mailbox(&reason)) {
                    (Err(e), _) => Err(e),
                    (Ok(()), Some(status)) => store
                        .apply_mail_event(
                            &format!("smtp:{edition}:{sub}"),
                            sub,
                            &crate::store::MailEvent::HardBounce { status },
                            now,
                        )
                        .map(drop),
                    (Ok(()), None) => Ok(()),
                }
            }
            Err(Outcome::Send(SendError::Transient(reason))) => {
                let total_attempts = job.delivery.attempts + job.attempts_this_run;
                let backoff = self
                    .opts
                    .retry_base
                    .saturating_mul(2u32.saturating_pow(job.attempts_this_run.saturating_sub(1)))
                    .min(MAX_BACKOFF);
                let next = now + chrono::Duration::from_std(backoff).unwrap_or_default();
                let result = lock(self.shared).mark_done(
                    edition,
                    sub,
                    DeliveryState::Retry,
                    Some(&reason),
                    Some(next),
                    now,
                );
                if job.attempts_this_run < self.opts.max_attempts && q.stop.is_none() {
                    tracing::info!(
                        "{email}: will retry in {backoff:?} (attempt {total_attempts}): {reason}"
                    );
                    q.delayed.push((Instant::now() + backoff, job));
                } else {
                    tracing::warn!(
                        "{email}: still failing after {} attempts this run; the next run retries: {reason}",
                        job.attempts_this_run
                    );
                    self.retrying.fetch_add(1, Ordering::Relaxed);
                    self.progress.advance("");
                }
                result
            }
            Err(Outcome::Send(SendError::Fatal(reason))) => {
                self.stop_at(q, sub, StopReason::Refused(reason))
            }
            Err(Outcome::Render(reason)) => self.stop_at(q, sub, StopReason::Message(reason)),
        };
        if let Err(e) = recorded {
            tracing::error!("{e}");
            q.stop
                .get_or_insert_with(|| StopReason::Database(e.to_string()));
        }
    }

    /// Stops the run for `why`; the subscriber's delivery stays open.
    fn stop_at(&self, q: &mut Queue, sub: i64, why: StopReason) -> Result<(), StoreError> {
        self.interrupted.fetch_add(1, Ordering::Relaxed);
        let reason = why.to_string();
        q.stop.get_or_insert(why);
        lock(self.shared).mark_done(
            self.stored.id,
            sub,
            DeliveryState::Pending,
            Some(&reason),
            None,
            Utc::now(),
        )
    }
}

/// The next page of open deliveries, where the one after starts
/// (`None`: nothing more to read), and whether the pages ran out (rather
/// than `--limit`).
fn read_page(
    pages: Pages,
    fetch: &dyn Fn(i64, usize) -> Result<Vec<Delivery>, StoreError>,
) -> Result<(Vec<Job>, Option<Pages>, bool), StoreError> {
    if pages.left == 0 {
        return Ok((Vec::new(), None, false));
    }
    let want = pages.left.min(PAGE);
    let page = fetch(pages.after, want)?;
    let exhausted = page.len() < want;
    let next = match page.last() {
        Some(last) if !exhausted => Some(Pages {
            after: last.subscriber.id,
            left: pages.left - want,
        }),
        _ => None,
    };
    let jobs = page
        .into_iter()
        .map(|delivery| {
            if delivery.state == DeliveryState::Sending {
                tracing::warn!(
                    "{}: an earlier run stopped while sending; sending again with the same Message-ID",
                    delivery.subscriber.email
                );
            }
            Job {
                delivery,
                attempts_this_run: 0,
            }
        })
        .collect();
    Ok((jobs, next, exhausted))
}

/// The next job, waiting for delayed retries to come due and reading the
/// next page of deliveries when the queue runs dry; `None` when everything
/// is done or the run was stopped.
fn next_job(
    queue: &Mutex<Queue>,
    wake: &Condvar,
    fetch: &dyn Fn(i64, usize) -> Result<Vec<Delivery>, StoreError>,
) -> Option<Job> {
    let mut q = queue.lock().expect("queue lock");
    loop {
        if q.stop.is_some() {
            return None;
        }
        let now = Instant::now();
        let mut i = 0;
        while i < q.delayed.len() {
            if q.delayed[i].0 <= now {
                let (_, job) = q.delayed.swap_remove(i);
                q.ready.push_back(job);
            } else {
                i += 1;
            }
        }
        if q.ready.is_empty() {
            if let Some(pages) = q.pages {
                match read_page(pages, fetch) {
                    Ok((jobs, next, exhausted)) => {
                        q.read += jobs.len();
                        q.exhausted |= exhausted;
                        q.resumed += jobs
                            .iter()
                            .filter(|j| j.delivery.state == DeliveryState::Sending)
                            .count();
                        q.ready.extend(jobs);
                        q.pages = next;
                    }
                    Err(e) => {
                        tracing::error!("{e}");
                        q.stop = Some(StopReason::Database(e.to_string()));
                        return None;
                    }
                }
            }
        }
        if let Some(job) = q.ready.pop_front() {
            q.in_flight += 1;
            return Some(job);
        }
        if q.delayed.is_empty() && q.in_flight == 0 {
            return None;
        }
        let wait = q
            .delayed
            .iter()
            .map(|(t, _)| t.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_millis(200));
        q = wake
            .wait_timeout(q, wait.max(Duration::from_millis(1)))
            .expect("queue lock")
            .0;
    }
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

impl Run<'_, '_> {
    /// Sends one subscriber their copy: render, build, claim, send, record.
    fn send_one(&self, job: &Job) -> Result<(), Outcome> {
        let (store, stored, settings) = (self.shared, self.stored, self.settings);
        let d = &job.delivery;
        let sub = &d.subscriber;
        let recipient = Recipient {
            name: sub.name.clone(),
            email: sub.email.clone(),
            unsubscribe_url: settings.unsubscribe_url(sub),
        };
        let personal;
        let edition = if sub.topics.is_empty() {
            &stored.edition
        } else {
            personal = crate::edition::personalize(&stored.edition, &sub.topics, sub.topics_only);
            &personal
        };
        let rendered = self
            .renderer
            .render(edition, &recipient)
            .map_err(|e| Outcome::Render(e.to_string()))?;
        let message = message::build(&rendered, sub, settings, &d.message_id, Utc::now())
            .map_err(|e| Outcome::Send(SendError::Permanent(e)))?;
        let claimed = lock(store)
            .mark_sending(stored.id, sub.id, Utc::now())
            .map_err(Outcome::Store)?;
        if !claimed {
            return Err(Outcome::Skipped);
        }
        let name = format!("{}-{:07}", stored.date, sub.id);
        self.transport
            .send(&message, &name)
            .map_err(Outcome::Send)?;
        lock(store)
            .mark_done(
                stored.id,
                sub.id,
                DeliveryState::Sent,
                None,
                None,
                Utc::now(),
            )
            .map_err(Outcome::Store)
    }
}
