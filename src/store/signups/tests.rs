//! The signups tests, on both backends.

use super::*;
use crate::store::testing::{now, row};
use crate::store::{Access, Connect, Postgres, Store};

pub(super) const HOUR: chrono::Duration = chrono::Duration::hours(1);
pub(super) const WEEK: chrono::Duration = chrono::Duration::days(7);

/// A new sign-up's token, `at` (panics unless it is to be mailed).
pub(super) fn sign_up(s: &Store, email: &str, asker: Asker, at: DateTime<Utc>) -> String {
    match s
        .request_subscription(email, None, "", asker, at, HOUR, WEEK)
        .unwrap()
    {
        SignUp::Confirm { token, .. } => token,
        other => panic!("{}: {email} is not mailed: {other:?}", s.location()),
    }
}

#[test]
fn sign_ups_have_tokens_of_their_own_used_once_and_expiring() {
    for mut s in crate::store::testing::stores() {
        let db = s.location().to_owned();
        s.add_subscribers(&[row("a@example.com"), row("b@example.com")], now(), false)
            .unwrap();
        s.set_status("a@example.com", Status::Unsubscribed, now())
            .unwrap();
        s.set_status("b@example.com", Status::Bounced, now())
            .unwrap();
        let ask = |email: &str, name: Option<&str>, topics: &str, asker: Asker, at| {
            s.request_subscription(email, name, topics, asker, at, HOUR, WEEK)
                .unwrap()
        };
        let SignUp::Confirm { token, subscriber } =
            ask("n@example.com", Some("N"), "climate", Asker::Public, now())
        else {
            panic!("{db}: a new address is mailed")
        };
        assert_eq!(subscriber.status, Status::Pending, "{db}");
        assert_eq!(
            subscriber.name, None,
            "{db}: nothing is applied before confirming"
        );
        assert_ne!(token, subscriber.token, "{db}: never the unsubscribe token");
        assert_eq!(
            ask("n@example.com", None, "", Asker::Public, now()),
            SignUp::TooSoon,
            "{db}"
        );
        // Bounced and complained addresses get nothing from the public
        // form; the operator may ask.
        assert_eq!(
            ask("b@example.com", None, "", Asker::Public, now()),
            SignUp::Refused(Status::Bounced),
            "{db}"
        );
        assert!(
            matches!(
                ask("b@example.com", None, "", Asker::Operator, now()),
                SignUp::Confirm { .. }
            ),
            "{db}"
        );
        // The unsubscribe token of someone who left confirms nothing.
        let a = s.subscriber_by_email("a@example.com").unwrap().unwrap();
        let SignUp::Confirm { token: fresh, .. } = ask(
            "a@example.com",
            Some("Attacker"),
            "spam",
            Asker::Public,
            now(),
        ) else {
            panic!("{db}: a returning address is mailed")
        };
        assert_eq!(
            s.confirm_subscription(&a.token, None, None, now()).unwrap(),
            Confirmed::Unknown,
            "{db}"
        );
        assert_eq!(
            s.subscriber_by_email("a@example.com")
                .unwrap()
                .unwrap()
                .status,
            Status::Unsubscribed,
            "{db}: keeps its status until the fresh token is confirmed"
        );
        // The owner confirms with the name and topics they choose; once.
        assert_eq!(
            s.sign_up_waiting(&fresh, now())
                .unwrap()
                .unwrap()
                .name
                .as_deref(),
            Some("Attacker"),
            "{db}"
        );
        assert_eq!(
            s.confirm_subscription(&fresh, Some(Some("Ann")), Some("football"), now())
                .unwrap(),
            Confirmed::Activated,
            "{db}"
        );
        let a = s.subscriber_by_email("a@example.com").unwrap().unwrap();
        assert_eq!(
            (a.status, a.name.as_deref(), a.topics.as_str()),
            (Status::Active, Some("Ann"), "football"),
            "{db}"
        );
        assert_eq!(
            s.confirm_subscription(&fresh, None, None, now()).unwrap(),
            Confirmed::Unknown,
            "{db}: single use"
        );
        assert_eq!(
            ask("a@example.com", Some("X"), "", Asker::Public, now()),
            SignUp::AlreadyActive,
            "{db}"
        );
        // Eight days on, the pending one is gone and its link dead.
        let later = now() + chrono::Duration::days(8);
        assert_eq!(
            s.confirm_subscription(&token, None, None, later).unwrap(),
            Confirmed::Unknown,
            "{db}"
        );
        assert_eq!(s.purge_pending(later, WEEK).unwrap(), 1, "{db}");
        assert!(
            s.subscriber_by_email("n@example.com").unwrap().is_none(),
            "{db}"
        );
        assert!(
            s.subscriber_by_email("a@example.com").unwrap().is_some(),
            "{db}"
        );
        assert_eq!(
            s.subscriber_by_email("b@example.com")
                .unwrap()
                .unwrap()
                .status,
            Status::Bounced,
            "{db}"
        );
    }
}

