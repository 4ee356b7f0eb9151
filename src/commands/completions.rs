//! `completions`: the shell's completion script, generated from the same clap definition as
//! `--help`, so it cannot drift from it. Needs no model.

use std::io::Write;

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};

pub fn run(args: &CompletionsArgs, out: &mut dyn Write) -> Result<()> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "gpt2-inspect", out);
    Ok(())
}
