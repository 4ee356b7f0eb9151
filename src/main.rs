use std::process::ExitCode;

use clap::Parser;
use gpt2_inspect::cli::Cli;

/// jemalloc, configured in .cargo/config.toml to back large buffers (the weights) with
/// transparent huge pages: far fewer page faults while loading.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match gpt2_inspect::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => gpt2_inspect::error::report(&err),
    }
}
