//! The mail events tests, on both backends.

use super::*;
use crate::store::testing::{now, row, stores};
use crate::store::{DeliveryState, MessageIds};
use chrono::NaiveDate;

#[test]
fn bounces_count_once_and_soft_ones_in_a_row() {
    for mut s in stores() {
        let at = s.location().to_owned();
        let ids: Vec<i64> = s
            .add_subscribers(&[row("a@example.com"), row("b@example.com")], now(), false)
            .unwrap()
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        let (a, b) = (ids[0], ids[1]);
        let soft = |edition: &str| MailEvent::SoftBounce {
            status: "4.2.2: mailbox full".into(),
            edition: Some(edition.into()),
            limit: 3,
        };
        let apply =
            |key: &str, id: i64, e: &MailEvent| s.apply_mail_event(key, id, e, now()).unwrap();
        let soft_bounces = |applied: Applied| match applied {
            Applied::Done { soft_bounces, .. } => Some(soft_bounces),
            Applied::Duplicate => None,
        };
        assert_eq!(
            soft_bounces(apply("k1", a, &soft("2022-03-14"))),
            Some(1),
            "{at}"
        );
        assert_eq!(
            apply("k1", a, &soft("2022-03-14")),
            Applied::Duplicate,
            "{at}"
        );
        // The same edition again (a delay, then the failure): still one.
        assert_eq!(
            soft_bounces(apply("k2", a, &soft("2022-03-14"))),
            Some(1),
            "{at}"
        );
        assert_eq!(
            soft_bounces(apply("k3", a, &soft("2022-03-15"))),
            Some(2),
            "{at}"
        );
        assert_eq!(
            soft_bounces(apply("k4", a, &MailEvent::Delivered)),
            Some(0),
            "{at}"
        );
        for (i, d) in ["2022-03-16", "2022-03-17"].iter().enumerate() {
            apply(&format!("r{i}"), a, &soft(d));
        }
        let done = apply("r3", a, &soft("2022-03-18"));
        assert_eq!(
            done,
            Applied::Done {
                before: Status::Active,
                after: Status::Bounced,
                soft_bounces: 3
            },
            "{at}"
        );
        let sub = s.subscriber_by_email("a@example.com").unwrap().unwrap();
        assert_eq!(
            (sub.status, sub.bounces, sub.soft_bounces),
            (Status::Bounced, 6, 3),
            "{at}"
        );
        // A complaint outranks everything; an unsubscribe does not undo it.
        apply(
            "c",
            b,
            &MailEvent::Complaint {
                feedback_type: "abuse".into(),
            },
        );
        apply("u", b, &MailEvent::Unsubscribe);
        let sub = s.subscriber_by_email("b@example.com").unwrap().unwrap();
        assert_eq!(sub.status, Status::Complained, "{at}");
    }
}