/// Tokens are stored hashed, on each backend (read from its table).
#[test]
fn sign_up_tokens_are_stored_hashed() {
    fn check(s: &dyn SignUps, db: &str, rows_with_hash: &dyn Fn(&str) -> i64) {
        let SignUp::Confirm { token, .. } = s
            .request_subscription("n@example.com", None, "", Asker::Public, now(), HOUR, WEEK)
            .unwrap()
        else {
            panic!("{db}: a new address is mailed")
        };
        assert_eq!(rows_with_hash(&token_hash(&token)), 1, "{db}");
        assert_eq!(rows_with_hash(&token), 0, "{db}");
        // A new try draws a new token, stored hashed too.
        s.sign_up_mailed(&token, false, now()).unwrap();
        let again = s
            .sign_ups_to_mail_again(now() + chrono::Duration::minutes(1), 10)
            .unwrap();
        assert_eq!(again.len(), 1, "{db}");
        let fresh = &again[0].0;
        assert_eq!(rows_with_hash(&token_hash(&token)), 0, "{db}");
        assert_eq!(rows_with_hash(&token_hash(fresh)), 1, "{db}");
        assert_eq!(rows_with_hash(fresh), 0, "{db}");
    }
    let sqlite = Sqlite::in_memory().unwrap();
    check(&sqlite, "sqlite", &|hash| {
        sqlite
            .conn
            .query_row(
                "SELECT COUNT(*) FROM signups WHERE token_hash = ?1",
                [hash],
                |r| r.get(0),
            )
            .unwrap()
    });
    let connect = Connect {
        url: crate::store::test_server::fresh_url(),
        ..Connect::default()
    };
    let pg = Postgres::connect(&connect, Access::Create).unwrap();
    check(&pg, "postgres", &|hash| {
        pg.client()
            .query_one(
                "SELECT COUNT(*) FROM signups WHERE token_hash = $1",
                &[&hash],
            )
            .unwrap()
            .get(0)
    });
}

