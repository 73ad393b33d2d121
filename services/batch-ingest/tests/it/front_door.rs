//! The shared HTTP front door on the callback listener: a stalled client cannot hold the
//! drain past `shutdown_grace`.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::helpers::ingest;

#[tokio::test]
async fn a_stalled_http_client_does_not_hold_the_drain_past_the_shutdown_grace() {
    let ingest = ingest(|config| config.batch_ingest.shutdown_grace = Duration::from_secs(1)).await;
    // A registration whose body never completes: in progress when the drain begins.
    let mut stalled = TcpStream::connect(ingest.addr).await.expect("tcp connects");
    let head = "POST /v1/nodes HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
                Content-Length: 1000\r\n\r\n{\"id\":";
    stalled.write_all(head.as_bytes()).await.expect("sent");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    ingest.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the drain took {:?} with a 1 s grace",
        started.elapsed()
    );
    drop(stalled);
}
