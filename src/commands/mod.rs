//! One module per subcommand, and the dispatch: arguments → request → report → printer.
//! What commands share (the session, texts, checks, output files) is in `crate::session`.

// One module per command (dispatched by `commands!` below).
mod ablate;
mod attention;
mod attribute;
mod circuit;
mod completions;
mod dump;
mod embed;
mod feature;
mod feature_shards;
mod features;
mod generate;
mod graph;
mod heads;
mod hidden;
mod hooks;
mod info;
mod lens;
mod lens_fit;
mod man;
mod merge;
mod next;
mod patch;
mod report;
mod saliency;
mod score;
mod score_shards;
mod serve;
mod tokenize;
mod trace;
mod transcode;

use std::io::{self, Write};

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::session::output::Stdout;
use crate::session::Session;
use crate::signals::TempFiles;

/// Every subcommand: its [`Command`] variant and its module, whose `run(session, args,
/// out)` does the work. Adding a command is a file in this directory, its `mod` line above
/// (outside the macro, where rustfmt sees it), a line here, a variant in `cli/` and a
/// renderer (docs/ARCHITECTURE.md, "Where to add").
macro_rules! commands {
    ($($variant:ident => $module:ident),* $(,)?) => {
        /// Runs `command` with `session`, printing to `out` as `session.output` says: the
        /// command line's path, and a server's, which keeps one session and hands each
        /// request a clone with its own output.
        pub fn dispatch(session: &Session, command: &Command, out: &mut dyn Write) -> Result<()> {
            match command {
                $(Command::$variant(args) => $module::run(session, args, out),)*
                Command::Completions(args) => completions::run(args, out),
                Command::Man(args) => man::run(args, &session.temps, out),
            }
        }
    };
}

commands! {
    Tokenize => tokenize,
    Next => next,
    Attention => attention,
    Info => info,
    Trace => trace,
    Embed => embed,
    Hidden => hidden,
    Lens => lens,
    Hooks => hooks,
    Dump => dump,
    Score => score,
    Generate => generate,
    Report => report,
    Patch => patch,
    Circuit => circuit,
    Ablate => ablate,
    Attribute => attribute,
    Features => features,
    Feature => feature,
    Graph => graph,
    Transcode => transcode,
    Saliency => saliency,
    Heads => heads,
    Merge => merge,
    Serve => serve,
}

pub fn run(cli: Cli, temps: TempFiles) -> Result<()> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(Stdout(stdout.lock()));
    match &cli.command {
        Command::Completions(args) => completions::run(args, &mut out)?,
        Command::Man(args) => man::run(args, &temps, &mut out)?,
        command => dispatch(&Session::new(&cli.global, temps)?, command, &mut out)?,
    }
    out.flush()?;
    Ok(())
}