#[test]
fn unmailed_confirmations_are_tried_again_with_new_tokens_until_sent() {
    for s in crate::store::testing::stores() {
        let db = s.location().to_owned();
        let secs = chrono::Duration::seconds;
        let t1 = sign_up(&s, "n@example.com", Asker::Public, now());
        assert!(
            s.sign_ups_to_mail_again(now(), 10).unwrap().is_empty(),
            "{db}: the first mail has its time"
        );
        // Failed: tried again 5 s on, with a new token; the old is dead.
        s.sign_up_mailed(&t1, false, now()).unwrap();
        assert!(
            s.sign_ups_to_mail_again(now() + secs(4), 10)
                .unwrap()
                .is_empty(),
            "{db}"
        );
        let again = s.sign_ups_to_mail_again(now() + secs(5), 10).unwrap();
        assert_eq!(again.len(), 1, "{db}");
        let (t2, subscriber) = &again[0];
        assert_eq!(subscriber.email, "n@example.com", "{db}");
        assert_ne!(t2, &t1, "{db}");
        assert_eq!(s.sign_up_waiting(&t1, now()).unwrap(), None, "{db}");
        assert!(s.sign_up_waiting(t2, now()).unwrap().is_some(), "{db}");
        assert!(
            s.sign_ups_to_mail_again(now() + secs(6), 10)
                .unwrap()
                .is_empty(),
            "{db}: not due again while this try has its time"
        );
        // A second failure waits 20 s.
        s.sign_up_mailed(t2, false, now() + secs(6)).unwrap();
        assert!(
            s.sign_ups_to_mail_again(now() + secs(25), 10)
                .unwrap()
                .is_empty(),
            "{db}"
        );
        let again = s.sign_ups_to_mail_again(now() + secs(26), 10).unwrap();
        assert_eq!(again.len(), 1, "{db}");
        let t3 = again[0].0.clone();
        // Sent: never again.
        s.sign_up_mailed(&t3, true, now() + secs(27)).unwrap();
        assert!(
            s.sign_ups_to_mail_again(now() + HOUR, 10)
                .unwrap()
                .is_empty(),
            "{db}"
        );
        assert!(s.sign_up_waiting(&t3, now()).unwrap().is_some(), "{db}");
        // At most `limit`, the longest due first; one whose subscriber
        // was deleted is dropped (and counts in the limit).
        let mut failed = Vec::new();
        for (i, email) in ["x@example.com", "y@example.com", "z@example.com"]
            .into_iter()
            .enumerate()
        {
            let at = now() + secs(i as i64);
            let token = sign_up(&s, email, Asker::Public, at);
            s.sign_up_mailed(&token, false, at).unwrap();
            failed.push(token);
        }
        assert!(s.delete_subscriber("x@example.com").unwrap());
        let due = now() + chrono::Duration::minutes(1);
        let again = s.sign_ups_to_mail_again(due, 2).unwrap();
        assert_eq!(again.len(), 1, "{db}");
        assert_eq!(again[0].1.email, "y@example.com", "{db}");
        assert_eq!(
            s.sign_up_waiting(&failed[0], now()).unwrap(),
            None,
            "{db}: the sign-up of a deleted subscriber is dropped"
        );
        let again = s.sign_ups_to_mail_again(due, 10).unwrap();
        assert_eq!(again.len(), 1, "{db}");
        assert_eq!(again[0].1.email, "z@example.com", "{db}");
        // Expired: not tried again.
        let t = sign_up(&s, "late@example.com", Asker::Public, now());
        s.sign_up_mailed(&t, false, now()).unwrap();
        assert!(
            s.sign_ups_to_mail_again(now() + WEEK + HOUR, 10)
                .unwrap()
                .is_empty(),
            "{db}"
        );
    }
}

#[test]
fn a_forgotten_sign_up_does_not_hold_the_address_back() {
    for s in crate::store::testing::stores() {
        let db = s.location().to_owned();
        let token = sign_up(&s, "n@example.com", Asker::Operator, now());
        assert_eq!(
            s.request_subscription(
                "n@example.com",
                None,
                "",
                Asker::Operator,
                now(),
                HOUR,
                WEEK
            )
            .unwrap(),
            SignUp::TooSoon,
            "{db}"
        );
        s.forget_sign_up(&token).unwrap();
        assert_eq!(s.sign_up_waiting(&token, now()).unwrap(), None, "{db}");
        sign_up(&s, "n@example.com", Asker::Operator, now());
        // An hour on, the address may be mailed again.
        sign_up(&s, "n@example.com", Asker::Operator, now() + HOUR);
    }
}

