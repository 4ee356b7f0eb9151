use std::process::ExitCode;

use gpt2_inspect::cli::Cli;

gpt2_inspect::allocator!();

fn main() -> ExitCode {
    // Errors are one line: no library backtraces (candle appends them to its errors when
    // RUST_BACKTRACE is set) unless GPT2_INSPECT_BACKTRACE asks. Set before any thread.
    if std::env::var_os("GPT2_INSPECT_BACKTRACE").is_some() {
        std::env::set_var("RUST_LIB_BACKTRACE", "1");
    } else {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    gpt2_inspect::threads::count_once();
    let (cli, warnings) = Cli::parse_and_check();
    for w in warnings {
        eprintln!("warning: {w}");
    }
    let temps = match gpt2_inspect::signals::TempFiles::on_signals() {
        Ok(t) => t,
        Err(err) => return gpt2_inspect::error::report(&err),
    };
    // On a worker of rayon's pool: the model's parallel operations stay on its threads. The
    // server waits for requests on its own threads and leaves the pool's to them.
    let result = match cli.command {
        gpt2_inspect::cli::Command::Serve(_) => gpt2_inspect::commands::run(cli, temps),
        _ => gpt2_inspect::threads::on_the_pool(|| gpt2_inspect::commands::run(cli, temps)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => gpt2_inspect::error::report(&err),
    }
}
