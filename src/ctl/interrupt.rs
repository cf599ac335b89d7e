//! Ctrl-C while streaming: a flag instead of death.
//!
//! supervisorctl catches `KeyboardInterrupt` in `tail -f`, `maintail -f` and
//! `fg` and carries on (prints a newline or `Exiting foreground`, exit 0).
//! [`Guard`] installs a SIGINT handler that only sets a flag for as long as a
//! stream runs; blocking reads wake periodically to look at it.

use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// While alive, SIGINT sets a flag instead of ending the process.
pub struct Guard {
    previous: Option<SigAction>,
}

impl Guard {
    /// Install the flag-setting handler (no `SA_RESTART`, so blocking calls return `EINTR`).
    pub fn install() -> Guard {
        INTERRUPTED.store(false, Ordering::SeqCst);
        let action = SigAction::new(SigHandler::Handler(on_sigint), SaFlags::empty(), SigSet::empty());
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let previous = unsafe { sigaction(Signal::SIGINT, &action) }.ok();
        Guard { previous }
    }

    /// Whether Ctrl-C was pressed since [`Guard::install`].
    pub fn interrupted(&self) -> bool {
        INTERRUPTED.load(Ordering::SeqCst)
    }
}

/// Whether Ctrl-C was pressed while a [`Guard`] is installed (for threads without the guard).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(previous) = &self.previous {
            // SAFETY: restoring the action that was in place before.
            let _ = unsafe { sigaction(Signal::SIGINT, previous) };
        }
    }
}
