//! The published method catalogue: names, help texts and signatures.
//!
//! Help texts carry supervisord's `@param type name` / `@return type` tags, and
//! [`signature`] derives `system.methodSignature` from them the way supervisord
//! does, so the two cannot disagree. Adding a method means adding one entry
//! here and one arm in the dispatcher (`dispatch.rs`).

/// One published method.
#[derive(Debug, Clone, Copy)]
pub struct MethodSpec {
    /// Full name, `namespace.method`.
    pub name: &'static str,
    /// `system.methodHelp` text.
    pub help: &'static str,
}

macro_rules! m {
    ($name:literal, $help:literal) => {
        MethodSpec { name: $name, help: $help }
    };
}

const READ_HELP: &str = "Read length bytes from name's stdout log starting at offset.\n\n@param string name        the name of the process (or 'group:name')\n@param int offset         offset to start reading from.\n@param int length         number of bytes to read from the log.\n@return string result     Bytes of log";
const TAIL_HELP: &str = "Tail the stdout log of a process efficiently: returns the last length bytes when the log grew past offset + length (overflow is then true), else the bytes from offset to the end. The returned offset is the log size; pass it on the next call.\n\n@param string name         the name of the process (or 'group:name')\n@param int offset          offset to start reading from\n@param int length          maximum number of bytes to return\n@return array result       [string bytes, int offset, bool overflow]";
const CLEAR_HELP: &str = "Clear the stdout and stderr logs for the named process and reopen them.\n\n@param string name   The name of the process (or 'group:name')\n@return boolean result      Always True unless error";
const MAINLOG_HELP: &str = "Read length bytes from the main log starting at offset.\n\n@param int offset         offset to start reading from.\n@param int length         number of bytes to read from the log.\n@return string result     Bytes of log";
const VERSION_HELP: &str =
    "Return the version of the RPC API used by the daemon.\n\n@return string version id";

