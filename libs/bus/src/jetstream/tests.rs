//! The durable-stream contract, run against memory always and against a real
//! `nats-server -js` with the `test-util` feature.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;

use crate::{Bus, DurablePublishError, Headers, StorageKind, StreamError, StreamSpec};

const WAIT: Duration = Duration::from_secs(10);

fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn spec(name: &str, subject_root: &str) -> StreamSpec {
    StreamSpec {
        name: name.to_owned(),
        subjects: vec![format!("{subject_root}.>")],
        duplicate_window: Duration::from_secs(60),
        max_age: Duration::ZERO,
        storage: StorageKind::File,
    }
}

async fn next_payload(consumer: &mut crate::StreamConsumer) -> crate::StreamMessage {
    tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("a message within the wait")
        .expect("consumer still open")
        .expect("message delivered")
}

async fn duplicates_within_the_window_are_acked_but_stored_once(bus: Bus) {
    let name = unique("DEDUPE");
    let root = unique("dedupe");
    bus.ensure_stream(&spec(&name, &root)).await.unwrap();
    let subject = format!("{root}.a");
    let first = bus
        .publish_durable(&subject, "id-1", Headers::new(), Bytes::from_static(b"one"))
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert_eq!((first.stream.as_str(), first.sequence), (name.as_str(), 1));
    let again = bus
        .publish_durable(&subject, "id-1", Headers::new(), Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.sequence, 1);
    let second = bus
        .publish_durable(
            &format!("{root}.b"),
            "id-2",
            Headers::new(),
            Bytes::from_static(b"two"),
        )
        .await
        .unwrap();
    assert_eq!((second.sequence, second.duplicate), (2, false));
    let state = bus.stream_state(&name).await.unwrap();
    assert_eq!(
        (state.messages, state.first_sequence, state.last_sequence),
        (2, 1, 2)
    );
}

async fn consumer_reads_everything_in_order_and_wakes_for_new_messages(bus: Bus) {
    let name = unique("CONSUME");
    let root = unique("consume");
    bus.ensure_stream(&spec(&name, &root)).await.unwrap();
    for index in 0..5 {
        let mut headers = Headers::new();
        headers.insert("k", index.to_string());
        bus.publish_durable(
            &format!("{root}.x"),
            &format!("m{index}"),
            headers,
            Bytes::from(format!("p{index}")),
        )
        .await
        .unwrap();
    }
    let mut consumer = bus.stream_consumer(&name, "reader").await.unwrap();
    for index in 0..3_u64 {
        let message = next_payload(&mut consumer).await;
        assert_eq!(message.sequence, index + 1);
        assert_eq!(message.payload, Bytes::from(format!("p{index}")));
        assert_eq!(
            message.headers.get("Nats-Msg-Id"),
            Some(format!("m{index}").as_str())
        );
        assert_eq!(message.headers.get("k"), Some(index.to_string().as_str()));
        message.ack().await.unwrap();
    }
    let fourth = next_payload(&mut consumer).await;
    assert_eq!(fourth.sequence, 4);
    fourth.ack().await.unwrap();
    let mut resumed = consumer;

    // A consumer waiting on an empty tail wakes for a new message.
    let fifth = next_payload(&mut resumed).await;
    fifth.ack().await.unwrap();
    let publisher = bus.clone();
    let subject = format!("{root}.y");
    let later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        publisher
            .publish_durable(&subject, "m5", Headers::new(), Bytes::from_static(b"p5"))
            .await
            .unwrap()
    });
    let sixth = next_payload(&mut resumed).await;
    assert_eq!((sixth.sequence, sixth.subject.ends_with(".y")), (6, true));
    later.await.unwrap();

    // Another durable name starts from the beginning.
    let mut other = bus.stream_consumer(&name, "other").await.unwrap();
    assert_eq!(next_payload(&mut other).await.sequence, 1);
}

async fn ensure_stream_is_idempotent_and_updates_the_window(bus: Bus) {
    let name = unique("ENSURE");
    let root = unique("ensure");
    let mut wanted = spec(&name, &root);
    bus.ensure_stream(&wanted).await.unwrap();
    bus.publish_durable(&format!("{root}.a"), "x", Headers::new(), Bytes::new())
        .await
        .unwrap();
    let state = bus.ensure_stream(&wanted).await.unwrap();
    assert_eq!(state.messages, 1);
    wanted.duplicate_window = Duration::from_secs(30);
    assert_eq!(bus.ensure_stream(&wanted).await.unwrap().messages, 1);
}

