//! Giving freed heap memory back to the kernel.
//!
//! glibc returns memory only from the top of its heap; a burst of temporary
//! allocations freed in another order (starting thousands of programs at once)
//! leaves free pages in the middle that still count as the daemon's memory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long [`trim_soon`] waits: a burst of calls (a client polling the status of
/// every process) is followed by one trim, not one per call.
const TRIM_DELAY: Duration = Duration::from_millis(500);

static TRIM_PENDING: AtomicBool = AtomicBool::new(false);

/// Trim once the current burst of work is over: at most one trim per
/// [`TRIM_DELAY`], run on the tokio runtime this is called from.
pub fn trim_soon() {
    if TRIM_PENDING.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(async {
        tokio::time::sleep(TRIM_DELAY).await;
        TRIM_PENDING.store(false, Ordering::Release);
        trim();
    });
}

/// Release the free pages of the heap to the kernel (`malloc_trim`). Costs a walk
/// of the free lists: call it after a burst, not on every request.
pub fn trim() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only changes the allocator's own free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}
