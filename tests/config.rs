//! Configuration loading: supervisord compatibility and corral's additions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use corral::config::*;

fn env() -> Environment {
    let mut vars = BTreeMap::new();
    vars.insert("HOME".to_string(), "/root".to_string());
    vars.insert("PATH".to_string(), "/usr/bin:/bin".to_string());
    Environment { vars, host_node_name: "testhost".to_string(), cwd: PathBuf::from("/tmp") }
}

struct Case {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn write(text: &str) -> Case {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.conf");
    std::fs::write(&path, text).expect("write config");
    Case { _dir: dir, path }
}

fn load_text(text: &str) -> Config {
    let case = write(text);
    match load_with(&case.path, &env()) {
        Ok(c) => c,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// Loads `text` expecting an error; returns it and the file path.
fn error_of(text: &str) -> (ConfigError, String) {
    let case = write(text);
    let err = load_with(&case.path, &env()).expect_err("config should be rejected");
    (err, case.path.display().to_string())
}

fn group<'a>(c: &'a Config, name: &str) -> &'a GroupConfig {
    c.groups.iter().find(|g| g.name == name).unwrap_or_else(|| panic!("no group {name}"))
}

fn program<'a>(c: &'a Config, name: &str) -> &'a ProcessConfig {
    &group(c, name).processes[0]
}

fn env_map(p: &ProcessConfig) -> BTreeMap<&str, &str> {
    p.environment.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn warnings(c: &Config) -> Vec<&str> {
    c.messages.iter().filter(|m| m.level == MessageLevel::Warn).map(|m| m.text.as_str()).collect()
}

const SUP: &str = "[supervisord]\n";

#[test]
fn minimal_program_has_supervisord_defaults() {
    let c = load_text("[supervisord]\n[program:x]\ncommand=/bin/cat\n");
    assert_eq!(c.groups.len(), 1);
    let g = group(&c, "x");
    assert_eq!(g.priority, 999);
    assert_eq!(g.kind, GroupKind::Program);
    assert!(g.limits.is_empty());
    let p = program(&c, "x");
    let default_channel = ChannelConfig {
        logfile: LogFile::Auto,
        maxbytes: 52_428_800,
        backups: 10,
        capture_maxbytes: 0,
        events_enabled: false,
        syslog: false,
    };
    let expected = ProcessConfig {
        name: "x".into(),
        program: "x".into(),
        section: "program:x".into(),
        file: p.file.clone(),
        command: "/bin/cat".into(),
        directory: None,
        umask: None,
        priority: 999,
        autostart: true,
        autorestart: AutoRestart::Unexpected,
        startsecs: 1,
        startretries: 3,
        exitcodes: vec![0],
        stopsignal: 15,
        stopwaitsecs: 10,
        stopasgroup: false,
        killasgroup: false,
        user: None,
        redirect_stderr: false,
        stdout: default_channel.clone(),
        stderr: default_channel,
        environment: vec![],
        serverurl: None,
        kill_mode: KillMode::Cgroup,
        health: Default::default(),
        limits: Limits::default(),
        oom_score_adj: None,
        restart: Default::default(),
        requires: vec![],
        after: vec![],
    };
    assert_eq!(p, &expected);
    assert!(p.file.ends_with("t.conf"));
    assert!(c.unix_http_server.is_none());
    assert!(c.inet_http_servers.is_empty());
    assert!(c.supervisorctl.is_none());
}

#[test]
fn supervisord_section_defaults() {
    let c = load_text(SUP);
    let s = &c.supervisord;
    assert_eq!(s.logfile, MainLog::File(PathBuf::from("/tmp/supervisord.log")));
    assert_eq!(s.logfile_maxbytes, 50 * 1024 * 1024);
    assert_eq!(s.logfile_backups, 10);
    assert_eq!(s.loglevel, LogLevel::Info);
    assert_eq!(s.pidfile, PathBuf::from("/tmp/supervisord.pid"));
    assert_eq!(s.umask, 0o22);
    assert!(!s.nodaemon && !s.silent && !s.nocleanup && !s.strip_ansi);
    assert_eq!((s.minfds, s.minprocs), (1024, 200));
    assert_eq!(s.childlogdir, PathBuf::from("/tmp"));
    assert_eq!(s.user, None);
    assert_eq!(s.directory, None);
    assert!(s.environment.is_empty());
    assert_eq!(s.identifier, "supervisor");
    assert_eq!(s.cgroup_root, None);
}

#[test]
fn supervisord_section_values() {
    let c = load_text(
        "[supervisord]\nlogfile=syslog\nlogfile_maxbytes=1KB\nloglevel=BLATHER\numask=077\n\
         nodaemon=yes\nsilent=on\nminfds=4096\nuser=root\ndirectory=/tmp\nidentifier=me\n\
         pidfile=~/x.pid\ncgroup_root=/sys/fs/cgroup/corral/\n",
    );
    let s = &c.supervisord;
    assert_eq!(s.logfile, MainLog::Syslog);
    assert_eq!(s.logfile_maxbytes, 1024);
    assert_eq!(s.loglevel, LogLevel::Blather);
    assert_eq!(s.umask, 0o77);
    assert!(s.nodaemon && s.silent);
    assert_eq!(s.minfds, 4096);
    assert_eq!(s.user.as_ref().map(|u| (u.uid, u.gid)), Some((0, 0)));
    assert_eq!(s.directory, Some(PathBuf::from("/tmp")));
    assert_eq!(s.identifier, "me");
    assert_eq!(s.pidfile, PathBuf::from("/root/x.pid"));
    assert_eq!(s.cgroup_root, Some(PathBuf::from("/sys/fs/cgroup/corral")));
}

#[test]
fn every_program_option_parses() {
    let c = load_text(
        "[supervisord]\n[program:x]\ncommand=/bin/cat\npriority=-5\nautostart=false\n\
         autorestart=true\nstartsecs=0\nstartretries=7\nexitcodes=0,2,255\nstopsignal=sigint\n\
         stopwaitsecs=30\nstopasgroup=true\nuser=nobody\nredirect_stderr=false\n\
         stdout_logfile=/tmp/x.out\nstdout_logfile_maxbytes=1GB\nstdout_logfile_backups=0\n\
         stdout_capture_maxbytes=1MB\nstdout_events_enabled=1\nstdout_syslog=true\n\
         stderr_logfile=off\nstderr_logfile_maxbytes=0\nstderr_logfile_backups=2\n\
         stderr_capture_maxbytes=2KB\nstderr_events_enabled=yes\nstderr_syslog=no\n\
         environment=A=1\ndirectory=/tmp\numask=002\nserverurl=http://h:1\n",
    );
    let p = program(&c, "x");
    assert_eq!(p.priority, -5);
    assert!(!p.autostart);
    assert_eq!(p.autorestart, AutoRestart::Always);
    assert_eq!((p.startsecs, p.startretries), (0, 7));
    assert_eq!(p.exitcodes, vec![0, 2, 255]);
    assert_eq!(p.stopsignal, 2);
    assert_eq!(p.stopwaitsecs, 30);
    assert!(p.stopasgroup && p.killasgroup, "killasgroup defaults to stopasgroup");
    assert_eq!(p.user.as_ref().and_then(|u| u.name.as_deref()), Some("nobody"));
    assert_eq!(p.stdout.logfile, LogFile::Path(PathBuf::from("/tmp/x.out")));
    assert_eq!(p.stdout.maxbytes, 1 << 30);
    assert_eq!(p.stdout.backups, 0);
    assert_eq!(p.stdout.capture_maxbytes, 1 << 20);
    assert!(p.stdout.events_enabled && p.stdout.syslog);
    assert_eq!(p.stderr.logfile, LogFile::None);
    assert_eq!((p.stderr.maxbytes, p.stderr.backups), (0, 2));
    assert_eq!(p.stderr.capture_maxbytes, 2048);
    assert!(p.stderr.events_enabled && !p.stderr.syslog);
    assert_eq!(env_map(p).get("A"), Some(&"1"));
    assert_eq!(p.directory, Some(PathBuf::from("/tmp")));
    assert_eq!(p.umask, Some(0o2));
    assert_eq!(p.serverurl.as_deref(), Some("http://h:1"));
}

#[test]
fn default_section_is_inherited() {
    let c = load_text("[DEFAULT]\nstartsecs=7\n[supervisord]\n[program:a]\ncommand=a\n[program:b]\ncommand=b\nstartsecs=2\n");
    assert_eq!(program(&c, "a").startsecs, 7);
    assert_eq!(program(&c, "b").startsecs, 2);
    assert!(warnings(&c).is_empty(), "DEFAULT keys are not unknown options: {:?}", warnings(&c));
}

#[test]
fn inline_comments_continuations_duplicates_and_percent() {
    let c = load_text(
        "[supervisord]\n[program:a]\ncommand=/bin/echo b ;c\n[program:b]\ncommand=/bin/echo b;c\n\
         [program:c]\ncommand=/bin/echo\n  one\n  two\n[program:d]\ncommand=first\ncommand=second\n\
         [program:e]\ncommand=/bin/date +%%s\n",
    );
    assert_eq!(program(&c, "a").command, "/bin/echo b");
    assert_eq!(program(&c, "b").command, "/bin/echo b;c");
    assert_eq!(program(&c, "c").command, "/bin/echo\none\ntwo");
    assert_eq!(program(&c, "d").command, "second");
    assert_eq!(program(&c, "e").command, "/bin/date +%s");
}

#[test]
fn duplicate_sections_merge_last_wins() {
    let c = load_text("[supervisord]\n[program:x]\ncommand=a\npriority=1\n[program:x]\ncommand=b\n");
    let p = program(&c, "x");
    assert_eq!((p.command.as_str(), p.priority), ("b", 1));
}

#[test]
fn numprocs_names_processes() {
    let c = load_text(
        "[supervisord]\n[program:x]\ncommand=/bin/sleep %(process_num)d\n\
         process_name=%(program_name)s_%(process_num)02d\nnumprocs=2\n",
    );
    let g = group(&c, "x");
    let names: Vec<&str> = g.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["x_00", "x_01"]);
    assert_eq!(g.processes[1].command, "/bin/sleep 1");

    let c = load_text(
        "[supervisord]\n[program:w]\ncommand=w %(numprocs)d\nprocess_name=w%(process_num)s\n\
         numprocs=3\nnumprocs_start=5\n",
    );
    let names: Vec<&str> = group(&c, "w").processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["w5", "w6", "w7"]);
    assert_eq!(group(&c, "w").processes[0].command, "w 3");
}

