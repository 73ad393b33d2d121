//! Ordering, slow consumers, unsubscribing and input validation.

use std::time::Duration;

use bus::{Headers, PublishError, RequestError, SubscribeError};
use bytes::Bytes;

use crate::fixture::{Fixture, WAIT, eventually, next_message, subscribe_ready, unique_subject};

pub async fn thousand_messages_arrive_in_publish_order(fixture: Fixture) {
    let publisher = fixture.bus().await;
    let subscriber = fixture.bus().await;
    let subject = unique_subject("order");
    let mut subscription = subscribe_ready(&subscriber, &subject).await;

    for index in 0..1_000u32 {
        publisher
            .publish(&subject, Bytes::copy_from_slice(&index.to_be_bytes()))
            .await
            .expect("publish");
    }

    for index in 0..1_000u32 {
        let message = next_message(&mut subscription).await;
        assert_eq!(message.payload.as_ref(), index.to_be_bytes());
    }
}

pub async fn slow_consumer_does_not_block_publisher_or_other_subscribers(fixture: Fixture) {
    const CAPACITY: usize = 16;
    const BATCH: u32 = 10;
    let (slow_bus, other_bus) = fixture.slow_consumer_buses(CAPACITY).await;
    let subject = unique_subject("slow");
    let mut slow = subscribe_ready(&slow_bus, &subject).await;
    let mut fast = subscribe_ready(&other_bus, &subject).await;

    // The fast reader keeps up batch by batch (batches fit even a CAPACITY buffer); the slow
    // one never reads until the end. Every publish must return promptly regardless.
    for batch in 0..100u32 {
        for index in batch * BATCH..(batch + 1) * BATCH {
            let publish = other_bus.publish(&subject, Bytes::from(index.to_string()));
            tokio::time::timeout(WAIT, publish)
                .await
                .expect("a slow consumer never blocks the publisher")
                .expect("publish");
        }
        for index in batch * BATCH..(batch + 1) * BATCH {
            assert_eq!(next_message(&mut fast).await.payload, index.to_string());
        }
    }

    eventually("the overflow is counted as dropped", || async {
        slow_bus.dropped_messages() > 0
    })
    .await;
    assert_eq!(
        next_message(&mut slow).await.payload,
        "0",
        "what fitted is kept"
    );
}

pub async fn dropping_a_subscription_stops_delivery_and_removes_interest(fixture: Fixture) {
    let publisher = fixture.bus().await;
    let subscriber = fixture.bus().await;
    let subject = unique_subject("unsubscribe");
    let mut dropped = subscribe_ready(&subscriber, &subject).await;
    let mut kept = subscribe_ready(&subscriber, &subject).await;
    publisher
        .publish(&subject, Bytes::from("1"))
        .await
        .expect("publish");
    assert_eq!(next_message(&mut dropped).await.payload, "1");
    assert_eq!(next_message(&mut kept).await.payload, "1");

    drop(dropped);
    subscriber.flush().await.expect("flush the unsubscribe");
    publisher
        .publish(&subject, Bytes::from("2"))
        .await
        .expect("publish");
    assert_eq!(next_message(&mut kept).await.payload, "2");

    drop(kept);
    subscriber.flush().await.expect("flush the unsubscribe");
    eventually("no subscriber is left on the subject", || async {
        let probe = publisher.request(
            &subject,
            Headers::new(),
            Bytes::new(),
            Duration::from_secs(1),
        );
        matches!(probe.await, Err(RequestError::NoResponders))
    })
    .await;
}

pub async fn malformed_subjects_queue_groups_and_headers_are_rejected(fixture: Fixture) {
    let bus = fixture.bus().await;
    let subject = unique_subject("validation");

    for bad in ["", "with space", "a..b", "a.>.b"] {
        let result = bus.subscribe(bad).await;
        assert!(
            matches!(result, Err(SubscribeError::InvalidSubject { .. })),
            "{bad:?}"
        );
    }
    for bad in ["", "with space"] {
        let result = bus.publish(bad, Bytes::new()).await;
        assert!(
            matches!(result, Err(PublishError::InvalidSubject { .. })),
            "{bad:?}"
        );
    }
    for bad in ["", "two words"] {
        let result = bus.queue_subscribe(&subject, bad).await;
        assert!(
            matches!(result, Err(SubscribeError::InvalidQueueGroup { .. })),
            "{bad:?}"
        );
    }
    let bad_headers: Headers = [("bad:name", "v")].into_iter().collect();
    let result = bus
        .publish_with_headers(&subject, bad_headers, Bytes::new())
        .await;
    assert!(
        matches!(result, Err(PublishError::InvalidHeader { .. })),
        "{result:?}"
    );
}
