//! corral: a process supervisor for Linux.
//!
//! `corrald` reads supervisord configuration files unchanged, runs every program
//! in its own cgroup, and answers Supervisor's XML-RPC API, D-Bus and a web page.
//! This crate holds the whole daemon and client; see `ARCHITECTURE.md` for how the
//! modules fit together.

pub mod cgroup;
pub mod config;
pub mod ctl;
pub mod dbus;
pub mod engine;
pub mod events;
pub mod heap;
pub mod logs;
pub mod notify;
pub mod rpc;
pub mod spawn;
pub mod stats;
pub mod web;
