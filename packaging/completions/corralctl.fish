# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_corralctl_global_optspecs
    string join \n c/configuration= s/serverurl= u/username= p/password= i/interactive r/history-file= json h/help V/version
end

function __fish_corralctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_corralctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_corralctl_using_subcommand
    set -l cmd (__fish_corralctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c corralctl -n "__fish_corralctl_needs_command" -s c -l configuration -d 'Configuration file path (searched for when not given)' -r -F
complete -c corralctl -n "__fish_corralctl_needs_command" -s s -l serverurl -d 'URL on which the server is listening: unix:///path or http://host:port (default http://localhost:9001)' -r
complete -c corralctl -n "__fish_corralctl_needs_command" -s u -l username -d 'User name for authentication with the server' -r
complete -c corralctl -n "__fish_corralctl_needs_command" -s p -l password -d 'Password for authentication with the server' -r
complete -c corralctl -n "__fish_corralctl_needs_command" -s r -l history-file -d 'Accepted for supervisorctl compatibility; like supervisorctl, only the config\'s history_file is used' -r -F
complete -c corralctl -n "__fish_corralctl_needs_command" -s i -l interactive -d 'Start an interactive shell (with a command: ask before reload and shutdown)'
complete -c corralctl -n "__fish_corralctl_needs_command" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c corralctl -n "__fish_corralctl_needs_command" -s V -l version -d 'Print version'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "status" -d 'Get status of processes: status [name|group:*|all ...]'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "start" -d 'Start processes: start name|group:*|all ...'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "stop" -d 'Stop processes: stop name|group:*|all ...'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "restart" -d 'Restart processes (stop, then start; does not reread config)'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "signal" -d 'Send a signal: signal SIG name|group:*|all ...'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "pid" -d 'PID of the daemon, of named processes, or of all: pid [name|all]'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "tail" -d 'Last bytes of a process log: tail [-f|-N] name [stdout|stderr]'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "fg" -d 'Follow a process\'s output and send it typed lines: fg name'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "maintail" -d 'Last bytes of the daemon\'s log: maintail [-f|-N]'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "clear" -d 'Clear process logs: clear name ...|all'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "avail" -d 'List configured processes'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "reread" -d 'Reload the configuration without applying it'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "update" -d 'Reload the configuration and apply it: update [all|group ...]'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "add" -d 'Activate groups from the reread configuration: add group ...'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "remove" -d 'Remove stopped groups: remove group ...'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "reload" -d 'Restart the daemon'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "shutdown" -d 'Shut the daemon down'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "version" -d 'Show the daemon\'s supervisor version'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "open" -d 'Connect to another server and show its status: open URL'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "help" -d 'supervisorctl\'s help: help [command]'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "quit" -d 'Exit (for scripts that pipe shell commands)'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "exit" -d 'Exit (for scripts that pipe shell commands)'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "stats" -d 'Resource use per process: CPU %, memory, tasks, fds, restarts, OOM kills, cgroup'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "limits" -d 'Show or change a process\'s cgroup limits: limits name [key=value ...]'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "reexec" -d 'Re-execute the daemon\'s (possibly upgraded) binary without stopping programs'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "top" -d 'Live full-screen view of processes (c: sort by CPU, m: by memory, q: quit)'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "check-config" -d 'Validate a configuration file as corrald --check-config does'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "completions" -d 'Write a shell completion script to stdout'
complete -c corralctl -n "__fish_corralctl_needs_command" -f -a "manpage" -d 'Write the corralctl(1) man page to stdout'
complete -c corralctl -n "__fish_corralctl_using_subcommand status" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand status" -s h -l help -d 'Print help'
complete -c corralctl -n "__fish_corralctl_using_subcommand start" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand start" -s h -l help -d 'Print help'
complete -c corralctl -n "__fish_corralctl_using_subcommand stop" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand stop" -s h -l help -d 'Print help'
complete -c corralctl -n "__fish_corralctl_using_subcommand restart" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand restart" -s h -l help -d 'Print help'
complete -c corralctl -n "__fish_corralctl_using_subcommand signal" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand signal" -s h -l help -d 'Print help'
complete -c corralctl -n "__fish_corralctl_using_subcommand pid" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand pid" -s h -l help -d 'Print help'
complete -c corralctl -n "__fish_corralctl_using_subcommand tail" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand tail" -s h -l help -d 'Print help'
complete -c corralctl -n "__fish_corralctl_using_subcommand fg" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand fg" -s h -l help -d 'Print help'
complete -c corralctl -n "__fish_corralctl_using_subcommand maintail" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand maintail" -s h -l help -d 'Print help'
complete -c corralctl -n "__fish_corralctl_using_subcommand clear" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand clear" -s h -l help -d 'Print help'
complete -c corralctl -n "__fish_corralctl_using_subcommand avail" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand avail" -s h -l help -d 'Print help'
complete -c corralctl -n "__fish_corralctl_using_subcommand reread" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand reread" -s h -l help -d 'Print help'
complete -c corralctl -n "__fish_corralctl_using_subcommand update" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand update" -s h -l help -d 'Print help'
complete -c corralctl -n "__fish_corralctl_using_subcommand add" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand add" -s h -l help -d 'Print help'
complete -c corralctl -n "__fish_corralctl_using_subcommand remove" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand remove" -s h -l help -d 'Print help'
complete -c corralctl -n "__fish_corralctl_using_subcommand reload" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand reload" -s h -l help -d 'Print help'
complete -c corralctl -n "__fish_corralctl_using_subcommand shutdown" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand shutdown" -s h -l help -d 'Print help'
complete -c corralctl -n "__fish_corralctl_using_subcommand version" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand version" -s h -l help -d 'Print help'
complete -c corralctl -n "__fish_corralctl_using_subcommand open" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand open" -s h -l help -d 'Print help'
complete -c corralctl -n "__fish_corralctl_using_subcommand help" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand help" -s h -l help -d 'Print help'
complete -c corralctl -n "__fish_corralctl_using_subcommand quit" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand quit" -s h -l help -d 'Print help'
complete -c corralctl -n "__fish_corralctl_using_subcommand exit" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand exit" -s h -l help -d 'Print help'
complete -c corralctl -n "__fish_corralctl_using_subcommand stats" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand stats" -s h -l help -d 'Print help'
complete -c corralctl -n "__fish_corralctl_using_subcommand limits" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand limits" -s h -l help -d 'Print help'
complete -c corralctl -n "__fish_corralctl_using_subcommand reexec" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand reexec" -s h -l help -d 'Print help'
complete -c corralctl -n "__fish_corralctl_using_subcommand top" -l sort -d 'Initial sort order' -r -f -a "cpu\t'CPU percent, highest first'
mem\t'Current memory, highest first'"
complete -c corralctl -n "__fish_corralctl_using_subcommand top" -l interval -d 'Seconds between refreshes' -r
complete -c corralctl -n "__fish_corralctl_using_subcommand top" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand top" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c corralctl -n "__fish_corralctl_using_subcommand check-config" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand check-config" -s h -l help -d 'Print help'
complete -c corralctl -n "__fish_corralctl_using_subcommand completions" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c corralctl -n "__fish_corralctl_using_subcommand manpage" -l json -d 'Print JSON on read commands (status, avail, pid, version, stats, limits)'
complete -c corralctl -n "__fish_corralctl_using_subcommand manpage" -s h -l help -d 'Print help'
