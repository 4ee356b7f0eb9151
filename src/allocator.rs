//! The allocator and its options, for every binary of the project (the tool and the
//! benchmark), so that they run alike: `gpt2_inspect::allocator!();` at a binary's top level.
//! A macro rather than statics here: a binary always links its own items, while a library's
//! unreferenced object code (the options symbol) may be left out by the linker.

/// Declares jemalloc as the global allocator with the tool's options.
///
/// The options are read at jemalloc's start (`_RJEM_MALLOC_CONF` in the environment still
/// overrides them). Fresh memory is what costs on these machines: activations are backed by
/// transparent huge pages (a 2 MiB page per fault instead of 4 KiB) and freed pages are kept
/// for reuse for 20 s rather than given back to the kernel at once and faulted in again: a
/// one-shot command never gives any back. Kept for ever (the earlier setting), a corpus run's
/// batches of varying sizes left freed extents that no later request fitted: `score` over
/// 519 lines peaked at 1.26 GB; with the 20 s decay 0.73 GB, as fast (measured side by side,
/// also `next` and `generate`). In the code, not in build flags, so that `cargo install`
/// builds the same binary.
#[macro_export]
macro_rules! allocator {
    () => {
        #[global_allocator]
        static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

        #[allow(non_upper_case_globals)]
        #[export_name = "_rjem_malloc_conf"]
        pub static malloc_conf: &[u8] =
            b"thp:always,metadata_thp:auto,dirty_decay_ms:20000,muzzy_decay_ms:-1\0";
    };
}
