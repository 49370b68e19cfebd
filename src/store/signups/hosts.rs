//! Sign-ups on several PostgreSQL connections at once, as several hosts
//! running `serve` have them.

use super::tests::{sign_up, HOUR, WEEK};
use super::*;
use crate::store::testing::{now, row};
use crate::store::{Access, Connect, Store};

/// Stores on one PostgreSQL schema, as several hosts would have.
fn hosts(n: usize) -> (String, Vec<Store>) {
    let url = crate::store::test_server::fresh_url();
    let connect = Connect {
        url: url.clone(),
        ..Connect::default()
    };
    let hosts = (0..n)
        .map(|_| Store::connect(&connect, Access::Create).unwrap())
        .collect();
    (url, hosts)
}

/// What each host's `f` returned, all started at once.
fn at_once<T: Send>(hosts: &mut [Store], f: impl Fn(&mut Store) -> T + Sync) -> Vec<T> {
    let start = std::sync::Barrier::new(hosts.len());
    std::thread::scope(|scope| {
        let running: Vec<_> = hosts
            .iter_mut()
            .map(|h| {
                let (start, f) = (&start, &f);
                scope.spawn(move || {
                    start.wait();
                    f(h)
                })
            })
            .collect();
        running.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

#[test]
fn postgres_hosts_at_once_mail_an_address_once_and_confirm_it_once() {
    let (_, mut hosts) = hosts(4);
    // New addresses, and addresses that left (their row is there to
    // lock).
    for round in 0..6 {
        let email = format!("race{round}@example.com");
        if round % 2 == 1 {
            hosts[0]
                .add_subscribers(&[row(&email)], now(), false)
                .unwrap();
            hosts[0]
                .set_status(&email, Status::Unsubscribed, now())
                .unwrap();
        }
        let asked = at_once(&mut hosts, |h| {
            h.request_subscription(&email, None, "", Asker::Public, now(), HOUR, WEEK)
                .unwrap()
        });
        let tokens: Vec<&String> = asked
            .iter()
            .filter_map(|a| match a {
                SignUp::Confirm { token, .. } => Some(token),
                _ => None,
            })
            .collect();
        assert_eq!(tokens.len(), 1, "mailed once: {asked:?}");
        assert_eq!(
            asked.iter().filter(|a| **a == SignUp::TooSoon).count(),
            3,
            "{asked:?}"
        );
        let token = tokens[0].clone();
        let confirmed = at_once(&mut hosts, |h| {
            h.confirm_subscription(&token, None, None, now()).unwrap()
        });
        assert_eq!(
            confirmed
                .iter()
                .filter(|c| **c == Confirmed::Activated)
                .count(),
            1,
            "confirmed once: {confirmed:?}"
        );
    }
    assert_eq!(hosts[0].active_subscribers().unwrap(), 6);
    // Confirmations tried again at once: each by one host.
    for i in 0..10 {
        let token = sign_up(
            &hosts[0],
            &format!("f{i}@example.com"),
            Asker::Public,
            now(),
        );
        hosts[0].sign_up_mailed(&token, false, now()).unwrap();
    }
    let due = now() + chrono::Duration::minutes(1);
    let tried = at_once(&mut hosts, |h| h.sign_ups_to_mail_again(due, 4).unwrap());
    let mut emails: Vec<String> = tried
        .iter()
        .flatten()
        .map(|(_, s)| s.email.clone())
        .collect();
    let n = emails.len();
    emails.sort();
    emails.dedup();
    assert_eq!(emails.len(), n, "none tried twice: {tried:?}");
    assert!(n >= 4, "{tried:?}");
}

#[test]
fn postgres_purge_waits_only_a_moment_and_keeps_a_sign_up_being_recorded() {
    let (url, mut hosts) = hosts(1);
    let mut s = hosts.pop().unwrap();
    let token = sign_up(&s, "p@example.com", Asker::Public, now());
    let later = now() + chrono::Duration::days(8);
    // Another host is recording a new sign-up of the address: it holds
    // the subscriber's row.
    let mut other = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let mut tx = other.transaction().unwrap();
    tx.query(
        "SELECT 1 FROM subscribers WHERE lower(email) = 'p@example.com' FOR UPDATE",
        &[],
    )
    .unwrap();
    let started = std::time::Instant::now();
    assert_eq!(s.purge_pending(later, WEEK).unwrap(), 0, "busy: next time");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(
        s.sign_up_waiting(&token, now()).unwrap().is_some(),
        "rolled back: the expired sign-up is still there"
    );
    // The purge waits for the row while the other records its
    // sign-up, then sees it: the subscriber is kept.
    std::thread::scope(|scope| {
        let purging = &mut s;
        let purge = scope.spawn(move || purging.purge_pending(later, WEEK).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(50));
        tx.execute(
            "INSERT INTO signups (email, token_hash, topics, asker, created_at, expires_at, next_attempt_at)
             VALUES ('p@example.com', 'h', '', 'public', $1, $2, $1)",
            &[&ts(later), &ts(later + WEEK)],
        )
        .unwrap();
        tx.commit().unwrap();
        assert_eq!(purge.join().unwrap(), 0);
    });
    assert!(s.subscriber_by_email("p@example.com").unwrap().is_some());
    assert_eq!(s.purge_pending(later, WEEK).unwrap(), 0);
    assert_eq!(s.sign_up_waiting(&token, now()).unwrap(), None, "expired");
    // A visitor waits a moment for the row, then hears busy.
    let mut tx = other.transaction().unwrap();
    tx.query(
        "SELECT 1 FROM subscribers WHERE lower(email) = 'p@example.com' FOR UPDATE",
        &[],
    )
    .unwrap();
    let e = s
        .request_subscription(
            "p@example.com",
            None,
            "",
            Asker::Public,
            later + WEEK,
            HOUR,
            WEEK,
        )
        .unwrap_err();
    assert!(e.is_busy(), "{e}");
    tx.rollback().unwrap();
    sign_up(&s, "p@example.com", Asker::Public, later + WEEK);
}

/// A sign-up for an address on the list is answered at once while a send
/// is planning deliveries on another host (the planning holds the
/// subscriber rows for its foreign keys; a sign-up's lock does not wait
/// for that).
#[test]
fn postgres_sign_ups_do_not_wait_for_a_send_being_planned() {
    let (url, mut stores) = hosts(1);
    let mut s = stores.remove(0);
    s.add_subscribers(&[row("on@example.com")], now(), false)
        .unwrap();
    let mut planner = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let mut tx = planner.transaction().unwrap();
    tx.batch_execute(
        "INSERT INTO editions (date, content_hash, edition_json, rendered_at) VALUES ('2022-03-14', 'h', '{}', 'now');
         INSERT INTO deliveries (edition_id, subscriber_id, state, message_id, created_at, updated_at)
           SELECT e.id, s.id, 'pending', 'm', 'now', 'now' FROM editions e, subscribers s;",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let outcome = s
        .request_subscription("on@example.com", None, "", Asker::Public, now(), HOUR, WEEK)
        .unwrap();
    assert!(matches!(outcome, SignUp::AlreadyActive), "{outcome:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    tx.rollback().unwrap();
}
