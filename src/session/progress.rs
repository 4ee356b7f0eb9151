//! A long analysis on a terminal: each stage's work announced as it starts (how many runs
//! of what), then a bar of what is done with the rate and the time left, cleared when the
//! stage ends. Nothing is drawn when standard error is not a terminal, nor for a server's
//! calls ([`super::Output::progress`]).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};

use crate::analysis::progress::Progress;
use crate::session::Session;

/// The bar of one command's stages.
pub struct Bar {
    command: &'static str,
    shown: bool,
    bar: Option<ProgressBar>,
}

impl Bar {
    /// Progress of `command`'s work, drawn when the session's output wants it.
    pub fn new(session: &Session, command: &'static str) -> Bar {
        Bar {
            command,
            shown: session.output.progress,
            bar: None,
        }
    }
}

impl Progress for Bar {
    fn start(&mut self, units: u64, what: &str) {
        if let Some(done) = self.bar.take() {
            done.finish_and_clear();
        }
        if !self.shown {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(units), ProgressDrawTarget::stderr())
            .with_finish(ProgressFinish::AndClear)
            .with_prefix(self.command)
            .with_message(format!("{} {what}", indicatif::HumanCount(units)));
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix}: {msg} [{bar:24}] {human_pos}/{human_len}, about {eta} left",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.tick();
        self.bar = Some(bar);
    }

    fn advance(&mut self, units: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(units);
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
