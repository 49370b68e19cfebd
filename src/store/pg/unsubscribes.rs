//! One-click unsubscribes on PostgreSQL (the interface and the SQLite
//! implementation: `../unsubscribes.rs`). There is no queue file: SQLite
//! queues an unsubscribe beside the database when another process holds
//! the whole file for more than a moment, but here there is no file, and
//! nothing holds the subscriber's row for long (writers lock rows, not the
//! database). So the unsubscribe is written at once, waiting at most a
//! visitor's moment (`lock_timeout`) for the row; longer is `Busy`, an
//! error, never `Queued`. `apply_queued_unsubscribes` has nothing to apply.
//!
//! As on SQLite, the token is found by its hash and then compared in
//! constant time (`subscriber_by_token`), and the check of the status and
//! the update are two statements: two clicks at once both hear `Done`.

use chrono::{DateTime, Utc};

use super::signups::short_wait;
use super::Postgres;
use crate::store::subscribers::VISITOR_WAIT;
use crate::store::{ts, Result, Status, Subscribers, Unsubscribed, Unsubscribes};

impl Unsubscribes for Postgres {
    fn unsubscribe_by_token(&self, token: &str, now: DateTime<Utc>) -> Result<Unsubscribed> {
        let Some(sub) = self.subscriber_by_token(token)? else {
            return Ok(Unsubscribed::Unknown);
        };
        if sub.status != Status::Active {
            return Ok(Unsubscribed::Already);
        }
        self.transaction("unsubscribing", |tx| {
            short_wait(tx, VISITOR_WAIT)?;
            tx.execute(
                "UPDATE subscribers SET status = 'unsubscribed', updated_at = $2 WHERE id = $1",
                &[&sub.id, &ts(now)],
            )
        })?;
        Ok(Unsubscribed::Done)
    }

    /// Nothing is ever queued on PostgreSQL (see the module's comment).
    fn apply_queued_unsubscribes(&self, _now: DateTime<Utc>) -> Result<usize> {
        Ok(0)
    }
}