#[test]
fn env_expansions_and_program_environment() {
    let c = load_text(
        "[supervisord]\nenvironment=GLOBAL=g1,SHARED=fromglobal\n[program:x]\n\
         command=/bin/run %(ENV_HOME)s %(ENV_GLOBAL)s %(ENV_LOCAL)s %(host_node_name)s %(group_name)s\n\
         environment=LOCAL=\"l 1\",SHARED=fromprogram\ndirectory=%(ENV_LOCAL)s\n",
    );
    let p = program(&c, "x");
    assert_eq!(p.command, "/bin/run /root g1 l 1 testhost x");
    assert_eq!(p.directory, Some(PathBuf::from("l 1")));
    assert_eq!(
        p.environment,
        vec![
            ("GLOBAL".to_string(), "g1".to_string()),
            ("SHARED".to_string(), "fromprogram".to_string()),
            ("LOCAL".to_string(), "l 1".to_string()),
        ]
    );
}

#[test]
fn environment_quoting_quirks() {
    let c = load_text("[supervisord]\n[program:x]\ncommand=c\nenvironment=A=\"1,2\",B='x y',C=plain\n");
    let e = env_map(program(&c, "x"));
    assert_eq!((e["A"], e["B"], e["C"]), ("1,2", "x y", "plain"));
    let c = load_text("[supervisord]\n[program:x]\ncommand=c\nenvironment=K=a b\n");
    assert_eq!(env_map(program(&c, "x"))["K"], "a");
    let c = load_text("[supervisord]\n[program:x]\ncommand=c\nenvironment=A=$HOME\n");
    assert_eq!(env_map(program(&c, "x"))["A"], "$");
    let c = load_text("[supervisord]\n[program:x]\ncommand=c\nenvironment=E=\"\",F=1\n");
    let e = env_map(program(&c, "x"));
    assert_eq!((e["E"], e["F"]), ("", "1"));
    let (err, f) = error_of("[supervisord]\n[program:x]\ncommand=c\nenvironment=A=1,,B=2\n");
    assert_eq!(
        err.supervisord_message(),
        format!("Unexpected end of key/value pairs in value 'A=1,,B=2' in section 'program:x' (file: '{f}')")
    );
}

