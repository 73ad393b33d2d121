//! What a pod needs from each binary (issue 9): one shared environment for every service,
//! `--check-config` that agrees with start-up, `--version`, `--probe`, the example
//! configuration files, and gateway readiness that ignores a Redis outage.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use bytes::Bytes;
use e2e::{Stack, TEST_API_KEY, connect, eventually, free_port, token, viewer, workspace_binary};
use gateway::test_util::get_json;
use protocol::RoomEnvelope;
use protocol::envelope::encode_bus;
use serde_json::json;

/// Every binary with its example configuration file under `deploy/config/`.
const BINARIES: [(&str, &str); 7] = [
    ("switchboard-gateway", "gateway.toml"),
    ("switchboard-publisher", "publisher.toml"),
    ("switchboard-aggregator", "aggregator.toml"),
    ("switchboard-batch-ingest", "batch-ingest.toml"),
    ("switchboard-device-reader", "device-reader.toml"),
    ("switchboard-agent", "agent.toml"),
    ("switchboard", "standalone.toml"),
];

/// The binaries that run as their own process on NATS and Redis.
const CLUSTER_SERVICES: [&str; 5] = [
    "switchboard-gateway",
    "switchboard-publisher",
    "switchboard-aggregator",
    "switchboard-batch-ingest",
    "switchboard-device-reader",
];

fn hmac_secret() -> String {
    String::from_utf8_lossy(auth::test_keys::TEST_HMAC_SECRET).into_owned()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// Runs `binary args` with only `env` (and PATH) in its environment.
fn run(binary: &str, args: &[&str], env: &[(String, String)]) -> Output {
    Command::new(workspace_binary(binary))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .output()
        .expect("binary runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn every_binary_answers_version_and_help_without_configuration() {
    for (binary, _) in BINARIES {
        // A broken environment must not matter for these: they load no configuration.
        let broken = [(
            "SWITCHBOARD__GATEWAY__LISTEN".to_owned(),
            "nonsense".to_owned(),
        )];
        let version = run(binary, &["--version"], &broken);
        assert!(version.status.success(), "{binary}: {}", text(&version));
        let line = String::from_utf8_lossy(&version.stdout);
        assert!(
            line.starts_with(&format!("{binary} {} (commit ", env!("CARGO_PKG_VERSION"))),
            "{binary}: {line}"
        );
        let help = run(binary, &["--help"], &broken);
        assert!(help.status.success(), "{binary}: {}", text(&help));
        for flag in ["--config", "--check-config", "--probe", "--version"] {
            assert!(text(&help).contains(flag), "{binary} --help lacks {flag}");
        }
    }
}

#[test]
fn every_example_configuration_passes_check_config() {
    let dir = repo_root().join("deploy/config");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("deploy/config exists")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".toml"))
        .collect();
    files.sort();
    for (binary, file) in BINARIES {
        assert!(
            files.iter().any(|name| name == file),
            "deploy/config/{file} is missing"
        );
        let path = dir.join(file);
        let path = path.to_str().expect("utf-8 path");
        // Secrets never live in the example files: the environment brings them, as it would
        // in a pod.
        let env = [("SWITCHBOARD__AUTH__HMAC_SECRET".to_owned(), hmac_secret())];
        let output = run(binary, &["--check-config", "--config", path], &env);
        assert!(
            output.status.success(),
            "{binary} {file}: {}",
            text(&output)
        );
        assert!(text(&output).contains("configuration ok"), "{binary}");
    }
    // Every file belongs to a binary: a stray file would be an example nobody checks.
    for name in files {
        assert!(
            BINARIES.iter().any(|(_, file)| *file == name),
            "deploy/config/{name} names no binary"
        );
    }
}

