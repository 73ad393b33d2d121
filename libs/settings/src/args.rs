//! The flags every Switchboard binary understands.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::SettingsError;

/// The environment variable naming the config file when `--config` is absent.
pub const CONFIG_PATH_ENV: &str = "SWITCHBOARD_CONFIG";

/// The parsed command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CliArgs {
    /// The TOML file to load: `--config PATH`, else `SWITCHBOARD_CONFIG`, else none
    /// (defaults and environment only).
    pub config: Option<PathBuf>,
    /// `--check-config`: load and validate, print the verdict, exit.
    pub check_only: bool,
    /// `--help`/`-h`: print [`usage`] and exit 0.
    pub help: bool,
    /// `--version`/`-V`: print the version and commit, exit 0.
    pub version: bool,
    /// `--probe URL`: GET `URL`, exit 0 on a 2xx answer and 1 otherwise (the container health
    /// check, which needs no shell tools in the image).
    pub probe: Option<String>,
}

/// Parses the process arguments **without** the program name (`std::env::args().skip(1)`):
/// `--config PATH`, `--config=PATH`, `--check-config`, `--help`/`-h`, `--version`/`-V`,
/// `--probe URL`. `env` supplies
/// `SWITCHBOARD_CONFIG` when `--config` is absent; an empty value counts as unset.
///
/// # Errors
///
/// [`SettingsError::Args`] for an unknown flag, a positional argument, a missing or empty
/// `--config` value, or `--config` given twice.
pub fn config_path_from_args_and_env(
    args: &[String],
    env: &HashMap<String, String>,
) -> Result<CliArgs, SettingsError> {
    let mut parsed = CliArgs::default();
    let mut remaining = args.iter();
    while let Some(arg) = remaining.next() {
        let config_value = match arg.as_str() {
            "--check-config" => {
                parsed.check_only = true;
                continue;
            }
            "--help" | "-h" => {
                parsed.help = true;
                continue;
            }
            "--version" | "-V" => {
                parsed.version = true;
                continue;
            }
            "--probe" => {
                match remaining.next() {
                    Some(url) if !url.is_empty() && !url.starts_with("--") => {
                        parsed.probe = Some(url.clone());
                    }
                    _ => return Err(SettingsError::Args("--probe needs a URL".into())),
                }
                continue;
            }
            "--config" => remaining.next().map(String::as_str),
            other => match other.strip_prefix("--config=") {
                Some(value) => Some(value),
                None => {
                    return Err(SettingsError::Args(format!(
                        "unexpected argument {other:?}; see --help"
                    )));
                }
            },
        };
        let path = match config_value {
            // `--config --check-config` is a forgotten path, not a file named `--check-config`.
            Some(path) if !path.is_empty() && !path.starts_with("--") => PathBuf::from(path),
            _ => return Err(SettingsError::Args("--config needs a file path".into())),
        };
        if parsed.config.replace(path).is_some() {
            return Err(SettingsError::Args("--config given more than once".into()));
        }
    }
    if parsed.config.is_none() {
        parsed.config = env
            .get(CONFIG_PATH_ENV)
            .filter(|path| !path.is_empty())
            .map(PathBuf::from);
    }
    Ok(parsed)
}

/// Returns the `--help` text for `program`.
pub fn usage(program: &str) -> String {
    format!(
        "usage: {program} [--config PATH] [--check-config]\n\
         \x20      {program} --probe URL | --version | --help\n\
         \n\
         options:\n  \
           --config PATH     TOML config file (else ${CONFIG_PATH_ENV}; else defaults)\n  \
           --check-config    load and validate the configuration, then exit (0 valid, 64 not)\n  \
           --probe URL       GET URL (http://), exit 0 on a 2xx answer, 1 otherwise (health checks)\n  \
           -V, --version     print the version and the commit it was built from\n  \
           -h, --help        print this help\n\
         \n\
         environment:\n  \
           SWITCHBOARD__<SECTION>__<KEY>=value overrides the file, e.g. SWITCHBOARD__BUS__NATS_URL\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<CliArgs, SettingsError> {
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        let env = env
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        config_path_from_args_and_env(&args, &env)
    }

    #[test]
    fn both_config_spellings_and_flags_parse() {
        let spaced = parse(&["--config", "a.toml", "--check-config"], &[]).unwrap();
        assert_eq!(spaced.config, Some(PathBuf::from("a.toml")));
        assert!(spaced.check_only && !spaced.help);
        let joined = parse(&["--config=b.toml", "-h"], &[]).unwrap();
        assert_eq!(joined.config, Some(PathBuf::from("b.toml")));
        assert!(joined.help);
        assert_eq!(parse(&[], &[]).unwrap(), CliArgs::default());
        let probe = parse(&["--probe", "http://127.0.0.1:8000/healthz", "-V"], &[]).unwrap();
        assert_eq!(
            probe.probe.as_deref(),
            Some("http://127.0.0.1:8000/healthz")
        );
        assert!(probe.version);
    }

    #[test]
    fn flag_wins_over_env_and_env_fills_in() {
        let env = [(CONFIG_PATH_ENV, "env.toml")];
        assert_eq!(
            parse(&["--config", "flag.toml"], &env).unwrap().config,
            Some(PathBuf::from("flag.toml"))
        );
        assert_eq!(
            parse(&[], &env).unwrap().config,
            Some(PathBuf::from("env.toml"))
        );
        assert_eq!(parse(&[], &[(CONFIG_PATH_ENV, "")]).unwrap().config, None);
    }

    #[test]
    fn bad_command_lines_are_errors() {
        for args in [
            &["--verbose"][..],
            &["config.toml"],
            &["--config"],
            &["--config", "--check-config"],
            &["--config="],
            &["--config", "a", "--config", "b"],
        ] {
            assert!(
                matches!(parse(args, &[]), Err(SettingsError::Args(_))),
                "{args:?}"
            );
        }
        assert!(parse(&["--probe"], &[]).is_err());
        assert!(parse(&["--probe", "--version"], &[]).is_err());
        assert!(usage("gateway").contains("--check-config"));
    }
}
