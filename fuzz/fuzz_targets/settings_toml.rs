//! The settings loader (`settings::load_layers`) on a config file and environment an operator
//! wrote: defaults, then the TOML file (read from disk, as at startup), then
//! `SWITCHBOARD__…` variables, into a service-shaped config of the shared sections plus one of
//! its own. Input: `NAME=VALUE` lines, a `\0`, then the file's text (no `\0`: the file only).
#![no_main]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use settings::{AuthConfig, BusConfig, StoreConfig, TelemetryConfig};

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ServiceConfig {
    bus: BusConfig,
    store: StoreConfig,
    auth: AuthConfig,
    telemetry: TelemetryConfig,
    service: ServiceSection,
}

/// A section of the kinds of field services have: counts, flags, ratios, durations, lists.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ServiceSection {
    max_connections: u32,
    compress: bool,
    ratio: f64,
    allowed_origins: Vec<String>,
    #[serde(with = "humantime_serde")]
    grace: Duration,
    name: Option<String>,
}

impl Default for ServiceSection {
    fn default() -> Self {
        ServiceSection {
            max_connections: 100,
            compress: false,
            ratio: 0.5,
            allowed_origins: vec!["http://localhost".into()],
            grace: Duration::from_secs(10),
            name: None,
        }
    }
}

const LIST_KEYS: [&str; 1] = ["service.allowed_origins"];

/// One file per fuzzing process, rewritten for each input: the loader reads a path.
static CONFIG_FILE: LazyLock<PathBuf> = LazyLock::new(|| {
    std::env::temp_dir().join(format!(
        "switchboard-fuzz-settings-{}.toml",
        std::process::id()
    ))
});

fuzz_target!(|input: &[u8]| {
    if input.len() > switchboard_fuzz::MAX_INPUT_BYTES {
        return;
    }
    let (env_text, file_text) = match input.iter().position(|&byte| byte == 0) {
        Some(split) => (&input[..split], &input[split + 1..]),
        None => (&[][..], input),
    };
    let env: HashMap<String, String> = String::from_utf8_lossy(env_text)
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| {
            let name = if name.starts_with(settings::ENV_PREFIX) {
                name.to_owned()
            } else {
                format!("{}{name}", settings::ENV_PREFIX)
            };
            (name, value.to_owned())
        })
        .collect();
    let Some(loaded) = load(file_text, &env) else {
        return;
    };
    let config = loaded.config;
    assert!(loaded.ignored_sections.is_sorted());
    let mut problems = Vec::new();
    config.bus.validate(&mut problems);
    config.store.validate(&mut problems);
    config.auth.validate(&mut problems);
    config.telemetry.validate(&mut problems);
    // The effective configuration, written out as a file, loads back as itself.
    let written = toml::to_string(&config)
        .unwrap_or_else(|error| panic!("a loaded config does not serialize ({error}): {config:?}"));
    let reloaded = load(written.as_bytes(), &HashMap::new())
        .unwrap_or_else(|| panic!("a loaded config, written out, does not load:\n{written}"));
    let rewritten = toml::to_string(&reloaded.config).unwrap_or_default();
    assert_eq!(
        written, rewritten,
        "a config changed when written out and loaded again"
    );
});

fn load(
    file_text: &[u8],
    env: &HashMap<String, String>,
) -> Option<settings::Loaded<ServiceConfig>> {
    std::fs::write(&*CONFIG_FILE, file_text).expect("the fuzz config file is writable");
    settings::load_layers::<ServiceConfig>(Some(&CONFIG_FILE), env, &LIST_KEYS).ok()
}
