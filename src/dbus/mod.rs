//! The D-Bus control surface: `org.corral.Corral1` on the system bus (or a
//! given bus), shaped like systemd's Manager/Unit API.
//!
//! - [`manager`]: `org.corral.Corral1.Manager` at `/org/corral/Corral1`.
//! - [`program`]: `org.corral.Corral1.Program`, one object per process at
//!   `/org/corral/Corral1/program/<escaped namespec>` ([`escape`]).
//! - [`signals`]: objects follow groups added and removed; state changes become
//!   `ProgramStateChanged` and `PropertiesChanged`, rate-limited by [`coalesce`].
//! - [`errors`]: supervisor faults as `org.corral.Corral1.Error.*`.
//!
//! Like every front-end it only talks to the engine through its [`Handle`].
//! A bus that is missing or refuses the name costs one log line and nothing else.

pub mod coalesce;
pub mod errors;
pub mod escape;
pub mod limits;
pub mod manager;
pub mod ops;
pub mod program;
pub mod signals;

use std::str::FromStr;

use tokio::task::JoinHandle;

use crate::engine::Handle;

/// The well-known bus name corrald owns.
pub const BUS_NAME: &str = "org.corral.Corral1";

/// The system bus socket when `DBUS_SYSTEM_BUS_ADDRESS` is not set.
const SYSTEM_BUS_SOCKET: &str = "/run/dbus/system_bus_socket";

/// Which bus to join (`--dbus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusChoice {
    /// The system bus (the default, when one exists).
    System,
    /// The session bus (`DBUS_SESSION_BUS_ADDRESS`).
    Session,
    /// No D-Bus at all.
    None,
}

impl FromStr for BusChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<BusChoice, String> {
        match s {
            "system" => Ok(BusChoice::System),
            "session" => Ok(BusChoice::Session),
            "none" => Ok(BusChoice::None),
            other => Err(format!("invalid bus {other:?} (expected system, session or none)")),
        }
    }
}

/// Where to connect, resolved from the flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusTarget {
    /// A bus given by address (`--dbus-address`).
    Address(String),
    /// The system bus.
    System,
    /// The session bus.
    Session,
}

/// Resolve the flags: an address wins; no choice means the system bus when its
/// socket exists. `Err` carries the reason there is no D-Bus, for the log.
pub fn resolve(choice: Option<BusChoice>, address: Option<&str>) -> Result<BusTarget, String> {
    if let Some(a) = address {
        return Ok(BusTarget::Address(a.to_string()));
    }
    match choice {
        Some(BusChoice::System) => Ok(BusTarget::System),
        Some(BusChoice::Session) => Ok(BusTarget::Session),
        Some(BusChoice::None) => Err("disabled by --dbus none".into()),
        None if std::env::var_os("DBUS_SYSTEM_BUS_ADDRESS").is_some()
            || std::path::Path::new(SYSTEM_BUS_SOCKET).exists() =>
        {
            Ok(BusTarget::System)
        }
        None => Err(format!("no system bus ({SYSTEM_BUS_SOCKET} does not exist)")),
    }
}

/// Why the D-Bus surface could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Connecting, owning the name or exporting the manager failed.
    #[error("{0}")]
    Bus(#[from] zbus::Error),
}

/// A running D-Bus surface; dropping it does not stop it, [`DbusService::stop`] does.
#[derive(Debug)]
pub struct DbusService {
    conn: zbus::Connection,
    task: JoinHandle<()>,
}

impl DbusService {
    /// Connect to `target`, own [`BUS_NAME`], export the manager and the program
    /// objects, and start forwarding engine notices as signals.
    pub async fn start(target: &BusTarget, handle: Handle) -> Result<DbusService, StartError> {
        // Subscribe first: changes while connecting are then not lost.
        let notices = handle.subscribe();
        let builder = match target {
            BusTarget::Address(a) => zbus::connection::Builder::address(a.as_str()),
            BusTarget::System => zbus::connection::Builder::system(),
            BusTarget::Session => zbus::connection::Builder::session(),
        };
        let conn = builder
            .serve_at(escape::MANAGER_PATH, manager::Manager::new(handle.clone()))
            .name(BUS_NAME)
            .build()
            .await?;
        let task = tokio::spawn(signals::run(conn.clone(), handle, notices));
        Ok(DbusService { conn, task })
    }

    /// Stop forwarding, release the name and close the connection.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.conn.release_name(BUS_NAME).await;
        self.conn.graceful_shutdown().await;
    }
}

/// Start the D-Bus surface as the flags ask, logging one line when there is none.
pub async fn start_from_flags(
    choice: Option<BusChoice>,
    address: Option<&str>,
    handle: Handle,
) -> Option<DbusService> {
    let target = match resolve(choice, address) {
        Ok(t) => t,
        Err(why) => {
            tracing::info!("D-Bus control disabled: {why}");
            return None;
        }
    };
    match DbusService::start(&target, handle).await {
        Ok(s) => {
            tracing::info!("D-Bus: serving {BUS_NAME} on {}", describe(&target));
            Some(s)
        }
        Err(e) => {
            tracing::warn!("D-Bus control disabled: cannot serve {BUS_NAME} on {}: {e}", describe(&target));
            None
        }
    }
}

fn describe(t: &BusTarget) -> String {
    match t {
        BusTarget::Address(a) => a.clone(),
        BusTarget::System => "the system bus".into(),
        BusTarget::Session => "the session bus".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_wins_and_none_disables() {
        assert_eq!(
            resolve(Some(BusChoice::None), Some("unix:path=/x")),
            Ok(BusTarget::Address("unix:path=/x".into()))
        );
        assert!(resolve(Some(BusChoice::None), None).is_err());
        assert_eq!(resolve(Some(BusChoice::Session), None), Ok(BusTarget::Session));
        assert!("bogus".parse::<BusChoice>().is_err());
    }
}