#[test]
fn addresses_match_whatever_their_case_and_one_confirmation_ends_them_all() {
    for mut s in crate::store::testing::stores() {
        let db = s.location().to_owned();
        let first = sign_up(&s, "Mixed@Example.com", Asker::Public, now());
        assert_eq!(
            s.request_subscription(
                "mixed@example.com",
                None,
                "",
                Asker::Public,
                now(),
                HOUR,
                WEEK
            )
            .unwrap(),
            SignUp::TooSoon,
            "{db}"
        );
        let second = sign_up(&s, "MIXED@example.com", Asker::Operator, now() + HOUR);
        assert_eq!(s.subscribers().unwrap().len(), 1, "{db}");
        assert_eq!(
            s.confirm_subscription(&second, None, None, now() + HOUR)
                .unwrap(),
            Confirmed::Activated,
            "{db}"
        );
        assert_eq!(
            s.confirm_subscription(&first, None, None, now() + HOUR)
                .unwrap(),
            Confirmed::Unknown,
            "{db}: every link of the address dies with the confirmed one"
        );
        let sub = s.subscriber_by_email("mixed@EXAMPLE.com").unwrap().unwrap();
        assert_eq!(
            (sub.email.as_str(), sub.status),
            ("Mixed@Example.com", Status::Active),
            "{db}"
        );
        assert_eq!(
            s.request_subscription(
                "MIXED@EXAMPLE.COM",
                None,
                "",
                Asker::Public,
                now() + WEEK,
                HOUR,
                WEEK
            )
            .unwrap(),
            SignUp::AlreadyActive,
            "{db}"
        );
        // Deleted by an operator before it is confirmed: confirming
        // adds the address again, as it asked.
        let SignUp::Confirm { token, .. } = s
            .request_subscription(
                "gone@example.com",
                Some("G"),
                "climate",
                Asker::Public,
                now(),
                HOUR,
                WEEK,
            )
            .unwrap()
        else {
            panic!("{db}: a new address is mailed")
        };
        assert!(s.delete_subscriber("gone@example.com").unwrap());
        assert_eq!(
            s.confirm_subscription(&token, None, None, now()).unwrap(),
            Confirmed::Activated,
            "{db}"
        );
        let sub = s.subscriber_by_email("gone@example.com").unwrap().unwrap();
        assert_eq!(
            (sub.status, sub.name.as_deref(), sub.topics.as_str()),
            (Status::Active, Some("G"), "climate"),
            "{db}"
        );
        // A public sign-up dies when its address bounces; an
        // operator's does not.
        s.add_subscribers(&[row("p@example.com")], now(), false)
            .unwrap();
        s.set_status("p@example.com", Status::Unsubscribed, now())
            .unwrap();
        let public = sign_up(&s, "p@example.com", Asker::Public, now());
        let operator = sign_up(&s, "p@example.com", Asker::Operator, now() + HOUR);
        s.set_status("p@example.com", Status::Bounced, now())
            .unwrap();
        assert_eq!(s.sign_up_waiting(&public, now()).unwrap(), None, "{db}");
        assert_eq!(
            s.confirm_subscription(&public, None, None, now() + HOUR)
                .unwrap(),
            Confirmed::Unknown,
            "{db}"
        );
        assert!(
            s.sign_up_waiting(&operator, now()).unwrap().is_some(),
            "{db}"
        );
        assert_eq!(
            s.confirm_subscription(&operator, None, None, now() + HOUR)
                .unwrap(),
            Confirmed::Activated,
            "{db}"
        );
        // The purge keeps a pending subscriber younger than the expiry.
        sign_up(&s, "young@example.com", Asker::Public, now());
        assert_eq!(
            s.purge_pending(
                now() + chrono::Duration::days(8),
                chrono::Duration::days(30)
            )
            .unwrap(),
            0,
            "{db}"
        );
        assert!(
            s.subscriber_by_email("young@example.com")
                .unwrap()
                .is_some(),
            "{db}"
        );
    }
}

/// A client network's sign-ups are counted an hour back: the limit holds
/// until the oldest is an hour old, and other networks count apart.
#[test]
fn sign_ups_per_network_are_counted_an_hour_back() {
    for s in crate::store::testing::stores() {
        let db = s.location().to_owned();
        let t0 = now();
        let minutes = |m| t0 + chrono::Duration::minutes(m);
        assert!(s.count_sign_up("192.0.2.0", 2, t0).unwrap(), "{db}");
        assert!(
            s.count_sign_up("192.0.2.0", 2, minutes(10)).unwrap(),
            "{db}"
        );
        assert!(
            !s.count_sign_up("192.0.2.0", 2, minutes(20)).unwrap(),
            "{db}: the third in the hour"
        );
        assert!(
            s.count_sign_up("2001:db8::", 2, minutes(20)).unwrap(),
            "{db}: another network"
        );
        assert!(
            !s.count_sign_up("192.0.2.0", 2, minutes(59)).unwrap(),
            "{db}"
        );
        assert!(
            s.count_sign_up("192.0.2.0", 2, minutes(61)).unwrap(),
            "{db}: the first is an hour old"
        );
    }
}
