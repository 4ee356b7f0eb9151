//! A feature over a corpus in bounded memory: how often it fires, its histogram and its
//! top contexts, fed batch by batch, and merged across shards of a corpus.

use serde::{Deserialize, Serialize};

/// A feature's activations over a corpus, kept in bounded memory: how often it fires, a
/// histogram of its non-zero activations whose range doubles as larger ones arrive, and
/// the contexts where it peaked highest. Statistics of disjoint sets of texts merge into
/// exactly those of one pass over all of them ([`FeatureStats::merge`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
                self.double();
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
            self.rank_peaks();
        }
    }

    /// Takes in `other`, gathered over other texts with the same `keep` and `window`: the
    /// statistics of one pass over both, in whichever order the texts came. Every value
    /// lands in bin ⌊32·|a|/top⌋ of the final range however often the range doubled on
    /// the way, and the peaks are ranked by one total order, so the merge is exact.
    pub fn merge(&mut self, other: FeatureStats) {
        debug_assert_eq!((self.keep, self.window), (other.keep, other.window));
        let FeatureStats {
            tokens,
            active,
            bins,
            top,
            peaks,
            ..
        } = other;
        let mut other = FeatureStats {
            bins,
            top,
            ..FeatureStats::new(self.keep, self.window)
        };
        while self.top < other.top {
            self.double();
        }
        while other.top < self.top {
            other.double();
        }
        self.tokens += tokens;
        self.active += active;
        self.bins
            .iter_mut()
            .zip(&other.bins)
            .for_each(|(a, b)| *a += b);
        self.peaks.extend(peaks);
        self.rank_peaks();
    }

    /// Twice the range: each pair of bins becomes one.
    fn double(&mut self) {
        let merged: Vec<u64> = self.bins.chunks(2).map(|p| p.iter().sum()).collect();
        self.bins = merged
            .into_iter()
            .chain(std::iter::repeat(0))
            .take(BINS)
            .collect();
        self.top *= 2.0;
    }

    /// Highest peak first (the earlier text on a tie), at most `keep`.
    fn rank_peaks(&mut self) {
        self.peaks
            .sort_by(|a, b| b.value.total_cmp(&a.value).then(a.text.cmp(&b.text)));
        self.peaks.truncate(self.keep);
    }

    /// The fraction of tokens where the feature fires.
    pub fn density(&self) -> f64 {
        match self.tokens {
            0 => 0.0,
            n => self.active as f64 / n as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Texts of pseudo-random activations, sparse, some far above 1 (so ranges double at
    /// different times in different shards), with ties between texts.
    fn texts() -> Vec<Vec<f32>> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..40)
            .map(|t| {
                let len = 3 + (next() % 20) as usize;
                (0..len)
                    .map(|_| match next() % 5 {
                        0 | 1 => 0.0,
                        2 => (next() % 1000) as f32 / 250.0,
                        3 if t % 7 == 0 => 2.5, // ties across texts
                        _ => ((next() % 1000) as f32 / 10.0) * if t % 3 == 0 { 1.0 } else { 0.01 },
                    })
                    .collect()
            })
            .collect()
    }

    fn pass(texts: &[Vec<f32>], which: impl Fn(usize) -> bool) -> FeatureStats {
        let mut s = FeatureStats::new(6, 2);
        for (i, t) in texts.iter().enumerate().filter(|(i, _)| which(*i)) {
            s.add(i, t);
        }
        s
    }

    #[test]
    fn shards_merged_in_any_order_are_one_pass() {
        let texts = texts();
        let whole = pass(&texts, |_| true);
        assert!(whole.top > 16.0, "the range doubled: {}", whole.top);
        for n in [2, 3, 7] {
            let shards: Vec<FeatureStats> = (0..n).map(|k| pass(&texts, |i| i % n == k)).collect();
            let mut forward = shards[0].clone();
            shards[1..].iter().for_each(|s| forward.merge(s.clone()));
            assert_eq!(forward, whole, "{n} shards");
            let mut backward = shards[n - 1].clone();
            shards[..n - 1]
                .iter()
                .rev()
                .for_each(|s| backward.merge(s.clone()));
            assert_eq!(backward, whole, "{n} shards, reversed");
        }
    }

    #[test]
    fn merging_an_empty_shard_changes_nothing() {
        let texts = texts();
        let whole = pass(&texts, |_| true);
        let mut merged = whole.clone();
        merged.merge(FeatureStats::new(6, 2));
        assert_eq!(merged, whole);
        let mut empty = FeatureStats::new(6, 2);
        empty.merge(whole.clone());
        assert_eq!(empty, whole);
    }
}
