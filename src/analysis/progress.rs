//! How a long analysis tells its caller how much work there is and how much is done,
//! without knowing who listens: a terminal's bar or a server's client
//! (`session::progress`), or nobody. A listener that has gone away stops the work: the
//! next [`Progress::advance`] answers [`Stopped`], which the analysis returns.

/// Where a long analysis reports its work. [`Progress::start`] once per stage, before it
/// begins, then [`Progress::advance`] as its parts are done.
pub trait Progress {
    /// `units` of work are about to start; `what` names them, plural (`patched runs`).
    fn start(&mut self, units: u64, what: &str);
    /// `units` more of the announced work are done. An error ([`Stopped`]) says nobody
    /// wants the rest: the analysis returns it instead of going on.
    fn advance(&mut self, units: u64) -> anyhow::Result<()>;
}

/// The work was stopped because whoever asked for it went away (a server's client that
/// closed its connection).
#[derive(Debug)]
pub struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped: the client went away")
    }
}

impl std::error::Error for Stopped {}

/// Reports to nobody: for library callers and tests.
pub struct Silent;

impl Progress for Silent {
    fn start(&mut self, _units: u64, _what: &str) {}
    fn advance(&mut self, _units: u64) -> anyhow::Result<()> {
        Ok(())
    }
}
