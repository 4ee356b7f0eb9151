//! Output files (`-o`, `--svg`) that appear whole or not at all, and never clobber what is
//! not a regular file.
//!
//! - A regular file (or a new name) is written to a temporary file beside it, created
//!   exclusively under an unpredictable name, then renamed over it; a replaced file keeps
//!   its permissions. Dropped without [`Output::commit`], or interrupted by SIGINT/SIGTERM
//!   ([`crate::signals`]), the temporary file is removed.
//! - A character or block device, a FIFO, a socket or `/dev/stdout` is written to as it
//!   is: no temporary file, no rename.
//! - A symlink is written through: the file it points to is replaced as above, the link
//!   stays. A symlink to nothing is refused.
//! - `-` is standard output, written to as it is.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::signals::{Registered, TempFiles};

/// An output file being written.
pub struct Output {
    target: Target,
    /// The path as given, for messages.
    shown: PathBuf,
    flag: String,
}

enum Target {
    Direct(File),
    Atomic {
        tmp: tempfile::NamedTempFile,
        path: PathBuf,
        /// Dropped after `tmp` is renamed or removed.
        _registered: Registered,
    },
}

impl Output {
    /// `flag` names the option the path came from, for error messages (`-o`).
    pub fn create(path: &Path, flag: &str, temps: &TempFiles) -> Result<Self> {
        let shown = path.to_path_buf();
        let named = |what: String| format!("{flag} {}: {what}", path.display());
        if is_stdout(path) {
            return Ok(Output {
                target: Target::Direct(
                    stdout_file().with_context(|| named("cannot write".into()))?,
                ),
                shown: "standard output".into(),
                flag: flag.to_string(),
            });
        }
        let target = match fs::metadata(path) {
            Ok(m) if m.is_dir() => bail!(named("is a directory; give a file name".into())),
            Ok(m) if !m.is_file() => {
                // A device, FIFO or socket (also through /dev/stdout): write to it.
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .with_context(|| named("cannot open for writing".into()))?;
                Target::Direct(file)
            }
            Ok(m) => {
                // An existing regular file, maybe behind symlinks: replace the file itself.
                let real = fs::canonicalize(path)
                    .with_context(|| named("cannot resolve the path".into()))?;
                let tmp = temp_beside(&real, flag, path)?;
                tmp.as_file()
                    .set_permissions(m.permissions())
                    .with_context(|| named("cannot set the permissions".into()))?;
                Target::Atomic {
                    path: real,
                    _registered: temps.add(tmp.path()),
                    tmp,
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Ok(link) = fs::read_link(path) {
                    bail!(named(format!(
                        "is a symlink to {}, which does not exist; give a regular file",
                        link.display()
                    )));
                }
                let tmp = temp_beside(path, flag, path)?;
                Target::Atomic {
                    path: path.to_path_buf(),
                    _registered: temps.add(tmp.path()),
                    tmp,
                }
            }
            Err(e) => return Err(e).with_context(|| named("cannot write".into())),
        };
        Ok(Output {
            target,
            shown,
            flag: flag.to_string(),
        })
    }

    pub fn file(&mut self) -> &mut File {
        match &mut self.target {
            Target::Direct(f) => f,
            Target::Atomic { tmp, .. } => tmp.as_file_mut(),
        }
    }

    /// `-o FILE: cannot write`, for errors while writing.
    pub fn what(&self) -> String {
        format!("{} {}: cannot write", self.flag, self.shown.display())
    }

    /// Flushes to disk and renames the temporary file over the target.
    pub fn commit(self) -> Result<()> {
        let what = self.what();
        match self.target {
            Target::Direct(mut f) => f.flush().context(what),
            Target::Atomic {
                tmp,
                path,
                _registered,
            } => {
                tmp.as_file().sync_all().context(what.clone())?;
                tmp.persist(&path)
                    .map_err(|e| e.error)
                    .with_context(|| format!("cannot replace {}", path.display()))?;
                Ok(())
            }
        }
    }
}

/// Our temporary files are `.gpt2-inspect-PID-XXXXXX.tmp`, PID the writing process.
const TEMP_PREFIX: &str = ".gpt2-inspect-";
const TEMP_SUFFIX: &str = ".tmp";

/// How long a temporary file must have gone unwritten before it may be stale.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes the temporary files of ours in `dir` that a killed run left (SIGKILL, the OOM
/// killer): regular files of our name pattern and user whose process is gone and that went
/// unwritten for a minute. Another program's files never match; nothing here is fatal.
fn remove_stale(dir: &Path, ours: &tempfile::NamedTempFile) {
    let (Ok(entries), Ok(mine)) = (fs::read_dir(dir), ours.as_file().metadata()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(stale_pid) else {
            continue;
        };
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        let idle = meta.modified().ok().and_then(|m| m.elapsed().ok());
        let stale =
            meta.is_file() && same_owner(&meta, &mine) && !running(pid) && idle > Some(STALE_AFTER);
        if stale && fs::remove_file(entry.path()).is_ok() {
            eprintln!(
                "removed {}, a temporary file of a gpt2-inspect run that was killed",
                entry.path().display()
            );
        }
    }
}

/// The PID in a name of our temporary files' pattern.
fn stale_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(TEMP_PREFIX)?.strip_suffix(TEMP_SUFFIX)?;
    let (pid, random) = rest.split_once('-')?;
    (!random.is_empty()).then_some(())?;
    pid.parse().ok()
}

