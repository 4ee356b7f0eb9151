//! How a long analysis tells its caller how much work there is and how much is done,
//! without knowing who listens: a terminal's bar (`session::progress`), or nobody.

/// Where a long analysis reports its work. [`Progress::start`] once per stage, before it
/// begins, then [`Progress::advance`] as its parts are done.
pub trait Progress {
    /// `units` of work are about to start; `what` names them, plural (`patched runs`).
    fn start(&mut self, units: u64, what: &str);
    /// `units` more of the announced work are done.
    fn advance(&mut self, units: u64);
}

/// Reports to nobody: for library callers and tests.
pub struct Silent;

impl Progress for Silent {
    fn start(&mut self, _units: u64, _what: &str) {}
    fn advance(&mut self, _units: u64) {}
}
