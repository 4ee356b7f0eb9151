//! Head detectors: TransformerLens-style previous-token, first-token, induction and
//! duplicate-token scores of every head on a repeated sequence.

use anyhow::Result;
use candle_core::{DType, Tensor};

use crate::analysis::interventions::record;
use crate::model::gpt2::{Gpt2, NoLogits};
use crate::model::hooks::{BlockHook, Hook};

/// The four head scores of TransformerLens-style detection, each `[L][H]`.
#[derive(Debug, Clone)]
pub struct HeadScores {
    pub previous_token: Vec<Vec<f32>>,
    pub first_token: Vec<Vec<f32>>,
    pub induction: Vec<Vec<f32>>,
    pub duplicate_token: Vec<Vec<f32>>,
}

/// Scores every head on `x` = s + s `(1, 2n)`, with A the head's attention:
/// previous_token = mean over i = 1..2n−1 of A[i][i−1]; first_token = mean over i of
/// A[i][0]; induction = mean over i = n..2n−1 of A[i][i−n+1]; duplicate_token = mean over
/// i = n..2n−1 of A[i][i−n].
pub fn head_scores(model: &Gpt2, x: &Tensor, n: usize) -> Result<HeadScores> {
    let cfg = model.config();
    let hooks: Vec<Hook> = (0..cfg.n_layer)
        .map(|l| Hook::Block(l, BlockHook::Pattern))
        .collect();
    let (acts, _) = record(model, x, hooks.clone(), NoLogits)?;
    let mut scores = HeadScores {
        previous_token: vec![],
        first_token: vec![],
        induction: vec![],
        duplicate_token: vec![],
    };
    for hook in hooks {
        // (1, nh, 2n, 2n) → per head, the rows of A.
        let a: Vec<Vec<Vec<f32>>> = acts
            .get(hook)?
            .squeeze(0)?
            .to_dtype(DType::F32)?
            .to_vec3()?;
        let mean =
            |a: &Vec<Vec<f32>>, rows: std::ops::Range<usize>, col: &dyn Fn(usize) -> usize| {
                let len = rows.len() as f32;
                rows.map(|i| a[i][col(i)]).sum::<f32>() / len
            };
        scores
            .previous_token
            .push(a.iter().map(|a| mean(a, 1..2 * n, &|i| i - 1)).collect());
        scores
            .first_token
            .push(a.iter().map(|a| mean(a, 0..2 * n, &|_| 0)).collect());
        scores.induction.push(
            a.iter()
                .map(|a| mean(a, n..2 * n, &|i| i - n + 1))
                .collect(),
        );
        scores
            .duplicate_token
            .push(a.iter().map(|a| mean(a, n..2 * n, &|i| i - n)).collect());
    }
    Ok(scores)
}