#[test]
fn unknown_expansion_lists_sorted_names() {
    let (err, f) = error_of("[supervisord]\n[program:x]\ncommand=%(ENV_NOPE)s\n");
    assert_eq!(
        err.supervisord_message(),
        format!(
            "Format string '%(ENV_NOPE)s' for 'program:x.command' contains names ('ENV_NOPE') \
             which cannot be expanded. Available names: ENV_HOME, ENV_PATH, group_name, here, \
             host_node_name, numprocs, process_num, program_name in section 'program:x' (file: '{f}')"
        )
    );
    assert_eq!(err.location().line, Some(3));
    assert_eq!(err.location().option.as_deref(), Some("command"));
}

#[test]
fn includes_are_relative_sorted_and_know_their_here() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf_d = dir.path().join("conf.d");
    std::fs::create_dir(&conf_d).expect("mkdir");
    std::fs::write(
        dir.path().join("main.conf"),
        "[supervisord]\n[include]\nfiles = conf.d/*.conf\n  nothing/*.conf\n[program:main]\ncommand=%(here)s/m\n",
    )
    .expect("write");
    std::fs::write(conf_d.join("b.conf"), "[program:b]\ncommand=%(here)s/b\npriority=1\n").expect("write");
    std::fs::write(conf_d.join("a.conf"), "[program:a]\ncommand=%(here)s/a\npriority=1\n").expect("write");
    std::fs::write(conf_d.join("a.conf.disabled"), "[program:z]\ncommand=z\n").expect("write");
    let c = load_with(&dir.path().join("main.conf"), &env()).expect("loads");
    let d = dir.path().display().to_string();
    assert_eq!(program(&c, "main").command, format!("{d}/m"));
    assert_eq!(program(&c, "a").command, format!("{d}/conf.d/a"));
    assert_eq!(program(&c, "b").command, format!("{d}/conf.d/b"));
    assert!(program(&c, "a").file.ends_with("conf.d/a.conf"));
    assert!(c.groups.iter().all(|g| g.name != "z"));
    let infos: Vec<&str> =
        c.messages.iter().filter(|m| m.level == MessageLevel::Info).map(|m| m.text.as_str()).collect();
    assert_eq!(
        infos,
        [
            format!("Included extra file \"{d}/conf.d/a.conf\" during parsing"),
            format!("Included extra file \"{d}/conf.d/b.conf\" during parsing"),
        ]
    );
    assert!(warnings(&c).contains(&format!("No file matches via include \"{d}/nothing/*.conf\"").as_str()));
}

#[test]
fn an_include_tree_in_memory_loads_as_it_does_from_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let main = "[supervisord]\n[include]\nfiles = conf.d/*.conf extra/?.ini conf.d/s* none/*\n\
                [program:main]\ncommand=%(here)s/m\n";
    let files: &[(&str, &str)] = &[
        ("conf.d/b.conf", "[program:b]\ncommand=%(here)s/b\n"),
        ("conf.d/a.conf", "[program:a]\ncommand=%(here)s/a\n"),
        ("conf.d/.hidden.conf", "[program:hidden]\ncommand=h\n"),
        ("conf.d/sub/deep.conf", "[program:deep]\ncommand=d\n"),
        ("conf.d/a.conf.disabled", "[program:z]\ncommand=z\n"),
        ("extra/x.ini", "[group:g]\nprograms=a,b\n"),
    ];
    let mut memory = MemoryFiles::new();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
        memory.insert(&path, text.as_bytes());
    }
    let path = dir.path().join("main.conf");
    std::fs::write(&path, main).expect("write");
    let from_disk = load_with(&path, &env()).expect("loads from disk");
    let from_memory = load_text_with(&path, main, &env(), &memory).expect("loads from memory");
    assert_eq!(from_memory, from_disk);
    let mut names: Vec<&str> = from_disk.groups.iter().map(|g| g.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["g", "main"]);
    let sub = dir.path().join("conf.d/sub").display().to_string();
    assert!(
        warnings(&from_disk).contains(&format!("could not read included file \"{sub}\"; skipped").as_str())
    );
    // Nothing is read from disk without an include tree: the patterns match nothing.
    let alone = load_text_with(&path, main, &env(), &MemoryFiles::new()).expect("loads alone");
    assert_eq!(alone.groups.len(), 1);
    assert_eq!(warnings(&alone).iter().filter(|w| w.starts_with("No file matches via include")).count(), 4);
}

#[test]
fn a_huge_format_width_is_an_error_not_an_allocation() {
    // Found by fuzzing (fuzz/load_config): a 2 GB `%(here)s` field.
    let (err, _) = error_of("\n[include]\nfiles=%(here)222222222s");
    assert_eq!(
        err.supervisord_message(),
        "Format string '%(here)222222222s' for 'include.files' is badly formatted: width too big"
    );
}

#[test]
fn include_parse_error_names_the_included_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("main.conf"), "[supervisord]\n[include]\nfiles=bad.ini\n").expect("write");
    std::fs::write(dir.path().join("bad.ini"), "[program:x]\nnonsense\n").expect("write");
    let err = load_with(&dir.path().join("main.conf"), &env()).expect_err("rejected");
    let f = dir.path().join("bad.ini").display().to_string();
    assert_eq!(
        err.supervisord_message(),
        format!("Source contains parsing errors: '{f}'\n\t[line  2]: 'nonsense\\n'")
    );
    assert!(err.to_string().starts_with(&format!("{f}:2: ")));
}

#[test]
fn heterogeneous_group_gathers_programs() {
    let c = load_text(
        "[supervisord]\n[program:a]\ncommand=a\npriority=2\n[program:b]\ncommand=b\npriority=1\n\
         [program:c]\ncommand=c\n[group:g]\nprograms=a,b\npriority=5\nmemory_max=1G\ncpu_quota=50%\n",
    );
    let names: Vec<&str> = c.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["g", "c"]);
    let g = group(&c, "g");
    assert_eq!(g.priority, 5);
    let procs: Vec<(&str, &str)> =
        g.processes.iter().map(|p| (p.name.as_str(), p.program.as_str())).collect();
    assert_eq!(procs, [("b", "b"), ("a", "a")]);
    assert_eq!(g.processes[0].command, "b");
    assert_eq!(g.limits.memory_max, Some(1 << 30));
    assert_eq!(g.limits.cpu_quota, Some(50));
    assert!(g.processes[0].limits.is_empty());
}

#[test]
fn groups_and_processes_sorted_by_priority_then_bytes() {
    let c = load_text(
        "[supervisord]\n[program:b]\ncommand=b\n[program:a]\ncommand=a\n[program:C]\ncommand=C\n\
         [program:first]\ncommand=f\npriority=1\n[eventlistener:l]\ncommand=l\nevents=TICK_5\n",
    );
    let names: Vec<&str> = c.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["l", "first", "C", "a", "b"]);
    assert_eq!(group(&c, "l").priority, -1);
}

