//! Program operations shared by the Manager and the per-program objects.
//!
//! Every operation goes through the engine's [`Handle`]; the only thing done here
//! directly is reading `/proc` to find the members of a program's cgroup for
//! `Kill(whom="all")`, which the engine has no command for.

use crate::engine::{Channel, FaultCode, Handle, NameSpec, OpResult, Target};
use crate::logs::read::{read_log, ReadError};

use super::errors::{Error, Result};

/// Parse a namespec that must name one process (`group:process` or `name`).
pub fn program_spec(name: &str) -> Result<NameSpec> {
    let spec = NameSpec::parse(name);
    if spec.process.is_none() {
        return Err(Error::BadName(format!("BAD_NAME: {name} names a group, not a program")));
    }
    Ok(spec)
}

/// The target of one process.
pub fn target(spec: &NameSpec) -> Target {
    Target::from(spec.clone())
}

/// Start one program; with `wait`, reply once it is RUNNING (or failed).
pub async fn start(h: &Handle, spec: &NameSpec, wait: bool) -> Result<()> {
    h.start(target(spec), wait).await.map(drop).map_err(Error::from)
}

/// Stop one program; with `wait`, reply once it is stopped.
pub async fn stop(h: &Handle, spec: &NameSpec, wait: bool) -> Result<()> {
    h.stop(target(spec), wait).await.map(drop).map_err(Error::from)
}

/// supervisorctl's `restart`: stop (if running) and wait, then start and wait.
pub async fn restart(h: &Handle, spec: &NameSpec) -> Result<()> {
    match h.stop(target(spec), true).await {
        Ok(_) => {}
        Err(f) if f.code == FaultCode::NotRunning => {}
        Err(f) => return Err(f.into()),
    }
    start(h, spec, true).await
}

/// Freeze (`true`) or thaw (`false`) a program's cgroup.
pub async fn freeze(h: &Handle, spec: &NameSpec, freeze: bool) -> Result<()> {
    h.freeze(target(spec), freeze).await.map(drop).map_err(Error::from)
}

/// Who a `Kill` reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whom {
    /// The main process only (supervisor's `signalProcess`).
    Main,
    /// The main process and every other process in the program's cgroup.
    All,
}

impl Whom {
    /// Parse `main` or `all` (systemd's `KillUnit` words).
    pub fn parse(s: &str) -> Result<Whom> {
        match s {
            "main" | "" => Ok(Whom::Main),
            "all" => Ok(Whom::All),
            other => {
                Err(Error::BadArguments(format!("BAD_ARGUMENTS: whom must be main or all, not {other:?}")))
            }
        }
    }
}

/// Send `signal` (name or number) to a program. The main process is signalled
/// through the engine, which checks the signal and the state; with [`Whom::All`]
/// the other members of the program's cgroup are signalled afterwards.
pub async fn kill(h: &Handle, spec: &NameSpec, whom: Whom, signal: &str) -> Result<()> {
    h.signal(target(spec), signal.to_string()).await?;
    if whom == Whom::Main {
        return Ok(());
    }
    let info = h.process_info(spec.clone()).await?;
    let Some(cgroup) = info.cgroup else {
        // No cgroup: the main process is all corral knows of.
        return Ok(());
    };
    let signum = crate::config::values::signal_number(signal)
        .map_err(|e| Error::BadSignal(format!("BAD_SIGNAL: {}", e.message)))?;
    let sig = nix::sys::signal::Signal::try_from(signum)
        .map_err(|_| Error::BadSignal(format!("BAD_SIGNAL: {signal}")))?;
    let members = tokio::task::spawn_blocking(move || cgroup_members(&cgroup))
        .await
        .map_err(|e| Error::Failed(format!("FAILED: {e}")))?;
    for pid in members.into_iter().filter(|&p| p != info.pid) {
        // A member that exited meanwhile is not an error.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
    }
    Ok(())
}

/// Pids whose membership (in any hierarchy) is `cgroup` or below it.
pub fn cgroup_members(cgroup: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .map(|text| in_cgroup_text(&text, cgroup))
                .unwrap_or(false)
        })
        .collect()
}

/// Whether a `/proc/PID/cgroup` text puts the process in `cgroup` or below.
pub fn in_cgroup_text(text: &str, cgroup: &str) -> bool {
    text.lines().any(|l| in_cgroup(l, cgroup))
}

/// Whether one `/proc/PID/cgroup` line (`id:controllers:path`) is in `cgroup` or below.
fn in_cgroup(line: &str, cgroup: &str) -> bool {
    let Some(path) = line.splitn(3, ':').nth(2) else { return false };
    path == cgroup || path.strip_prefix(cgroup).is_some_and(|rest| rest.starts_with('/'))
}

/// Read part of a program's `stdout` or `stderr` log, as `readProcessStdoutLog` does.
pub async fn read_program_log(
    h: &Handle,
    spec: &NameSpec,
    stream: &str,
    offset: i64,
    length: i64,
) -> Result<Vec<u8>> {
    let channel = match stream {
        "stdout" => Channel::Stdout,
        "stderr" => Channel::Stderr,
        other => {
            return Err(Error::BadArguments(format!(
                "BAD_ARGUMENTS: stream must be stdout or stderr, not {other:?}"
            )))
        }
    };
    let Some(path) = h.log_path(spec.clone(), channel).await? else {
        return Err(Error::NoFile(format!("NO_FILE: {stream} of this program is not logged")));
    };
    let read = tokio::task::spawn_blocking(move || read_log(&path, offset, length))
        .await
        .map_err(|e| Error::Failed(format!("FAILED: {e}")))?;
    read.map_err(|e| match e {
        ReadError::BadArguments => Error::BadArguments(e.to_string()),
        ReadError::NoFile { .. } => Error::NoFile(e.to_string()),
        ReadError::Failed { .. } => Error::Failed(e.to_string()),
    })
}

/// A group/all operation's result array as D-Bus structs `(namespec, code, description)`.
pub fn op_results(results: Vec<OpResult>) -> Vec<(String, u32, String)> {
    results
        .into_iter()
        .map(|r| (crate::engine::make_namespec(&r.group, &r.name), r.status as u32, r.description))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_lines_match_the_cgroup_and_below_only() {
        assert!(in_cgroup("0::/corral/g/p", "/corral/g/p"));
        assert!(in_cgroup("0::/corral/g/p/sub", "/corral/g/p"));
        assert!(in_cgroup("4:memory:/corral/g/p", "/corral/g/p"));
        assert!(!in_cgroup("0::/corral/g/p2", "/corral/g/p"));
        assert!(!in_cgroup("garbage", "/corral/g/p"));
    }

    #[test]
    fn whom_is_main_or_all() {
        assert_eq!(Whom::parse("main").ok(), Some(Whom::Main));
        assert_eq!(Whom::parse("all").ok(), Some(Whom::All));
        assert!(Whom::parse("control").is_err());
    }

    #[test]
    fn group_namespecs_are_not_programs() {
        assert!(program_spec("g:*").is_err());
        assert!(program_spec("g:p").is_ok());
    }
}
