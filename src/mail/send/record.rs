//! One send of the delivery loop and its bookkeeping: render, build,
//! claim, send, record; a retry back on the queue, a reason to stop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use chrono::Utc;

use super::queue::{Job, Queue};
use super::{
    lock, message, Failure, MessageSettings, Outcome, SendOptions, StopReason, StoredEdition,
    FAILURE_BREAKER, MAX_BACKOFF,
};
use crate::mail::transport::{SendError, Transport};
use crate::progress::Progress;
use crate::render::Renderer;
use crate::store::{DeliveryState, Store, StoreError};

/// What every worker of a run shares besides the queue.
pub(super) struct Run<'a, 's> {
    pub(super) shared: &'a Mutex<&'s mut Store>,
    pub(super) transport: &'a Transport,
    pub(super) renderer: &'a Renderer,
    pub(super) stored: &'a StoredEdition,
    pub(super) settings: &'a MessageSettings,
    pub(super) opts: &'a SendOptions,
    pub(super) progress: &'a dyn Progress,
    pub(super) sent: &'a AtomicUsize,
    pub(super) failures: &'a Mutex<Vec<Failure>>,
    pub(super) retrying: &'a AtomicUsize,
    /// Jobs taken but neither sent nor recorded: the one that hit a
    /// stopping error.
    pub(super) interrupted: &'a AtomicUsize,
    /// Jobs another process had claimed (skipped).
    pub(super) claimed_elsewhere: &'a AtomicUsize,
}

impl Run<'_, '_> {
    /// Records what one send did, in the delivery log and the run's
    /// counts; a job to try again goes back on the queue; a reason to stop
    /// stops the run.
    pub(super) fn record(&self, q: &mut Queue, mut job: Job, outcome: Result<(), Outcome>) {
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
                match (failed, crate::mail::bounce::rejected_mailbox(&reason)) {
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

impl Run<'_, '_> {
    /// Sends one subscriber their copy: render, build, claim, send, record.
    pub(super) fn send_one(&self, job: &Job) -> Result<(), Outcome> {
        let (store, stored, settings) = (self.shared, self.stored, self.settings);
        let d = &job.delivery;
        let sub = &d.subscriber;
        let recipient = settings.recipient(sub);
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