#[test]
fn eventlistener_pool_options() {
    let c = load_text(
        "[supervisord]\n[eventlistener:mem]\ncommand=memmon\nevents=process_state,TICK_60,PROCESS_STATE\n\
         buffer_size=3\n",
    );
    let g = group(&c, "mem");
    match &g.kind {
        GroupKind::EventListener(e) => {
            assert_eq!(e.events, ["PROCESS_STATE", "TICK_60"]);
            assert_eq!(e.buffer_size, 3);
            assert_eq!(e.result_handler, "supervisor.dispatchers:default_handler");
        }
        other => panic!("not a listener: {other:?}"),
    }
    let c = load_text("[supervisord]\n[eventlistener:oom]\ncommand=x\nevents=CORRAL_PROCESS_OOM,CORRAL_LIMIT_CHANGED,CORRAL_PROCESS_UNHEALTHY\n");
    assert_eq!(group(&c, "oom").processes.len(), 1);
}

#[test]
fn fcgi_program_socket() {
    let c = load_text(
        "[supervisord]\n[fcgi-program:php]\ncommand=php-cgi\nsocket=unix:///tmp/../tmp/%(program_name)s.sock\n\
         socket_mode=0660\nsocket_backlog=128\n[fcgi-program:t]\ncommand=t\nsocket=tcp://LocalHost:9000\n",
    );
    match &group(&c, "php").kind {
        GroupKind::Fcgi(f) => {
            assert_eq!(f.socket, "unix:///tmp/php.sock");
            assert_eq!(f.socket_mode, 0o660);
            assert_eq!(f.socket_backlog, Some(128));
        }
        other => panic!("not fcgi: {other:?}"),
    }
    match &group(&c, "t").kind {
        GroupKind::Fcgi(f) => assert_eq!(f.socket, "tcp://localhost:9000"),
        other => panic!("not fcgi: {other:?}"),
    }
}

#[test]
fn servers_and_serverurl_auto() {
    let c = load_text(
        "[unix_http_server]\nfile=/tmp/../tmp/s.sock\nchmod=0770\nchown=root:0\n\
         [inet_http_server]\nport=127.0.0.1:9001\nusername=u\npassword=p\n[inet_http_server:two]\nport=9002\n\
         [supervisord]\n[program:x]\ncommand=x\n[program:y]\ncommand=y\nserverurl=http://elsewhere:1\n\
         [program:z]\ncommand=z\nserverurl=\n",
    );
    let u = c.unix_http_server.as_ref().expect("unix server");
    assert_eq!(u.file, PathBuf::from("/tmp/s.sock"));
    assert_eq!((u.chmod, u.chown, u.auth.clone()), (0o770, Some((0, Some(0))), None));
    assert_eq!(c.inet_http_servers.len(), 2);
    assert_eq!(c.inet_http_servers[0].host, "127.0.0.1");
    assert_eq!(c.inet_http_servers[0].auth.as_ref().map(|a| a.username.as_str()), Some("u"));
    assert_eq!(c.inet_http_servers[1].section, "inet_http_server:two");
    assert_eq!((c.inet_http_servers[1].host.as_str(), c.inet_http_servers[1].port), ("", 9002));
    // As written (getAllConfigInfo reports these); AUTO is resolved once, for the daemon.
    assert_eq!(c.serverurl.as_deref(), Some("unix:///tmp/s.sock"));
    assert_eq!(program(&c, "x").serverurl, None);
    assert_eq!(program(&c, "y").serverurl.as_deref(), Some("http://elsewhere:1"));
    assert_eq!(program(&c, "z").serverurl.as_deref(), Some(""));

    let c =
        load_text("[inet_http_server]\nport=*:9001\n[supervisord]\n[program:x]\ncommand=x\nserverurl=AUTO\n");
    assert_eq!(c.serverurl.as_deref(), Some("http://localhost:9001"));
    assert_eq!(program(&c, "x").serverurl, None);
    let c = load_text("[supervisord]\n[program:x]\ncommand=x\n");
    assert_eq!((c.serverurl.as_ref(), program(&c, "x").serverurl.as_ref()), (None, None));
}

#[test]
fn supervisorctl_section() {
    let c = load_text("[supervisord]\n[supervisorctl]\nserverurl=unix://%(here)s/../x.sock\nusername=u\nhistory_file=~/.h\n");
    let ctl = c.supervisorctl.expect("ctl");
    // The temp file lives in /tmp/<random>/, so `%(here)s/..` is /tmp.
    assert_eq!(ctl.serverurl.as_deref(), Some("unix:///tmp/x.sock"));
    assert_eq!(ctl.prompt, "supervisor");
    assert_eq!(ctl.username.as_deref(), Some("u"));
    assert_eq!(ctl.history_file, Some(PathBuf::from("/root/.h")));
    let case = write("[supervisord]\n");
    let err = load_ctl_with(&case.path, &env()).expect_err("no ctl section");
    assert_eq!(err.supervisord_message(), ".ini file does not include supervisorctl section");
}

#[test]
fn logfile_keywords_and_warnings() {
    let c = load_text(
        "[supervisord]\n[program:x]\ncommand=x\nstdout_logfile=auto\nstdout_logfile_maxbytes=0\n\
         stderr_logfile=syslog\n[program:r]\ncommand=r\nredirect_stderr=true\nstderr_logfile=/tmp/r.err\n",
    );
    let x = program(&c, "x");
    assert_eq!(x.stdout.logfile, LogFile::Auto);
    assert_eq!(x.stderr.logfile, LogFile::None);
    assert!(x.stderr.syslog);
    let r = program(&c, "r");
    assert_eq!(r.stderr.logfile, LogFile::None);
    let w = warnings(&c);
    assert!(w.contains(&"For [program:x], AUTO logging used for stdout_logfile without rollover, set maxbytes > 0 to avoid filling up filesystem unintentionally"));
    assert!(w.contains(&"For [program:x], stderr_logfile=syslog but this is deprecated and will be removed.  Use stderr_syslog=true to enable syslog instead."));
    assert!(w.contains(&"For [program:r], redirect_stderr=true but stderr_logfile has also been set to a filename, the filename has been ignored"));
}

