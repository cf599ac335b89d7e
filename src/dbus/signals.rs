//! Turns engine notices into program objects and D-Bus signals.
//!
//! One task per connection: it subscribes before listing the processes (so no
//! change falls between), keeps one object per process of every active group, and
//! emits `ProgramNew`/`ProgramRemoved`/`ProgramOOM` as they come and
//! `ProgramStateChanged` + `PropertiesChanged` through the [`Coalescer`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Instant;

use tokio::sync::broadcast::{self, error::RecvError};
use zbus::names::InterfaceName;
use zbus::object_server::SignalEmitter;
use zbus::Connection;

use crate::engine::{make_namespec, Handle, NameSpec, Notice, ProcessState};

use super::coalesce::{Change, Coalescer};
use super::escape::{program_path, MANAGER_PATH};
use super::manager::Manager;
use super::program::{state_properties, Program, INTERFACE};

/// Program objects currently exported: namespec → (group, process).
type Objects = BTreeMap<String, (String, String)>;

/// Serve program objects and signals until the engine's notices end.
pub async fn run(conn: Connection, handle: Handle, mut notices: broadcast::Receiver<Notice>) {
    let mut objects = Objects::new();
    sync_objects(&conn, &handle, &mut objects, false).await;
    let mut coalescer = Coalescer::default();
    loop {
        let deadline = coalescer.next_deadline();
        tokio::select! {
            n = notices.recv() => match n {
                Ok(notice) => on_notice(&conn, &handle, &mut objects, &mut coalescer, notice).await,
                Err(RecvError::Lagged(lost)) => {
                    // Missed notices: rebuild the object set and announce every
                    // program's current state, so clients converge.
                    tracing::warn!("D-Bus: {lost} engine notices lost; resynchronizing");
                    sync_objects(&conn, &handle, &mut objects, true).await;
                    for (group, name) in objects.values() {
                        emit_properties(&conn, &handle, group, name).await;
                    }
                }
                Err(RecvError::Closed) => break,
            },
            _ = sleep_until(deadline), if deadline.is_some() => {
                for change in coalescer.due(Instant::now()) {
                    emit_change(&conn, &handle, &change).await;
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(d.into()).await;
    }
}

async fn on_notice(
    conn: &Connection,
    handle: &Handle,
    objects: &mut Objects,
    coalescer: &mut Coalescer,
    notice: Notice,
) {
    match notice {
        Notice::ProcessState { group, name, from, to, pid, expected, .. } => {
            let change = Change { group, name, from, to, pid, expected: expected.unwrap_or(false) };
            if let Some(now) = coalescer.offer(change, Instant::now()) {
                emit_change(conn, handle, &now).await;
            }
        }
        Notice::GroupAdded(_) | Notice::GroupRemoved(_) => {
            if let Notice::GroupRemoved(group) = &notice {
                coalescer.forget_group(group);
            }
            sync_objects(conn, handle, objects, true).await;
        }
        Notice::Oom { group, name, .. } => {
            let spec = make_namespec(&group, &name);
            if let Ok(emitter) = SignalEmitter::new(conn, MANAGER_PATH) {
                log_err(Manager::program_oom(&emitter, &spec, program_path(&spec)).await);
            }
            emit_properties(conn, handle, &group, &name).await;
        }
        // The description (health) changed.
        Notice::Unhealthy { group, name, .. } => emit_properties(conn, handle, &group, &name).await,
        Notice::Mood(_)
        | Notice::LimitsChanged { .. }
        | Notice::RemoteCommunication { .. }
        | Notice::Output { .. } => {}
    }
}

/// Make the exported objects match the engine's processes; with `announce`,
/// emit `ProgramNew`/`ProgramRemoved` for the differences.
async fn sync_objects(conn: &Connection, handle: &Handle, objects: &mut Objects, announce: bool) {
    let Ok(all) = handle.all_process_info().await else { return };
    let now: Objects =
        all.into_iter().map(|p| (make_namespec(&p.group, &p.name), (p.group, p.name))).collect();
    let server = conn.object_server();
    let emitter = SignalEmitter::new(conn, MANAGER_PATH).ok();
    for spec in objects.keys().filter(|s| !now.contains_key(*s)) {
        let path = program_path(spec);
        log_err(server.remove::<Program, _>(&path).await.map(drop));
        if let (true, Some(e)) = (announce, &emitter) {
            log_err(Manager::program_removed(e, spec, path).await);
        }
    }
    for (spec, (group, name)) in now.iter().filter(|(s, _)| !objects.contains_key(*s)) {
        let path = program_path(spec);
        let object = Program::new(handle.clone(), group.clone(), name.clone());
        log_err(server.at(&path, object).await.map(drop));
        if let (true, Some(e)) = (announce, &emitter) {
            log_err(Manager::program_new(e, spec, path).await);
        }
    }
    *objects = now;
}

/// `ProgramStateChanged` on the manager and `PropertiesChanged` on the program.
async fn emit_change(conn: &Connection, handle: &Handle, c: &Change) {
    let spec = make_namespec(&c.group, &c.name);
    if let Ok(emitter) = SignalEmitter::new(conn, MANAGER_PATH) {
        let (from, to) = (state_name(c.from), state_name(c.to));
        log_err(
            Manager::program_state_changed(&emitter, &spec, program_path(&spec), from, to, c.pid, c.expected)
                .await,
        );
    }
    emit_properties(conn, handle, &c.group, &c.name).await;
}

fn state_name(s: ProcessState) -> &'static str {
    s.name()
}

/// `PropertiesChanged` with a program's current state properties.
async fn emit_properties(conn: &Connection, handle: &Handle, group: &str, name: &str) {
    let spec = NameSpec { group: group.to_string(), process: Some(name.to_string()) };
    // Gone meanwhile (group removed): its object is gone too.
    let Ok(info) = handle.process_info(spec).await else { return };
    let path = program_path(&make_namespec(group, name));
    let Ok(emitter) = SignalEmitter::new(conn, path) else { return };
    let changed = state_properties(&info);
    log_err(
        zbus::fdo::Properties::properties_changed(
            &emitter,
            InterfaceName::from_static_str_unchecked(INTERFACE),
            changed,
            Cow::Borrowed(&[]),
        )
        .await,
    );
}

fn log_err(r: zbus::Result<()>) {
    if let Err(e) = r {
        tracing::debug!("D-Bus: {e}");
    }
}
