//! A checkpoint file mapped read-only: the weights' bytes as the page cache holds them,
//! shared by every process that reads the file. The kernels that compute from it are in
//! `model/kernels/matmul.rs`.

use std::fs::File;
use std::ops::Range;
use std::sync::Arc;

use anyhow::Result;

/// A whole checkpoint file mapped read-only.
pub struct Mapping(memmap2::Mmap);

impl Mapping {
    pub fn new(file: &File) -> std::io::Result<Arc<Self>> {
        // The mapping's soundness rests on no one truncating or rewriting the file in place
        // while we run: hub blobs are content-addressed and only ever replaced by rename
        // (which keeps our inode alive), as are files written by `save_pretrained` and by
        // this tool. A file truncated under us makes reads fault (SIGBUS), as in every tool
        // that maps weights (safetensors, llama.cpp); it cannot make us read another
        // file's bytes.
        // SAFETY: a read-only, private mapping of a file that is never rewritten in place.
        let map = unsafe { memmap2::Mmap::map(file)? };
        Ok(Arc::new(Mapping(map)))
    }
}

impl Mapping {
    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Maps the pages of `range` now rather than faulting them in one by one later. Only a
    /// hint: a kernel without MADV_POPULATE_READ (before Linux 5.14) faults them in later.
    pub fn populate(&self, range: Range<usize>) {
        #[cfg(target_os = "linux")]
        let _ = self
            .0
            .advise_range(memmap2::Advice::PopulateRead, range.start, range.len());
        #[cfg(not(target_os = "linux"))]
        let _ = range;
    }

    /// Drops the pages of `range` from this process's memory: they stay in the page cache,
    /// and a later read faults them in again. What a read of a large matrix that is needed
    /// only in part calls after it, so that the process does not keep all of it resident.
    pub fn release(&self, range: Range<usize>) {
        // The mapping is private and read-only (`Mmap`, never written), so dropping its
        // pages discards nothing: every later read sees the file's bytes again, and no
        // reference into the range is invalidated (the memory stays mapped).
        #[cfg(unix)]
        // SAFETY: MADV_DONTNEED on a private read-only file mapping only drops clean pages.
        let _ = unsafe {
            self.0.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                range.start,
                range.len(),
            )
        };
        #[cfg(not(unix))]
        let _ = range;
    }
}

/// An f32 row-major matrix `(rows, cols)` inside a [`Mapping`].
#[derive(Clone)]
pub struct MappedMatrix {
    map: Arc<Mapping>,
    start: usize,
    rows: usize,
    cols: usize,
}

impl MappedMatrix {
    /// The matrix at `bytes` of the mapping, or `None` when those bytes are not 4-byte
    /// aligned (safetensors does not promise alignment; the caller copies instead).
    pub fn new(map: &Arc<Mapping>, bytes: Range<usize>, rows: usize, cols: usize) -> Option<Self> {
        let m = Self::cold(map, bytes.clone(), rows, cols)?;
        // Map the pages now, while the tokenizer is being built on the other thread, rather
        // than fault them in one by one during the first forward pass.
        map.populate(bytes);
        Some(m)
    }

    /// [`new`](Self::new) without mapping the pages ahead: for a matrix read only in part
    /// (a transcoder's decoder, of which a graph reads the active features' rows).
    pub fn cold(map: &Arc<Mapping>, bytes: Range<usize>, rows: usize, cols: usize) -> Option<Self> {
        let slice = map.bytes().get(bytes.clone())?;
        let values: &[f32] = bytemuck::try_cast_slice(slice).ok()?;
        if values.len() != rows.checked_mul(cols)? {
            return None;
        }
        Some(MappedMatrix {
            map: map.clone(),
            start: bytes.start,
            rows,
            cols,
        })
    }

    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// The values, row-major.
    pub fn values(&self) -> &[f32] {
        let len = self.rows * self.cols * 4;
        // Alignment and length were checked in `new`.
        bytemuck::cast_slice(&self.map.bytes()[self.start..self.start + len])
    }

    /// Whether every value is finite, read a slice at a time with each slice's pages
    /// released after it: the check does not leave the matrix resident.
    pub fn all_finite_released(&self) -> bool {
        const SLICE: usize = 1 << 22; // values: 16 MiB
        let values = self.values();
        for (i, chunk) in values.chunks(SLICE).enumerate() {
            let finite = chunk.iter().all(|v| v.is_finite());
            let start = self.start + i * SLICE * 4;
            self.map.release(start..start + chunk.len() * 4);
            if !finite {
                return false;
            }
        }
        true
    }

    /// Rows `ids` gathered into a new `(ids.len(), cols)` vector, row-major; an error names
    /// an id past the last row.
    pub fn gather(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let values = self.values();
        let mut out = Vec::with_capacity(ids.len() * self.cols);
        for &id in ids {
            let id = id as usize;
            anyhow::ensure!(
                id < self.rows,
                "id {id} is out of range for a table of {} rows",
                self.rows
            );
            out.extend_from_slice(&values[id * self.cols..(id + 1) * self.cols]);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROWS: usize = 8200; // 16.02 MiB of values: two slices of the finiteness check

    /// A matrix in a temporary file, mapped.
    fn mapped() -> (tempfile::NamedTempFile, MappedMatrix) {
        let (rows, cols) = (ROWS, 512);
        let values: Vec<f32> = (0..rows * cols).map(|i| i as f32 * 0.5).collect();
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, bytemuck::cast_slice(&values)).unwrap();
        let map = Mapping::new(file.as_file()).unwrap();
        let m = MappedMatrix::cold(&map, 0..values.len() * 4, rows, cols).unwrap();
        (file, m)
    }

    #[test]
    fn released_pages_read_the_files_bytes_again() {
        let (_file, m) = mapped();
        let before: Vec<f32> = m.values().to_vec();
        assert!(m.all_finite_released());
        m.map.release(0..m.values().len() * 4);
        assert_eq!(m.values(), &before[..]);
        let last = (ROWS - 1) as u32;
        assert_eq!(
            m.gather(&[last]).unwrap(),
            before[(ROWS - 1) * 512..].to_vec()
        );
    }

    #[test]
    fn a_non_finite_value_is_found_in_any_slice() {
        let (file, _) = mapped();
        let mut bytes = std::fs::read(file.path()).unwrap();
        let at = (ROWS * 512 - 1) * 4; // the last value, in the second slice
        bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        std::fs::write(file.path(), &bytes).unwrap();
        let map = Mapping::new(&std::fs::File::open(file.path()).unwrap()).unwrap();
        let m = MappedMatrix::cold(&map, 0..bytes.len(), ROWS, 512).unwrap();
        assert!(!m.all_finite_released());
    }
}