#[test]
fn corral_limit_options() {
    let c = load_text(
        "[supervisord]\n[program:x]\ncommand=x\nmemory_max=512M\nmemory_high=400MB\nmemory_swap_max=infinity\n\
         cpu_quota=150%\ncpu_weight=100\ntasks_max=64\nio_weight=10000\noom_score_adj=-500\nkill_mode=process\n",
    );
    let p = program(&c, "x");
    assert_eq!(
        p.limits,
        Limits {
            memory_max: Some(512 << 20),
            memory_high: Some(400 << 20),
            memory_swap_max: None,
            cpu_quota: Some(150),
            cpu_weight: Some(100),
            tasks_max: Some(64),
            io_weight: Some(10000),
        }
    );
    assert_eq!(p.oom_score_adj, Some(-500));
    assert_eq!(p.kill_mode, KillMode::Process);
}

#[test]
fn corral_limit_errors() {
    let cases = [
        ("memory_max=1.5G", "invalid 'memory_max' value '1.5G'"),
        ("cpu_quota=150", "invalid 'cpu_quota' value '150'"),
        ("cpu_weight=0", "invalid 'cpu_weight' value '0'"),
        ("io_weight=10001", "invalid 'io_weight' value '10001'"),
        ("tasks_max=lots", "invalid 'tasks_max' value 'lots'"),
        ("oom_score_adj=2000", "invalid 'oom_score_adj' value '2000'"),
        ("kill_mode=all", "invalid 'kill_mode' value 'all'"),
    ];
    for (line, msg) in cases {
        let (err, f) = error_of(&format!("[supervisord]\n[program:x]\ncommand=x\n{line}\n"));
        assert_eq!(
            err.supervisord_message(),
            format!("{msg} in section 'program:x' (file: '{f}')"),
            "{line}"
        );
        assert_eq!(err.location().line, Some(4), "{line}");
        assert!(err.expected().is_some(), "{line}");
    }
    let (err, _) =
        error_of("[supervisord]\n[program:x]\ncommand=x\n[group:g]\nprograms=x\nmemory_high=lots\n");
    assert_eq!(err.supervisord_message(), "invalid 'memory_high' value 'lots'");
    let (err, _) = error_of("[supervisord]\ncgroup_root=relative/path\n");
    assert_eq!(err.supervisord_message(), "cgroup_root relative/path is not an absolute path");
}

#[test]
fn readiness_health_and_watchdog_options() {
    let c = load_text(
        "[supervisord]\n[program:x]\ncommand=x\nnumprocs=2\nprocess_name=x%(process_num)d\n\
         ready=tcp:127.0.0.1:80%(process_num)02d\nready_timeout=1.5\n\
         healthcheck=http://127.0.0.1:80%(process_num)02d/health\nhealthcheck_interval=500ms\n\
         healthcheck_timeout=2s\nhealthcheck_retries=5\nhealthcheck_action=stop\nwatchdog_sec=10\n",
    );
    let p = &group(&c, "x").processes[1];
    assert_eq!(p.name, "x1");
    assert_eq!(p.health.ready, Readiness::Probe(Probe::Tcp { host: "127.0.0.1".into(), port: 8001 }));
    assert_eq!(p.health.ready_timeout, Duration::from_millis(1500));
    let h = p.health.healthcheck.as_ref().expect("a health check");
    assert_eq!(h.probe, Probe::Http("http://127.0.0.1:8001/health".into()));
    assert_eq!((h.interval, h.timeout, h.retries), (Duration::from_millis(500), Duration::from_secs(2), 5));
    assert_eq!(h.action, HealthAction::Stop);
    assert_eq!(p.health.watchdog, Some(Duration::from_secs(10)));
    assert!(warnings(&c).is_empty(), "{:?}", warnings(&c));
    let text = describe(&c);
    assert!(
        text.contains(
            "ready=tcp:127.0.0.1:8001 (timeout 1.5 s) healthcheck=http://127.0.0.1:8001/health every 0.5 s, \
             timeout 2 s, 5 retries, action Stop watchdog_sec=10 s"
        ),
        "{text}"
    );

    // Only a probe brings the other health check options' defaults.
    let c = load_text("[supervisord]\n[program:x]\ncommand=x\nready=notify\nhealthcheck=exec:true\n");
    let p = program(&c, "x");
    assert_eq!(p.health.ready, Readiness::Notify);
    assert_eq!(p.health.ready_timeout, Duration::from_secs(90));
    let h = p.health.healthcheck.as_ref().expect("a health check");
    assert_eq!(
        (h.interval, h.timeout, h.retries, h.action),
        (Duration::from_secs(30), Duration::from_secs(5), 3, HealthAction::Restart)
    );
    assert_eq!(p.health.watchdog, None);
}

#[test]
fn readiness_and_health_errors_name_the_option() {
    let cases = [
        ("ready=sometimes", "invalid 'ready' value 'sometimes'"),
        ("ready=fd:2", "invalid 'ready' value 'fd:2'"),
        ("ready=tcp:host", "invalid 'ready' value 'tcp:host'"),
        ("ready_timeout=soon", "invalid 'ready_timeout' value 'soon'"),
        ("healthcheck=ping:host", "invalid 'healthcheck' value 'ping:host'"),
        ("watchdog_sec=-1", "invalid 'watchdog_sec' value '-1'"),
    ];
    for (line, msg) in cases {
        let (err, f) = error_of(&format!("[supervisord]\n[program:x]\ncommand=x\n{line}\n"));
        assert_eq!(
            err.supervisord_message(),
            format!("{msg} in section 'program:x' (file: '{f}')"),
            "{line}"
        );
        assert_eq!(err.location().line, Some(4), "{line}");
    }
    let (err, _) =
        error_of("[supervisord]\n[program:x]\ncommand=x\nhealthcheck=exec:true\nhealthcheck_action=panic\n");
    assert!(err.supervisord_message().starts_with("invalid 'healthcheck_action' value 'panic'"));
}

