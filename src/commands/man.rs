//! `man`: the manual pages, generated from the same clap definition as `--help`, so they
//! cannot drift from it. Needs no model.

use std::io::Write;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::atomic;
use crate::cli::{Cli, ManArgs};
use crate::signals::TempFiles;

pub fn run(args: &ManArgs, temps: &TempFiles, out: &mut dyn Write) -> Result<()> {
    let mut cmd = Cli::command();
    // Built, so the global options reach every subcommand's page.
    cmd.build();
    let Some(dir) = &args.dir else {
        clap_mangen::Man::new(cmd).render(out)?;
        return Ok(());
    };
    if !dir.is_dir() {
        match dir.exists() {
            true => anyhow::bail!("--dir {}: not a directory", dir.display()),
            false => anyhow::bail!("--dir {}: no such directory", dir.display()),
        }
    }
    // One page for the tool and one per subcommand, named as `man gpt2-inspect-next` finds them.
    let mut pages = vec![("gpt2-inspect".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands() {
        let name = format!("gpt2-inspect-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, page) in pages {
        let path = dir.join(format!("{name}.1"));
        atomic::write(&path, "--dir", temps, |w| {
            clap_mangen::Man::new(page).render(w)
        })
        .with_context(|| format!("man page {name}.1"))?;
    }
    Ok(())
}
