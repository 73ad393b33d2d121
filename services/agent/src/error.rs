//! The agent binary's boundary errors.

use client::DisconnectReason;
use client::agent::AgentError;

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration has problems; every one is listed.
    #[error("invalid configuration: {}", .0.join("; "))]
    Config(Vec<String>),
    /// No node id is configured and the host name cannot stand in for one.
    #[error("agent.node_id is unset and the host name is unreadable")]
    NodeId,
    /// The first host sample could not be taken.
    #[error("host sampling failed at start")]
    Sampling,
    /// No token is configured and one could not be signed with `auth.hmac_secret`.
    #[error("cannot sign a node token")]
    Token(#[source] auth::IssueError),
    /// The agent refused its settings.
    #[error("agent could not start")]
    Agent(#[source] AgentError),
}

/// Why the agent stopped other than by a shutdown signal.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Start-up failed.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The client stopped for good: the gateway refused the token, its TLS certificate is not
    /// trusted, or attempts ran out.
    #[error("disconnected for good: {0:?}")]
    Disconnected(DisconnectReason),
}

impl service::ServiceError for RunError {
    fn is_config(&self) -> bool {
        matches!(self, RunError::Start(StartError::Config(_)))
    }
}
