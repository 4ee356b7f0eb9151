//! `serve`: the explorer. Loads the model once, then answers the page and the API until
//! Ctrl-C or SIGTERM (see `crate::serve`).

use std::io::Write;

use anyhow::Result;

use crate::cli::ServeArgs;
use crate::session::Session;

pub fn run(session: &Session, args: &ServeArgs, out: &mut dyn Write) -> Result<()> {
    session.keep_model()?;
    session.keep_saes(&args.sae)?;
    session.keep_lenses(&args.lens)?;
    session.keep_transcoders(&args.transcoders)?;
    crate::serve::serve(session, args, out)
}
