//! The shared HTTP front door on the management listener: a stalled client cannot hold the
//! drain past `shutdown_grace`.

use std::time::{Duration, Instant};

use bus::Bus;
use store::Store;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::helpers::{config, spawn};

#[tokio::test]
async fn a_stalled_http_client_does_not_hold_the_drain_past_the_shutdown_grace() {
    let mut config = config("front-door", Vec::new());
    config.device_reader.shutdown_grace = Duration::from_secs(1);
    let reader = spawn(config, &Bus::memory(), &Store::memory()).await;
    // A device registration whose body never completes: in progress when the drain begins.
    let mut stalled = TcpStream::connect(reader.addr).await.expect("tcp connects");
    let head = "POST /v1/devices HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
                Content-Length: 1000\r\n\r\n{\"id\":";
    stalled.write_all(head.as_bytes()).await.expect("sent");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    reader.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the drain took {:?} with a 1 s grace",
        started.elapsed()
    );
    drop(stalled);
}
