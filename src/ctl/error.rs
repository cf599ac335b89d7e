//! Errors a corralctl command can end with.

use super::client::ClientError;

/// Why a command stopped early; the controller turns each into supervisorctl's output.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The call itself failed (fault, HTTP status, connection).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The server answered with a value of an unexpected shape.
    #[error("unexpected answer: {0}")]
    Shape(String),
    /// What supervisorctl reports as an uncaught Python exception (`error: <class>, <msg>`).
    #[error("error: <class '{class}'>, {message}")]
    Uncaught {
        /// The Python exception class supervisorctl would name.
        class: &'static str,
        /// Its message.
        message: String,
    },
    /// Local input/output failed (writing stdout, reading the terminal).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
