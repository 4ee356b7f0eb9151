use std::process::ExitCode;

use clap::Parser;
use gpt2_inspect::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match gpt2_inspect::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => gpt2_inspect::error::report(&err),
    }
}
