//! Named D-Bus errors (`org.corral.Corral1.Error.*`), one per supervisor fault.

use crate::engine::{Fault, FaultCode};

/// What a corral D-Bus method or property can fail with. The variant name is the
/// last element of the D-Bus error name; the text is the readable message.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.corral.Corral1.Error")]
pub enum Error {
    /// A failure of the bus connection itself (name and text passed through).
    #[zbus(error)]
    ZBus(zbus::Error),
    /// No such program or group.
    BadName(String),
    /// The program is already running.
    AlreadyStarted(String),
    /// The program is not running.
    NotRunning(String),
    /// The program could not be spawned or exited too quickly.
    SpawnError(String),
    /// A file (command, log) does not exist.
    NoFile(String),
    /// The command cannot be executed.
    NotExecutable(String),
    /// The program left STARTING/RUNNING while a start waited.
    AbnormalTermination(String),
    /// Unknown signal.
    BadSignal(String),
    /// An argument value is out of range or malformed.
    BadArguments(String),
    /// The daemon is shutting down or restarting.
    ShutdownState(String),
    /// The group is already active.
    AlreadyAdded(String),
    /// The group still has running processes.
    StillRunning(String),
    /// The configuration could not be re-read.
    CantReread(String),
    /// Anything else.
    Failed(String),
}

impl From<Fault> for Error {
    fn from(f: Fault) -> Error {
        // The message keeps supervisor's `NAME: detail` text, which tools and
        // people already know from supervisorctl.
        let text = f.text();
        match f.code {
            FaultCode::BadName => Error::BadName(text),
            FaultCode::AlreadyStarted => Error::AlreadyStarted(text),
            FaultCode::NotRunning => Error::NotRunning(text),
            FaultCode::SpawnError => Error::SpawnError(text),
            FaultCode::NoFile => Error::NoFile(text),
            FaultCode::NotExecutable => Error::NotExecutable(text),
            FaultCode::AbnormalTermination => Error::AbnormalTermination(text),
            FaultCode::BadSignal => Error::BadSignal(text),
            FaultCode::BadArguments
            | FaultCode::IncorrectParameters
            | FaultCode::SignatureUnsupported
            | FaultCode::UnknownMethod => Error::BadArguments(text),
            FaultCode::ShutdownState => Error::ShutdownState(text),
            FaultCode::AlreadyAdded => Error::AlreadyAdded(text),
            FaultCode::StillRunning => Error::StillRunning(text),
            FaultCode::CantReread => Error::CantReread(text),
            FaultCode::Failed | FaultCode::Success => Error::Failed(text),
        }
    }
}

/// Result of a corral D-Bus call.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::DBusError;

    #[test]
    fn faults_map_to_named_errors_with_supervisor_text() {
        let e = Error::from(Fault::new(FaultCode::BadName, "nope"));
        assert_eq!(e.name().as_str(), "org.corral.Corral1.Error.BadName");
        assert_eq!(e.description(), Some("BAD_NAME: nope"));
        let e = Error::from(Fault::bare(FaultCode::AlreadyStarted));
        assert_eq!(e.name().as_str(), "org.corral.Corral1.Error.AlreadyStarted");
        let e = Error::from(Fault::bare(FaultCode::ShutdownState));
        assert_eq!(e.name().as_str(), "org.corral.Corral1.Error.ShutdownState");
    }
}