#[test]
fn check_config_refuses_what_start_up_refuses() {
    let env = [("SWITCHBOARD__AUTH__HMAC_SECRET".to_owned(), hmac_secret())];
    for binary in CLUSTER_SERVICES {
        let checked = run(binary, &["--check-config"], &env);
        assert_eq!(
            checked.status.code(),
            Some(64),
            "{binary}: {}",
            text(&checked)
        );
        assert!(
            text(&checked).contains("bus.nats_url is required")
                && text(&checked).contains("store.redis_url is required"),
            "{binary}: {}",
            text(&checked)
        );
        // Start-up makes the same checks and fails the same way, before connecting anywhere.
        let started = run(binary, &[], &env);
        assert_eq!(
            started.status.code(),
            Some(64),
            "{binary}: {}",
            text(&started)
        );
        assert!(
            text(&started).contains("bus.nats_url is required"),
            "{binary}"
        );
    }
    // The standalone needs no URLs, but its --check-config validates every service's settings.
    let ok = run("switchboard", &["--check-config"], &[]);
    assert!(ok.status.success(), "{}", text(&ok));
    let bad = [
        (
            "SWITCHBOARD__SIMULATION__NODE_INTERVAL".to_owned(),
            "1ms".to_owned(),
        ),
        (
            "SWITCHBOARD__GATEWAY__MAX_CONNECTIONS".to_owned(),
            "0".to_owned(),
        ),
    ];
    let refused = run("switchboard", &["--check-config"], &bad);
    assert_eq!(refused.status.code(), Some(64), "{}", text(&refused));
    assert!(
        text(&refused).contains("simulation.node_interval"),
        "{}",
        text(&refused)
    );
    assert!(
        text(&refused).contains("gateway.max_connections"),
        "{}",
        text(&refused)
    );
    // An unknown key inside a section a binary uses stays an error.
    let typo = [
        ("SWITCHBOARD__AUTH__HMAC_SECRET".to_owned(), hmac_secret()),
        (
            "SWITCHBOARD__GATEWAY__MAX_CONECTIONS".to_owned(),
            "5".to_owned(),
        ),
    ];
    let refused = run("switchboard-gateway", &["--check-config"], &typo);
    assert_eq!(refused.status.code(), Some(64), "{}", text(&refused));
    assert!(
        text(&refused).contains("max_conections"),
        "{}",
        text(&refused)
    );
}

/// A process killed on drop.
struct Service {
    name: &'static str,
    child: Child,
}

