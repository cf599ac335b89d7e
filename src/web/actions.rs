//! `POST /api/action`: start, stop, restart, clear log, and the "all" variants.
//!
//! The body is a form (`action`, `name`, and optionally the `csrf` token);
//! the CSRF checks of [`super::csrf`] run before anything else. Each action
//! is one or two engine commands; the answer is JSON `{ok, message}` with
//! supervisord's web UI wording. Starts do not wait for RUNNING and the page
//! learns the outcome from the event stream; a restart waits for the stop,
//! so the start cannot race it.

use std::collections::HashMap;

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{csrf, Web};
use crate::engine::{Fault, FaultCode, NameSpec, OpResult, Target};

/// What the page asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start one process or group.
    Start(NameSpec),
    /// Stop one process or group.
    Stop(NameSpec),
    /// Stop, then start.
    Restart(NameSpec),
    /// Clear its logs.
    ClearLog(NameSpec),
    /// Start everything.
    StartAll,
    /// Stop everything.
    StopAll,
    /// Stop everything, then start everything.
    RestartAll,
}

/// Why a form does not name an action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// `action` is not one of the known names.
    #[error("unknown action {0:?}")]
    Unknown(String),
    /// A per-process action without `name`.
    #[error("action {0} needs a process name")]
    NoName(String),
}

impl Action {
    /// Read `action` and `name` from a form.
    pub fn from_form(form: &HashMap<String, String>) -> Result<Action, ActionError> {
        let action = form.get("action").map(String::as_str).unwrap_or_default();
        let name = form.get("name").map(|n| n.trim()).filter(|n| !n.is_empty());
        let spec = || name.map(NameSpec::parse).ok_or_else(|| ActionError::NoName(action.to_string()));
        Ok(match action {
            "start" => Action::Start(spec()?),
            "stop" => Action::Stop(spec()?),
            "restart" => Action::Restart(spec()?),
            "clearlog" => Action::ClearLog(spec()?),
            "startall" => Action::StartAll,
            "stopall" => Action::StopAll,
            "restartall" => Action::RestartAll,
            other => return Err(ActionError::Unknown(other.to_string())),
        })
    }
}

/// The JSON answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// Whether every part succeeded.
    pub ok: bool,
    /// What happened, for the page's message line.
    pub message: String,
}

fn spec_text(spec: &NameSpec) -> String {
    match &spec.process {
        Some(p) => crate::engine::make_namespec(&spec.group, p),
        None => format!("{}:*", spec.group),
    }
}

/// The first failure in a group/all result array, if any.
fn first_failure(results: &[OpResult]) -> Option<String> {
    results.iter().find(|r| r.status != FaultCode::Success).map(|r| format!("{}: {}", r.name, r.description))
}

fn settle(result: Result<Vec<OpResult>, Fault>, done: String, what: &str) -> Outcome {
    match result {
        Ok(results) => match first_failure(&results) {
            None => Outcome { ok: true, message: done },
            Some(f) => Outcome { ok: false, message: format!("ERROR: {what}: {f}") },
        },
        Err(fault) => Outcome { ok: false, message: format!("ERROR: {what}: {}", fault.text()) },
    }
}

/// Carry out an action through the engine.
pub async fn perform(web: &Web, action: Action) -> Outcome {
    let h = &web.handle;
    match action {
        Action::Start(spec) => {
            let name = spec_text(&spec);
            settle(h.start(spec.into(), false).await, format!("Process {name} started"), &name)
        }
        Action::Stop(spec) => {
            let name = spec_text(&spec);
            settle(h.stop(spec.into(), false).await, format!("Process {name} stopped"), &name)
        }
        Action::Restart(spec) => {
            let name = spec_text(&spec);
            let target: Target = spec.into();
            // Not running is fine for a restart: supervisord's UI ignores stop errors too.
            match h.stop(target.clone(), true).await {
                Err(f) if f.code != FaultCode::NotRunning => {
                    return Outcome { ok: false, message: format!("ERROR: {name}: {}", f.text()) }
                }
                _ => {}
            }
            settle(h.start(target, false).await, format!("Process {name} restarted"), &name)
        }
        Action::ClearLog(spec) => {
            let name = spec_text(&spec);
            settle(h.clear_logs(spec.into()).await, format!("Log for {name} cleared"), &name)
        }
        Action::StartAll => settle(h.start(Target::All, false).await, "All started".into(), "start all"),
        Action::StopAll => settle(h.stop(Target::All, false).await, "All stopped".into(), "stop all"),
        Action::RestartAll => {
            let stopped = h.stop(Target::All, true).await;
            if let Err(f) = stopped {
                return Outcome { ok: false, message: format!("ERROR: restart all: {}", f.text()) };
            }
            settle(h.start(Target::All, false).await, "All restarted".into(), "restart all")
        }
    }
}

/// `POST /api/action`.
pub async fn post(
    State(web): State<Web>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(e) = web.csrf.check(&headers, form.get(csrf::FIELD).map(String::as_str)) {
        tracing::warn!("web action refused: {e}");
        return (StatusCode::FORBIDDEN, axum::Json(Outcome { ok: false, message: e.to_string() }))
            .into_response();
    }
    let action = match Action::from_form(&form) {
        Ok(a) => a,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, axum::Json(Outcome { ok: false, message: e.to_string() }))
                .into_response()
        }
    };
    let outcome = perform(&web, action).await;
    axum::Json(outcome).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn forms_name_actions() {
        assert_eq!(
            Action::from_form(&form(&[("action", "start"), ("name", "g:p")])),
            Ok(Action::Start(NameSpec::parse("g:p")))
        );
        assert_eq!(Action::from_form(&form(&[("action", "stopall")])), Ok(Action::StopAll));
        assert_eq!(Action::from_form(&form(&[("action", "stop")])), Err(ActionError::NoName("stop".into())));
        assert_eq!(
            Action::from_form(&form(&[("action", "reboot"), ("name", "x")])),
            Err(ActionError::Unknown("reboot".into()))
        );
        assert_eq!(spec_text(&NameSpec::parse("g:*")), "g:*");
        assert_eq!(spec_text(&NameSpec::parse("web")), "web");
    }
}
