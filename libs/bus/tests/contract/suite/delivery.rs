//! Who receives a published message: exact subjects, wildcards, queue groups, headers.

use std::collections::HashSet;

use bus::{Headers, Message};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::select_all;

use crate::fixture::{Fixture, WAIT, next_message, subscribe_ready, unique_subject};

fn body(message: &Message) -> &str {
    std::str::from_utf8(&message.payload).expect("test payloads are utf-8")
}

pub async fn published_message_reaches_exact_subscriber_only(fixture: Fixture) {
    let publisher = fixture.bus().await;
    let subscriber = fixture.bus().await;
    let subject = unique_subject("exact");
    let mut exact = subscribe_ready(&subscriber, &subject).await;
    let mut deeper = subscribe_ready(&subscriber, &format!("{subject}.deeper")).await;

    publisher
        .publish(&subject, Bytes::from_static(b"hello"))
        .await
        .expect("publish");
    publisher
        .publish(&format!("{subject}.deeper"), Bytes::from_static(b"fence"))
        .await
        .expect("publish");

    let message = next_message(&mut exact).await;
    assert_eq!(message.subject, subject);
    assert_eq!(body(&message), "hello");
    assert_eq!(message.reply, None);
    assert!(message.headers.is_empty());
    assert_eq!(exact.subject(), subject);
    // Per-publisher order holds, so if `deeper` had matched "hello" it would come first.
    assert_eq!(body(&next_message(&mut deeper).await), "fence");
    assert!(publisher.is_connected() && subscriber.is_connected());
}

pub async fn star_matches_one_token_and_greater_than_matches_the_rest(fixture: Fixture) {
    let publisher = fixture.bus().await;
    let subscriber = fixture.bus().await;
    let base = unique_subject("wildcards");
    let mut star = subscribe_ready(&subscriber, &format!("{base}.*")).await;
    let mut rest = subscribe_ready(&subscriber, &format!("{base}.>")).await;

    for subject in [
        format!("{base}.a"),
        format!("{base}.a.b"),
        base.clone(),
        format!("{base}.fence"),
    ] {
        publisher
            .publish(&subject, Bytes::from(subject.clone()))
            .await
            .expect("publish");
    }

    // The fence comes last from one publisher, so anything wrongly delivered shows up first.
    assert_eq!(next_message(&mut star).await.subject, format!("{base}.a"));
    assert_eq!(
        next_message(&mut star).await.subject,
        format!("{base}.fence")
    );
    assert_eq!(next_message(&mut rest).await.subject, format!("{base}.a"));
    assert_eq!(next_message(&mut rest).await.subject, format!("{base}.a.b"));
    assert_eq!(
        next_message(&mut rest).await.subject,
        format!("{base}.fence")
    );
}

pub async fn headers_round_trip(fixture: Fixture) {
    let publisher = fixture.bus().await;
    let subscriber = fixture.bus().await;
    let subject = unique_subject("headers");
    let mut subscription = subscribe_ready(&subscriber, &subject).await;
    let mut headers = Headers::new();
    headers.insert(
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    );
    headers.insert("Sb-Msg-Id", "42");
    headers.append("Sb-Tag", "first");
    headers.append("Sb-Tag", "second");

    publisher
        .publish_with_headers(&subject, headers.clone(), Bytes::from_static(b"{}"))
        .await
        .expect("publish");

    let received = next_message(&mut subscription).await.headers;
    assert_eq!(received.len(), headers.len());
    assert_eq!(received.get("traceparent"), headers.get("traceparent"));
    assert_eq!(received.get("Sb-Msg-Id"), Some("42"));
    let tags: Vec<_> = received
        .iter()
        .filter(|(name, _)| *name == "Sb-Tag")
        .map(|(_, value)| value)
        .collect();
    assert_eq!(tags, vec!["first", "second"]);
}

pub async fn queue_group_delivers_each_message_to_exactly_one_member(fixture: Fixture) {
    const MESSAGES: usize = 30;
    let publisher = fixture.bus().await;
    let subject = unique_subject("queue");
    let mut members = Vec::new();
    for _ in 0..3 {
        let member_bus = fixture.bus().await;
        let member = member_bus
            .queue_subscribe(&subject, "workers")
            .await
            .expect("queue subscribe");
        member_bus.flush().await.expect("flush");
        // Keep each connection open alongside its subscription.
        members.push((member_bus, member));
    }
    let mut plain = subscribe_ready(&fixture.bus().await, &subject).await;

    for index in 0..MESSAGES {
        publisher
            .publish(&subject, Bytes::from(index.to_string()))
            .await
            .expect("publish");
    }

    let (member_buses, subscriptions): (Vec<_>, Vec<_>) = members.into_iter().unzip();
    let tagged = subscriptions
        .into_iter()
        .enumerate()
        .map(|(member, subscription)| subscription.map(move |message| (member, message)));
    let received: Vec<_> = tokio::time::timeout(WAIT, select_all(tagged).take(MESSAGES).collect())
        .await
        .expect("queue members receive every message");
    let distinct: HashSet<_> = received.iter().map(|(_, message)| body(message)).collect();
    assert_eq!(distinct.len(), MESSAGES, "no message went to two members");
    let members_used: HashSet<_> = received.iter().map(|(member, _)| *member).collect();
    assert!(
        members_used.len() > 1,
        "the group spreads work over its members"
    );
    for index in 0..MESSAGES {
        assert_eq!(body(&next_message(&mut plain).await), index.to_string());
    }
    drop(member_buses);
}
