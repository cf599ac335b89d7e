//! Method dispatch: `supervisor.*`, `system.*` and `corral.*`.
//!
//! Each method validates its arguments, asks the engine through the
//! [`Handle`] and renders the reply. Nothing here holds process state; a
//! deferred reply (`startProcess(wait=true)`) is just an awaited future, so a
//! slow call never blocks other clients.

use std::path::PathBuf;
use std::sync::Arc;

use dxr::Value;

use super::catalog;
use super::codec::{int, text, text_from_bytes};
use super::logread::{self, ReadError};
use super::params::{incorrect, Params};
use super::structs;
use super::ServerContext;
use crate::engine::{Channel, Fault, FaultCode, Handle, Mood, NameSpec, OpResult, Target};

/// Answers method calls against an engine [`Handle`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    handle: Handle,
    ctx: Arc<ServerContext>,
}

fn fault(code: FaultCode, detail: impl Into<String>) -> Fault {
    Fault::new(code, detail)
}

/// Faults whose detail supervisord fills with the namespec exactly as the client sent it.
fn with_given_name(mut f: Fault, name: &str) -> Fault {
    if matches!(
        f.code,
        FaultCode::BadName
            | FaultCode::AlreadyStarted
            | FaultCode::NotRunning
            | FaultCode::SpawnError
            | FaultCode::AbnormalTermination
    ) {
        // corral adds a reason after `: ` (a failed dependency); the name is still the client's.
        let reason = f.detail.as_deref().and_then(|d| d.split_once(": ")).map(|(_, r)| r.to_string());
        f.detail = Some(match reason {
            Some(r) => format!("{name}: {r}"),
            None => name.to_string(),
        });
    }
    f
}

fn read_fault(e: ReadError) -> Fault {
    match e {
        ReadError::BadArguments => Fault::bare(FaultCode::BadArguments),
        ReadError::Failed(_) => Fault::bare(FaultCode::Failed),
    }
}

/// Read a log file off the async runtime (files can be large).
async fn read_file(path: PathBuf, offset: i64, length: i64) -> Result<Vec<u8>, Fault> {
    tokio::task::spawn_blocking(move || logread::read_log(&path, offset, length))
        .await
        .map_err(|_| Fault::bare(FaultCode::Failed))?
        .map_err(read_fault)
}

impl Dispatcher {
    /// A dispatcher for one engine.
    pub fn new(handle: Handle, ctx: Arc<ServerContext>) -> Dispatcher {
        Dispatcher { handle, ctx }
    }

    /// Answer one call. Unknown or malformed names give `UNKNOWN_METHOD`.
    pub async fn call(&self, method: &str, params: &[Value]) -> Result<Value, Fault> {
        if method == "system.multicall" {
            return self.multicall(params).await;
        }
        self.call_one(method, params).await
    }

