//! Spawning readers and watching what they publish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus::Bus;
use device_reader::{Config, DeviceConfig, DeviceReader};
use protocol::RoomEnvelope;
use protocol::envelope::{decode_bus, encode_bus};
use protocol::metrics::ApiReply;
use serde::Serialize;
use serde::de::DeserializeOwned;
use store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A configuration for tests: port 0, quick retries, three failures to unavailable.
pub fn config(instance_id: &str, devices: Vec<DeviceConfig>) -> Config {
    let mut config = Config::default();
    let section = &mut config.device_reader;
    section.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    section.instance_id = Some(instance_id.to_owned());
    section.devices = devices;
    section.failures_before_unavailable = 3;
    section.retry_min = Duration::from_millis(100);
    section.retry_max = Duration::from_millis(400);
    section.shutdown_grace = Duration::from_secs(2);
    config
}

/// A reader serving in the background.
pub struct Running {
    pub addr: SocketAddr,
    pub instance_id: String,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<()>,
}

impl Running {
    /// Drains cleanly.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("reader drains in time")
            .expect("reader task does not panic");
    }

    /// Dies: the serve future is dropped, nothing is released.
    pub async fn crash(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

pub async fn spawn(config: Config, bus: &Bus, store: &Store) -> Running {
    telemetry::init_for_tests();
    let reader = DeviceReader::bind(config, bus.clone(), store.clone())
        .await
        .expect("reader binds");
    let addr = reader.local_addr();
    let instance_id = reader.instance_id().to_owned();
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        reader.serve(token).await.expect("reader serves");
    });
    Running {
        addr,
        instance_id,
        shutdown,
        task,
    }
}

/// One room message seen on the bus.
#[derive(Debug, Clone)]
pub struct Seen {
    pub room: String,
    pub event: String,
    pub data: serde_json::Value,
    pub seq: Option<u64>,
    pub at: Instant,
}

/// Everything published to `sb.room.devices` and `sb.room.devices.>`.
#[derive(Clone, Default)]
pub struct Collector {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Collector {
    pub async fn start(bus: &Bus) -> Collector {
        let collector = Collector::default();
        for pattern in ["sb.room.devices", "sb.room.devices.>"] {
            let mut subscription = bus.subscribe(pattern).await.unwrap();
            let seen = Arc::clone(&collector.seen);
            tokio::spawn(async move {
                while let Some(message) = subscription.next().await {
                    let Ok(envelope) = decode_bus::<RoomEnvelope>(&message.payload) else {
                        continue;
                    };
                    let room = message.subject.trim_start_matches("sb.room.").to_owned();
                    seen.lock().unwrap().push(Seen {
                        room,
                        event: envelope.event,
                        data: envelope.data,
                        seq: envelope.seq,
                        at: Instant::now(),
                    });
                }
            });
        }
        collector
    }

    pub fn all(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn events(&self, room: &str, event: &str) -> Vec<Seen> {
        self.all()
            .into_iter()
            .filter(|seen| seen.room == room && seen.event == event)
            .collect()
    }

    pub fn statuses(&self, device: &str) -> Vec<serde_json::Value> {
        self.events("devices", "device_status")
            .into_iter()
            .map(|seen| seen.data)
            .filter(|data| data["device_id"] == device)
            .collect()
    }

    pub fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }
}

/// Polls `check` every 20 ms until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Calls `sb.api.device_reader.<method>` and decodes the reply.
pub async fn ask<Q: Serialize, R: DeserializeOwned>(
    bus: &Bus,
    method: &str,
    request: &Q,
) -> ApiReply<R> {
    let subject = protocol::Subjects::new("sb").api(protocol::device::api::SERVICE, method);
    let payload = encode_bus(request).unwrap();
    let reply = bus
        .request(
            &subject,
            bus::Headers::new(),
            payload.into(),
            Duration::from_secs(5),
        )
        .await
        .expect("a reader answers");
    decode_bus(&reply.payload).expect("reply decodes")
}

/// A bare HTTP/1.1 request; returns the status and the JSON body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.map(|body| body.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8(response).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    (status, body)
}
