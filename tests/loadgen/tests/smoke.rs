//! Short load-generator runs against real servers, checking that nothing is lost. No timing
//! is asserted: these prove the loader and both targets agree on the protocol.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bus::test_util::NatsServer;
use gateway::test_util::{TestGateway, test_config};
use loadgen::{Options, Report, Scenario, Target};

/// Generous: the assertions are about loss, not speed.
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

fn assert_lossless(report: &Report, clients: u64, messages: u64) {
    let context = format!("{}\n{report:#?}", report.summary());
    assert_eq!(report.connected, clients, "{context}");
    assert_eq!(report.connect_failures, 0, "{context}");
    assert_eq!(report.lost, 0, "{context}");
    assert_eq!(report.duplicates, 0, "{context}");
    assert_eq!(report.out_of_order, 0, "{context}");
    assert_eq!(report.deliveries, clients * messages, "{context}");
    assert!(report.ok, "{context}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_through_the_gateway_delivers_every_message_to_every_client() {
    let nats = NatsServer::start().await;
    let mut config = test_config();
    config.bus.nats_url = Some(nats.url());
    let bus = gateway::connect_bus(&config)
        .await
        .expect("the gateway connects to the test nats-server");
    let gateway = TestGateway::start(config, bus, store::Store::memory()).await;

    let mut options = Options::new(Scenario::Fanout, Target::Switchboard);
    options.urls = vec![format!("ws://{}", gateway.addr)];
    options.nats_url = nats.url();
    options.secret = Some(auth::test_keys::TEST_HMAC_SECRET.to_vec());
    options.clients = 300;
    options.messages = 200;
    options.timeout = RUN_TIMEOUT;
    let report = loadgen::run_fanout(&options).await.expect("fanout runs");

    assert_lossless(&report, 300, 200);
    assert_eq!(report.expected_deliveries, 60_000);
    gateway.shutdown().await.expect("the gateway drains");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_through_the_gateway_deliver_each_room_its_share() {
    let nats = NatsServer::start().await;
    let mut config = test_config();
    config.bus.nats_url = Some(nats.url());
    let bus = gateway::connect_bus(&config).await.expect("bus connects");
    let gateway = TestGateway::start(config, bus, store::Store::memory()).await;

    let mut options = Options::new(Scenario::Rooms, Target::Switchboard);
    options.urls = vec![format!("ws://{}", gateway.addr)];
    options.nats_url = nats.url();
    options.secret = Some(auth::test_keys::TEST_HMAC_SECRET.to_vec());
    options.clients = 40;
    options.rooms = 8;
    options.messages = 80;
    options.timeout = RUN_TIMEOUT;
    let report = loadgen::run_rooms(&options).await.expect("rooms runs");

    // Each of the 8 rooms gets 10 messages and has 5 subscribers.
    assert_lossless(&report, 40, 10);
    gateway.shutdown().await.expect("the gateway drains");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_over_the_nats_websocket_listener_delivers_every_message() {
    let server = NatsWithWebsocket::start();
    let mut options = Options::new(Scenario::Fanout, Target::NatsWs);
    options.urls = vec![format!("ws://127.0.0.1:{}", server.ws_port)];
    options.nats_url = format!("nats://127.0.0.1:{}", server.port);
    options.clients = 100;
    options.messages = 100;
    options.timeout = RUN_TIMEOUT;
    let report = loadgen::run_fanout(&options).await.expect("fanout runs");

    assert_lossless(&report, 100, 100);
    assert!(report.avg_message_bytes >= 190.0, "{report:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_rate_and_idle_count_every_connection() {
    let server = NatsWithWebsocket::start();
    let mut options = Options::new(Scenario::ConnectRate, Target::NatsWs);
    options.urls = vec![format!("ws://127.0.0.1:{}", server.ws_port)];
    options.clients = 50;
    options.concurrency = 10;
    options.timeout = RUN_TIMEOUT;
    let report = loadgen::run_connect_rate(&options)
        .await
        .expect("connect-rate runs");
    assert_eq!(report.connected, 50, "{report:#?}");
    assert_eq!(report.handshake.count, 50);
    assert!(report.ok, "{report:#?}");

    options.clients = 20;
    options.duration = Duration::from_millis(200);
    options.settle = Duration::ZERO;
    options.server_pid = Some(server.child.id());
    let report = loadgen::run_idle(&options).await.expect("idle runs");
    let idle = report.idle.as_ref().expect("idle figures");
    assert_eq!(report.connected, 20, "{report:#?}");
    assert!(idle.rss_connected_kib.is_some(), "{report:#?}");
    assert!(report.ok, "{report:#?}");
}

/// A `nats-server` with a WebSocket listener (the bus test launcher has none), killed on drop.
struct NatsWithWebsocket {
    child: Child,
    port: u16,
    ws_port: u16,
    _dir: tempfile::TempDir,
}

impl NatsWithWebsocket {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (port, ws_port) = (free_port(), free_port());
        let config = dir.path().join("nats.conf");
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:{port}\nwebsocket {{ listen: \"127.0.0.1:{ws_port}\", no_tls: true }}\n"
            ),
        )
        .unwrap();
        let binary = if Path::new("/usr/sbin/nats-server").exists() {
            "/usr/sbin/nats-server"
        } else {
            "nats-server"
        };
        let child = Command::new(binary)
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts (apt-get install nats-server)");
        let server = NatsWithWebsocket {
            child,
            port,
            ws_port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !(accepts(port) && accepts(ws_port)) {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen in time"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }
}

impl Drop for NatsWithWebsocket {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn accepts(port: u16) -> bool {
    TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
}