impl Service {
    fn spawn(name: &'static str, env: &[(String, String)]) -> Self {
        let child = Command::new(workspace_binary(name))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(if std::env::var("TEST_LOG").is_ok() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("service starts");
        Self { name, child }
    }

    /// SIGTERM, then the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().expect("service exits")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `binary --probe url` succeeds: the container health check, run the way an image runs it.
fn probe(binary: &str, url: &str) -> bool {
    run(binary, &["--probe", url], &[]).status.success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shared_environment_starts_every_service_and_the_probe_sees_them_healthy() {
    let stack = Stack::start().await;
    let gateway_addr = format!("127.0.0.1:{}", free_port());
    let publisher_admin = format!("127.0.0.1:{}", free_port());
    let aggregator_admin = format!("127.0.0.1:{}", free_port());
    let batch_listen = format!("127.0.0.1:{}", free_port());
    let device_listen = format!("127.0.0.1:{}", free_port());
    // One environment, as compose's env_file or a Helm ConfigMap gives every container: each
    // binary sees sections it does not use (the publisher sees [auth], [gateway], [agent] …).
    let shared: Vec<(String, String)> = [
        ("SWITCHBOARD__BUS__NATS_URL", stack.nats.url()),
        ("SWITCHBOARD__STORE__REDIS_URL", stack.redis.url()),
        ("SWITCHBOARD__STORE__KEY_PREFIX", stack.key_prefix.clone()),
        ("SWITCHBOARD__AUTH__HMAC_SECRET", hmac_secret()),
        ("SWITCHBOARD__AUTH__API_KEY", TEST_API_KEY.to_owned()),
        ("SWITCHBOARD__GATEWAY__LISTEN", gateway_addr.clone()),
        (
            "SWITCHBOARD__GATEWAY__ALLOWED_ORIGINS",
            "http://a.example,http://b.example".to_owned(),
        ),
        (
            "SWITCHBOARD__GATEWAY__CORS_ALLOWED_ORIGINS",
            "http://a.example,http://c.example".to_owned(),
        ),
        ("SWITCHBOARD__PUBLISHER__NODES_INTERVAL", "1s".to_owned()),
        ("SWITCHBOARD__AGGREGATOR__FLUSH_INTERVAL", "1s".to_owned()),
        ("SWITCHBOARD__BATCH_INGEST__LISTEN", batch_listen.clone()),
        (
            "SWITCHBOARD__AGENT__GATEWAY_URL",
            format!("ws://{gateway_addr}/api/ws/connect"),
        ),
        ("SWITCHBOARD__AGENT__NODE_ID", "shared-env-node".to_owned()),
        ("SWITCHBOARD__AGENT__UPDATE_INTERVAL", "1s".to_owned()),
        ("SWITCHBOARD__TELEMETRY__LOG_FORMAT", "json".to_owned()),
        ("SWITCHBOARD__DEVICE_READER__LISTEN", device_listen.clone()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    // The admin port differs per process: that is the one per-service variable.
    let with_admin = |addr: &str| {
        let mut env = shared.clone();
        env.push((
            "SWITCHBOARD__TELEMETRY__ADMIN_LISTEN".to_owned(),
            addr.to_owned(),
        ));
        env
    };
    for (binary, _) in BINARIES {
        let checked = run(binary, &["--check-config"], &shared);
        assert!(checked.status.success(), "{binary}: {}", text(&checked));
    }
    let gateway = Service::spawn("switchboard-gateway", &shared);
    let publisher = Service::spawn("switchboard-publisher", &with_admin(&publisher_admin));
    let aggregator = Service::spawn("switchboard-aggregator", &with_admin(&aggregator_admin));
    let batch_ingest = Service::spawn("switchboard-batch-ingest", &shared);
    let device_reader = Service::spawn("switchboard-device-reader", &shared);
    let health = [
        (
            "switchboard-gateway",
            format!("http://{gateway_addr}/readyz"),
        ),
        (
            "switchboard-publisher",
            format!("http://{publisher_admin}/readyz"),
        ),
        (
            "switchboard-aggregator",
            format!("http://{aggregator_admin}/readyz"),
        ),
        (
            "switchboard-batch-ingest",
            format!("http://{batch_listen}/readyz"),
        ),
        (
            "switchboard-device-reader",
            format!("http://{device_listen}/readyz"),
        ),
    ];
    for (binary, url) in &health {
        eventually(Duration::from_secs(20), || async { probe(binary, url) }).await;
    }
    assert!(!probe(
        "switchboard-gateway",
        &format!("http://{gateway_addr}/no-such-page")
    ));
    // The agent signs its own node token with the shared secret and reports through the gateway
    // to the publisher, whose `nodes` stream names it.
    let agent = Service::spawn("switchboard-agent", &shared);
    let addr = gateway_addr.parse().expect("address");
    let mut viewer_client = connect(&format!(
        "ws://{gateway_addr}/api/ws/connect?token={}",
        token(&viewer("watcher"))
    ))
    .await;
    viewer_client.subscribe(&["nodes"]).await;
    eventually(Duration::from_secs(20), || async {
        let (_, stats) = get_json(addr, "/api/ws/stats").await;
        stats["active_connections"].as_u64() == Some(2)
    })
    .await;
    let listed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let message = viewer_client.next_room_message().await;
            if message.data.to_string().contains("shared-env-node") {
                return message;
            }
        }
    })
    .await
    .expect("the agent's node appears in room nodes");
    assert_eq!(listed.event, "node_status_update");
    for service in [
        agent,
        device_reader,
        batch_ingest,
        aggregator,
        publisher,
        gateway,
    ] {
        let name = service.name;
        let status = service.terminate();
        assert!(status.success(), "{name} exited {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_readiness_ignores_a_redis_outage_and_delivery_goes_on() {
    let mut stack = Stack::start().await;
    let gateway = stack.gateway(|_| {}).await;
    let mut client = connect(&format!(
        "ws://{}/api/ws/connect?token={}",
        gateway.addr,
        token(&viewer("reader"))
    ))
    .await;
    client.subscribe(&["alerts"]).await;
    stack.redis.stop().await;
    let (status, body) = get_json(gateway.addr, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["store"]["reachable"], json!(false), "{body}");
    assert_eq!(body["bus"]["connected"], json!(true), "{body}");
    let bus = stack.bus().await;
    let envelope = RoomEnvelope {
        event: "alert".to_owned(),
        data: json!({"during": "redis outage"}),
        timestamp: None,
        seq: None,
        priority: None,
    };
    bus.publish(
        "sb.room.alerts",
        Bytes::from(encode_bus(&envelope).expect("encodes")),
    )
    .await
    .expect("published");
    bus.flush().await.expect("flushed");
    let message = client.next_room_message().await;
    assert_eq!(message.data, json!({"during": "redis outage"}));
    stack.redis.restart().await;
    let (status, _) = get_json(gateway.addr, "/readyz").await;
    assert_eq!(status, 200);
}
