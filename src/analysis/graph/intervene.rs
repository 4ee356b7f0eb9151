//! Feature interventions as circuit-tracer's `feature_intervention` makes them (its default
//! `freeze_attention=True`): every attention pattern held at the clean run's, the model's
//! own MLPs and layer norms run as they do, and at each layer with an intervention the
//! MLP's output moved by `(v − a) · W_dec[f]` at the feature's position, `a` the feature's
//! activation in the run being changed (its transcoder reading that run's
//! input (`ln2.hook_normalized`, or ln_2's output); 0 at position 0).

use std::collections::BTreeMap;

use anyhow::{ensure, Result};
use candle_core::{Device, Tensor};

use crate::analysis::transcoder::TranscoderSet;
use crate::model::{BlockHook, CaptureSpec, Gpt2, Hook, Inputs, LastLogits, Request, Tap};

/// One feature set to a value at one position: circuit-tracer's `(layer, position,
/// feature_idx, value)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Intervention {
    pub layer: usize,
    pub pos: usize,
    pub feature: usize,
    pub value: f32,
}

/// Each change names a layer, a feature and a position that exist.
pub fn check(
    changes: &[Intervention],
    tset: &TranscoderSet,
    n_layers: usize,
    n_pos: usize,
) -> Result<()> {
    for c in changes {
        ensure!(
            c.layer < n_layers && c.pos < n_pos && c.feature < tset.d_tc,
            "feature {} of layer {} at position {}: the transcoders have {} features in {} \
             layers, the text {} positions",
            c.feature,
            c.layer,
            c.pos,
            tset.d_tc,
            n_layers,
            n_pos
        );
    }
    Ok(())
}

/// The last position's logits `(V,)` of `ids` before and after `changes`.
pub fn intervene(
    model: &Gpt2,
    tset: &TranscoderSet,
    ids: &[u32],
    changes: &[Intervention],
) -> Result<(Vec<f32>, Vec<f32>)> {
    let n_layers = model.config().n_layer;
    check(changes, tset, n_layers, ids.len())?;
    let input = Tensor::new(ids, model.device())?.unsqueeze(0)?;
    let patterns = (0..n_layers).map(|l| Hook::Block(l, BlockHook::Pattern));
    let req = Request {
        capture: CaptureSpec::new(patterns),
        logits: LastLogits,
    };
    let clean = model.forward(&input, &req)?;
    let mut by_layer: BTreeMap<usize, Vec<Intervention>> = BTreeMap::new();
    for c in changes {
        by_layer.entry(c.layer).or_default().push(*c);
    }
    let mut tap = Frozen {
        patterns: (0..n_layers)
            .map(|l| {
                Ok(clean
                    .activations
                    .get(Hook::Block(l, BlockHook::Pattern))?
                    .clone())
            })
            .collect::<Result<_>>()?,
        tset,
        by_layer,
        input: None,
        pending: vec![None; n_layers],
    };
    let req = Request {
        capture: CaptureSpec::default(),
        logits: LastLogits,
    };
    let after = model.run(Inputs::new(&input), &req, &mut tap)?;
    let last = |t: &Tensor| -> Result<Vec<f32>> { Ok(t.flatten_all()?.to_vec1::<f32>()?) };
    Ok((last(&clean.logits)?, last(&after)?))
}

/// The tap of an intervened run: clean patterns in, each intervened layer's transcoder
/// input read, and its MLP output moved.
struct Frozen<'a> {
    patterns: Vec<Tensor>,
    tset: &'a TranscoderSet,
    by_layer: BTreeMap<usize, Vec<Intervention>>,
    /// This layer's transcoder input `(1, T, C)`, read before its MLP's output.
    input: Option<Tensor>,
    /// What the changes made so far add to each layer's MLP output `(1, T, C)`: a
    /// cross-layer feature's change reaches its own layer and every later one.
    pending: Vec<Option<Tensor>>,
}

impl Tap for Frozen<'_> {
    fn wants(&self, hook: Hook) -> bool {
        match hook {
            Hook::Block(_, BlockHook::Pattern) => true,
            Hook::Block(l, h) if h == self.tset.input.hook() => self.by_layer.contains_key(&l),
            Hook::Block(l, BlockHook::MlpOut) => self.by_layer.range(..=l).next().is_some(),
            _ => false,
        }
    }

    fn tap(&mut self, hook: Hook, x: Tensor) -> Result<Tensor> {
        match hook {
            Hook::Block(l, BlockHook::Pattern) => Ok(self.patterns[l].clone()),
            Hook::Block(_, h) if h == self.tset.input.hook() => {
                self.input = Some(x.clone());
                Ok(x)
            }
            Hook::Block(l, BlockHook::MlpOut) => {
                if let (Some(changes), Some(input)) =
                    (self.by_layer.get(&l).cloned(), self.input.take())
                {
                    self.change(l, &changes, &input)?;
                }
                match self.pending[l].take() {
                    Some(delta) => Ok((x + delta)?),
                    None => Ok(x),
                }
            }
            _ => Ok(x),
        }
    }
}

impl Frozen<'_> {
    /// Adds `(v − a) · W_dec[f]` at each change's position to what layer `l`'s changes
    /// write: layer `l`'s MLP output, and in a cross-layer transcoder every later one's.
    fn change(&mut self, l: usize, changes: &[Intervention], input: &Tensor) -> Result<()> {
        let tc = &self.tset.layers[l];
        let acts = tc.encode(&input.squeeze(0)?)?.to_vec2::<f32>()?; // (T, d_tc)
        let (t, c) = (acts.len(), input.dim(2)?);
        let mut delta = vec![0f32; tc.writes * t * c]; // (writes, T, C)
        for ch in changes {
            // circuit-tracer zeroes position 0's activations.
            let a = if ch.pos == 0 {
                0.0
            } else {
                acts[ch.pos][ch.feature]
            };
            let row = tc.decoder_rows(&[ch.feature as u32])?.flatten_all()?;
            let row = row.to_vec1::<f32>()?;
            for (k, slot) in row.chunks(c).enumerate() {
                let at = (k * t + ch.pos) * c;
                for (d, w) in delta[at..at + c].iter_mut().zip(slot) {
                    *d += (ch.value - a) * w;
                }
            }
        }
        let delta = Tensor::from_vec(delta, (tc.writes, 1, t, c), &Device::Cpu)?;
        for k in 0..tc.writes {
            let add = delta.get(k)?;
            self.pending[l + k] = Some(match self.pending[l + k].take() {
                Some(p) => (p + add)?,
                None => add,
            });
        }
        Ok(())
    }
}
