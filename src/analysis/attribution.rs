//! Direct logit attribution: each component of the residual stream read through ln_f (its
//! scale frozen) and the unembedding direction of the answer.

use anyhow::Result;
use candle_core::{DType, Tensor};

use crate::analysis::interventions::record;
use crate::model::gpt2::{AllLogits, Gpt2};
use crate::model::hooks::{BlockHook, Hook};

/// Direct logit attribution at one position: each component of the residual stream read
/// through ln_f (its scale frozen from the real run) and the unembedding direction.
#[derive(Debug, Clone)]
pub struct Attribution {
    /// `(name, layer, head, value)`: `embed`, `pos_embed`, `L{l}H{h}`, `L{l}.attn_bias`,
    /// `L{l}.mlp`, in the order they are added to the residual stream.
    pub components: Vec<(String, Option<usize>, Option<usize>, f64)>,
    /// `b_lnf · direction`.
    pub constant: f64,
    /// The model's own logit (difference) at the position.
    pub logit: f64,
}

/// W_U[:, answer] − W_U[:, wrong] (or W_U[:, answer] alone) in f64: rows of the LM head
/// (`wte` when tied).
fn unembedding_direction(model: &Gpt2, answer: u32, wrong: Option<u32>) -> Result<Vec<f64>> {
    let w_u = |id: u32| -> Result<Vec<f64>> {
        let row = model
            .unembedding()
            .embedding(&Tensor::new(&[id], model.device())?)?;
        Ok(row.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?)
    };
    let mut direction = w_u(answer)?;
    if let Some(w) = wrong {
        let minus = w_u(w)?;
        direction.iter_mut().zip(minus).for_each(|(d, m)| *d -= m);
    }
    Ok(direction)
}

pub fn attribute(
    model: &Gpt2,
    ids: &Tensor,
    position: usize,
    answer: u32,
    wrong: Option<u32>,
) -> Result<Attribution> {
    let cfg = model.config();
    let (n_layer, nh) = (cfg.n_layer, cfg.n_head);
    let mut hooks = vec![Hook::Embed, Hook::PosEmbed, Hook::LnFinalScale];
    for l in 0..n_layer {
        hooks.push(Hook::Block(l, BlockHook::AttnResult));
        hooks.push(Hook::Block(l, BlockHook::MlpOut));
    }
    let (acts, logits) = record(model, ids, hooks, AllLogits)?;
    let vec =
        |t: &Tensor| -> Result<Vec<f64>> { Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?) };
    let at = |hook: Hook| -> Result<Tensor> { Ok(acts.get(hook)?.narrow(1, position, 1)?) };
    let (w_lnf, b_lnf) = model.final_norm_params()?;
    let direction = unembedding_direction(model, answer, wrong)?;
    let w_lnf = vec(w_lnf)?;
    let scale = vec(&at(Hook::LnFinalScale)?)?[0];
    // ((c − mean c) / scale) · (w_lnf ⊙ direction), in f64.
    let read = |c: Vec<f64>| -> f64 {
        let mean = c.iter().sum::<f64>() / c.len() as f64;
        c.iter()
            .zip(&w_lnf)
            .zip(&direction)
            .map(|((x, w), d)| (x - mean) / scale * w * d)
            .sum()
    };
    let embed = read(vec(&at(Hook::Embed)?)?);
    let pos_embed = read(vec(&at(Hook::PosEmbed)?)?);
    let mut components = vec![
        ("embed".to_string(), None, None, embed),
        ("pos_embed".to_string(), None, None, pos_embed),
    ];
    for l in 0..n_layer {
        let result = at(Hook::Block(l, BlockHook::AttnResult))?; // (1, 1, nh, C)
        for h in 0..nh {
            let c = vec(&result.narrow(2, h, 1)?)?;
            components.push((format!("L{l}H{h}"), Some(l), Some(h), read(c)));
        }
        let bias = vec(model.attn_out_bias(l)?)?;
        components.push((format!("L{l}.attn_bias"), Some(l), None, read(bias)));
        let mlp = vec(&at(Hook::Block(l, BlockHook::MlpOut))?)?;
        components.push((format!("L{l}.mlp"), Some(l), None, read(mlp)));
    }
    let constant: f64 = vec(b_lnf)?.iter().zip(&direction).map(|(b, d)| b * d).sum();
    let row = vec(&logits.narrow(1, position, 1)?)?;
    let logit = row[answer as usize] - wrong.map_or(0.0, |w| row[w as usize]);
    Ok(Attribution {
        components,
        constant,
        logit,
    })
}
