//! CPU priority of background work. In the service, answering a question must stay fast
//! while another tenant ingests a large space on the same cores: ingest and sync steps run
//! on threads with a lower scheduling priority (a higher nice value), and so do the search
//! index's indexing and merge threads, which inherit the priority of the thread that opens
//! the index.

/// Nice value of background threads (0 is normal, 19 the lowest priority).
pub const BACKGROUND_NICE: i32 = 10;

/// Lowers the CPU priority of the calling thread to [`BACKGROUND_NICE`]. On Linux the nice
/// value belongs to the thread, and threads it starts inherit it. Failure only costs
/// responsiveness, so it is logged, not returned.
pub fn lower_current_thread() {
    // SAFETY: gettid and setpriority have no memory-safety preconditions.
    let result = unsafe {
        let thread = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, thread, BACKGROUND_NICE)
    };
    if result != 0 {
        tracing::debug!("cannot lower the priority of a background thread: {}", std::io::Error::last_os_error());
    }
}

/// Runs `work` on a short-lived thread of background priority, so that the threads it
/// starts (tantivy's indexing and merge threads) inherit that priority.
pub fn on_background_thread<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                lower_current_thread();
                work()
            })
            .join()
            .expect("the background thread does not panic")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current_nice() -> i32 {
        // SAFETY: as above.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::syscall(libc::SYS_gettid) as libc::id_t) }
    }

    #[test]
    fn background_threads_and_their_children_run_at_lower_priority() {
        let before = current_nice();
        let (own, child) = on_background_thread(|| (current_nice(), std::thread::spawn(current_nice).join().unwrap()));
        assert_eq!((own, child), (BACKGROUND_NICE, BACKGROUND_NICE));
        assert_eq!(current_nice(), before, "the calling thread keeps its priority");
    }
}