/// The lookups, the processed-mail record, and a run of soft bounces
/// broken by an edition sent between them that drew none.
#[test]
fn lookups_and_an_edition_delivered_between_bounces() {
    for mut s in stores() {
        let at = s.location().to_owned();
        let id = s
            .add_subscribers(&[row("a@example.com")], now(), false)
            .unwrap()
            .remove(0)
            .unwrap();
        let sub = s.subscriber_by_email("a@example.com").unwrap().unwrap();
        let verp = crate::store::bounce_token(&sub.token).to_ascii_uppercase();
        assert_eq!(
            s.subscriber_by_bounce_token(&verp).unwrap().map(|x| x.id),
            Some(id),
            "{at}: found by its VERP token, in any case"
        );
        assert!(
            s.subscriber_by_bounce_token("00ff").unwrap().is_none(),
            "{at}"
        );
        assert_eq!(s.last_sent_edition(id).unwrap(), None, "{at}");
        for day in [14, 15, 16] {
            let date = NaiveDate::from_ymd_opt(2022, 3, day).unwrap();
            let e = s.store_edition_json(date, "{}", now()).unwrap();
            let ids: MessageIds = Box::new(move |sid, _| format!("<{day}.{sid}@x>"));
            s.plan_deliveries(e.id, e.version, ids, now())
                .unwrap()
                .unwrap();
            assert!(s.mark_sending(e.id, id, now()).unwrap(), "{at}");
            s.mark_done(e.id, id, DeliveryState::Sent, None, None, now())
                .unwrap();
        }
        assert_eq!(
            s.last_sent_edition(id).unwrap().as_deref(),
            Some("2022-03-16"),
            "{at}"
        );
        let (found, date) = s
            .subscriber_by_message_id(&format!("<15.{id}@x>"))
            .unwrap()
            .unwrap();
        assert_eq!((found.id, date.as_str()), (id, "2022-03-15"), "{at}");
        assert!(
            s.subscriber_by_message_id("<nope@x>").unwrap().is_none(),
            "{at}"
        );

        let soft = |edition: Option<&str>| MailEvent::SoftBounce {
            status: "4.2.2: mailbox full".into(),
            edition: edition.map(Into::into),
            limit: 2,
        };
        let now = now();
        let applied = |key: &str, e: &MailEvent| s.apply_mail_event(key, id, e, now).unwrap();
        assert!(!s.mail_processed("k1").unwrap(), "{at}");
        applied("k1", &soft(Some("2022-03-14")));
        assert!(s.mail_processed("k1").unwrap(), "{at}");
        // The 15th was delivered: the bounce of the 16th starts a new run.
        assert_eq!(
            applied("k2", &soft(Some("2022-03-16"))),
            Applied::Done {
                before: Status::Active,
                after: Status::Active,
                soft_bounces: 1
            },
            "{at}"
        );
        // A bounce that names no edition counts too.
        assert_eq!(
            applied("k3", &soft(None)),
            Applied::Done {
                before: Status::Active,
                after: Status::Bounced,
                soft_bounces: 2
            },
            "{at}"
        );
        let sub = s.subscriber_by_email("a@example.com").unwrap().unwrap();
        assert_eq!(
            (sub.bounces, sub.last_bounce.as_deref()),
            (3, Some("4.2.2: mailbox full")),
            "{at}"
        );

        assert!(
            s.record_mail_processed("n", "not-spam", now).unwrap(),
            "{at}"
        );
        assert!(
            !s.record_mail_processed("n", "not-spam", now).unwrap(),
            "{at}"
        );
        assert!(
            !s.record_mail_processed("k1", "again", now).unwrap(),
            "{at}"
        );
        assert_eq!(
            s.apply_mail_event("n", id, &MailEvent::Unsubscribe, now)
                .unwrap(),
            Applied::Duplicate,
            "{at}: a message recorded is not applied"
        );
    }
}

/// Two hosts importing at once (PostgreSQL: two connections to one
/// database): a message both import applies once, and the messages
/// each imports alone about the same subscriber all count.
#[test]
fn concurrent_imports_apply_each_message_once() {
    use crate::store::{Access, Connect, Store};
    let connect = Connect {
        url: crate::store::test_server::fresh_url(),
        ..Connect::default()
    };
    let open = || Store::connect(&connect, Access::Create).unwrap();
    let mut hosts = vec![open(), open()];
    let id = hosts[0]
        .add_subscribers(&[row("a@example.com")], now(), false)
        .unwrap()
        .remove(0)
        .unwrap();
    let hard = || MailEvent::HardBounce {
        status: "5.1.1: no such user".into(),
    };
    let rounds = 20;
    for round in 0..rounds {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(hosts.len()));
        let threads: Vec<_> = hosts
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let shared = s
                        .apply_mail_event(&format!("shared{round}"), id, &hard(), now())
                        .unwrap();
                    let own = s
                        .apply_mail_event(&format!("own{round}.{i}"), id, &hard(), now())
                        .unwrap();
                    (s, shared, own)
                })
            })
            .collect();
        let mut applied = 0;
        hosts = Vec::new();
        for t in threads {
            let (s, shared, own) = t.join().unwrap();
            applied += usize::from(shared != Applied::Duplicate);
            assert_ne!(own, Applied::Duplicate);
            hosts.push(s);
        }
        assert_eq!(applied, 1, "round {round}: the shared message applied once");
    }
    let sub = hosts[0]
        .subscriber_by_email("a@example.com")
        .unwrap()
        .unwrap();
    assert_eq!(sub.bounces, 3 * rounds, "no bounce counted twice or lost");
}
