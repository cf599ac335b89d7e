//! The engine: one task owning all process state, the pure process state machine, commands.

pub mod api;
mod checks;
mod core;
mod deps;
mod empty_watch;
pub mod handover;
pub mod info;
mod listeners;
mod orphans;
mod output;
pub mod state;
mod stdin;

pub use self::core::{check_limits, Engine, Exit, Loader, ProcId};
pub use api::*;
pub use state::{ExitStatus, ProcessState};
