//! Output files that appear whole or not at all: written to a temporary file beside the
//! target, then renamed over it. Dropped without `commit`, the temporary file is removed.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

pub struct AtomicFile {
    file: Option<File>,
    tmp: PathBuf,
    path: PathBuf,
}

impl AtomicFile {
    /// `flag` names the option the path came from, for error messages (`-o`).
    pub fn create(path: &Path, flag: &str) -> Result<Self> {
        if path.is_dir() {
            bail!(
                "{flag} {}: is a directory; give a file name",
                path.display()
            );
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            bail!(
                "{flag} {}: directory {} does not exist",
                path.display(),
                dir.display()
            );
        }
        let name = path
            .file_name()
            .with_context(|| format!("{flag} {}: not a file name", path.display()))?;
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        let file = File::create(&tmp).with_context(|| {
            format!(
                "{flag} {}: cannot write in {}",
                path.display(),
                dir.display()
            )
        })?;
        Ok(AtomicFile {
            file: Some(file),
            tmp,
            path: path.to_path_buf(),
        })
    }

    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("file is open until commit")
    }

    /// Flushes to disk and renames the temporary file over the target.
    pub fn commit(mut self) -> Result<()> {
        let file = self.file.take().expect("commit once");
        file.sync_all()
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path)
            .with_context(|| format!("cannot replace {}", self.path.display()))
    }
}

/// Writes `path` whole or not at all, through a buffer, with what `render` writes; `flag`
/// names the option the path came from (`-o`, `--svg`).
pub fn write(
    path: &Path,
    flag: &str,
    render: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<()> {
    let mut file = AtomicFile::create(path, flag)?;
    let mut w = BufWriter::new(file.file());
    render(&mut w)
        .and_then(|()| w.flush())
        .with_context(|| format!("{flag} {}: cannot write", path.display()))?;
    drop(w);
    file.commit()
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
