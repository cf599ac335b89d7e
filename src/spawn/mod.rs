//! fork/exec of children: command resolution, credentials, environment, pipes,
//! cgroup placement; and reaping. Only this module forks.

pub mod child;
pub mod command;
pub mod privileges;
pub mod reap;

pub use child::{spawn, SpawnError, SpawnRequest, Spawned};
pub use command::{resolve, CommandError, ResolvedCommand};
