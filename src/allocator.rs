//! The server's allocator is mimalloc (BENCHMARKS.md: a quarter fewer instructions per request
//! than glibc's). mimalloc keeps freed memory in each thread's heap for reuse; after a large
//! review (up to 3 MiB of body and a few MiB of pod) that memory would stay resident long after
//! the answer, and a few in a row pushed the peak RSS towards the Deployment's limit.

/// Return this thread's free memory to the OS now. Called on the blocking pool after each large
/// review, never on the hot path of normal-sized ones.
pub fn release_free_memory() {
    // SAFETY: `mi_collect` takes no pointers and may be called from any thread at any time; it
    // only frees memory mimalloc itself holds unused.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
