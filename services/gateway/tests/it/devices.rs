//! Shared pieces of the instrument tests: a device reader stand-in on the bus (readings,
//! faults and its management API) and a client of seed 003's endpoints that reads JSON frames.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bus::{Bus, Headers};
use futures_util::{SinkExt, StreamExt};
use gateway::test_util::{FRAME_TIMEOUT, TestGateway, within};
use protocol::device::{
    self, DeviceFault, DeviceReading, DeviceState, DeviceStatus, EVENT_DATA, EVENT_ERROR, api,
};
use protocol::envelope::encode_bus;
use protocol::metrics::ApiReply;
use protocol::{RoomEnvelope, Subjects};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A reading whose `ch1_power` is `seq`, so a client can tell which one it got.
pub fn reading(device_id: &str, module: u16, seq: u64) -> DeviceReading {
    DeviceReading {
        timestamp: protocol::time::now_unix_ms() as f64 / 1000.0,
        module,
        wavelength_nm: 1310.0,
        unit: "dBm".to_owned(),
        ch1_power: seq as f64,
        ch2_power: -21.56,
        ch3_power: 6.94,
        ch4_power: -60.12,
        device_id: device_id.to_owned(),
    }
}

/// A recoverable fault with `error_count`.
pub fn fault(device_id: &str, module: u16, error_count: u32) -> DeviceFault {
    DeviceFault {
        message: "Hardware temporarily unavailable".to_owned(),
        timestamp: protocol::time::now_rfc3339(),
        recoverable: true,
        error_count,
        device_id: device_id.to_owned(),
        module,
    }
}

/// Publishes `data` as event `event` to the device room, as the device reader does.
pub async fn publish(bus: &Bus, device_id: &str, module: u16, event: &str, data: Value) {
    let room = device::reading_room(device_id, module).expect("valid device room");
    let envelope = RoomEnvelope {
        event: event.to_owned(),
        data,
        timestamp: Some(protocol::time::now_rfc3339()),
        seq: None,
        priority: None,
    };
    let payload = encode_bus(&envelope).expect("envelope encodes");
    bus.publish(&Subjects::new("sb").room(&room), payload.into())
        .await
        .expect("published");
}

/// Publishes a reading.
pub async fn publish_reading(bus: &Bus, device_id: &str, module: u16, seq: u64) {
    let data = serde_json::to_value(reading(device_id, module, seq)).expect("reading is JSON");
    publish(bus, device_id, module, EVENT_DATA, data).await;
}

/// Publishes a fault.
pub async fn publish_fault(bus: &Bus, device_id: &str, module: u16, error_count: u32) {
    let data = serde_json::to_value(fault(device_id, module, error_count)).expect("fault is JSON");
    publish(bus, device_id, module, EVENT_ERROR, data).await;
}

/// Readings published at a steady rate until dropped; `latest` is the newest `seq` sent.
pub struct Feed {
    pub latest: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Feed {
    /// Starts publishing readings `1, 2, 3 …` every `period` to `devices.<id>.m<module>`.
    pub fn start(bus: &Bus, device_id: &str, module: u16, period: Duration) -> Self {
        let latest = Arc::new(AtomicU64::new(0));
        let (bus, device_id, task_latest) = (bus.clone(), device_id.to_owned(), latest.clone());
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            for seq in 1.. {
                ticker.tick().await;
                publish_reading(&bus, &device_id, module, seq).await;
                task_latest.store(seq, Ordering::SeqCst);
            }
        });
        Self { latest, task }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A status as the device reader reports it.
pub fn status(device_id: &str, modules: &[u16]) -> DeviceStatus {
    DeviceStatus {
        device_id: device_id.to_owned(),
        driver: "mock".to_owned(),
        modules: modules.to_vec(),
        interval_ms: 100,
        state: DeviceState::Connected,
        last_reading_at: Some(1_700_000_000.5),
        error_count: 0,
        last_error: None,
        reader_id: Some("dr-test".to_owned()),
    }
}

/// Answers the device reader's `list_devices` and `get_device` with `devices` (an unknown
/// id gets `not-found` as `node_not_connected`, to check codes pass through) until dropped.
pub struct FakeDeviceReader {
    tasks: Vec<JoinHandle<()>>,
}

impl FakeDeviceReader {
    pub async fn start(bus: &Bus, devices: Vec<DeviceStatus>) -> Self {
        let subjects = Subjects::new("sb");
        let mut list = bus
            .queue_subscribe(
                &subjects.api(api::SERVICE, api::LIST_DEVICES),
                api::QUEUE_GROUP,
            )
            .await
            .expect("subscribes");
        let mut get = bus
            .queue_subscribe(
                &subjects.api(api::SERVICE, api::GET_DEVICE),
                api::QUEUE_GROUP,
            )
            .await
            .expect("subscribes");
        let (list_bus, listed) = (bus.clone(), devices.clone());
        let list_task = tokio::spawn(async move {
            while let Some(request) = list.next().await {
                let reply = encode_bus(&ApiReply::ok(listed.clone())).expect("encodes");
                let _ = list_bus
                    .respond(&request, Headers::new(), reply.into())
                    .await;
            }
        });
        let get_bus = bus.clone();
        let get_task = tokio::spawn(async move {
            while let Some(request) = get.next().await {
                let asked: device::DeviceRequest =
                    protocol::envelope::decode_bus(&request.payload).expect("request decodes");
                let reply = match devices.iter().find(|d| d.device_id == asked.device_id) {
                    Some(found) => encode_bus(&ApiReply::ok(found.clone())),
                    None => encode_bus(&ApiReply::<DeviceStatus>::error(
                        protocol::ErrorCode::NodeNotConnected,
                        format!("no device {}", asked.device_id),
                    )),
                }
                .expect("encodes");
                let _ = get_bus
                    .respond(&request, Headers::new(), reply.into())
                    .await;
            }
        });
        Self {
            tasks: vec![list_task, get_task],
        }
    }
}

impl Drop for FakeDeviceReader {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A client of seed 003's endpoints: JSON text frames in, text frames out.
pub struct SeedClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What a refused upgrade answered.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub body: Value,
}

impl SeedClient {
    /// Connects to `path?query` (token, if any, as `?token=`).
    pub async fn connect(gateway: &TestGateway, path_and_query: &str) -> Result<Self, Refusal> {
        Self::connect_with(gateway, path_and_query, None).await
    }

