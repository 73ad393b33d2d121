//! The device reader on real NATS and Redis (issue 10): two `switchboard-device-reader`
//! processes share a device; killing the one that reads it (SIGKILL, no lease release) hands
//! the device to the other within two intervals, and no tick is published twice.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2e::{Stack, eventually, workspace_binary};
use protocol::RoomEnvelope;
use protocol::envelope::decode_bus;
use tokio::time::Instant;

const INTERVAL: Duration = Duration::from_millis(500);

struct Reader {
    id: &'static str,
    child: Child,
}

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_reader(stack: &Stack, id: &'static str, config: &std::path::Path) -> Reader {
    let child = Command::new(workspace_binary("switchboard-device-reader"))
        .arg("--config")
        .arg(config)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SWITCHBOARD__BUS__NATS_URL", stack.nats.url())
        .env("SWITCHBOARD__STORE__REDIS_URL", stack.redis.url())
        .env("SWITCHBOARD__STORE__KEY_PREFIX", &stack.key_prefix)
        .env(
            "SWITCHBOARD__DEVICE_READER__LISTEN",
            format!("127.0.0.1:{}", e2e::free_port()),
        )
        .env("SWITCHBOARD__DEVICE_READER__INSTANCE_ID", id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("switchboard-device-reader starts");
    Reader { id, child }
}

#[derive(Debug, Clone)]
struct Seen {
    event: String,
    data: serde_json::Value,
    seq: Option<u64>,
    at: Instant,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_reading_replica_hands_the_device_over_without_duplicates() {
    let stack = Stack::start().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("device-reader.toml");
    std::fs::write(
        &config,
        format!(
            "[[device_reader.devices]]\nid = \"opm-e\"\nmodules = [1]\ninterval = \"{}ms\"\n",
            INTERVAL.as_millis()
        ),
    )
    .expect("configuration written");
    let bus = stack.bus().await;
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    for pattern in ["sb.room.devices", "sb.room.devices.opm-e.m1"] {
        let mut subscription = bus.subscribe(pattern).await.expect("subscribed");
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Some(message) = subscription.next().await {
                if let Ok(envelope) = decode_bus::<RoomEnvelope>(&message.payload) {
                    seen.lock().unwrap().push(Seen {
                        event: envelope.event,
                        data: envelope.data,
                        seq: envelope.seq,
                        at: Instant::now(),
                    });
                }
            }
        });
    }
    bus.flush().await.expect("subscriptions registered");
    let readings = || -> Vec<Seen> {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|seen| seen.event == "data")
            .cloned()
            .collect()
    };
    let reader_of_last_status = || -> Option<String> {
        seen.lock()
            .unwrap()
            .iter()
            .rev()
            .find(|seen| seen.event == "device_status")
            .and_then(|seen| seen.data["reader_id"].as_str().map(str::to_owned))
    };

    let mut a = Some(spawn_reader(&stack, "dr-e1", &config));
    let mut b = Some(spawn_reader(&stack, "dr-e2", &config));
    eventually(Duration::from_secs(20), || async { readings().len() >= 4 }).await;
    let holder = reader_of_last_status().expect("a status names the reader");
    let victim = if a.as_ref().is_some_and(|r| r.id == holder) {
        a.take()
    } else {
        b.take()
    }
    .expect("the holder is one of the two");
    let died_at = Instant::now();
    drop(victim); // SIGKILL: the lease is not released, it has to expire
    eventually(Duration::from_secs(10), || async {
        readings().iter().any(|seen| seen.at > died_at)
    })
    .await;
    let first_after = readings()
        .into_iter()
        .find(|seen| seen.at > died_at)
        .expect("a reading after the kill");
    let takeover = first_after.at - died_at;
    assert!(
        takeover <= INTERVAL * 2 + Duration::from_millis(300),
        "took over after {takeover:?}"
    );
    assert_ne!(first_after.data["device_id"], serde_json::Value::Null);
    eventually(Duration::from_secs(5), || async {
        reader_of_last_status().is_some_and(|reader| reader != holder)
    })
    .await;
    tokio::time::sleep(INTERVAL * 4).await;
    let ticks: Vec<u64> = readings().iter().filter_map(|seen| seen.seq).collect();
    let unique: HashSet<u64> = ticks.iter().copied().collect();
    assert_eq!(
        unique.len(),
        ticks.len(),
        "a tick was published twice: {ticks:?}"
    );
    drop((a, b));
}
