//! `reload`, `shutdown`, `version`, `open`: the daemon itself.

use super::super::client::ClientError;
use super::super::controller::{exit, faults, Controller};
use super::super::error::CtlError;
use super::super::json;
use super::super::value;
use super::help::help_text;

/// Print supervisorctl's "accepts no arguments" error; true when `arg` was given.
fn refuse_args(ctl: &mut Controller, cmd: &str, arg: &str) -> bool {
    if arg.is_empty() {
        return false;
    }
    ctl.output(&format!("Error: {cmd} accepts no arguments"));
    ctl.exitstatus = exit::GENERIC;
    ctl.output(&help_text(cmd).unwrap_or_default());
    true
}

/// `reload`: restart the daemon (asks first in interactive mode).
pub fn reload(ctl: &mut Controller, arg: &str) -> Result<(), CtlError> {
    if refuse_args(ctl, "reload", arg) {
        return Ok(());
    }
    if ctl.options.interactive && !ctl.confirm("Really restart the remote supervisord process y/N? ") {
        return Ok(());
    }
    match ctl.call("supervisor.restart", vec![]) {
        Ok(_) => ctl.output("Restarted supervisord"),
        Err(ClientError::Fault { code, text }) => {
            ctl.exitstatus = exit::GENERIC;
            if code != faults::SHUTDOWN_STATE {
                return Err(ClientError::Fault { code, text }.into());
            }
            ctl.output("ERROR: already shutting down");
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// `shutdown`: stop the daemon (asks first in interactive mode).
pub fn shutdown(ctl: &mut Controller, arg: &str) -> Result<(), CtlError> {
    if refuse_args(ctl, "shutdown", arg) {
        return Ok(());
    }
    if ctl.options.interactive && !ctl.confirm("Really shut the remote supervisord process down y/N? ") {
        return Ok(());
    }
    match ctl.call("supervisor.shutdown", vec![]) {
        Ok(_) => ctl.output("Shut down"),
        Err(ClientError::Fault { code: faults::SHUTDOWN_STATE, .. }) => {
            ctl.output("ERROR: already shutting down")
        }
        Err(ClientError::Fault { code, text }) => {
            ctl.exitstatus = exit::GENERIC;
            return Err(ClientError::Fault { code, text }.into());
        }
        Err(ClientError::Io(e)) => {
            ctl.exitstatus = exit::GENERIC;
            let url = ctl.options.serverurl.clone();
            match e.raw_os_error() {
                Some(libc::ECONNREFUSED) => {
                    ctl.output(&format!("ERROR: {url} refused connection (already shut down?)"))
                }
                Some(libc::ENOENT) => ctl.output(&format!("ERROR: {url} no such file (already shut down?)")),
                _ => return Err(ClientError::Io(e).into()),
            }
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// `version`: the daemon's supervisor version.
pub fn version(ctl: &mut Controller, arg: &str) -> Result<(), CtlError> {
    if refuse_args(ctl, "version", arg) {
        return Ok(());
    }
    if !ctl.upcheck()? {
        return Ok(());
    }
    let version = value::text(&ctl.call("supervisor.getSupervisorVersion", vec![])?);
    if ctl.style.json {
        // corral's own version and the identification are extras; a plain supervisord lacks the former.
        let corral = ctl.call("corral.getVersion", vec![]).ok().map(|v| value::text(&v));
        let identification = ctl.call("supervisor.getIdentification", vec![]).ok().map(|v| value::text(&v));
        let cgroups = ctl.call("corral.getCgroupMode", vec![]).ok().map(|v| value::text(&v));
        let doc = json::version(&version, corral.as_deref(), identification.as_deref(), cgroups.as_deref());
        ctl.output(&json::render(&doc));
    } else {
        ctl.output(&version);
    }
    Ok(())
}

/// `open URL`: switch servers, then show `status` (its exit status is not kept).
pub fn open(ctl: &mut Controller, arg: &str) -> Result<(), CtlError> {
    let url = arg.trim();
    let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase()).unwrap_or_default();
    if scheme != "unix" && scheme != "http" {
        ctl.output("ERROR: url must be http:// or unix://");
        ctl.exitstatus = exit::GENERIC;
        return Ok(());
    }
    ctl.options.serverurl = url.to_string();
    let old = ctl.exitstatus;
    let result = super::status::status(ctl, "");
    ctl.exitstatus = old;
    result
}
