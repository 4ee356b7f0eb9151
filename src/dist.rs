//! Next-token distributions from logits, and orderings of scores: the one home of the
//! maths every command shares. Probabilities are computed in f64 from the f32 logits; the
//! normalizer's exponentials of a finite row in f32 (relative error about 3e-7), summed in f64.
//!
//! One order everywhere: higher values first, equal values by lower index first, NaN
//! last (a broken checkpoint's NaN is never anyone's top token). [`top_k`] lists in that
//! order and [`rank`] counts in it, so a token's rank is its place in the list.

use std::cmp::Ordering;

use anyhow::Result;
use candle_core::{DType, Tensor};

/// log Σ exp(logits): `logit - log_normalizer` is the log-probability.
pub fn log_normalizer(logits: &[f32]) -> f64 {
    if let Some(max_key) = finite_max_key(logits) {
        return finite_log_normalizer(logits, max_key);
    }
    // A row with NaN or infinities (a broken checkpoint): the exact loop, which lets them
    // through as NaN or ±∞ the way the arithmetic says.
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

/// What scoring one position asks of its logits: the log normalizer, the top guess and the
/// rank of token `id`, in two vectorized passes over the row instead of four scalar ones.
pub struct Scored {
    pub log_z: f64,
    pub top: usize,
    pub rank: usize,
}

/// [`log_normalizer`], [`top_k`]`(values, 1)` and [`rank`] of `id` at once.
pub fn scored(values: &[f32], id: usize) -> Scored {
    let Some(max_key) = finite_max_key(values) else {
        return Scored {
            log_z: log_normalizer(values),
            top: top_k(values, 1).first().copied().unwrap_or(0),
            rank: rank(values, id),
        };
    };
    // Every value is finite, so the order is the keys' order, ties by index.
    let target = key(values[id]);
    let (above, equal_before) = count_above(values, target, id);
    Scored {
        log_z: finite_log_normalizer(values, max_key),
        top: values.iter().position(|&v| key(v) == max_key).unwrap_or(0),
        rank: 1 + above + equal_before,
    }
}

/// The model's own distribution at a position, as a lens's statistics compare with it.
pub struct Final {
    /// softmax of the final logits, in f32.
    pub probs: Vec<f32>,
    /// Σ p log p (minus the entropy).
    pub neg_entropy: f64,
    /// The model's top token.
    pub top: usize,
}

impl Final {
    pub fn of(logits: &[f32]) -> Final {
        let Some(max_key) = finite_max_key(logits) else {
            // NaN or infinities: the exact loops, which let them through.
            let log_z = log_normalizer(logits);
            let log_p = |l: f32| l as f64 - log_z;
            return Final {
                probs: logits.iter().map(|&l| log_p(l).exp() as f32).collect(),
                neg_entropy: logits.iter().map(|&l| log_p(l).exp() * log_p(l)).sum(),
                top: top_k(logits, 1).first().copied().unwrap_or(0),
            };
        };
        let max = from_key(max_key);
        let log_z = finite_log_normalizer(logits, max_key);
        // p = e^(l − max) · e^(max − log_z), vectorized; Σ p log p = Σ p l − log_z.
        let scale = (max as f64 - log_z).exp() as f32;
        let probs: Vec<f32> = (logits.iter())
            .map(|&l| exp_nonpositive(l - max) * scale)
            .collect();
        let mut pl = [0f64; LANES];
        let chunks = probs.chunks_exact(LANES).zip(logits.chunks_exact(LANES));
        for (p, l) in chunks {
            for i in 0..LANES {
                pl[i] += (p[i] * l[i]) as f64;
            }
        }
        let done = logits.len() / LANES * LANES;
        let tail: f64 = (probs[done..].iter().zip(&logits[done..]))
            .map(|(&p, &l)| (p * l) as f64)
            .sum();
        Final {
            neg_entropy: pl.iter().sum::<f64>() + tail - log_z,
            top: logits.iter().position(|&v| key(v) == max_key).unwrap_or(0),
            probs,
        }
    }
}

/// A lens's row against the model's final distribution at the same position: the entropy
/// of softmax(`values`) and the forward KL, KL(final ‖ lens) = Σ p_final (log p_final −
/// log p_lens), as tuned-lens's `entropy` and `forward_kl` define them. `log_z` is the
/// row's [`log_normalizer`]. One vectorized pass on a finite row, the exact loops else.
pub fn entropy_and_kl(values: &[f32], log_z: f64, fin: &Final) -> (f64, f64) {
    let Some(max_key) = finite_max_key(values) else {
        let kl_terms: f64 = (values.iter().zip(&fin.probs))
            .map(|(&l, &q)| q as f64 * (l as f64 - log_z))
            .sum();
        return (entropy(values), fin.neg_entropy - kl_terms);
    };
    let max = from_key(max_key);
    let (mut pl, mut ql) = ([0f64; LANES], [0f64; LANES]);
    let chunks = values
        .chunks_exact(LANES)
        .zip(fin.probs.chunks_exact(LANES));
    for (v, q) in chunks {
        for l in 0..LANES {
            pl[l] += (exp_nonpositive(v[l] - max) * v[l]) as f64;
            ql[l] += (q[l] * v[l]) as f64;
        }
    }
    let done = values.len() / LANES * LANES;
    let (mut pl_sum, mut ql_sum) = (pl.iter().sum::<f64>(), ql.iter().sum::<f64>());
    for (&v, &q) in values[done..].iter().zip(&fin.probs[done..]) {
        pl_sum += (exp_nonpositive(v - max) * v) as f64;
        ql_sum += (q * v) as f64;
    }
    // Σ p l = e^(max − log_z) Σ e^(l − max) l; Σ q = 1.
    let mean_logit = (max as f64 - log_z).exp() * pl_sum;
    (log_z - mean_logit, fin.neg_entropy - (ql_sum - log_z))
}

/// Lanes a pass keeps apart, so that its loop vectorizes without reassociating sums.
const LANES: usize = 16;

/// An integer whose order is `f32::total_cmp`'s (−0 below +0), compared in vector lanes.
fn key(v: f32) -> i32 {
    let i = v.to_bits() as i32;
    i ^ (((i >> 31) as u32) >> 1) as i32
}

/// The inverse of [`key`].
fn from_key(k: i32) -> f32 {
    f32::from_bits((k ^ (((k >> 31) as u32) >> 1) as i32) as u32)
}

/// log Σ exp(values) of a row of finite values whose highest key is `max_key`.
fn finite_log_normalizer(values: &[f32], max_key: i32) -> f64 {
    let max = from_key(max_key);
    max as f64 + sum_exp(values, max).ln()
}

/// The highest key of `values` when every value is finite (the fast paths' condition);
/// `None` for an empty row or one holding NaN or ±∞.
fn finite_max_key(values: &[f32]) -> Option<i32> {
    let (mut top, mut bad) = ([i32::MIN; LANES], [0u32; LANES]);
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for l in 0..LANES {
            top[l] = top[l].max(key(chunk[l]));
            bad[l] |= !chunk[l].is_finite() as u32;
        }
    }
    for &v in rest {
        top[0] = top[0].max(key(v));
        bad[0] |= !v.is_finite() as u32;
    }
    let finite = bad.iter().all(|&b| b == 0) && !values.is_empty();
    finite.then(|| *top.iter().max().unwrap())
}

