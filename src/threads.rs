//! Where the work runs: on a worker of rayon's global pool, for every binary of the project
//! (the tool and the in-process benchmark), so that they run alike.
//!
//! Every parallel operation of the model (a matmul, a layer norm, a softmax) is a rayon job.
//! Called from a thread outside the pool, each one is handed to the pool and waited for: two
//! context switches per operation, hundreds per generated token (`generate -n 64`: 27,900
//! context switches; run on a worker: 3,000). On a worker it is pushed on that worker's own
//! queue, run in place when small, and shared with the other workers when not.

/// Counts the threads to use once, for the whole process. candle asks for its thread count at
/// every matmul, and without RAYON_NUM_THREADS it counts physical cores by reading
/// /proc/cpuinfo each time (70 reads per generated token): the count goes into
/// RAYON_NUM_THREADS. Call it first in `main`, before any thread starts (the environment is
/// not to be written while another thread may read it).
pub fn count_once() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = candle_core::utils::get_num_threads();
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
}

/// Runs `work` on a worker of rayon's global pool and returns what it returns. The pool is
/// built here with as many threads as candle uses, two at least: `work` may wait for a
/// thread of its own (reading weights) whose parallel work then needs another worker. A
/// pool built before (a test binary's, on first use) is used as it is; with one thread,
/// `work` runs on this thread instead.
pub fn on_the_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    let threads = candle_core::utils::get_num_threads();
    // An error means the global pool exists already.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(2))
        .stack_size(16 << 20)
        .build_global();
    match rayon::current_num_threads() {
        n if n >= 2 => rayon::scope(|_| work()),
        _ => work(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_work_runs_on_a_worker_and_returns_its_value() {
        let on_worker = super::on_the_pool(|| rayon::current_thread_index().is_some());
        assert_eq!(on_worker, rayon::current_num_threads() >= 2);
        assert_eq!(super::on_the_pool(|| 6 * 7), 42);
    }
}
