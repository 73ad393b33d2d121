//! The node's side of commands and state: [`StateProvider`] and [`CommandHandler`].

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_json::Value;

/// Supplies the node's `current_data` for each report.
///
/// Any `Fn() -> serde_json::Value` is one. It runs on the agent's task right before each
/// report, so it must be cheap and must not block (hand heavy sampling to a task of your own
/// and return its latest result here).
pub trait StateProvider: Send + Sync + 'static {
    /// Returns the node's current data.
    fn current_data(&self) -> Value;
}

impl<F> StateProvider for F
where
    F: Fn() -> Value + Send + Sync + 'static,
{
    fn current_data(&self) -> Value {
        self()
    }
}

/// The future a [`CommandHandler`] returns: the ack's `result`, or its `error` text.
pub type CommandFuture = Pin<Box<dyn Future<Output = Result<Value, String>> + Send>>;

/// Runs one named command.
///
/// Any `Fn(Value) -> impl Future<Output = Result<Value, String>>` is one. Each command runs as
/// its own task, so a slow handler does not hold up reports or other commands.
pub trait CommandHandler: Send + Sync + 'static {
    /// Starts the command with its `params`.
    fn handle(&self, params: Value) -> CommandFuture;
}

impl<F, Fut> CommandHandler for F
where
    F: Fn(Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, String>> + Send + 'static,
{
    fn handle(&self, params: Value) -> CommandFuture {
        Box::pin(self(params))
    }
}

/// Commands every agent answers itself; handlers cannot be registered under these names.
pub const BUILT_IN_COMMANDS: [&str; 3] = ["ping", "set_interval", "report_now"];

/// Shortest interval `set_interval` accepts: faster reports would only load the gateway.
pub const MIN_UPDATE_INTERVAL: Duration = Duration::from_millis(100);
/// Longest interval `set_interval` accepts (one day).
pub const MAX_UPDATE_INTERVAL: Duration = Duration::from_secs(86_400);

/// Reads `set_interval`'s `{"seconds": <number>}` (a bare number works too).
pub(crate) fn interval_from_params(params: &Value) -> Result<Duration, String> {
    let seconds = params
        .get("seconds")
        .unwrap_or(params)
        .as_f64()
        .ok_or_else(|| "set_interval needs {\"seconds\": <number>}".to_owned())?;
    let interval = Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("seconds must be a positive number, got {seconds}"))?;
    if !(MIN_UPDATE_INTERVAL..=MAX_UPDATE_INTERVAL).contains(&interval) {
        return Err(format!(
            "seconds must be between {} and {}",
            MIN_UPDATE_INTERVAL.as_secs_f64(),
            MAX_UPDATE_INTERVAL.as_secs_f64()
        ));
    }
    Ok(interval)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn set_interval_accepts_seconds_within_bounds() {
        assert_eq!(
            interval_from_params(&json!({"seconds": 2.5})),
            Ok(Duration::from_millis(2500))
        );
        assert_eq!(interval_from_params(&json!(1)), Ok(Duration::from_secs(1)));
        for bad in [
            json!({"seconds": 0}),
            json!({"seconds": -1}),
            json!({"seconds": 1e9}),
            json!({"seconds": "5"}),
            json!(null),
        ] {
            assert!(interval_from_params(&bad).is_err(), "{bad}");
        }
    }
}
