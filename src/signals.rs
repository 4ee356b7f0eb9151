//! SIGINT and SIGTERM: remove the temporary output files being written, then exit with
//! 130 or 143 as a shell expects.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The temporary files to remove if the process is interrupted; shared with the thread
/// that waits for the signals.
#[derive(Debug, Clone, Default)]
pub struct TempFiles(Arc<Mutex<BTreeSet<PathBuf>>>);

impl TempFiles {
    /// Starts the thread that handles SIGINT and SIGTERM for the rest of the process.
    pub fn on_signals() -> Result<Self> {
        let temps = TempFiles::default();
        let mut signals =
            Signals::new([SIGINT, SIGTERM]).context("cannot install signal handlers")?;
        let shared = temps.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    shared.remove_all();
                    std::process::exit(128 + sig);
                }
            })
            .context("cannot start the signal thread")?;
        Ok(temps)
    }

    /// Registers `path` until the returned guard is dropped.
    pub fn add(&self, path: &Path) -> Registered {
        self.lock().insert(path.to_path_buf());
        Registered {
            temps: self.clone(),
            path: path.to_path_buf(),
        }
    }

    fn remove_all(&self) {
        for p in self.lock().iter() {
            let _ = std::fs::remove_file(p);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<PathBuf>> {
        // A panic while holding the lock leaves a set that is still valid.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A temporary file the signal handler removes, until this is dropped (the file was
/// renamed into place, or removed).
#[derive(Debug)]
pub struct Registered {
    temps: TempFiles,
    path: PathBuf,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.temps.lock().remove(&self.path);
    }
}
