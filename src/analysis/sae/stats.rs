//! A feature over a corpus in bounded memory: how often it fires, its histogram and its
//! top contexts, fed batch by batch.

/// A feature's activations over a corpus, kept in bounded memory: how often it fires, a
/// histogram of its non-zero activations whose range doubles as larger ones arrive, and
/// the contexts where it peaked highest.
#[derive(Debug, Clone)]
pub struct FeatureStats {
    pub tokens: u64,
    pub active: u64,
    /// Bin i counts activations in [i·w, (i+1)·w), w = `top / BINS`.
    pub bins: Vec<u64>,
    pub top: f32,
    /// The texts where it peaked highest, highest first, at most `keep`.
    pub peaks: Vec<Peak>,
    keep: usize,
    window: usize,
}

/// Where a feature peaked in one text, with its activations `window` tokens either side.
#[derive(Debug, Clone)]
pub struct Peak {
    pub value: f32,
    pub text: usize,
    pub position: usize,
    /// The first position of `acts`.
    pub start: usize,
    pub acts: Vec<f32>,
}

pub(super) const BINS: usize = 32;

impl FeatureStats {
    pub fn new(keep: usize, window: usize) -> Self {
        let bins = vec![0; BINS];
        FeatureStats {
            tokens: 0,
            active: 0,
            bins,
            top: 1.0,
            peaks: Vec::new(),
            keep,
            window,
        }
    }

    /// One text's activations of the feature, a value per token.
    pub fn add(&mut self, text: usize, acts: &[f32]) {
        self.tokens += acts.len() as u64;
        for &a in acts.iter().filter(|&&a| a != 0.0) {
            self.active += 1;
            while a.abs() >= self.top {
                // Twice the range: each pair of bins becomes one.
                let merged: Vec<u64> = self.bins.chunks(2).map(|p| p.iter().sum()).collect();
                self.bins = merged
                    .into_iter()
                    .chain(std::iter::repeat(0))
                    .take(BINS)
                    .collect();
                self.top *= 2.0;
            }
            self.bins[((a.abs() / self.top) * BINS as f32) as usize % BINS] += 1;
        }
        let peak = (acts.iter().enumerate()).max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)));
        if let Some((position, &value)) = peak.filter(|(_, &v)| v > 0.0) {
            let start = position.saturating_sub(self.window);
            let end = (position + self.window + 1).min(acts.len());
            let acts = acts[start..end].to_vec();
            self.peaks.push(Peak {
                value,
                text,
                position,
                start,
                acts,
            });
            self.peaks
                .sort_by(|a, b| b.value.total_cmp(&a.value).then(a.text.cmp(&b.text)));
            self.peaks.truncate(self.keep);
        }
    }

    /// The fraction of tokens where the feature fires.
    pub fn density(&self) -> f64 {
        match self.tokens {
            0 => 0.0,
            n => self.active as f64 / n as f64,
        }
    }
}
