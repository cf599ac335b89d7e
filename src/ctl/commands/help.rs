//! `help [command]`: supervisorctl's command table and per-command help, plus corral's.

use super::super::controller::Controller;
use super::super::error::CtlError;

/// supervisorctl's commands, as its `help` lists them.
pub const SUPERVISORCTL_COMMANDS: &[&str] = &[
    "add", "avail", "clear", "exit", "fg", "maintail", "open", "pid", "quit", "reload", "remove", "reread",
    "restart", "shutdown", "signal", "start", "status", "stop", "tail", "update", "version",
];

/// supervisorctl's `help` table, byte for byte (cmd.Cmd's columns keep their trailing spaces).
const TABLE: &str = "
default commands (type help <topic>):
=====================================
add    exit      open  reload  restart   start   tail   
avail  fg        pid   remove  shutdown  status  update 
clear  maintail  quit  reread  signal    stop    version
";

/// The help text of `cmd` (without a final newline), or `None` when it has none.
pub fn help_text(cmd: &str) -> Option<String> {
    let text = match cmd {
        "add" => "add <name> [...]\tActivates any updates in config for process/group",
        "avail" => "avail\t\t\tDisplay all configured processes",
        "clear" => "clear <name>\t\tClear a process' log files.\nclear <name> <name>\tClear multiple process' log files\nclear all\t\tClear all process' log files",
        "exit" => "exit\tExit the supervisor shell.",
        "fg" => "fg <process>\tConnect to a process in foreground mode\n\t\tCtrl-C to exit",
        "maintail" => "maintail -f \tContinuous tail of supervisor main log file (Ctrl-C to exit)\nmaintail -100\tlast 100 *bytes* of supervisord main log file\nmaintail\tlast 1600 *bytes* of supervisor main log file\n",
        "open" => "open <url>\tConnect to a remote supervisord process.\n\t\t(for UNIX domain socket, use unix:///socket/path)",
        "pid" => "pid\t\t\tGet the PID of supervisord.\npid <name>\t\tGet the PID of a single child process by name.\npid all\t\t\tGet the PID of every child process, one per line.",
        "quit" => "quit\tExit the supervisor shell.",
        "reload" => "reload \t\tRestart the remote supervisord.",
        "remove" => "remove <name> [...]\tRemoves process/group from active config",
        "reread" => "reread \t\t\tReload the daemon's configuration files without add/remove",
        "restart" => "restart <name>\t\tRestart a process\nrestart <gname>:*\tRestart all processes in a group\nrestart <name> <name>\tRestart multiple processes or groups\nrestart all\t\tRestart all processes\nNote: restart does not reread config files. For that, see reread and update.",
        "shutdown" => "shutdown \tShut the remote supervisord down.",
        "signal" => "signal <signal name> <name>\t\tSignal a process\nsignal <signal name> <gname>:*\t\tSignal all processes in a group\nsignal <signal name> <name> <name>\tSignal multiple processes or groups\nsignal <signal name> all\t\tSignal all processes",
        "start" => "start <name>\t\tStart a process\nstart <gname>:*\t\tStart all processes in a group\nstart <name> <name>\tStart multiple processes or groups\nstart all\t\tStart all processes",
        "status" => "status <name>\t\tGet status for a single process\nstatus <gname>:*\tGet status for all processes in a group\nstatus <name> <name>\tGet status for multiple named processes\nstatus\t\t\tGet all process status info",
        "stop" => "stop <name>\t\tStop a process\nstop <gname>:*\t\tStop all processes in a group\nstop <name> <name>\tStop multiple processes or groups\nstop all\t\tStop all processes",
        "tail" => "tail [-f] <name> [stdout|stderr] (default stdout)\nEx:\ntail -f <name>\t\tContinuous tail of named process stdout\n\t\t\tCtrl-C to exit.\ntail -100 <name>\tlast 100 *bytes* of process stdout\ntail <name> stderr\tlast 1600 *bytes* of process stderr",
        "update" => "update\t\t\tReload config and add/remove as necessary, and will restart affected programs\nupdate all\t\tReload config and add/remove as necessary, and will restart affected programs\nupdate <gname> [...]\tUpdate specific groups",
        "version" => "version\t\t\tShow the version of the remote supervisord process",
        "help" => "help\t\tPrint a list of available actions\nhelp <action>\tPrint help for <action>",
        "stats" => "stats [--json]\t\tResource use of every process (CPU, memory, tasks, fds, OOM kills)\nstats <name> [...]\tResource use of the named processes or groups",
        "reexec" => "reexec\t\t\tRe-execute corrald (e.g. after an upgrade) keeping every program running",
        "limits" => "limits <name> [--json]\t\tShow a process's cgroup limits\nlimits <name> key=value ...\tChange limits live (e.g. memory_max=512M cpu_quota=150% tasks_max=max)",
        _ => return None,
    };
    Some(text.to_string())
}

/// `help [command]`.
pub fn help(ctl: &mut Controller, arg: &str) -> Result<(), CtlError> {
    let topic = arg.trim();
    if topic.is_empty() {
        // cmd.Cmd prints the table through print_topics: a blank line first, one after.
        for line in TABLE.lines() {
            ctl.output(line);
        }
        ctl.output("");
        return Ok(());
    }
    match help_text(topic) {
        Some(text) => ctl.output(&text),
        None => ctl.output(&format!("*** No help on {topic}")),
    }
    Ok(())
}