#[test]
fn zero_where_zero_would_silently_misbehave_is_an_error() {
    // healthcheck_retries=0 would act as 1, a zero timeout would fail every check,
    // a zero interval would probe without pause.
    let health = "healthcheck=exec:true\n";
    let cases = [
        (health, "healthcheck_retries=0", "an integer of 1 or more"),
        (health, "healthcheck_timeout=0", "a duration of more than 0"),
        (health, "healthcheck_timeout=0ms", "a duration of more than 0"),
        (health, "healthcheck_interval=0s", "a duration of more than 0"),
        // start_limit_burst=0 would send the program to FATAL on its first restart,
        // backoff_max=0 would restart it in a tight loop.
        ("", "start_limit_burst=0", "an integer of 1 or more"),
        ("backoff=exponential\n", "backoff_max=0", "an integer of 1 or more"),
    ];
    for (before, line, expected) in cases {
        let (err, f) = error_of(&format!("[supervisord]\n[program:x]\ncommand=x\n{before}{line}\n"));
        let (option, value) = line.split_once('=').unwrap();
        let at = 4 + before.matches('\n').count();
        assert_eq!(err.location().line, Some(at), "{line}");
        assert_eq!(err.location().option.as_deref(), Some(option), "{line}");
        assert_eq!(err.value(), Some(value), "{line}");
        assert!(err.expected().is_some_and(|e| e.starts_with(expected)), "{line}: {:?}", err.expected());
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "{f}:{at}: [program:x] {option}: invalid value '{value}': expected {expected}"
            )),
            "{text}"
        );
        assert_eq!(
            err.supervisord_message(),
            format!("invalid '{option}' value '{value}' in section 'program:x' (file: '{f}')"),
            "{line}"
        );
    }
    // 1 is accepted everywhere.
    let c = load_text(
        "[supervisord]\n[program:x]\ncommand=x\nhealthcheck=exec:true\nhealthcheck_retries=1\n\
         healthcheck_timeout=1ms\nstart_limit_burst=1\nbackoff_max=1\n",
    );
    let p = program(&c, "x");
    assert_eq!(
        p.health.healthcheck.as_ref().map(|h| (h.retries, h.timeout)),
        Some((1, Duration::from_millis(1)))
    );
    assert_eq!((p.restart.start_limit_burst, p.restart.backoff_max), (Some(1), Some(1)));
}

#[test]
fn unknown_options_warn_with_suggestion() {
    let c = load_text("[supervisord]\n[program:x]\ncommand=x\nstartsec=5\nfrobnicate=1\n");
    let w = warnings(&c);
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w[0].ends_with(
            ":4: unknown option 'startsec' in section [program:x] is ignored; did you mean 'startsecs'?"
        ),
        "{}",
        w[0]
    );
    assert!(w[1].ends_with(":5: unknown option 'frobnicate' in section [program:x] is ignored"), "{}", w[1]);
}

#[test]
fn display_names_file_line_section_option_and_expectation() {
    let (err, f) = error_of("[supervisord]\n[program:x]\ncommand=x\nstartsecs=abc\n");
    assert_eq!(
        err.to_string(),
        format!(
            "{f}:4: [program:x] startsecs: invalid value 'abc': expected an integer \
             (invalid literal for int() with base 10: 'abc')"
        )
    );
    assert_eq!(err.value(), Some("abc"));
}

/// (config text, supervisord 4.3.0's message with `{f}` for the file path).
/// Every message was checked against supervisord 4.3.0 itself.
const BAD_CONFIGS: &[(&str, &str)] = &[
    ("[program:x]\ncommand=ls\n", ".ini file does not include supervisord section"),
    (
        "[supervisord]\n[program:x]\ncommand=ls\nnumprocs=2\n",
        "%(process_num) must be present within process_name when numprocs > 1 in section 'program:x' (file: '{f}')",
    ),
    (
        "[supervisord]\n[program:x]\ncommand=ls\nautorestart=maybe\n",
        "invalid 'autorestart' value 'maybe' in section 'program:x' (file: '{f}')",
    ),
    (
        "[supervisord]\n[program:x]\nautostart=true\n",
        "program section program:x does not specify a command in section 'program:x' (file: '{f}')",
    ),
    ("[supervisord]\n[program:a:b]\ncommand=ls\n", "Invalid name: 'a:b' because of character: ':'"),
    ("[supervisord]\n[eventlistener:l]\ncommand=ls\n", "[eventlistener:l] section requires an \"events\" line"),
    (
        "[supervisord]\n[program:x]\ncommand=ls\nstopsignal=FOO\n",
        "value 'FOO' is not a valid signal name in section 'program:x' (file: '{f}')",
    ),
    ("[supervisord]\nfoo\n", "Source contains parsing errors: '{f}'\n\t[line  2]: 'foo\\n'"),
    ("a=1\n", "File contains no section headers.\nfile: '{f}', line: 1\n'a=1\\n'"),
    (
        "[supervisord]\n[inet_http_server]\nport=127.0.0.1:9001\nusername=u\n",
        "Section [inet_http_server] contains incomplete authentication: If a username or a password is specified, both the username and password must be specified",
    ),
    (
        "[supervisord]\n[program:x]\ncommand=ls\nstopasgroup=true\nkillasgroup=false\n",
        "Cannot set stopasgroup=true and killasgroup=false in section 'program:x' (file: '{f}')",
    ),
    (
        "[supervisord]\n[program:a]\ncommand=ls\n[group:g]\nprograms=a,p\n",
        "[program:a] names unknown program or fcgi-program p",
    ),
    ("[supervisord]\n[group:g]\nprograms=p\n", "[group:g] names unknown program or fcgi-program p"),
    (
        "[supervisord]\n[eventlistener:l]\ncommand=ls\nevents=PROCESS_STATE,FOO\n",
        "Unknown event type FOO in [eventlistener:l] events",
    ),
    ("[supervisord]\n[inet_http_server]\nusername=u\npassword=p\n", "section [inet_http_server] has no port value"),
    ("[supervisord]\n[unix_http_server]\nchmod=0700\n", "section [unix_http_server] has no file value"),
    (
        "[supervisord]\n[rpcinterface:x]\nfoo=bar\n",
        "section [rpcinterface:x] does not specify a supervisor.rpcinterface_factory",
    ),
    (
        "[supervisord]\n[eventlistener:l]\ncommand=ls\nevents=TICK_5\nbuffer_size=0\n",
        "[eventlistener:l] section sets invalid buffer_size (0)",
    ),
    (
        "[supervisord]\n[eventlistener:l]\ncommand=ls\nevents=TICK_5\nredirect_stderr=true\n",
        "[eventlistener:l] section sets redirect_stderr=true but this is not allowed because it will interfere with the eventlistener protocol",
    ),
    (
        "[supervisord]\n[fcgi-program:f]\ncommand=ls\nsocket=tcp://localhost:9000\nsocket_backlog=0\n",
        "Invalid socket_backlog value 0",
    ),
    (
        "[supervisord]\n[program:x]\ncommand=/bin/date +%\n",
        "Format string '/bin/date +%' for 'program:x.command' is badly formatted: incomplete format in section 'program:x' (file: '{f}')",
    ),
    (
        "[supervisord]\n[program:x]\ncommand=ls\nstartsecs=abc\n",
        "invalid literal for int() with base 10: 'abc' in section 'program:x' (file: '{f}')",
    ),
    (
        "[supervisord]\n[program:x]\ncommand=ls\nautostart=maybe\n",
        "not a valid boolean value: 'maybe' in section 'program:x' (file: '{f}')",
    ),
    (
        "[supervisord]\n[program:x]\ncommand=ls\nstdout_logfile=/nonexistent-corral-dir/x.log\n",
        "The directory named as part of the path /nonexistent-corral-dir/x.log does not exist in section 'program:x' (file: '{f}')",
    ),
    (
        "[supervisord]\n[program:x]\ncommand=ls\nuser=nosuchuserzz\n",
        "Invalid user name nosuchuserzz in section 'program:x' (file: '{f}')",
    ),
    (
        "[supervisord]\n[program:x]\ncommand=ls\nenvironment=A=1 B=2\n",
        "Unexpected end of key/value pairs in value 'A=1 B=2' in section 'program:x' (file: '{f}')",
    ),
    ("[supervisord]\n[include]\nfoo=bar\n", ".ini file has [include] section, but no files setting"),
    ("[supervisord]\nuser=nosuchuserzz\n", "Invalid user name nosuchuserzz"),
    (
        "[supervisord]\n[program:x]\ncommand=ls\nexitcodes=0,256\n",
        "not a valid list of exit codes: '0,256' in section 'program:x' (file: '{f}')",
    ),
    ("[supervisord]\n[unix_http_server]\nfile=/tmp/x.sock\nchmod=999\n", "Invalid chmod value 999"),
    ("[supervisord]\n[fcgi-program:f]\ncommand=ls\n", "[fcgi-program:f] section requires a \"socket\" line"),
    (
        "[supervisord]\n[fcgi-program:f]\ncommand=ls\nsocket=unix://rel.sock\n",
        "('Unix socket path %s is not an absolute path', 'rel.sock') in [fcgi-program:f] socket",
    ),
    (
        "[supervisord]\n[fcgi-program:f]\ncommand=ls\nsocket=foo\n",
        "('Bad socket format %s', 'foo') in [fcgi-program:f] socket",
    ),
    (
        "[supervisord]\n[fcgi-program:f]\ncommand=ls\nsocket=tcp://h:1\nsocket_mode=0700\n",
        "socket_owner and socket_mode params should only be used with a Unix domain socket in [fcgi-program:f] socket",
    ),
    ("[supervisord]\nloglevel=loud\n", "bad logging level name 'loud'"),
    ("[supervisord]\numask=9\n", "9 can not be converted to an octal type"),
    ("[supervisord]\n[inet_http_server]\nport=x\n", "not a valid port number: 'x' "),
    ("[supervisord]\n[program:x]\ncommand=ls\npriority=high\n", "invalid literal for int() with base 10: 'high'"),
    (
        "[supervisord]\n[program:x]\ncommand=ls\nprocess_name=%(program_name)s_%(process_num)d\nnumprocs=2\nnumprocs_start=%(foo)s\n",
        "Format string '%(foo)s' for 'program:x.numprocs_start' contains names ('foo') which cannot be expanded. Available names: ENV_HOME, ENV_PATH, group_name, here, host_node_name, program_name in section 'program:x' (file: '{f}')",
    ),
    (
        "[supervisord]\n[program:a]\ncommand=ls\n[fcgi-program:a]\ncommand=ls\nsocket=tcp://h:1\n[group:g]\nprograms=a\n",
        "[group:g] name a is ambiguous (exists as program and fcgi-program)",
    ),
];

