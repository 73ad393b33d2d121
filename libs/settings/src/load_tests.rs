use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::*;
use crate::{AuthConfig, BusConfig, LogFormat, Secret, StoreConfig, TelemetryConfig};

/// A service-shaped config: the shared sections plus one of its own.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct TestConfig {
    bus: BusConfig,
    store: StoreConfig,
    auth: AuthConfig,
    telemetry: TelemetryConfig,
    service: ServiceSection,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ServiceSection {
    max_connections: u32,
    compress: bool,
    ratio: f64,
    allowed_origins: Vec<String>,
    #[serde(with = "humantime_serde")]
    grace: Duration,
}

impl Default for ServiceSection {
    fn default() -> Self {
        ServiceSection {
            max_connections: 100,
            compress: false,
            ratio: 0.5,
            allowed_origins: vec!["http://localhost".into()],
            grace: Duration::from_secs(10),
        }
    }
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

fn toml_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

fn parse_message(error: SettingsError) -> String {
    match error {
        SettingsError::Parse { message } => message,
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn defaults_alone_load_without_file_or_env() {
    let loaded: TestConfig = load(None, &env(&[("PATH", "/bin"), ("HOME", "/root")])).unwrap();
    assert_eq!(loaded, TestConfig::default());
    assert_eq!(loaded.bus.subject_prefix, "sb");
    assert_eq!(loaded.bus.nats_url, None);
}

#[test]
fn file_overrides_defaults_and_keeps_the_rest() {
    let file = toml_file(
        r#"
        [bus]
        nats_url = "nats://file:4222"
        connect_timeout = "500ms"

        [service]
        max_connections = 7
        allowed_origins = ["https://a", "https://b"]
        "#,
    );
    let loaded: TestConfig = load(Some(file.path()), &env(&[])).unwrap();
    assert_eq!(loaded.bus.nats_url.as_deref(), Some("nats://file:4222"));
    assert_eq!(loaded.bus.connect_timeout, Duration::from_millis(500));
    assert_eq!(loaded.bus.request_timeout, Duration::from_secs(5));
    assert_eq!(loaded.service.max_connections, 7);
    assert_eq!(loaded.service.allowed_origins, ["https://a", "https://b"]);
    assert_eq!(loaded.store, StoreConfig::default());
}

#[test]
fn env_overrides_file() {
    let file = toml_file("[bus]\nnats_url = \"nats://file:4222\"\nsubject_prefix = \"f\"\n");
    let loaded: TestConfig = load(
        Some(file.path()),
        &env(&[("SWITCHBOARD__BUS__NATS_URL", "nats://env:4222")]),
    )
    .unwrap();
    assert_eq!(loaded.bus.nats_url.as_deref(), Some("nats://env:4222"));
    assert_eq!(loaded.bus.subject_prefix, "f");
}

#[test]
fn nats_url_may_be_a_toml_array_or_a_comma_list_from_env() {
    let file = toml_file("[bus]\nnats_url = [\"nats://n1:4222\", \"nats://n2:4222\"]\n");
    let loaded: TestConfig = load(Some(file.path()), &env(&[])).unwrap();
    assert_eq!(
        loaded.bus.nats_url.as_deref(),
        Some("nats://n1:4222,nats://n2:4222")
    );
    let loaded: TestConfig = load(
        Some(file.path()),
        &env(&[(
            "SWITCHBOARD__BUS__NATS_URL",
            "nats://e1:4222,nats://e2:4222",
        )]),
    )
    .unwrap();
    assert_eq!(loaded.bus.nats_urls(), ["nats://e1:4222", "nats://e2:4222"]);
}

#[test]
fn env_values_become_typed_fields() {
    let loaded: TestConfig = load(
        None,
        &env(&[
            ("SWITCHBOARD__SERVICE__MAX_CONNECTIONS", "2500"),
            ("SWITCHBOARD__SERVICE__COMPRESS", "true"),
            ("SWITCHBOARD__SERVICE__RATIO", "0.25"),
            ("SWITCHBOARD__SERVICE__GRACE", "1m 30s"),
            ("SWITCHBOARD__STORE__RESPONSE_TIMEOUT", "250ms"),
            ("SWITCHBOARD__TELEMETRY__LOG_FORMAT", "json"),
            ("SWITCHBOARD__TELEMETRY__ADMIN_LISTEN", "127.0.0.1:9090"),
            ("SWITCHBOARD__AUTH__HMAC_SECRET", "007"),
        ]),
    )
    .unwrap();
    assert_eq!(loaded.service.max_connections, 2500);
    assert!(loaded.service.compress);
    assert_eq!(loaded.service.ratio, 0.25);
    assert_eq!(loaded.service.grace, Duration::from_secs(90));
    assert_eq!(loaded.store.response_timeout, Duration::from_millis(250));
    assert_eq!(loaded.telemetry.log_format, LogFormat::Json);
    let admin: SocketAddr = "127.0.0.1:9090".parse().unwrap();
    assert_eq!(loaded.telemetry.admin_listen, Some(admin));
    // A numeric-looking secret must survive verbatim, leading zeros included.
    assert_eq!(loaded.auth.hmac_secret, Some(Secret::new("007")));
}

#[test]
fn list_keys_split_env_values_on_commas() {
    let vars = env(&[(
        "SWITCHBOARD__SERVICE__ALLOWED_ORIGINS",
        "https://a, https://b,,https://c",
    )]);
    let loaded: TestConfig = load_with_lists(None, &vars, &["service.allowed_origins"]).unwrap();
    assert_eq!(
        loaded.service.allowed_origins,
        ["https://a", "https://b", "https://c"]
    );
    let single = env(&[("SWITCHBOARD__SERVICE__ALLOWED_ORIGINS", "5")]);
    let loaded: TestConfig = load_with_lists(None, &single, &["service.allowed_origins"]).unwrap();
    assert_eq!(loaded.service.allowed_origins, ["5"]);
}

#[test]
fn empty_env_values_and_other_variables_are_ignored() {
    let loaded: TestConfig = load(
        None,
        &env(&[
            ("SWITCHBOARD__BUS__NATS_URL", ""),
            ("SWITCHBOARD_CONFIG", "/nowhere.toml"),
            ("SWITCHBOARDX", "1"),
        ]),
    )
    .unwrap();
    assert_eq!(loaded, TestConfig::default());
}

#[test]
fn unknown_key_in_file_is_an_error_naming_the_key() {
    let file = toml_file("[bus]\nnats_urll = \"nats://typo\"\n");
    let message = parse_message(load::<TestConfig>(Some(file.path()), &env(&[])).unwrap_err());
    assert!(message.contains("nats_urll"), "{message}");
}

#[test]
fn unknown_key_inside_a_known_section_is_an_error() {
    let vars = env(&[("SWITCHBOARD__BUS__NOPE", "1")]);
    let message = parse_message(load::<TestConfig>(None, &vars).unwrap_err());
    assert!(message.contains("nope"), "{message}");
    let file = toml_file("[service]\nmax_conections = 5\n");
    let message = parse_message(load::<TestConfig>(Some(file.path()), &env(&[])).unwrap_err());
    assert!(message.contains("max_conections"), "{message}");
}

#[test]
fn sections_the_binary_does_not_have_are_ignored_and_reported() {
    // One environment for every service: the publisher sees the gateway's and auth's keys.
    let file = toml_file("[gateway]\nlisten = \"0.0.0.0:8000\"\n[bus]\nsubject_prefix = \"x\"\n");
    let vars = env(&[
        ("SWITCHBOARD__AUTH__HMAC_SECRET", "shared-secret"),
        ("SWITCHBOARD__DEVICE_READER__LISTEN", "0.0.0.0:8095"),
    ]);
    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct NoAuth {
        bus: BusConfig,
    }
    let loaded = load_layers::<NoAuth>(Some(file.path()), &vars, &[]).unwrap();
    assert_eq!(loaded.config.bus.subject_prefix, "x");
    assert_eq!(
        loaded.ignored_sections,
        ["auth", "device_reader", "gateway"]
    );
    let auth_only = env(&[("SWITCHBOARD__AUTH__HMAC_SECRET", "shared-secret")]);
    let all_known = load_layers::<TestConfig>(None, &auth_only, &[]);
    assert!(all_known.unwrap().ignored_sections.is_empty());
}

#[test]
fn a_top_level_value_that_is_not_a_section_stays_an_error() {
    let file = toml_file("nats_url = \"nats://x\"\n");
    let message = parse_message(load::<TestConfig>(Some(file.path()), &env(&[])).unwrap_err());
    assert!(message.contains("nats_url"), "{message}");
}

#[test]
fn wrong_types_name_the_key_and_origin() {
    let vars = env(&[("SWITCHBOARD__SERVICE__MAX_CONNECTIONS", "many")]);
    let message = parse_message(load::<TestConfig>(None, &vars).unwrap_err());
    assert!(message.contains("max_connections"), "{message}");
    assert!(
        message.contains("SWITCHBOARD__SERVICE__MAX_CONNECTIONS"),
        "{message}"
    );
    let vars = env(&[("SWITCHBOARD__BUS__CONNECT_TIMEOUT", "30")]);
    let message = parse_message(load::<TestConfig>(None, &vars).unwrap_err());
    assert!(message.contains("connect_timeout"), "{message}");
}

#[test]
fn malformed_env_names_are_errors() {
    for name in [
        "SWITCHBOARD__BUS__",
        "SWITCHBOARD____X",
        "SWITCHBOARD__BUS.NATS_URL",
    ] {
        let message = parse_message(load::<TestConfig>(None, &env(&[(name, "x")])).unwrap_err());
        assert!(message.contains(name), "{message}");
    }
}

#[test]
fn missing_file_and_bad_toml_are_reported_with_the_path() {
    let missing = Path::new("/definitely/not/here.toml");
    assert!(matches!(
        load::<TestConfig>(Some(missing), &env(&[])),
        Err(SettingsError::File { path, .. }) if path == missing
    ));
    let file = toml_file("[bus\nnats_url = ");
    let message = parse_message(load::<TestConfig>(Some(file.path()), &env(&[])).unwrap_err());
    assert!(
        message.contains(&file.path().display().to_string()),
        "{message}"
    );
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let vars = env(&[
        (
            "SWITCHBOARD__AUTH__HMAC_SECRET",
            "super-secret-hmac-value-0123456789",
        ),
        ("SWITCHBOARD__AUTH__API_KEY", "super-secret-api-key"),
    ]);
    let loaded: TestConfig = load(None, &vars).unwrap();
    let printed = format!("{loaded:?}");
    assert!(!printed.contains("super-secret"), "{printed}");
    assert!(printed.contains("[redacted]"));
    assert_eq!(loaded.auth.hmac_secrets().len(), 1);
}
