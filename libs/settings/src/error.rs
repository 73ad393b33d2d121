//! The loader's error type.

use std::path::PathBuf;

/// Loading or validating configuration failed. `main` exits 64 on any of these.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The config file could not be read.
    #[error("cannot read config file {}", path.display())]
    File {
        /// The path that was given.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// A layer is not valid TOML, or a value does not fit its field (wrong type, unknown key,
    /// bad duration). The message names the key and where the value came from.
    #[error("invalid configuration: {message}")]
    Parse {
        /// What is wrong, including the key and the file or environment variable.
        message: String,
    },
    /// The values parsed but break rules; every problem is listed.
    #[error("invalid configuration: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// The command line could not be understood.
    #[error("{0}")]
    Args(String),
}

impl SettingsError {
    /// Returns `Ok(())` when `problems` is empty, else [`SettingsError::Invalid`] listing them.
    /// Service `Config::validate` methods collect problems from every section, then call this.
    ///
    /// # Errors
    ///
    /// [`SettingsError::Invalid`] when there is at least one problem.
    pub fn from_problems(problems: Vec<String>) -> Result<(), SettingsError> {
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SettingsError::Invalid(problems))
        }
    }
}

impl From<config::ConfigError> for SettingsError {
    fn from(error: config::ConfigError) -> Self {
        SettingsError::Parse {
            message: error.to_string(),
        }
    }
}