#[test]
fn bad_configs_give_supervisords_exact_messages() {
    assert!(BAD_CONFIGS.len() >= 12);
    for (text, expected) in BAD_CONFIGS {
        let (err, f) = error_of(text);
        assert_eq!(err.supervisord_message(), expected.replace("{f}", &f), "config:\n{text}");
        // The human rendering always names the file.
        assert!(err.to_string().contains(&f) || err.location().file.is_some(), "{err}");
    }
}

#[test]
fn missing_and_unreadable_files() {
    let err = load_with(Path::new("/nonexistent-corral/x.conf"), &env()).expect_err("missing");
    assert_eq!(err.supervisord_message(), "could not find config file /nonexistent-corral/x.conf");
}

#[test]
fn search_paths_and_not_found_message() {
    let paths = default_search_paths(Path::new("/opt/corral/bin/corrald"));
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    assert_eq!(
        shown,
        [
            "/etc/corral/corral.conf",
            "/opt/corral/etc/supervisord.conf",
            "/opt/corral/supervisord.conf",
            "supervisord.conf",
            "etc/supervisord.conf",
            "/etc/supervisord.conf",
            "/etc/supervisor/supervisord.conf",
        ]
    );
    let rel = default_search_paths(Path::new("corrald"));
    assert_eq!(rel[1], PathBuf::from("etc/supervisord.conf"));
    assert_eq!(rel[2], PathBuf::from("supervisord.conf"));
    if paths.iter().all(|p| !p.exists()) {
        let err = find_config(Path::new("/opt/corral/bin/corrald")).expect_err("none exist");
        assert_eq!(
            err.supervisord_message(),
            format!(
                "No config file found at default paths ({}); use the -c option to specify a config file at a different path",
                shown.join(", ")
            )
        );
    }
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

#[test]
fn supervisord_sample_config_loads_unchanged() {
    let c = load_with(&fixture("supervisord-sample.conf"), &env()).expect("sample loads");
    assert_eq!(
        c.unix_http_server.as_ref().map(|u| u.file.clone()),
        Some(PathBuf::from("/tmp/supervisor.sock"))
    );
    assert_eq!(c.supervisord.logfile, MainLog::File(PathBuf::from("/tmp/supervisord.log")));
    assert_eq!(c.supervisord.pidfile, PathBuf::from("/tmp/supervisord.pid"));
    assert_eq!(c.rpcinterfaces.len(), 1);
    assert_eq!(c.rpcinterfaces[0].factory, "supervisor.rpcinterface:make_main_rpcinterface");
    assert_eq!(
        c.supervisorctl.as_ref().and_then(|s| s.serverurl.clone()).as_deref(),
        Some("unix:///tmp/supervisor.sock")
    );
    assert!(c.groups.is_empty());
    assert!(warnings(&c).is_empty(), "{:?}", warnings(&c));
}

#[test]
fn rich_fixture_loads() {
    let path = fixture("rich/corral.conf");
    let c = load_with(&path, &env()).expect("rich loads");
    let here = fixture("rich").display().to_string();
    let names: Vec<&str> = c.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["watch", "web", "backend", "php"]);

    let backend = group(&c, "backend");
    let procs: Vec<&str> = backend.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(procs, ["cron", "worker_01", "worker_02", "worker_03"]);
    assert_eq!(backend.limits.memory_max, Some(2 << 30));
    assert_eq!(backend.limits.cpu_quota, Some(200));
    assert_eq!(backend.limits.tasks_max, Some(256));
    let worker = &backend.processes[1];
    assert_eq!(worker.command, "/bin/sleep 1000");
    assert_eq!(worker.limits.memory_max, Some(256 << 20));
    assert_eq!(worker.stdout.logfile, LogFile::None);
    assert_eq!(worker.exitcodes, vec![0, 2]);
    let cron = &backend.processes[0];
    assert_eq!(cron.command, "/bin/sh -c \"while true; do date +%s; sleep 60; done\"");
    assert_eq!(cron.user.as_ref().map(|u| u.spec.as_str()), Some("nobody"));

    let web = program(&c, "web");
    assert_eq!(web.command, "/usr/bin/env python3 -m http.server 8080");
    assert_eq!(web.directory, Some(PathBuf::from(format!("{here}/conf.d"))));
    assert_eq!(web.stdout.logfile, LogFile::Path(PathBuf::from("/tmp/web-web.log")));
    assert_eq!(web.kill_mode, KillMode::Group);
    assert_eq!(web.oom_score_adj, Some(500));
    assert_eq!(web.limits.memory_high, Some(400 << 20));
    assert_eq!(web.serverurl, None, "AUTO, resolved once for the daemon");
    assert_eq!(c.serverurl.as_deref(), Some("unix:///tmp/corral-rich.sock"));
    let e = env_map(web);
    assert_eq!((e["APP_ENV"], e["LANG"], e["GREETING"]), ("production", "C.UTF-8", "hello world"));

    let watch = group(&c, "watch");
    assert_eq!(watch.processes[0].command, format!("/usr/bin/python3 {here}/listener.py"));

    let php = group(&c, "php");
    let procs: Vec<&str> = php.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(procs, ["php_0", "php_1"]);
    assert!(matches!(&php.kind, GroupKind::Fcgi(f) if f.socket == "unix:///tmp/php.sock"));

    assert_eq!(c.supervisord.cgroup_root, Some(PathBuf::from("/sys/fs/cgroup/corral")));
    assert_eq!(c.supervisord.identifier, "rich");
    assert!(warnings(&c).iter().any(|w| w.starts_with("No file matches via include")));

    let text = describe(&c);
    assert!(
        text.contains(
            "group backend (program) priority=100 limits: memory_max=2G cpu_quota=200% tasks_max=256"
        ),
        "{text}"
    );
    assert!(text.contains("process backend:worker_01"), "{text}");
    assert!(text.contains("command: /usr/bin/env python3 -m http.server 8080"), "{text}");
    assert!(text.contains("memory_max=512M memory_high=400M cpu_weight=200 io_weight=50"), "{text}");
}