    /// supervisord's `traverse` rules: exactly `ns.method`, no leading underscore, published.
    fn check_name(method: &str) -> Result<(), Fault> {
        let mut parts = method.split('.');
        let (Some(_), Some(m), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Fault::bare(FaultCode::UnknownMethod));
        };
        if m.starts_with('_') || catalog::find(method).is_none() {
            return Err(Fault::bare(FaultCode::UnknownMethod));
        }
        Ok(())
    }

    /// supervisord's `_update`: refuse while shutting down or restarting.
    async fn check_mood(&self) -> Result<(), Fault> {
        match self.handle.info().await {
            Ok(info) if info.mood == Mood::Running => Ok(()),
            _ => Err(Fault::bare(FaultCode::ShutdownState)),
        }
    }

    async fn multicall(&self, params: &[Value]) -> Result<Value, Fault> {
        let p = Params(params);
        p.arity(1, 1)?;
        let Some(Value::Array(calls)) = params.first() else {
            return Err(incorrect());
        };
        let mut results = Vec::with_capacity(calls.len());
        // Sequential on purpose: supervisord finishes (and awaits) each call before the next.
        for call in calls {
            let outcome = match call {
                Value::Struct(members) => match members.get("methodName") {
                    None => Err(fault(FaultCode::IncorrectParameters, "No methodName")),
                    Some(Value::String(name)) if name == "system.multicall" => {
                        Err(fault(FaultCode::IncorrectParameters, "Recursive system.multicall forbidden"))
                    }
                    Some(Value::String(name)) => match members.get("params") {
                        None => self.call_one(name, &[]).await,
                        Some(Value::Array(args)) => self.call_one(name, args).await,
                        Some(_) => Err(incorrect()),
                    },
                    Some(_) => Err(Fault::bare(FaultCode::UnknownMethod)),
                },
                _ => Err(fault(FaultCode::Failed, "call is not a struct")),
            };
            results.push(match outcome {
                Ok(v) => v,
                Err(f) => fault_struct(&f),
            });
        }
        Ok(Value::Array(results))
    }

    async fn call_one(&self, method: &str, params: &[Value]) -> Result<Value, Fault> {
        Self::check_name(method)?;
        let p = Params(params);
        match method {
            "system.listMethods" => {
                p.arity(0, 0)?;
                Ok(Value::Array(catalog::sorted_names().into_iter().map(text).collect()))
            }
            "system.methodHelp" => {
                p.arity(1, 1)?;
                let name = p.string(0)?;
                catalog::find(&name)
                    .map(|m| text(m.help))
                    .ok_or_else(|| Fault::bare(FaultCode::SignatureUnsupported))
            }
            "system.methodSignature" => {
                p.arity(1, 1)?;
                let name = p.string(0)?;
                catalog::find(&name)
                    .and_then(|m| catalog::signature(m.help))
                    .map(|sig| Value::Array(sig.into_iter().map(text).collect()))
                    .ok_or_else(|| Fault::bare(FaultCode::SignatureUnsupported))
            }
            m if m.starts_with("supervisor.") => self.supervisor(&m["supervisor.".len()..], p).await,
            m if m.starts_with("corral.") => self.corral(&m["corral.".len()..], p).await,
            _ => Err(Fault::bare(FaultCode::UnknownMethod)),
        }
    }

    async fn supervisor(&self, method: &str, p: Params<'_>) -> Result<Value, Fault> {
        // Mood exceptions as supervisord: sendRemoteCommEvent never checks,
        // signalAllProcesses checks only after acting.
        if !matches!(method, "sendRemoteCommEvent" | "signalAllProcesses") {
            self.check_mood().await?;
        }
        let h = &self.handle;
        match method {
            "getAPIVersion" | "getVersion" => {
                p.arity(0, 0)?;
                Ok(text(super::API_VERSION))
            }
            "getSupervisorVersion" => {
                p.arity(0, 0)?;
                Ok(text(&self.ctx.supervisor_version))
            }
            "getIdentification" => {
                p.arity(0, 0)?;
                Ok(text(h.info().await?.identifier))
            }
            "getState" => {
                p.arity(0, 0)?;
                let mood = h.info().await?.mood;
                Ok(Value::Struct(
                    [
                        ("statecode".to_string(), int(i64::from(mood.code()))),
                        ("statename".to_string(), text(mood.name())),
                    ]
                    .into_iter()
                    .collect(),
                ))
            }
            "getPID" => {
                p.arity(0, 0)?;
                Ok(int(i64::from(self.ctx.pid)))
            }
            "readLog" | "readMainLog" => {
                p.arity(2, 2)?;
                let (offset, length) = (p.int(0)?, p.int(1)?);
                let path = match h.info().await?.main_log {
                    None => return Err(fault(FaultCode::NoFile, "None")),
                    Some(path) if !path.exists() => {
                        return Err(fault(FaultCode::NoFile, path.to_string_lossy()))
                    }
                    Some(path) => path,
                };
                Ok(text_from_bytes(&read_file(path, offset, length).await?))
            }
            "clearLog" => {
                p.arity(0, 0)?;
                h.clear_main_log().await?;
                Ok(Value::Boolean(true))
            }
            "shutdown" => {
                p.arity(0, 0)?;
                h.shutdown().await?;
                Ok(Value::Boolean(true))
            }
            "restart" => {
                p.arity(0, 0)?;
                h.restart().await?;
                Ok(Value::Boolean(true))
            }
            "reloadConfig" => {
                p.arity(0, 0)?;
                let diff = h.reread().await?;
                let names = |v: &[String]| Value::Array(v.iter().map(text).collect());
                Ok(Value::Array(vec![Value::Array(vec![
                    names(&diff.added),
                    names(&diff.changed),
                    names(&diff.removed),
                ])]))
            }
            "addProcessGroup" => {
                p.arity(1, 1)?;
                h.add_group(p.string(0)?).await?;
                Ok(Value::Boolean(true))
            }
            "removeProcessGroup" => {
                p.arity(1, 1)?;
                h.remove_group(p.string(0)?).await?;
                Ok(Value::Boolean(true))
            }
            "startProcess" | "stopProcess" => {
                p.arity(1, 2)?;
                let name = p.string(0)?;
                let wait = p.truthy(1, true);
                let start = method == "startProcess";
                let target = Target::from(NameSpec::parse(&name));
                let single = matches!(target, Target::Process { .. });
                let res = if start { h.start(target, wait).await } else { h.stop(target, wait).await };
                let res = res.map_err(|f| with_given_name(f, &name))?;
                if single {
                    // One process: supervisord answers true or a fault, never an array.
                    match res.into_iter().find(|r| r.status != FaultCode::Success) {
                        Some(r) => Err(op_fault(&r, &name)),
                        None => Ok(Value::Boolean(true)),
                    }
                } else {
                    Ok(structs::op_results(&res))
                }
            }
            "startProcessGroup" | "stopProcessGroup" => {
                p.arity(1, 2)?;
                let name = p.string(0)?;
                let wait = p.truthy(1, true);
                let target = Target::Group(name.clone());
                let res = if method == "startProcessGroup" {
                    h.start(target, wait).await
                } else {
                    h.stop(target, wait).await
                };
                Ok(structs::op_results(&res.map_err(|f| with_given_name(f, &name))?))
            }
            "startAllProcesses" | "stopAllProcesses" => {
                p.arity(0, 1)?;
                let wait = p.truthy(0, true);
                let res = if method == "startAllProcesses" {
                    h.start(Target::All, wait).await?
                } else {
                    h.stop(Target::All, wait).await?
                };
                Ok(structs::op_results(&res))
            }
            "signalProcess" => {
                p.arity(2, 2)?;
                let name = p.string(0)?;
                let signal = p.signal(1)?;
                let target = Target::from(NameSpec::parse(&name));
                let single = matches!(target, Target::Process { .. });
                let res = h.signal(target, signal).await.map_err(|f| with_given_name(f, &name))?;
                if single {
                    match res.into_iter().find(|r| r.status != FaultCode::Success) {
                        Some(r) => Err(op_fault(&r, &name)),
                        None => Ok(Value::Boolean(true)),
                    }
                } else {
                    // Delegated to signalProcessGroup, which re-checks the mood after acting.
                    self.check_mood().await?;
                    Ok(structs::op_results(&res))
                }
            }
            "signalProcessGroup" => {
                p.arity(2, 2)?;
                let name = p.string(0)?;
                let signal = p.signal(1)?;
                let res = h
                    .signal(Target::Group(name.clone()), signal)
                    .await
                    .map_err(|f| with_given_name(f, &name))?;
                self.check_mood().await?;
                Ok(structs::op_results(&res))
            }
            "signalAllProcesses" => {
                p.arity(1, 1)?;
                let signal = p.signal(0)?;
                let res = h.signal(Target::All, signal).await?;
                self.check_mood().await?;
                Ok(structs::op_results(&res))
            }
            "getAllConfigInfo" => {
                p.arity(0, 0)?;
                let mut all = h.all_config_info().await?;
                // supervisord sorts by process name only (stable, so group order breaks ties).
                all.sort_by(|a, b| a.process.name.cmp(&b.process.name));
                Ok(Value::Array(all.iter().map(structs::config_info).collect()))
            }
            "getProcessInfo" => {
                p.arity(1, 1)?;
                let name = p.string(0)?;
                let spec = process_spec(&name)?;
                let info = h.process_info(spec).await.map_err(|f| with_given_name(f, &name))?;
                Ok(structs::process_info(&info))
            }
            "getAllProcessInfo" => {
                p.arity(0, 0)?;
                let mut all = h.all_process_info().await?;
                all.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
                Ok(Value::Array(all.iter().map(structs::process_info).collect()))
            }
            "readProcessStdoutLog" | "readProcessLog" | "readProcessStderrLog" => {
                p.arity(3, 3)?;
                let name = p.string(0)?;
                let (offset, length) = (p.int(1)?, p.int(2)?);
                let channel =
                    if method == "readProcessStderrLog" { Channel::Stderr } else { Channel::Stdout };
                let spec = process_spec(&name)?;
                let path = match h.log_path(spec, channel).await.map_err(|f| with_given_name(f, &name))? {
                    None => return Err(fault(FaultCode::NoFile, "None")),
                    Some(path) if !path.exists() => {
                        return Err(fault(FaultCode::NoFile, path.to_string_lossy()))
                    }
                    Some(path) => path,
                };
                Ok(text_from_bytes(&read_file(path, offset, length).await?))
            }
            "tailProcessStdoutLog" | "tailProcessLog" | "tailProcessStderrLog" => {
                p.arity(3, 3)?;
                let name = p.string(0)?;
                let (offset, length) = (p.int(1)?, p.int(2)?);
                let channel =
                    if method == "tailProcessStderrLog" { Channel::Stderr } else { Channel::Stdout };
                let spec = process_spec(&name)?;
                let empty = Value::Array(vec![text(""), int(0), Value::Boolean(false)]);
                let Some(path) = h.log_path(spec, channel).await.map_err(|f| with_given_name(f, &name))?
                else {
                    return Ok(empty);
                };
                if !path.exists() {
                    return Ok(empty);
                }
                let tail = tokio::task::spawn_blocking(move || logread::tail_log(&path, offset, length))
                    .await
                    .map_err(|_| Fault::bare(FaultCode::Failed))?;
                Ok(Value::Array(vec![
                    text_from_bytes(&tail.data),
                    int(tail.offset),
                    Value::Boolean(tail.overflow),
                ]))
            }
            "clearProcessLogs" | "clearProcessLog" => {
                p.arity(1, 1)?;
                let name = p.string(0)?;
                let spec = process_spec(&name)?;
                let res = h.clear_logs(Target::from(spec)).await.map_err(|f| with_given_name(f, &name))?;
                match res.into_iter().find(|r| r.status != FaultCode::Success) {
                    // supervisord: FAILED with the name when removing the logs fails.
                    Some(r) => Err(Fault { code: r.status, detail: Some(name) }),
                    None => Ok(Value::Boolean(true)),
                }
            }
            "clearAllProcessLogs" => {
                p.arity(0, 0)?;
                Ok(structs::op_results(&h.clear_logs(Target::All).await?))
            }
            "sendProcessStdin" => {
                p.arity(2, 2)?;
                let name = p.string(0)?;
                let chars = match p.0.get(1) {
                    Some(Value::String(s)) => s.clone().into_bytes(),
                    Some(Value::Base64(b)) => b.clone(),
                    Some(other) => return Err(fault(FaultCode::IncorrectParameters, python_repr(other))),
                    None => return Err(incorrect()),
                };
                let spec = process_spec(&name)?;
                h.send_stdin(spec, chars).await.map_err(|f| with_given_name(f, &name))?;
                Ok(Value::Boolean(true))
            }
            "sendRemoteCommEvent" => {
                p.arity(2, 2)?;
                h.remote_comm_event(p.string(0)?, p.string(1)?).await?;
                Ok(Value::Boolean(true))
            }
            _ => Err(Fault::bare(FaultCode::UnknownMethod)),
        }
    }

    async fn corral(&self, method: &str, p: Params<'_>) -> Result<Value, Fault> {
        let h = &self.handle;
        match method {
            "getVersion" => {
                p.arity(0, 0)?;
                Ok(text(env!("CARGO_PKG_VERSION")))
            }
            "getCgroupMode" => {
                p.arity(0, 0)?;
                Ok(text(h.info().await?.cgroup_mode))
            }
            "getProcessCgroup" | "getOomKills" => {
                p.arity(1, 1)?;
                let name = p.string(0)?;
                let info =
                    h.process_info(process_spec(&name)?).await.map_err(|f| with_given_name(f, &name))?;
                Ok(if method == "getOomKills" {
                    int(i64::try_from(info.oom_kills).unwrap_or(i64::MAX))
                } else {
                    text(info.cgroup.unwrap_or_default())
                })
            }
            "getProcessStats" => {
                p.arity(1, 1)?;
                let name = p.string(0)?;
                let stats =
                    h.stats(Some(process_spec(&name)?)).await.map_err(|f| with_given_name(f, &name))?;
                stats.first().map(structs::process_stats).ok_or_else(|| fault(FaultCode::BadName, &name))
            }
            "getAllProcessStats" => {
                p.arity(0, 0)?;
                Ok(Value::Array(h.stats(None).await?.iter().map(structs::process_stats).collect()))
            }
            "getLimits" => {
                p.arity(1, 1)?;
                let name = p.string(0)?;
                let l = h.limits(process_spec(&name)?).await.map_err(|f| with_given_name(f, &name))?;
                Ok(structs::limits(&l))
            }
            "setLimits" => {
                p.arity(2, 2)?;
                let name = p.string(0)?;
                let Some(Value::Struct(changes)) = p.0.get(1) else {
                    return Err(crate::rpc::params::incorrect());
                };
                let spec = process_spec(&name)?;
                let mut l = h.limits(spec.clone()).await.map_err(|f| with_given_name(f, &name))?;
                structs::update_limits(&mut l, changes)
                    .map_err(|e| Fault::new(FaultCode::BadArguments, e))?;
                let l = h.set_limits(spec, l).await.map_err(|f| with_given_name(f, &name))?;
                Ok(structs::limits(&l))
            }
            "freezeProcess" | "thawProcess" => {
                p.arity(1, 1)?;
                let name = p.string(0)?;
                let spec = process_spec(&name)?;
                h.freeze(spec.into(), method == "freezeProcess")
                    .await
                    .map_err(|f| with_given_name(f, &name))?;
                Ok(Value::Boolean(true))
            }
            "reexec" => {
                p.arity(0, 0)?;
                h.reexec().await?;
                Ok(Value::Boolean(true))
            }
            _ => Err(Fault::bare(FaultCode::UnknownMethod)),
        }
    }
}

