//! The layered loader: defaults < TOML file < environment.

use std::collections::HashMap;
use std::path::Path;

use config::{Config, FileFormat, Map, Source, Value, ValueKind};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::SettingsError;

/// Environment variables starting with this override configuration keys:
/// `SWITCHBOARD__BUS__NATS_URL` sets `bus.nats_url`.
pub const ENV_PREFIX: &str = "SWITCHBOARD__";

/// Separates nesting levels in environment variable names.
const ENV_SEPARATOR: &str = "__";

/// Separates the items of a list-valued environment variable.
pub const ENV_LIST_SEPARATOR: char = ',';

/// Loads `T` from its defaults, then `file` (TOML) if given, then the `SWITCHBOARD__…`
/// variables in `env`, each layer overriding the one before.
///
/// `env` is passed in so tests never touch the process environment; `main` passes
/// `std::env::vars().collect()`. Variable names map to keys by dropping the prefix, splitting on
/// `__` and lowercasing. Values are strings coerced to the field's type (numbers, booleans,
/// durations such as `"30s"` or `"500ms"`); an empty value counts as unset. For list-valued
/// keys set through the environment, use [`load_with_lists`]. Reads the file synchronously:
/// call it at startup.
///
/// # Errors
///
/// [`SettingsError::File`] if `file` cannot be read; [`SettingsError::Parse`] for invalid TOML,
/// an unknown key (with `deny_unknown_fields`), a value of the wrong type, or a malformed
/// variable name; the message names the key and the file or variable it came from.
pub fn load<T>(file: Option<&Path>, env: &HashMap<String, String>) -> Result<T, SettingsError>
where
    T: Serialize + DeserializeOwned + Default,
{
    load_with_lists(file, env, &[])
}

/// Like [`load`], but the dotted keys in `list_keys` (e.g. `"gateway.allowed_origins"`) read
/// their environment value as a comma-separated list: `a, b,c` becomes `["a", "b", "c"]` (items
/// trimmed, empty items dropped). Files write lists as TOML arrays either way.
///
/// # Errors
///
/// As for [`load`].
pub fn load_with_lists<T>(
    file: Option<&Path>,
    env: &HashMap<String, String>,
    list_keys: &[&str],
) -> Result<T, SettingsError>
where
    T: Serialize + DeserializeOwned + Default,
{
    load_layers(file, env, list_keys).map(|loaded| loaded.config)
}

/// A loaded configuration and the top-level sections it ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<T> {
    /// The configuration.
    pub config: T,
    /// Top-level sections present in the file or the environment that `T` does not have,
    /// sorted. Every binary shares one environment (`SWITCHBOARD__AUTH__…` reaches the
    /// publisher too), so a section a binary does not use is not an error; `main` logs these
    /// at debug level once telemetry is up.
    pub ignored_sections: Vec<String>,
}

/// Like [`load_with_lists`], and also reports the top-level sections that were ignored
/// because `T` has no such field. Unknown keys *inside* a section `T` has stay errors (with
/// `deny_unknown_fields`), and so does a non-table value at the top level that `T` does not
/// know (`SWITCHBOARD__FOO=1` is a malformed name, not a section).
///
/// # Errors
///
/// As for [`load`].
pub fn load_layers<T>(
    file: Option<&Path>,
    env: &HashMap<String, String>,
    list_keys: &[&str],
) -> Result<Loaded<T>, SettingsError>
where
    T: Serialize + DeserializeOwned + Default,
{
    let mut builder = Config::builder().add_source(Config::try_from(&T::default())?);
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::File {
            path: path.to_path_buf(),
            source,
        })?;
        builder = builder.add_source(config::File::from_str(&text, FileFormat::Toml));
    }
    builder = builder.add_source(EnvSource::from_vars(env, list_keys)?);
    let layered = builder.build().map_err(|error| match (error, file) {
        // The file was read into a string, so config cannot name it; add the path back.
        (config::ConfigError::FileParse { cause, .. }, Some(path)) => SettingsError::Parse {
            message: format!("{}: {cause}", path.display()),
        },
        (error, _) => SettingsError::from(error),
    })?;
    let mut table = layered.collect()?;
    let known = crate::fields::struct_fields::<T>();
    let mut ignored_sections = Vec::new();
    table.retain(|key, value| {
        let keep = known.contains(&key.as_str()) || !matches!(value.kind, ValueKind::Table(_));
        if !keep {
            ignored_sections.push(key.clone());
        }
        keep
    });
    ignored_sections.sort();
    let config = Value::new(None, ValueKind::Table(table)).try_deserialize()?;
    Ok(Loaded {
        config,
        ignored_sections,
    })
}

/// The environment layer. `config::Environment` can take a map too, but its `try_parsing`
/// (needed for lists) also turns string values such as a secret `"007"` into numbers and back
/// (`"7"`); here every value stays the string it was, and serde coerces it to the field's type.
#[derive(Debug, Clone)]
struct EnvSource {
    entries: Vec<EnvEntry>,
}

#[derive(Debug, Clone)]
struct EnvEntry {
    key: String,
    variable: String,
    value: String,
    is_list: bool,
}

impl EnvSource {
    fn from_vars(env: &HashMap<String, String>, list_keys: &[&str]) -> Result<Self, SettingsError> {
        let mut entries = Vec::new();
        for (variable, value) in env {
            let Some(rest) = variable.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if value.is_empty() {
                continue;
            }
            let well_formed = rest.split(ENV_SEPARATOR).all(|segment| {
                !segment.is_empty()
                    && segment
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            if !well_formed {
                return Err(SettingsError::Parse {
                    message: format!(
                        "environment variable {variable} is not of the form \
                         SWITCHBOARD__<SECTION>__<KEY> (ASCII letters, digits, '_')"
                    ),
                });
            }
            let key = rest.to_lowercase().replace(ENV_SEPARATOR, ".");
            entries.push(EnvEntry {
                is_list: list_keys.contains(&key.as_str()),
                key,
                variable: variable.clone(),
                value: value.clone(),
            });
        }
        Ok(EnvSource { entries })
    }
}

impl Source for EnvSource {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<Map<String, Value>, config::ConfigError> {
        let mut values = Map::new();
        for entry in &self.entries {
            let origin = format!("environment variable {}", entry.variable);
            let kind = if entry.is_list {
                let items = entry
                    .value
                    .split(ENV_LIST_SEPARATOR)
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| Value::new(Some(&origin), ValueKind::String(item.to_owned())))
                    .collect();
                ValueKind::Array(items)
            } else {
                ValueKind::String(entry.value.clone())
            };
            values.insert(entry.key.clone(), Value::new(Some(&origin), kind));
        }
        Ok(values)
    }
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
