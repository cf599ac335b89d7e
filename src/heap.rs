//! Giving freed heap memory back to the kernel.
//!
//! glibc returns memory only from the top of its heap; a burst of temporary
//! allocations freed in another order (starting thousands of programs at once)
//! leaves free pages in the middle that still count as the daemon's memory.

/// Release the free pages of the heap to the kernel (`malloc_trim`). Costs a walk
/// of the free lists: call it after a burst, not on every request.
pub fn trim() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only changes the allocator's own free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}
