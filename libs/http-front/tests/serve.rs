//! The shared accept loop on a real socket: header-read timeout, idle keep-alive, the cap
//! counted from accept on with its probe headroom, and the drain's deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Extension;
use axum::routing::get;
use http_front::{ConnectionSlot, Drained, FrontDoor, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

struct Served {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<Drained>,
}

/// Serves `/ok`, `/slot` (whether the connection has a permit to hand over) and `/hang`
/// (never answers) with `limits`; the drain gets `drain` once `stop` is cancelled.
async fn serve(limits: Limits, drain: Duration) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // `/slot` keeps the permit it takes, as an upgraded session would.
    let kept = Arc::new(Mutex::new(Vec::new()));
    let router = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/slot",
            get(
                move |Extension(slot): Extension<ConnectionSlot>| async move {
                    match slot.take() {
                        Some(permit) => {
                            kept.lock().unwrap().push(permit);
                            "permit"
                        }
                        None => "headroom",
                    }
                },
            ),
        )
        .route("/hang", get(std::future::pending::<&'static str>));
    let stop = CancellationToken::new();
    let token = stop.clone();
    let task = tokio::spawn(FrontDoor::new(limits).serve(listener, router, async move {
        token.cancelled().await;
        Instant::now() + drain
    }));
    Served { addr, stop, task }
}

fn limits(max_connections: usize, probe_headroom: usize) -> Limits {
    Limits {
        header_read_timeout: Duration::from_millis(300),
        max_connections,
        probe_headroom,
    }
}

/// Reads until the server closes; `None` when it is still open after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut received = Vec::new();
    tokio::time::timeout(limit, async {
        let mut chunk = [0u8; 1024];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(read) => received.extend_from_slice(&chunk[..read]),
            }
        }
    })
    .await
    .ok()
    .map(|()| String::from_utf8_lossy(&received).into_owned())
}

async fn get_on(stream: &mut TcpStream, path: &str) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
}

#[tokio::test]
async fn a_half_sent_request_head_and_an_idle_keep_alive_connection_are_closed() {
    let served = serve(limits(10, 1), Duration::from_secs(1)).await;
    let mut half = TcpStream::connect(served.addr).await.unwrap();
    half.write_all(b"GET /ok HT").await.unwrap();
    let mut idle = TcpStream::connect(served.addr).await.unwrap();
    get_on(&mut idle, "/ok").await;
    let started = Instant::now();
    assert!(
        closed_within(&mut half, Duration::from_secs(3))
            .await
            .is_some()
    );
    let answered = closed_within(&mut idle, Duration::from_secs(3))
        .await
        .expect("the idle keep-alive connection is closed");
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn idle_sockets_hold_permits_and_the_headroom_serves_one_request_without_one() {
    let served = serve(limits(3, 1), Duration::from_secs(1)).await;
    let mut first = TcpStream::connect(served.addr).await.unwrap();
    get_on(&mut first, "/slot").await;
    let mut answer = [0u8; 512];
    let read = first.read(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer[..read]).ends_with("permit"));
    // Two sockets that send nothing fill the cap of three.
    let _idle: Vec<TcpStream> = vec![
        TcpStream::connect(served.addr).await.unwrap(),
        TcpStream::connect(served.addr).await.unwrap(),
    ];
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut probe = TcpStream::connect(served.addr).await.unwrap();
    // Beyond the headroom as well: closed at once, unanswered.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut beyond = TcpStream::connect(served.addr).await.unwrap();
    let refused = closed_within(&mut beyond, Duration::from_millis(200))
        .await
        .expect("a connection beyond cap and headroom is closed at once");
    assert!(refused.is_empty(), "{refused}");
    get_on(&mut probe, "/slot").await;
    // The headroom answers without keep-alive and with no permit to hand over.
    let answer = closed_within(&mut probe, Duration::from_secs(2))
        .await
        .expect("a headroom connection closes after one request");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("headroom"), "{answer}");
}

#[tokio::test]
async fn a_request_that_never_ends_is_cut_off_at_the_drain_deadline() {
    let served = serve(limits(10, 1), Duration::from_millis(500)).await;
    let mut hanging = TcpStream::connect(served.addr).await.unwrap();
    get_on(&mut hanging, "/hang").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    served.stop.cancel();
    let drained = tokio::time::timeout(Duration::from_secs(3), served.task)
        .await
        .expect("the drain ends at its deadline")
        .unwrap();
    assert_eq!(drained.cut_off, 1);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        closed_within(&mut hanging, Duration::from_secs(1))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn a_request_head_over_the_header_count_or_the_buffer_is_refused_with_431() {
    let served = serve(limits(10, 1), Duration::from_secs(1)).await;
    let many: String = (0..http_front::MAX_HEADERS + 1)
        .map(|n| format!("X-Header-{n}: v\r\n"))
        .collect();
    let long = format!("X-Long: {}\r\n", "a".repeat(http_front::MAX_BUF_SIZE));
    for extra in [many, long] {
        let mut stream = TcpStream::connect(served.addr).await.unwrap();
        let request = format!("GET /ok HTTP/1.1\r\nHost: test\r\n{extra}\r\n");
        // The server may close before reading all of an oversized head.
        let _ = stream.write_all(request.as_bytes()).await;
        let answer = closed_within(&mut stream, Duration::from_secs(2))
            .await
            .expect("closed after the refusal");
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    }
}
