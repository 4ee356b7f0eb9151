//! Who hears of a long analysis's work: a terminal (each stage announced as it starts, then
//! a bar of what is done with the rate and the time left, cleared when the stage ends), a
//! server's client (the same as events, and a client gone stops the work), or nobody.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};
use serde_json::json;
use tokio::sync::mpsc::UnboundedSender;

use crate::analysis::progress::{Progress, Stopped};
use crate::session::Session;

/// Who hears of a session's long work.
#[derive(Clone, Debug)]
pub enum Listener {
    /// Standard error is a terminal: bars are drawn there.
    Terminal,
    /// Nobody: standard error is a pipe or a file.
    Nobody,
    /// A server's client: each stage, each step and each partial result as an [`Event`];
    /// when the client has gone (the receiver dropped), the work stops.
    Client(UnboundedSender<Event>),
}

/// One thing a client hears while its request is computed: `start` (`{"units", "what"}`),
/// `progress` (`{"done", "units"}`) or `token` (a generated token, as the report has it),
/// its data as JSON text (numbers spelled as the report spells them).
#[derive(Debug)]
pub struct Event {
    pub kind: &'static str,
    pub data: String,
}

/// The progress of one command's stages.
pub struct Bar {
    command: &'static str,
    to: To,
}

enum To {
    Terminal(Option<ProgressBar>),
    Nobody,
    Client {
        events: UnboundedSender<Event>,
        done: u64,
        units: u64,
    },
}

impl Bar {
    /// Progress of `command`'s work, to whoever the session's listener is.
    pub fn new(session: &Session, command: &'static str) -> Bar {
        let to = match &session.listener {
            Listener::Terminal => To::Terminal(None),
            Listener::Nobody => To::Nobody,
            Listener::Client(events) => To::Client {
                events: events.clone(),
                done: 0,
                units: 0,
            },
        };
        Bar { command, to }
    }

    /// A partial result (a generated token) for a client; a terminal shows it otherwise.
    /// Fails with [`Stopped`] when the client has gone.
    pub fn partial(
        &mut self,
        kind: &'static str,
        data: &impl serde::Serialize,
    ) -> anyhow::Result<()> {
        match &self.to {
            To::Client { events, .. } => send(events, kind, serde_json::to_string(data)?),
            To::Terminal(_) | To::Nobody => Ok(()),
        }
    }
}

fn send(events: &UnboundedSender<Event>, kind: &'static str, data: String) -> anyhow::Result<()> {
    events
        .send(Event { kind, data })
        .map_err(|_| anyhow::Error::new(Stopped))
}

impl Progress for Bar {
    fn start(&mut self, units: u64, what: &str) {
        match &mut self.to {
            To::Terminal(bar) => {
                if let Some(done) = bar.take() {
                    done.finish_and_clear();
                }
                *bar = Some(terminal_bar(self.command, units, what));
            }
            To::Nobody => {}
            To::Client {
                events,
                done,
                units: total,
            } => {
                (*done, *total) = (0, units);
                // A client gone is noticed at the next advance.
                let _ = send(
                    events,
                    "start",
                    json!({ "units": units, "what": what }).to_string(),
                );
            }
        }
    }

    fn advance(&mut self, units: u64) -> anyhow::Result<()> {
        match &mut self.to {
            To::Terminal(bar) => {
                if let Some(bar) = bar {
                    bar.inc(units);
                }
                Ok(())
            }
            To::Nobody => Ok(()),
            To::Client {
                events,
                done,
                units: total,
            } => {
                *done += units;
                send(
                    events,
                    "progress",
                    json!({ "done": *done, "units": *total }).to_string(),
                )
            }
        }
    }
}

/// A bar on standard error: `patch: 252 patched runs [====>   ] 84/252, about 3s left`.
fn terminal_bar(command: &'static str, units: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(units), ProgressDrawTarget::stderr())
        .with_finish(ProgressFinish::AndClear)
        .with_prefix(command)
        .with_message(format!("{} {what}", indicatif::HumanCount(units)));
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix}: {msg} [{bar:24}] {human_pos}/{human_len}, about {eta} left",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.tick();
    bar
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let To::Terminal(Some(bar)) = &mut self.to {
            bar.finish_and_clear();
        }
    }
}
