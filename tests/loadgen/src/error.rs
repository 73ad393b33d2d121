//! Why a run could not be carried out. Failures of single connections are counted in the
//! report instead; these are the failures that stop the whole run.

/// A failure that stops a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line or the options make no sense.
    #[error("invalid options: {0}")]
    Options(String),
    /// The NATS connection for publishing or coordination failed.
    #[error("nats: {0}")]
    Nats(String),
    /// The coordination protocol between loader processes broke down.
    #[error("coordination: {0}")]
    Coordination(String),
    /// A token could not be signed.
    #[error("token signing failed")]
    Token(#[source] auth::IssueError),
    /// A payload could not be encoded.
    #[error("payload encoding failed")]
    Encode(#[source] protocol::EncodeError),
}

impl Error {
    pub(crate) fn nats(error: impl std::fmt::Display) -> Self {
        Error::Nats(error.to_string())
    }
}