/// How many values come before key `target` in the order: those above it, and those equal
/// to it at an index below `id`.
fn count_above(values: &[f32], target: i32, id: usize) -> (usize, usize) {
    (
        count_keys(values, |k| k > target),
        count_keys(&values[..id], |k| k == target),
    )
}

/// How many of `values` have a key that `keep` keeps, in vector lanes.
#[inline(always)]
fn count_keys(values: &[f32], keep: impl Fn(i32) -> bool) -> usize {
    let mut n = [0u32; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for l in 0..LANES {
            n[l] += keep(key(chunk[l])) as u32;
        }
    }
    let tail = rest.iter().filter(|&&v| keep(key(v))).count();
    n.iter().map(|&c| c as usize).sum::<usize>() + tail
}

/// Σ exp(v − max) over finite `values` whose highest is `max`, in f64. Each exponential is
/// computed in f32 by range reduction and a degree-7 polynomial (relative error about 3e-7,
/// far inside the 1e-4 parity) and summed in f64 lanes: libm's scalar f64 `exp` over
/// 50,257 logits was a sixth of `score`'s time.
fn sum_exp(values: &[f32], max: f32) -> f64 {
    let mut sum = [0f64; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for l in 0..LANES {
            sum[l] += exp_nonpositive(chunk[l] - max) as f64;
        }
    }
    let tail: f64 = rest.iter().map(|&v| exp_nonpositive(v - max) as f64).sum();
    sum.iter().sum::<f64>() + tail
}

