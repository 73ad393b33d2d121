//! Layered configuration for Switchboard services.
//!
//! [`load`] builds a service's `Config` from four layers, each overriding the one before:
//! the type's `Default`, a TOML file (`--config PATH` or `SWITCHBOARD_CONFIG`), environment
//! variables `SWITCHBOARD__<SECTION>__<KEY>` (e.g. `SWITCHBOARD__BUS__NATS_URL` sets
//! `bus.nats_url`), and the command-line flags of [`config_path_from_args_and_env`]. The
//! environment is passed in as a map, so tests never touch the process environment.
//!
//! The shared sections ([`BusConfig`], [`StoreConfig`], [`AuthConfig`], [`TelemetryConfig`])
//! reject unknown keys, write durations as `"30s"`/`"500ms"`, and keep secrets in [`Secret`],
//! whose `Debug` is redacted. Each has `validate(&mut problems)`; a service's
//! `Config::validate` gathers every section's problems and returns them all at once through
//! [`SettingsError::from_problems`].

#![warn(missing_docs)]

mod args;
mod error;
mod fields;
mod load;
mod redis_url;
mod secret;
mod sections;

pub use args::{CONFIG_PATH_ENV, CliArgs, config_path_from_args_and_env, usage};
pub use error::SettingsError;
pub use load::{ENV_LIST_SEPARATOR, ENV_PREFIX, Loaded, load, load_layers, load_with_lists};
pub use redis_url::{DEFAULT_SENTINEL_PORT, SENTINEL_URL_SCHEME, SentinelUrl, SentinelUrlError};
pub use secret::Secret;
pub use sections::{
    AuthConfig, BusConfig, DEFAULT_JWKS_REFRESH_INTERVAL, LogFormat, MAX_LEEWAY,
    MIN_HMAC_SECRET_BYTES, StoreConfig, TelemetryConfig,
};
