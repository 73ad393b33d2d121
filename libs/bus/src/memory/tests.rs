use futures_util::FutureExt;

use super::*;

fn publish(engine: &Engine, subject: &str, body: &'static str) {
    engine.publish(
        subject,
        None,
        Headers::new(),
        Bytes::from_static(body.as_bytes()),
    );
}

/// Returns the next buffered message without waiting; delivery is synchronous, so `None`
/// means nothing was delivered.
fn buffered(receiver: &mut Receiver) -> Option<Message> {
    receiver.recv().now_or_never().flatten()
}

fn table_entries(engine: &Engine) -> usize {
    let table = engine.read_table();
    table.exact.len() + table.wildcard.len()
}

#[test]
fn dropped_subscriptions_leave_nothing_in_the_table() {
    let engine = Arc::new(Engine::new(8));
    let receivers = [
        engine.subscribe("a.b", None),
        engine.subscribe("a.b", None),
        engine.subscribe("a.b", Some("workers")),
        engine.subscribe("a.*", Some("workers")),
        engine.subscribe("a.>", None),
        engine.subscribe(">", Some("others")),
    ];
    assert_eq!(table_entries(&engine), 4);

    drop(receivers);

    assert_eq!(table_entries(&engine), 0);
}

#[tokio::test]
async fn finished_requests_remove_their_inbox() {
    let engine = Arc::new(Engine::new(8));
    let no_responders = engine
        .request(
            "svc.none",
            Headers::new(),
            Bytes::new(),
            Duration::from_secs(5),
        )
        .await;
    assert!(matches!(no_responders, Err(RequestError::NoResponders)));

    let _silent = engine.subscribe("svc.silent", None);
    let timed_out = engine
        .request(
            "svc.silent",
            Headers::new(),
            Bytes::new(),
            Duration::from_millis(1),
        )
        .await;
    assert!(matches!(timed_out, Err(RequestError::Timeout)));

    assert_eq!(table_entries(&engine), 1, "only svc.silent stays");
}

#[test]
fn full_buffer_drops_and_counts_instead_of_blocking() {
    let engine = Arc::new(Engine::new(2));
    let mut slow = engine.subscribe("s", None);
    for body in ["1", "2", "3", "4", "5"] {
        publish(&engine, "s", body);
    }

    assert_eq!(engine.dropped_messages(), 3);
    let kept: Vec<_> = [
        buffered(&mut slow),
        buffered(&mut slow),
        buffered(&mut slow),
    ]
    .map(|message| message.map(|m| m.payload))
    .into();
    assert_eq!(
        kept,
        vec![Some(Bytes::from("1")), Some(Bytes::from("2")), None]
    );
}

#[test]
fn zero_capacity_is_raised_to_one() {
    let engine = Arc::new(Engine::new(0));
    let mut receiver = engine.subscribe("s", None);
    publish(&engine, "s", "1");
    assert!(buffered(&mut receiver).is_some());
}

#[test]
fn queue_group_members_take_turns() {
    let engine = Arc::new(Engine::new(64));
    let mut members: Vec<_> = (0..3)
        .map(|_| engine.subscribe("jobs", Some("workers")))
        .collect();
    for _ in 0..9 {
        publish(&engine, "jobs", "job");
    }

    for member in &mut members {
        let mut received = 0;
        while buffered(member).is_some() {
            received += 1;
        }
        assert_eq!(received, 3);
    }
}

#[test]
fn a_queue_group_spanning_several_patterns_gets_each_message_once() {
    let engine = Arc::new(Engine::new(64));
    let mut members = [
        engine.subscribe("a.b", Some("workers")),
        engine.subscribe("a.*", Some("workers")),
        engine.subscribe("a.>", Some("workers")),
    ];
    let mut other_group = engine.subscribe("a.*", Some("auditors"));
    for _ in 0..12 {
        publish(&engine, "a.b", "job");
    }

    let mut per_member = Vec::new();
    for member in &mut members {
        let mut received = 0;
        while buffered(member).is_some() {
            received += 1;
        }
        per_member.push(received);
    }
    assert_eq!(per_member, vec![4, 4, 4]);
    let mut audited = 0;
    while buffered(&mut other_group).is_some() {
        audited += 1;
    }
    assert_eq!(audited, 12);
}

#[test]
fn closed_queue_member_is_skipped_not_counted_as_drop() {
    let engine = Arc::new(Engine::new(8));
    let mut live = engine.subscribe("jobs", Some("workers"));
    let (closed_tx, closed_rx) = mpsc::channel(1);
    drop(closed_rx);
    engine.write_table().interest_mut("jobs").add(
        Member {
            id: u64::MAX,
            tx: closed_tx,
        },
        Some("workers"),
    );

    for _ in 0..4 {
        publish(&engine, "jobs", "job");
    }

    let mut received = 0;
    while buffered(&mut live).is_some() {
        received += 1;
    }
    assert_eq!(received, 4);
    assert_eq!(engine.dropped_messages(), 0);
}