/// exp(x) for x ≤ 0 in f32, branch-free so that it vectorizes: x = n·ln 2 + r with
/// |r| ≤ ln 2 / 2 (Cody and Waite's two-part ln 2), exp(r) by its Taylor polynomial to r⁷,
/// times 2ⁿ made from its bits. Below −87.3 the result is clamped to about 1e-38, which
/// no sum with a term of 1 (the maximum's) can see.
fn exp_nonpositive(x: f32) -> f32 {
    const SHIFT: f32 = 12_582_912.0; // 1.5 · 2²³: adding it rounds to an integer
    let x = x.max(-87.3);
    let t = x * std::f32::consts::LOG2_E + SHIFT;
    let n = t - SHIFT;
    let r = x - n * (355.0 / 512.0) - n * -2.121_944_4e-4;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // t's low mantissa bits hold n (−126 ≤ n ≤ 0); 2ⁿ's bits are (n + 127) << 23.
    let n_bits = t.to_bits().wrapping_sub(SHIFT.to_bits());
    p * f32::from_bits(n_bits.wrapping_add(127) << 23)
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

    /// The exact f64 loop the fast path replaces.
    fn exact_log_normalizer(v: &[f32]) -> f64 {
        let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        max + v.iter().map(|&l| (l as f64 - max).exp()).sum::<f64>().ln()
    }

    #[test]
    fn the_vectorized_exponential_is_within_a_few_ulps() {
        for i in 0..=200_000 {
            let x = -90.0 * i as f32 / 200_000.0;
            let (got, want) = (exp_nonpositive(x) as f64, (x as f64).exp());
            let tolerance = 4e-7 * want + 2e-38;
            assert!(
                (got - want).abs() <= tolerance,
                "exp({x}) = {got}, not {want}"
            );
        }
    }

    #[test]
    fn vectorized_scoring_agrees_with_the_exact_loops() {
        // A vocabulary-sized row with ties, both zeros and a spread like a model's logits.
        let mut seed = 7u64;
        let mut next = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 40) as f32 / (1u64 << 24) as f32
        };
        let mut v: Vec<f32> = (0..50_257).map(|_| 30.0 * next() - 20.0).collect();
        (v[5], v[17], v[40_000]) = (0.0, -0.0, 0.0);
        (v[100], v[101], v[50_256]) = (9.5, 9.5, 9.5);
        let want = exact_log_normalizer(&v);
        assert!((log_normalizer(&v) - want).abs() < 1e-6);
        for id in [0, 5, 17, 100, 101, 40_000, 50_256, 333] {
            let s = scored(&v, id);
            assert!((s.log_z - want).abs() < 1e-6, "{} vs {want}", s.log_z);
            assert_eq!((s.top, s.rank), (top_k(&v, 1)[0], rank(&v, id)), "{id}");
        }
        // Short rows take the scalar tail alone; a NaN takes the exact path.
        let short = [1.0f32, -3.0, 2.0];
        assert!((log_normalizer(&short) - exact_log_normalizer(&short)).abs() < 1e-6);
        let broken = [1.0f32, f32::NAN, 2.0];
        let s = scored(&broken, 1);
        assert!(s.log_z.is_nan());
        assert_eq!((s.top, s.rank), (2, 3));
    }

    #[test]
    fn lens_statistics_agree_with_the_exact_loops() {
        let mut seed = 11u64;
        let mut next = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 40) as f32 / (1u64 << 24) as f32
        };
        let fin: Vec<f32> = (0..50_257).map(|_| 12.0 * next() - 6.0).collect();
        let row: Vec<f32> = (0..50_257).map(|_| 20.0 * next() - 9.0).collect();
        let f = Final::of(&fin);
        let (h, kl_value) = entropy_and_kl(&row, log_normalizer(&row), &f);
        assert!(
            (h - entropy(&row)).abs() < 1e-6 * h,
            "{h} vs {}",
            entropy(&row)
        );
        assert!(
            (kl_value - kl(&fin, &row)).abs() < 1e-5,
            "{kl_value} vs {}",
            kl(&fin, &row)
        );
        let (_, self_kl) = entropy_and_kl(&fin, log_normalizer(&fin), &f);
        assert!(self_kl.abs() < 1e-5, "{self_kl}");
        let short = [1.0f32, 2.0, f32::NAN];
        let (h, _) = entropy_and_kl(&short, log_normalizer(&short), &Final::of(&[0.0, 0.0, 0.0]));
        assert!(h.is_nan() || h.is_finite());
    }

    #[test]
    fn log_probs_sum_to_one() {
        let v = [0.5f32, -2.0, 3.0, 1000.0];
        let total: f64 = (0..v.len()).map(|i| log_prob(&v, i).exp()).sum();
        assert!((total - 1.0).abs() < 1e-12);
        assert!(log_prob(&v, 3).abs() < 1e-12);
    }
}