async fn bad_specs_and_unknown_streams_are_errors(bus: Bus) {
    let mut bad = spec("has.dot", "bad");
    assert!(matches!(
        bus.ensure_stream(&bad).await,
        Err(StreamError::InvalidSpec { .. })
    ));
    bad.name = unique("BAD");
    bad.subjects.clear();
    assert!(matches!(
        bus.ensure_stream(&bad).await,
        Err(StreamError::InvalidSpec { .. })
    ));
    bad.subjects = vec!["bad.>".to_owned()];
    bad.max_age = Duration::from_secs(10);
    assert!(matches!(
        bus.ensure_stream(&bad).await,
        Err(StreamError::InvalidSpec { .. })
    ));
    assert!(matches!(
        bus.stream_state(&unique("MISSING")).await,
        Err(StreamError::NotFound { .. })
    ));
    assert!(matches!(
        bus.stream_consumer(&unique("MISSING"), "c").await,
        Err(StreamError::NotFound { .. })
    ));
    let nowhere = unique("nowhere");
    assert!(matches!(
        bus.publish_durable(&format!("{nowhere}.x"), "id", Headers::new(), Bytes::new())
            .await,
        Err(DurablePublishError::NoStream { .. })
    ));
    assert!(matches!(
        bus.publish_durable("a.*", "id", Headers::new(), Bytes::new())
            .await,
        Err(DurablePublishError::InvalidSubject { .. })
    ));
    assert!(matches!(
        bus.publish_durable("a.b", "", Headers::new(), Bytes::new())
            .await,
        Err(DurablePublishError::InvalidHeader { .. })
    ));
}

macro_rules! contract {
    ($($behaviour:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    super::$behaviour(crate::Bus::memory()).await;
                }
            )*
        }

        #[cfg(feature = "test-util")]
        mod nats {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    let server = crate::test_util::NatsServer::start().await;
                    let bus = crate::Bus::connect_nats(&server.url(), crate::NatsOptions::default())
                        .await
                        .expect("test nats-server accepts connections");
                    super::$behaviour(bus).await;
                }
            )*
        }
    };
}

contract!(
    duplicates_within_the_window_are_acked_but_stored_once,
    consumer_reads_everything_in_order_and_wakes_for_new_messages,
    ensure_stream_is_idempotent_and_updates_the_window,
    bad_specs_and_unknown_streams_are_errors,
);

#[tokio::test]
async fn memory_consumer_resumes_after_the_acknowledged_messages() {
    let bus = Bus::memory();
    bus.ensure_stream(&spec("RESUME", "resume")).await.unwrap();
    for index in 0..3 {
        bus.publish_durable(
            "resume.a",
            &format!("m{index}"),
            Headers::new(),
            Bytes::new(),
        )
        .await
        .unwrap();
    }
    let mut consumer = bus.stream_consumer("RESUME", "reader").await.unwrap();
    next_payload(&mut consumer).await.ack().await.unwrap();
    let unacked = next_payload(&mut consumer).await;
    assert_eq!(unacked.sequence, 2);
    drop(consumer);
    let mut resumed = bus.stream_consumer("RESUME", "reader").await.unwrap();
    assert_eq!(next_payload(&mut resumed).await.sequence, 2);
}

#[tokio::test(start_paused = true)]
async fn memory_forgets_ids_after_the_window_and_messages_after_max_age() {
    let bus = Bus::memory();
    let mut short = spec("SHORT", "short");
    short.duplicate_window = Duration::from_secs(10);
    short.max_age = Duration::from_secs(60);
    bus.ensure_stream(&short).await.unwrap();
    bus.publish_durable("short.a", "id", Headers::new(), Bytes::new())
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(11)).await;
    let late = bus
        .publish_durable("short.a", "id", Headers::new(), Bytes::new())
        .await
        .unwrap();
    assert_eq!((late.duplicate, late.sequence), (false, 2));
    tokio::time::advance(Duration::from_secs(55)).await;
    let state = bus.stream_state("SHORT").await.unwrap();
    assert_eq!((state.messages, state.first_sequence), (1, 2));
}

#[cfg(feature = "test-util")]
#[tokio::test]
async fn nats_keeps_the_stream_and_its_dedupe_across_a_server_restart() {
    let mut server = crate::test_util::NatsServer::start().await;
    let bus = Bus::connect_nats(&server.url(), crate::NatsOptions::default())
        .await
        .unwrap();
    bus.ensure_stream(&spec("RESTART", "restart"))
        .await
        .unwrap();
    bus.publish_durable("restart.a", "kept", Headers::new(), Bytes::new())
        .await
        .unwrap();
    server.restart().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let again = loop {
        match bus
            .publish_durable("restart.a", "kept", Headers::new(), Bytes::new())
            .await
        {
            Ok(ack) => break ack,
            Err(error) => {
                assert!(tokio::time::Instant::now() < deadline, "{error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(again.duplicate);
    assert_eq!(bus.stream_state("RESTART").await.unwrap().messages, 1);
}
