//! The engine: one task owning all process state, the pure process state machine, commands.

pub mod api;
pub mod state;

pub use api::*;
pub use state::{ExitStatus, ProcessState};