/// Whether `meta` has the owner of `ours`, a file this process just created.
#[cfg(unix)]
fn same_owner(meta: &fs::Metadata, ours: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    meta.uid() == ours.uid()
}

#[cfg(not(unix))]
fn same_owner(_: &fs::Metadata, _: &fs::Metadata) -> bool {
    false
}

/// Whether process `pid` is running on this machine (Linux's /proc; elsewhere assumed).
fn running(pid: u32) -> bool {
    match Path::new("/proc/self").exists() {
        true => Path::new("/proc").join(pid.to_string()).exists(),
        false => true,
    }
}

/// Whether `path` is `-`: standard output.
pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Standard output as a file of its own (a duplicate of the descriptor).
#[cfg(unix)]
fn stdout_file() -> io::Result<File> {
    use std::os::fd::AsFd;
    Ok(File::from(io::stdout().as_fd().try_clone_to_owned()?))
}

#[cfg(not(unix))]
fn stdout_file() -> io::Result<File> {
    Err(io::Error::other(
        "`-` (standard output) is supported on Unix only",
    ))
}

/// A new, empty file beside `path` with an unpredictable name, created exclusively
/// (O_EXCL: a planted symlink or a file of another process is never opened), readable as
/// a new file would be (0666 less the umask).
fn temp_beside(path: &Path, flag: &str, shown: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        bail!(
            "{flag} {}: directory {} does not exist",
            shown.display(),
            dir.display()
        );
    }
    if path.file_name().is_none() {
        bail!("{flag} {}: not a file name", shown.display());
    }
    let prefix = format!("{TEMP_PREFIX}{}-", std::process::id());
    let mut b = tempfile::Builder::new();
    b.prefix(&prefix).suffix(TEMP_SUFFIX);
    #[cfg(unix)]
    b.permissions(<Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o666));
    let tmp = b.tempfile_in(dir).with_context(|| {
        format!(
            "{flag} {}: cannot write in {}",
            shown.display(),
            dir.display()
        )
    })?;
    remove_stale(dir, &tmp);
    Ok(tmp)
}

/// Writes `path` whole or not at all, through a buffer, with what `render` writes; `flag`
/// names the option the path came from (`-o`, `--svg`).
pub fn write(
    path: &Path,
    flag: &str,
    temps: &TempFiles,
    render: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<()> {
    let mut file = Output::create(path, flag, temps)?;
    let what = file.what();
    let mut w = BufWriter::new(file.file());
    render(&mut w).and_then(|()| w.flush()).context(what)?;
    drop(w);
    file.commit()
}
