//! The replacement model's fidelity: how well a transcoder set stands in for the MLPs on a
//! text. On the clean run, each layer's feature activations and its MLP output's
//! reconstruction error; and the next-token loss of the clean run, of the run with every
//! MLP's output replaced by its transcoder's (each reading that run's own input), and of the
//! run with every MLP's output zeroed, the baseline of the share of loss recovered.

use anyhow::Result;
use candle_core::Tensor;

use super::TranscoderSet;
use crate::model::{AllLogits, BlockHook, CaptureSpec, Gpt2, Hook, Inputs, Request, Tap};

/// A layer's fit on the clean run.
pub struct LayerFit {
    /// Feature activations `(T, d_tc)`.
    pub acts: Tensor,
    /// The MLP's output minus the reconstruction `(T, C)`.
    pub errors: Tensor,
    /// The MLP's output `(T, C)`.
    pub outputs: Tensor,
}

pub struct Fit {
    pub layers: Vec<LayerFit>,
    /// Next-token losses `−log p(ids[t+1])`, `T − 1` each: the clean run's, with every MLP
    /// replaced by its transcoder, with every MLP's output zeroed.
    pub clean: Vec<f32>,
    pub replaced: Vec<f32>,
    pub zeroed: Vec<f32>,
}

/// How `tset` stands in for `model`'s MLPs on `ids`.
pub fn fit(model: &Gpt2, tset: &TranscoderSet, ids: &[u32]) -> Result<Fit> {
    let n_layers = model.config().n_layer;
    let input = Tensor::new(ids, model.device())?.unsqueeze(0)?;
    let read = tset.input.hook();
    let hooks =
        (0..n_layers).flat_map(|l| [Hook::Block(l, read), Hook::Block(l, BlockHook::MlpOut)]);
    let req = Request {
        capture: CaptureSpec::new(hooks),
        logits: AllLogits,
    };
    let clean = model.forward(&input, &req)?;
    let a = &clean.activations;
    let first = |h: Hook| -> Result<Tensor> { Ok(a.get(h)?.squeeze(0)?) };
    let mut run = Replaced::new(tset, n_layers);
    let mut layers = Vec::with_capacity(n_layers);
    for l in 0..n_layers {
        let x = first(Hook::Block(l, read))?;
        let outputs = first(Hook::Block(l, BlockHook::MlpOut))?;
        let (acts, recon) = run.layer(l, &x)?;
        let errors = (&outputs - recon)?;
        layers.push(LayerFit {
            acts,
            errors,
            outputs,
        });
    }
    let no_capture = |logits| Request {
        capture: CaptureSpec::default(),
        logits,
    };
    let mut replaced = Replaced::new(tset, n_layers);
    let replaced = model.run(Inputs::new(&input), &no_capture(AllLogits), &mut replaced)?;
    let zeroed = model.run(Inputs::new(&input), &no_capture(AllLogits), &mut Zeroed)?;
    Ok(Fit {
        layers,
        clean: losses(&clean.logits, ids)?,
        replaced: losses(&replaced, ids)?,
        zeroed: losses(&zeroed, ids)?,
    })
}

/// `−log p(ids[t+1])` at each position `t < T − 1` of logits `(1, T, V)`.
fn losses(logits: &Tensor, ids: &[u32]) -> Result<Vec<f32>> {
    let rows = logits.squeeze(0)?.to_vec2::<f32>()?;
    Ok((rows.iter().zip(&ids[1..]))
        .map(|(row, &next)| -crate::dist::log_prob(row, next as usize) as f32)
        .collect())
}

/// Every layer's transcoder in place of its MLP: each layer's features read from this run's
/// input, what they write kept for the layers they write to.
struct Replaced<'a> {
    tset: &'a TranscoderSet,
    /// What earlier layers' features wrote to each layer `(T, C)`.
    pending: Vec<Option<Tensor>>,
    /// This layer's input, read before its MLP's output.
    input: Option<Tensor>,
}

impl<'a> Replaced<'a> {
    fn new(tset: &'a TranscoderSet, n_layers: usize) -> Self {
        Replaced {
            tset,
            pending: vec![None; n_layers],
            input: None,
        }
    }

    /// Layer `l`'s activations `(T, d_tc)` on inputs `x` `(T, C)` and its reconstruction
    /// `(T, C)`: what its features and every earlier layer's write to it, its bias and skip.
    fn layer(&mut self, l: usize, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let tc = &self.tset.layers[l];
        let acts = tc.encode(x)?;
        for (k, slot) in tc.decode_slots(&acts, x.dim(1)?)?.into_iter().enumerate() {
            self.pending[l + k] = Some(match self.pending[l + k].take() {
                Some(p) => (p + slot)?,
                None => slot,
            });
        }
        let written = match self.pending[l].take() {
            Some(w) => w,
            None => x.zeros_like()?,
        };
        let recon = tc.reconstruction(&written, x)?;
        Ok((acts, recon))
    }
}

impl Tap for Replaced<'_> {
    fn wants(&self, hook: Hook) -> bool {
        match hook {
            Hook::Block(_, BlockHook::MlpOut) => true,
            Hook::Block(_, h) => h == self.tset.input.hook(),
            _ => false,
        }
    }

    fn tap(&mut self, hook: Hook, x: Tensor) -> Result<Tensor> {
        match hook {
            Hook::Block(l, BlockHook::MlpOut) => match self.input.take() {
                Some(input) => {
                    let (_, recon) = self.layer(l, &input.squeeze(0)?)?;
                    Ok(recon.unsqueeze(0)?)
                }
                None => Ok(x),
            },
            Hook::Block(_, h) if h == self.tset.input.hook() => {
                self.input = Some(x.clone());
                Ok(x)
            }
            _ => Ok(x),
        }
    }
}

/// Every MLP's output zeroed.
struct Zeroed;

impl Tap for Zeroed {
    fn wants(&self, hook: Hook) -> bool {
        matches!(hook, Hook::Block(_, BlockHook::MlpOut))
    }

    fn tap(&mut self, hook: Hook, x: Tensor) -> Result<Tensor> {
        match hook {
            Hook::Block(_, BlockHook::MlpOut) => Ok(x.zeros_like()?),
            _ => Ok(x),
        }
    }
}
