//! Request/reply: responders, timeouts, no responders.

use std::time::Duration;

use bus::{Headers, PublishError, RequestError};
use bytes::Bytes;

use crate::fixture::{Fixture, WAIT, next_message, subscribe_ready, unique_subject};

pub async fn request_is_answered_by_responder(fixture: Fixture) {
    let requester = fixture.bus().await;
    let responder = fixture.bus().await;
    let subject = unique_subject("request");
    let mut requests = subscribe_ready(&responder, &subject).await;
    // The task gets its own handle: dropping a connection's last handle can lose what it has
    // not flushed yet, and a real responder outlives its replies.
    let answering_bus = responder.clone();
    let answering = tokio::spawn(async move {
        let request = next_message(&mut requests).await;
        let mut headers = Headers::new();
        let trace = request.headers.get("trace").unwrap_or("missing").to_owned();
        headers.insert("trace", trace);
        let mut answer = b"pong:".to_vec();
        answer.extend_from_slice(&request.payload);
        answering_bus
            .respond(&request, headers, Bytes::from(answer))
            .await
            .expect("respond");
        request.reply
    });

    let mut headers = Headers::new();
    headers.insert("trace", "t-1");
    let reply = requester
        .request(&subject, headers, Bytes::from_static(b"ping"), WAIT)
        .await
        .expect("a reply");

    assert_eq!(reply.payload, Bytes::from_static(b"pong:ping"));
    assert_eq!(reply.headers.get("trace"), Some("t-1"));
    let reply_subject = answering
        .await
        .expect("responder task")
        .expect("a reply subject");
    assert!(reply_subject.starts_with("_INBOX."), "{reply_subject}");
}

pub async fn request_nobody_answers_times_out(fixture: Fixture) {
    let requester = fixture.bus().await;
    let silent = fixture.bus().await;
    let subject = unique_subject("silent");
    let _never_answers = subscribe_ready(&silent, &subject).await;

    let result = requester
        .request(
            &subject,
            Headers::new(),
            Bytes::new(),
            Duration::from_millis(200),
        )
        .await;

    assert!(matches!(result, Err(RequestError::Timeout)), "{result:?}");
}

pub async fn request_to_subject_without_subscribers_fails_fast_with_no_responders(
    fixture: Fixture,
) {
    let requester = fixture.bus().await;
    let subject = unique_subject("nobody");

    // A generous request timeout: only an immediate answer beats the outer WAIT.
    let request = requester.request(&subject, Headers::new(), Bytes::new(), WAIT * 6);
    let result = tokio::time::timeout(WAIT, request)
        .await
        .expect("no responders is reported without waiting for the timeout");

    assert!(
        matches!(result, Err(RequestError::NoResponders)),
        "{result:?}"
    );
}

pub async fn responding_to_a_message_without_reply_subject_is_an_error(fixture: Fixture) {
    let bus = fixture.bus().await;
    let subject = unique_subject("no-reply");
    let mut subscription = subscribe_ready(&bus, &subject).await;
    bus.publish(&subject, Bytes::new()).await.expect("publish");
    let message = next_message(&mut subscription).await;

    let result = bus.respond(&message, Headers::new(), Bytes::new()).await;

    assert!(
        matches!(result, Err(PublishError::NoReplySubject)),
        "{result:?}"
    );
}
