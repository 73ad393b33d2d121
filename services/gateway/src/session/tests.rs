use std::pin::Pin;
use std::task::{Context, Poll};

use auth::{Claims, Role};
use axum::extract::ws::Message;
use bus::Bus;
use futures_util::{Sink, Stream};
use protocol::Codec;
use store::Store;

use super::run;
use crate::state::build as build_shared;

/// A socket that never yields and accepts everything.
struct QuietSocket;

impl Stream for QuietSocket {
    type Item = Result<Message, axum::Error>;
    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Pending
    }
}

impl Sink<Message> for QuietSocket {
    type Error = axum::Error;
    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(self: Pin<&mut Self>, _item: Message) -> Result<(), Self::Error> {
        Ok(())
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
}

#[test]
fn an_idle_session_task_stays_small() {
    let mut config = crate::Config::default();
    config.auth.hmac_secret = Some(settings::Secret::new("0123456789abcdef0123456789abcdef"));
    let addr = "127.0.0.1:1".parse().unwrap();
    let (shared, _presence_rx) =
        build_shared(config, Bus::memory(), Store::memory(), addr).unwrap();
    let claims = Claims {
        sub: "u".into(),
        exp: u64::MAX / 2,
        iat: None,
        rooms: vec![],
        publish: vec![],
        role: Role::Viewer,
        node_id: None,
    };
    let session = run(shared, QuietSocket, claims, Codec::Json);
    let bytes = std::mem::size_of_val(&session);
    // Every idle connection keeps this future allocated for its whole life; rare deep paths
    // (subscribe, publish, farewells) are boxed so they do not count here.
    assert!(bytes <= 1024, "session future is {bytes} bytes");
    eprintln!("session future: {bytes} bytes");
}
