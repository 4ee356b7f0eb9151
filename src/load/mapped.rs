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
        let slice = map.bytes().get(bytes.clone())?;
        let values: &[f32] = bytemuck::try_cast_slice(slice).ok()?;
        if values.len() != rows.checked_mul(cols)? {
            return None;
        }
        // Map the pages now, while the tokenizer is being built on the other thread, rather
        // than fault them in one by one during the first forward pass.
        map.populate(bytes.clone());
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
