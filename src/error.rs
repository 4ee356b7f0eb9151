//! Exit codes: 0 success, 2 command-line misuse, 1 everything else.

use std::fmt;
use std::io;
use std::process::ExitCode;

/// An error in how the tool was called (a value out of range, options that conflict).
/// Maps to exit code 2, like clap's own parse errors.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// Prints the error chain on one line of stderr and picks the exit code. A closed stdout
/// (`| head`) is not an error.
pub fn report(err: &anyhow::Error) -> ExitCode {
    let broken_pipe = err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    if std::env::var_os("GPT2_INSPECT_BACKTRACE").is_some() {
        eprintln!("error: {err:?}");
    } else {
        eprintln!("error: {err:#}");
    }
    if err.chain().any(|e| e.is::<UsageError>()) {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}
