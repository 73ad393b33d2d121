//! `switchboard-device-reader` as a process of its own, configured by a TOML file (its
//! devices) and `SWITCHBOARD__*` variables (NATS, Redis, listener, instance id).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{Stack, eventually, free_port, workspace_binary};

/// A device reader process, killed (SIGKILL) on drop.
pub struct DeviceReaderProcess {
    /// Its management API, `/metrics`, `/healthz` and `/readyz`.
    pub listen: SocketAddr,
    child: Child,
    _config_dir: tempfile::TempDir,
}

impl DeviceReaderProcess {
    /// Starts a reader of `config_toml` (`[[device_reader.devices]]` tables and any
    /// `[device_reader]` keys) on `stack`, with `env` on top, and waits until `/readyz`
    /// answers 200.
    pub async fn spawn(
        stack: &Stack,
        instance_id: &str,
        config_toml: &str,
        env: &[(&str, String)],
    ) -> Self {
        let config_dir = tempfile::tempdir().expect("temporary directory");
        let config = config_dir.path().join("device-reader.toml");
        std::fs::write(&config, config_toml).expect("configuration written");
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("address parses");
        let mut command = Command::new(workspace_binary("switchboard-device-reader"));
        command
            .arg("--config")
            .arg(&config)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SWITCHBOARD__BUS__NATS_URL", stack.nats.url())
            .env("SWITCHBOARD__STORE__REDIS_URL", stack.redis.url())
            .env("SWITCHBOARD__STORE__KEY_PREFIX", &stack.key_prefix)
            .env("SWITCHBOARD__DEVICE_READER__LISTEN", listen.to_string())
            .env("SWITCHBOARD__DEVICE_READER__INSTANCE_ID", instance_id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(if std::env::var("TEST_LOG").is_ok() {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("switchboard-device-reader starts");
        let process = Self {
            listen,
            child,
            _config_dir: config_dir,
        };
        eventually(Duration::from_secs(20), || async {
            matches!(
                gateway::test_util::http_request(listen, "GET", "/readyz", &[], "").await,
                Ok((200, _))
            )
        })
        .await;
        process
    }
}

impl Drop for DeviceReaderProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
