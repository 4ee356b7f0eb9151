//! Next-token distributions from logits, and orderings of scores: the one home of the
//! maths every command shares. Probabilities are computed in f64 from the f32 logits.
//!
//! One order everywhere: higher values first, equal values by lower index first, NaN
//! last (a broken checkpoint's NaN is never anyone's top token). [`top_k`] lists in that
//! order and [`rank`] counts in it, so a token's rank is its place in the list.

use std::cmp::Ordering;

use anyhow::Result;
use candle_core::{DType, Tensor};

/// log Σ exp(logits): `logit - log_normalizer` is the log-probability.
pub fn log_normalizer(logits: &[f32]) -> f64 {
    let max = logits
        .iter()
        .copied()
        .filter(|v| !v.is_nan())
        .fold(f32::NEG_INFINITY, f32::max) as f64;
    max + logits
        .iter()
        .map(|&l| (l as f64 - max).exp())
        .sum::<f64>()
        .ln()
}

/// The entropy of softmax(logits) in nats, −Σ p log p (= log Z − Σ p·logit), in f64; a
/// logit of −∞ (probability 0) adds nothing.
pub fn entropy(logits: &[f32]) -> f64 {
    let log_z = log_normalizer(logits);
    let mean_logit: f64 = (logits.iter())
        .filter(|l| l.is_finite())
        .map(|&l| (l as f64 - log_z).exp() * l as f64)
        .sum();
    log_z - mean_logit
}

/// log softmax(logits)[id].
pub fn log_prob(logits: &[f32], id: usize) -> f64 {
    logits[id] as f64 - log_normalizer(logits)
}

/// The order of two indices of `values` (see the module doc).
fn order(values: &[f32], a: usize, b: usize) -> Ordering {
    let key = |i: usize| match values[i] {
        v if v.is_nan() => f32::NEG_INFINITY,
        v => v,
    };
    let nan = |i: usize| values[i].is_nan();
    nan(a)
        .cmp(&nan(b))
        .then(key(b).total_cmp(&key(a)))
        .then(a.cmp(&b))
}

/// Indices of the `k` highest values, highest first.
pub fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    if k == 1 {
        // One pass, no index vector: the first in the order.
        return (0..values.len())
            .min_by(|&a, &b| order(values, a, b))
            .into_iter()
            .collect();
    }
    let mut idx: Vec<usize> = (0..values.len()).collect();
    let k = k.min(idx.len());
    if k == 0 {
        return Vec::new();
    }
    // Partial selection, then the k sorted: V log k rather than V log V for a vocabulary.
    idx.select_nth_unstable_by(k - 1, |&a, &b| order(values, a, b));
    idx.truncate(k);
    idx.sort_by(|&a, &b| order(values, a, b));
    idx
}

/// 1-based place of `id` in the order: 1 + how many indices come before it.
pub fn rank(values: &[f32], id: usize) -> usize {
    1 + (0..values.len())
        .filter(|&j| order(values, j, id) == Ordering::Less)
        .count()
}

/// Euclidean norm of each row of a `(T, d)` tensor.
pub fn row_norms(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?
        .sqr()?
        .sum(candle_core::D::Minus1)?
        .sqrt()?
        .to_vec1()?)
}

/// KL(softmax(before) ‖ softmax(after)) of two logit vectors, in nats, in f64.
pub fn kl(before: &[f32], after: &[f32]) -> f64 {
    let (zb, za) = (log_normalizer(before), log_normalizer(after));
    before
        .iter()
        .zip(after)
        .map(|(&b, &a)| {
            let lb = b as f64 - zb;
            let la = a as f64 - za;
            lb.exp() * (lb - la)
        })
        .sum()
}

/// Pearson's correlation of two equally long samples, in f64; `None` when either has no
/// spread (or fewer than two values).
pub fn pearson(a: &[f32], b: &[f32]) -> Option<f64> {
    let n = a.len().min(b.len());
    if n < 2 {
        return None;
    }
    let mean = |x: &[f32]| x[..n].iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let (ma, mb) = (mean(a), mean(b));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a[..n].iter().zip(&b[..n]) {
        let (dx, dy) = (x as f64 - ma, y as f64 - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    (saa > 0.0 && sbb > 0.0).then(|| sab / (saa * sbb).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_order_for_lists_and_ranks() {
        let v = [1.0, 3.0, f32::NAN, 3.0, -1.0];
        assert_eq!(top_k(&v, 5), [1, 3, 0, 4, 2]);
        assert_eq!(top_k(&v, 2), [1, 3]);
        for (place, &i) in top_k(&v, 5).iter().enumerate() {
            assert_eq!(rank(&v, i), place + 1);
        }
        assert_eq!(top_k(&v, 0), Vec::<usize>::new());
        assert_eq!(top_k(&v, 9).len(), 5);
    }

    #[test]
    fn pearson_is_the_textbook_r() {
        // numpy.corrcoef([1, 2, 3, 4], [2, 4, 5, 9])[0, 1]
        let r = pearson(&[1.0, 2.0, 3.0, 4.0], &[2.0, 4.0, 5.0, 9.0]).unwrap();
        assert!((r - 0.964_763_821_237_732_1).abs() < 1e-12, "{r}");
        assert_eq!(pearson(&[1.0, 1.0], &[1.0, 2.0]), None);
        assert_eq!(pearson(&[1.0], &[1.0]), None);
    }

    #[test]
    fn log_probs_sum_to_one() {
        let v = [0.5f32, -2.0, 3.0, 1000.0];
        let total: f64 = (0..v.len()).map(|i| log_prob(&v, i).exp()).sum();
        assert!((total - 1.0).abs() < 1e-12);
        assert!(log_prob(&v, 3).abs() < 1e-12);
    }
}