/// Every method, in no particular order (`system.listMethods` sorts).
pub const METHODS: &[MethodSpec] = &[
    m!("supervisor.getAPIVersion", "Return the version of the RPC API used by the daemon.\n\n@return string version id"),
    MethodSpec { name: "supervisor.getVersion", help: VERSION_HELP },
    m!("supervisor.getSupervisorVersion", "Return the supervisor version the daemon is compatible with.\n\n@return string version id"),
    m!("supervisor.getIdentification", "Return the identifying string of the daemon.\n\n@return string identifier identifying string"),
    m!("supervisor.getState", "Return the current state of the daemon as a struct.\n\n@return struct A struct with keys int statecode, string statename"),
    m!("supervisor.getPID", "Return the PID of the daemon.\n\n@return int PID"),
    MethodSpec { name: "supervisor.readLog", help: MAINLOG_HELP },
    MethodSpec { name: "supervisor.readMainLog", help: MAINLOG_HELP },
    m!("supervisor.clearLog", "Clear the main log.\n\n@return boolean result always returns True unless error"),
    m!("supervisor.shutdown", "Shut down the daemon.\n\n@return boolean result always returns True unless error"),
    m!("supervisor.restart", "Restart the daemon.\n\n@return boolean result  always return True unless error"),
    m!("supervisor.reloadConfig", "Reload the configuration without applying it.\n\nThe result contains three arrays of process group names: added (new in the file), changed (contents differ) and removed (no longer in the file).\n\n@return array result  [[added, changed, removed]]"),
    m!("supervisor.addProcessGroup", "Update the config for a running process from the config file.\n\n@param string name         name of process group to add\n@return boolean result     true if successful"),
    m!("supervisor.removeProcessGroup", "Remove a stopped process from the active configuration.\n\n@param string name         name of process group to remove\n@return boolean result     Indicates whether the removal was successful"),
    m!("supervisor.startProcess", "Start a process.\n\n@param string name Process name (or 'group:name', or 'group:*')\n@param boolean wait Wait for process to be fully started\n@return boolean result     Always true unless error"),
    m!("supervisor.startProcessGroup", "Start all processes in the group named 'name'.\n\n@param string name     The group name\n@param boolean wait    Wait for each process to be fully started\n@return array result   An array of process status info structs"),
    m!("supervisor.startAllProcesses", "Start all processes listed in the configuration file.\n\n@param boolean wait    Wait for each process to be fully started\n@return array result   An array of process status info structs"),
    m!("supervisor.stopProcess", "Stop a process named by name.\n\n@param string name  The name of the process to stop (or 'group:name')\n@param boolean wait        Wait for the process to be fully stopped\n@return boolean result     Always return True unless error"),
    m!("supervisor.stopProcessGroup", "Stop all processes in the process group named 'name'.\n\n@param string name     The group name\n@param boolean wait    Wait for each process to be fully stopped\n@return array result   An array of process status info structs"),
    m!("supervisor.stopAllProcesses", "Stop all processes in the process list.\n\n@param  boolean wait   Wait for each process to be fully stopped\n@return array result   An array of process status info structs"),
    m!("supervisor.signalProcess", "Send an arbitrary UNIX signal to the process named by name.\n\n@param string name    Name of the process to signal (or 'group:name')\n@param string signal  Signal to send, as name ('HUP') or number ('1')\n@return boolean"),
    m!("supervisor.signalProcessGroup", "Send a signal to all processes in the group named 'name'.\n\n@param string name    The group name\n@param string signal  Signal to send, as name ('HUP') or number ('1')\n@return array"),
    m!("supervisor.signalAllProcesses", "Send a signal to all processes in the process list.\n\n@param string signal  Signal to send, as name ('HUP') or number ('1')\n@return array         An array of process status info structs"),
    m!("supervisor.getAllConfigInfo", "Get info about all available process configurations. Each struct represents a single process (groups are flattened).\n\n@return array result  An array of process config info structs"),
    m!("supervisor.getProcessInfo", "Get info about a process named name.\n\n@param string name The name of the process (or 'group:name')\n@return struct result     A structure containing data about the process"),
    m!("supervisor.getAllProcessInfo", "Get info about all processes.\n\n@return array result  An array of process status results"),
    MethodSpec { name: "supervisor.readProcessStdoutLog", help: READ_HELP },
    MethodSpec { name: "supervisor.readProcessLog", help: READ_HELP },
    m!("supervisor.readProcessStderrLog", "Read length bytes from name's stderr log starting at offset.\n\n@param string name        the name of the process (or 'group:name')\n@param int offset         offset to start reading from.\n@param int length         number of bytes to read from the log.\n@return string result     Bytes of log"),
    MethodSpec { name: "supervisor.tailProcessStdoutLog", help: TAIL_HELP },
    MethodSpec { name: "supervisor.tailProcessLog", help: TAIL_HELP },
    m!("supervisor.tailProcessStderrLog", "Tail the stderr log of a process efficiently: returns the last length bytes when the log grew past offset + length (overflow is then true), else the bytes from offset to the end. The returned offset is the log size; pass it on the next call.\n\n@param string name         the name of the process (or 'group:name')\n@param int offset          offset to start reading from\n@param int length          maximum number of bytes to return\n@return array result       [string bytes, int offset, bool overflow]"),
    MethodSpec { name: "supervisor.clearProcessLogs", help: CLEAR_HELP },
    MethodSpec { name: "supervisor.clearProcessLog", help: CLEAR_HELP },
    m!("supervisor.clearAllProcessLogs", "Clear all process log files.\n\n@return array result   An array of process status info structs"),
    m!("supervisor.sendProcessStdin", "Send a string of chars to the stdin of the process name. Text is sent UTF-8 encoded. Faults with NOT_RUNNING if the process is not running, NO_FILE if its stdin no longer accepts input, and FAILED if the bytes the process has not read yet would exceed 1 MiB.\n\n@param string name        The process name to send to (or 'group:name')\n@param string chars       The character data to send to the process\n@return boolean result    Always return True unless error"),
    m!("supervisor.sendRemoteCommEvent", "Send an event that will be received by event listener subprocesses subscribing to the RemoteCommunicationEvent.\n\n@param  string  type  String for the \"type\" key in the event header\n@param  string  data  Data for the event body\n@return boolean       Always return True unless error"),
    m!("system.listMethods", "Return an array listing the available method names.\n\n@return array result  An array of method names available (strings)."),
    m!("system.methodHelp", "Return a string showing the method's documentation.\n\n@param string name   The name of the method.\n@return string result The documentation for the method name."),
    m!("system.methodSignature", "Return an array describing the method signature in the form [rtype, ptype, ptype...] where rtype is the return data type of the method, and ptypes are the parameter data types that the method accepts in method argument order.\n\n@param string name  The name of the method.\n@return array result  The result."),
    m!("system.multicall", "Process an array of calls, and return an array of results. Calls are structs of the form {'methodName': string, 'params': array}. Each result is either the raw return value or a struct {'faultCode': int, 'faultString': string}. Calls run in order, each finishing before the next starts.\n\n@param array calls  An array of call requests\n@return array result  An array of results"),
    m!("corral.getVersion", "Return the version of corral itself (getSupervisorVersion reports the supervisor version corral is compatible with).\n\n@return string version"),
    m!("corral.getCgroupMode", "Return the cgroup setup the daemon runs with: 'unified', 'hybrid', 'legacy' or 'none'.\n\n@return string mode"),
    m!("corral.getProcessCgroup", "Return the cgroup path of a process, or an empty string when it has none.\n\n@param string name  The name of the process (or 'group:name')\n@return string path"),
    m!("corral.getProcessStats", "Return kernel readings for one process: CPU (percent since the previous reading, and seconds), memory current and peak of its cgroup, RSS of its main pid, IO bytes, tasks, threads, open fds, restarts, OOM kills and the cgroup path. Byte counts are i8; -1 means unknown.\n\n@param string name  The name of the process (or 'group:name')\n@return struct result  The readings"),
    m!("corral.getAllProcessStats", "Return corral.getProcessStats for every process, ordered by group then name.\n\n@return array result  An array of reading structs"),
    m!("corral.getLimits", "Return the cgroup limits in force for a process, each as a string in config syntax ('max' when unset): memory_max, memory_high, memory_swap_max, cpu_quota, cpu_weight, tasks_max, io_weight.\n\n@param string name  The name of the process (or 'group:name')\n@return struct result  The limits"),
    m!("corral.setLimits", "Change a process's cgroup limits live, without restarting it. Keys are limit option names, values strings in config syntax ('512M', '150%', 'max' to unset); keys left out keep their value. Faults with BAD_ARGUMENTS when a value is invalid or this host cannot enforce it.\n\n@param string name  The name of the process (or 'group:name')\n@param struct limits  The limits to change\n@return struct result  The limits now in force"),
    m!("corral.freezeProcess", "Freeze every process in a process's cgroup (cgroup freezer).\n\n@param string name  The name of the process (or 'group:name')\n@return boolean result  Always true unless error"),
    m!("corral.thawProcess", "Thaw a frozen process's cgroup.\n\n@param string name  The name of the process (or 'group:name')\n@return boolean result  Always true unless error"),
    m!("corral.reexec", "Re-execute corrald from the binary it was started from (an upgraded file is what runs next) without stopping programs: same pids, same cgroups, logs continue. Event listeners and programs removed from the configuration are stopped first. Faults with FAILED when the binary is unusable and CANT_REREAD when the configuration is invalid; the daemon then keeps running.\n\n@return boolean result  Always true unless error"),
    m!("corral.getOomKills", "Return how many times the kernel's OOM killer killed something in the process's cgroup.\n\n@param string name  The name of the process (or 'group:name')\n@return int count"),
];

