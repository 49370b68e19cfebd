//! The delivery loop's queue: open deliveries read a page at a time
//! (keyset pagination), retries waiting for their time, and the rate limit
//! shared by the workers.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::StopReason;
use crate::store::{Delivery, DeliveryState, StoreError};

pub(super) struct Job {
    pub(super) delivery: Delivery,
    pub(super) attempts_this_run: u32,
}

/// Deliveries read from the store a page at a time (keyset pagination by
/// subscriber id), so a run holds at most a page and the retries in memory,
/// whatever the size of the list.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pages {
    /// The last subscriber id read.
    pub(super) after: i64,
    /// How many more may be read this run (`--limit`).
    pub(super) left: usize,
}

/// Deliveries per page.
pub(super) const PAGE: usize = 512;

#[derive(Default)]
pub(super) struct Queue {
    pub(super) ready: VecDeque<Job>,
    pub(super) delayed: Vec<(Instant, Job)>,
    /// `None` once every open delivery was read.
    pub(super) pages: Option<Pages>,
    /// Deliveries read in `sending`: left there by a run that stopped.
    pub(super) resumed: usize,
    /// Deliveries read so far.
    pub(super) read: usize,
    /// Every open delivery was read (not just up to `--limit`).
    pub(super) exhausted: bool,
    /// Reading again from the start what other workers left behind (one
    /// that stopped: its claims are free now), after the pages ran out.
    pub(super) sweeping: bool,
    /// The sweep was done (or is not needed: a `--limit`, a stop).
    pub(super) swept: bool,
    pub(super) in_flight: usize,
    pub(super) stop: Option<StopReason>,
}

/// Spaces sends to at most `rate` per second across all workers.
pub(super) struct RateLimit {
    pub(super) interval: Option<Duration>,
    pub(super) next: Mutex<Instant>,
}

impl RateLimit {
    pub(super) fn new(rate: f64) -> RateLimit {
        let interval = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
        RateLimit {
            interval,
            next: Mutex::new(Instant::now()),
        }
    }

    pub(super) fn wait(&self) {
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

/// Reads a page of open deliveries: `(after, at most, sweeping)`.
pub(super) type Fetch<'a> = dyn Fn(i64, usize, bool) -> Result<Vec<Delivery>, StoreError> + 'a;

/// The next page of open deliveries, where the one after starts
/// (`None`: nothing more to read), and whether the pages ran out (rather
/// than `--limit`).
pub(super) fn read_page(
    pages: Pages,
    sweeping: bool,
    fetch: &Fetch<'_>,
) -> Result<(Vec<Job>, Option<Pages>, bool), StoreError> {
    if pages.left == 0 {
        return Ok((Vec::new(), None, false));
    }
    let want = pages.left.min(PAGE);
    let page = fetch(pages.after, want, sweeping)?;
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
pub(super) fn next_job(queue: &Mutex<Queue>, wake: &Condvar, fetch: &Fetch<'_>) -> Option<Job> {
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
        // The pages ran out and everything read is done: once, read again
        // from the start what other workers left (with several workers on
        // one edition, one that stopped left claims behind this one's
        // pages, free now).
        if q.ready.is_empty()
            && q.pages.is_none()
            && q.exhausted
            && !q.swept
            && q.delayed.is_empty()
            && q.in_flight == 0
        {
            q.swept = true;
            q.sweeping = true;
            q.pages = Some(Pages {
                after: 0,
                left: usize::MAX,
            });
        }
        if q.ready.is_empty() {
            if let Some(pages) = q.pages {
                let sweeping = q.sweeping;
                match read_page(pages, sweeping, fetch) {
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
