use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Message;
use bus::Bus;
use protocol::direct::DirectEnvelope;
use protocol::{Codec, Subjects};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Direct;
use crate::metrics::Metrics;
use crate::session::conn::{Conn, Owner, QueueLimits};

fn direct(bus: &Bus) -> Arc<Direct> {
    Arc::new(Direct::new(
        bus.clone(),
        crate::config::UserSubscriptions::PerUser,
        Subjects::default(),
        Arc::new(Metrics::new()),
        TaskTracker::new(),
        CancellationToken::new(),
    ))
}

fn conn(key: u64, user: &str) -> Arc<Conn> {
    let owner = Owner {
        user_id: user.to_owned(),
        role: "viewer",
        ..Owner::default()
    };
    let limits = QueueLimits {
        max_messages: 16,
        max_bytes: 1 << 20,
        slow_consumer_grace: Duration::from_secs(60),
    };
    Arc::new(Conn::new(
        key,
        format!("c-{key}"),
        Codec::Json,
        owner,
        limits,
    ))
}

fn texts(conn: &Conn) -> Vec<String> {
    let mut batch = VecDeque::new();
    conn.take_queued(&mut batch);
    batch
        .iter()
        .filter_map(|outgoing| match &outgoing.message {
            Message::Text(text) => Some(text.to_string()),
            _ => None,
        })
        .collect()
}

async fn publish(bus: &Bus, subject: &str, event: &str) {
    let envelope = DirectEnvelope {
        event: event.to_owned(),
        data: serde_json::json!({}),
        timestamp: None,
        role: None,
    };
    let payload = protocol::envelope::encode_bus(&envelope).expect("envelope encodes");
    bus.publish(subject, payload.into()).await.expect("publish");
}

async fn settle(conn: &Conn, expected: usize) {
    for _ in 0..200 {
        if conn.queued_len() >= expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_user_subscription_lives_while_the_user_has_a_connection_here() {
    let bus = Bus::memory();
    let direct = direct(&bus);
    let subject = Subjects::default().user("a.b@x");
    let (first, second) = (conn(1, "a.b@x"), conn(2, "a.b@x"));
    direct.attach(&first).await;
    direct.attach(&second).await;
    assert_eq!(
        direct.user_count(),
        1,
        "one subscription for both connections"
    );

    publish(&bus, &subject, "one").await;
    settle(&first, 1).await;
    settle(&second, 1).await;
    let one = texts(&first);
    assert_eq!(one.len(), 1);
    assert!(one[0].contains(r#""user":"a.b@x""#), "{one:?}");
    assert_eq!(texts(&second).len(), 1);

    direct.detach(&first);
    assert_eq!(direct.user_count(), 1, "the second connection keeps it");
    direct.detach(&second);
    assert_eq!(direct.user_count(), 0, "dropped with the last connection");

    // A new connection of the user subscribes again; the old task delivers nothing twice.
    let third = conn(3, "a.b@x");
    direct.attach(&third).await;
    publish(&bus, &subject, "two").await;
    settle(&third, 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(texts(&third).len(), 1);
    assert!(texts(&first).is_empty() && texts(&second).is_empty());
}