/// Look a method up by full name.
pub fn find(name: &str) -> Option<&'static MethodSpec> {
    METHODS.iter().find(|m| m.name == name)
}

/// Every method name, sorted (`system.listMethods`).
pub fn sorted_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = METHODS.iter().map(|m| m.name).collect();
    names.sort_unstable();
    names
}

/// `[return_type, param_types...]` from the help tags, as supervisord's `gettags`;
/// `None` when there is no `@return` tag.
pub fn signature(help: &str) -> Option<Vec<&str>> {
    let mut rtype = None;
    let mut ptypes = Vec::new();
    for line in help.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("@return"), Some(t)) => rtype = Some(t),
            (Some("@param"), Some(t)) => ptypes.push(t),
            _ => {}
        }
    }
    let mut out = vec![rtype?];
    out.extend(ptypes);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supervisor_and_system_names_match_supervisord() {
        let names: Vec<&str> = sorted_names().into_iter().filter(|n| !n.starts_with("corral.")).collect();
        assert_eq!(names.len(), 41);
        assert_eq!(names.first(), Some(&"supervisor.addProcessGroup"));
        assert_eq!(names.last(), Some(&"system.multicall"));
    }

    #[test]
    fn signatures_match_supervisord() {
        let sig = |n: &str| signature(find(n).unwrap().help).unwrap();
        assert_eq!(sig("supervisor.startProcess"), ["boolean", "string", "boolean"]);
        assert_eq!(sig("supervisor.readLog"), ["string", "int", "int"]);
        assert_eq!(sig("supervisor.tailProcessLog"), ["array", "string", "int", "int"]);
        assert_eq!(sig("supervisor.signalProcess"), ["boolean", "string", "string"]);
        assert_eq!(sig("supervisor.sendRemoteCommEvent"), ["boolean", "string", "string"]);
        assert_eq!(sig("supervisor.stopAllProcesses"), ["array", "boolean"]);
        assert_eq!(sig("system.multicall"), ["array", "array"]);
        assert_eq!(sig("supervisor.getState"), ["struct"]);
        for m in METHODS {
            assert!(signature(m.help).is_some(), "{} has no @return", m.name);
        }
    }
}