/// A namespec that must name one process (`g:*` is `BAD_NAME`, as supervisord).
fn process_spec(name: &str) -> Result<NameSpec, Fault> {
    let spec = NameSpec::parse(name);
    if spec.process.is_none() {
        return Err(fault(FaultCode::BadName, name));
    }
    Ok(spec)
}

/// A failed single-process result entry as the fault supervisord raises for it.
fn op_fault(r: &OpResult, name: &str) -> Fault {
    let detail = r.description.split_once(": ").map(|(_, d)| d.to_string());
    with_given_name(Fault { code: r.status, detail }, name)
}

/// `{faultCode, faultString}` as multicall reports a failed call.
pub fn fault_struct(f: &Fault) -> Value {
    Value::Struct(
        [("faultCode".to_string(), int(f.code as i64)), ("faultString".to_string(), text(f.text()))]
            .into_iter()
            .collect(),
    )
}

/// Roughly Python's `repr()` of a non-string argument, for `INCORRECT_PARAMETERS: <chars>`.
fn python_repr(v: &Value) -> String {
    match v {
        Value::Integer(i) => i.to_string(),
        Value::Long(i) => i.to_string(),
        Value::Boolean(b) => if *b { "True" } else { "False" }.to_string(),
        Value::Double(d) => d.to_string(),
        Value::Nil => "None".to_string(),
        _ => "<non-string value>".to_string(),
    }
}