#[test]
fn restart_policy_options_parse_and_default_to_supervisords() {
    let c = load_text("[supervisord]\n[program:a]\ncommand=x\n[program:b]\ncommand=x\nbackoff=exponential\nbackoff_max=30\nbackoff_reset=120\nstart_limit_burst=5\nstart_limit_interval=20\n");
    assert_eq!(program(&c, "a").restart, RestartPolicy::default());
    assert_eq!(program(&c, "a").restart.backoff, None, "no pacing beyond supervisord's unless asked");
    let b = &program(&c, "b").restart;
    assert_eq!(b.backoff, Some(Backoff::Exponential));
    assert_eq!((b.backoff_max, b.backoff_reset), (Some(30), 120));
    assert_eq!((b.start_limit_burst, b.start_limit_interval), (Some(5), 20));
    assert_eq!(b.delay(1), 1);
    assert_eq!(b.delay(6), 30);
    let (err, _) = error_of("[supervisord]\n[program:c]\ncommand=x\nbackoff=fast\n");
    let msg = err.to_string();
    assert!(
        msg.contains("backoff") && msg.contains("'fast'") && msg.contains("'linear' or 'exponential'"),
        "{msg}"
    );
}

#[test]
fn requires_and_after_name_programs_and_groups() {
    let c = load_text(
        "[supervisord]\n[program:db]\ncommand=x\n[program:web]\ncommand=x\nrequires=db, cache:*\n\
         after = log\n[program:log]\ncommand=x\n[program:redis]\ncommand=x\n[group:cache]\nprograms=redis\n",
    );
    let web = program(&c, "web");
    assert_eq!(web.requires, vec![Dependency::Program("db".into()), Dependency::Group("cache".into())]);
    assert_eq!(web.after, vec![Dependency::Program("log".into())]);
    assert!(program(&c, "db").requires.is_empty(), "dependencies are opt-in");
    assert!(warnings(&c).is_empty(), "{:?}", warnings(&c));
    assert!(describe(&c).contains("  process web\n"), "{}", describe(&c));
    assert!(describe(&c).contains("    requires=db,cache:* after=log\n"), "{}", describe(&c));
}

#[test]
fn unknown_dependency_is_an_error_at_its_line() {
    let (err, f) = error_of("[supervisord]\n[program:a]\ncommand=x\nrequires=b\n");
    assert_eq!(err.location().line, Some(4));
    assert_eq!(err.to_string(), format!("{f}:4: [program:a] requires: invalid value 'b': expected the name of a program in this configuration (requires= names unknown program b)"));
    let (err, _) = error_of("[supervisord]\n[program:a]\ncommand=x\n\nafter=nogroup:*\n");
    assert_eq!(err.location().line, Some(5));
    assert_eq!(err.message(), "after= names unknown group nogroup:*");
    let (err, _) = error_of("[supervisord]\n[program:a]\ncommand=x\nrequires=g:b\n");
    assert_eq!(err.message(), "invalid dependency 'g:b'");
}

#[test]
fn dependency_cycle_is_an_error_naming_the_cycle() {
    let (err, f) = error_of(
        "[supervisord]\n[program:a]\ncommand=x\nrequires=b\n[program:b]\ncommand=x\nafter=c\n\
         [program:c]\ncommand=x\nrequires=a\n",
    );
    assert_eq!(err.to_string(), format!("{f}:4: [program:a] requires: dependency cycle: a -> b -> c -> a"));
    // Through a group, and a program naming itself.
    let (err, _) = error_of(
        "[supervisord]\n[program:a]\ncommand=x\nafter=g:*\n[program:b]\ncommand=x\n[group:g]\nprograms=a,b\n",
    );
    assert_eq!(err.message(), "dependency cycle: a -> a");
    let (err, _) = error_of("[supervisord]\n[program:a]\ncommand=x\nrequires = a\n");
    assert_eq!(err.message(), "dependency cycle: a -> a");
}
