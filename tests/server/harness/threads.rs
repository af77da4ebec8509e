//! Threads in tests.

/// Joins a scoped thread, re-raising its panic in the caller (so the test fails with it).
pub fn join<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
}
