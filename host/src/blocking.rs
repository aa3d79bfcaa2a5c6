//! Calls that block (a read or write of the store or the index: disk, or a round trip to a
//! shared database) made from async code, run where blocking is allowed.

/// Runs `call` in place: on a multi-threaded runtime its worker thread first hands its other
/// tasks to another thread, so that they do not wait for the call (elsewhere it just runs).
/// For calls that borrow what the caller holds.
pub(crate) fn blocking<T>(call: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(call)
        }
        _ => call(),
    }
}

/// Runs `work` on the runtime's blocking threads and waits for its outcome.
pub(crate) async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work).await?
}

/// Starts `work` on the runtime's blocking threads without waiting for it (in place when
/// there is no runtime): for what must happen but nobody waits on, such as giving a lease
/// back from a `Drop`.
pub(crate) fn in_background(work: impl FnOnce() + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn_blocking(work)),
        Err(_) => work(),
    }
}