    /// Connects with `bearer` in an `Authorization` header.
    pub async fn connect_with(
        gateway: &TestGateway,
        path_and_query: &str,
        bearer: Option<&str>,
    ) -> Result<Self, Refusal> {
        let url = format!("ws://{}{path_and_query}", gateway.addr);
        let mut request = url.into_client_request().expect("url is a request");
        if let Some(token) = bearer {
            request.headers_mut().insert(
                "Authorization",
                HeaderValue::from_str(&format!("Bearer {token}")).expect("header value"),
            );
        }
        match within(FRAME_TIMEOUT, tokio_tungstenite::connect_async(request)).await {
            Ok((socket, _)) => Ok(Self { socket }),
            Err(tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let body = response
                    .body()
                    .as_deref()
                    .and_then(|body| serde_json::from_slice(body).ok())
                    .unwrap_or(Value::Null);
                Err(Refusal { status, body })
            }
            Err(other) => panic!("connect failed: {other}"),
        }
    }

    /// Sends a text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Message::Text(text.to_owned().into()))
            .await
            .expect("frame is sent");
    }

    /// The next JSON frame, or `Err` with the close code when the server closed.
    pub async fn next(&mut self) -> Result<Value, Option<u16>> {
        within(FRAME_TIMEOUT, async {
            loop {
                match self.socket.next().await {
                    Some(Ok(Message::Text(text))) => {
                        return Ok(serde_json::from_str(&text).expect("text frames are JSON"));
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return Err(frame.map(|frame: CloseFrame| u16::from(frame.code)));
                    }
                    Some(Ok(_)) => continue,
                    _ => return Err(None),
                }
            }
        })
        .await
    }

    /// The next frame of type `kind`, skipping others.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            match self.next().await {
                Ok(frame) if frame["type"] == kind => return frame,
                Ok(_) => continue,
                Err(code) => panic!("closed ({code:?}) before a {kind} frame"),
            }
        }
    }

    /// Every JSON frame received during `window` (answering pings), each with the feed's
    /// `latest` seq at the moment it arrived.
    pub async fn collect(
        &mut self,
        window: Duration,
        latest: Option<&AtomicU64>,
    ) -> Vec<(Value, u64)> {
        let mut frames = Vec::new();
        let _ = tokio::time::timeout(window, async {
            loop {
                match self.socket.next().await {
                    Some(Ok(Message::Text(text))) => {
                        let now = latest.map_or(0, |latest| latest.load(Ordering::SeqCst));
                        frames.push((serde_json::from_str(&text).expect("JSON"), now));
                    }
                    Some(Ok(Message::Close(frame))) => panic!("closed: {frame:?}"),
                    Some(Ok(_)) => {}
                    other => panic!("connection ended: {other:?}"),
                }
            }
        })
        .await;
        frames
    }
}

/// The frames of `kind` among `frames`.
pub fn of_kind<'a>(frames: &'a [(Value, u64)], kind: &str) -> Vec<&'a (Value, u64)> {
    frames
        .iter()
        .filter(|(frame, _)| frame["type"] == kind)
        .collect()
}

/// The sorted keys of a JSON object.
pub fn keys(frame: &Value) -> Vec<String> {
    let mut keys: Vec<String> = frame
        .as_object()
        .map(|object| object.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

/// Waits until the gateway has `count` local subscribers in `room` (so nothing published
/// afterwards is missed).
pub async fn wait_for_subscribers(gateway: &TestGateway, room: &str, count: u64) {
    gateway::test_util::eventually(FRAME_TIMEOUT, || async {
        let (_, streams) = gateway::test_util::get_json(gateway.addr, "/api/ws/streams").await;
        streams["streams"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|stream| stream["room"] == room && stream["local_subscribers"] == count)
    })
    .await;
}
