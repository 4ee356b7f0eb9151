//! Taps: what the forward pass does with each activation as it flows past a hook.
//!
//! As in TransformerLens, a hook is an identity that may replace its input: the forward
//! pass writes `x = tap.tap(hook, x)?` at every hook, so recording, patching and ablating
//! all go through the one path, and the data flow reads as one line per step. A tap that
//! wants nothing at a hook hands the tensor back untouched (no copy, no work).

use anyhow::Result;
use candle_core::Tensor;

use super::hooks::{Activations, BlockHook, CaptureSpec, Hook};

pub trait Tap {
    /// Whether `hook` matters to this tap. When false, [`Tap::tap`] returns its input and
    /// the model may skip work done only for that hook (the masked attention scores).
    fn wants(&self, hook: Hook) -> bool;

    /// The activation at `hook`; returns what flows on: `x` itself, or a replacement of
    /// the same shape.
    ///
    /// A replacement is told apart by identity: the forward pass compares the returned
    /// tensor's [`Tensor::id`] with `x`'s. Where a fused kernel stands in for the hooked
    /// steps (a layer norm's `hook_scale` and `hook_normalized`, `attn.hook_attn_scores`,
    /// `attn.hook_result`), a new id makes it recompute the rest from what was returned,
    /// on a slower path of the same arithmetic. So return `x` itself when not replacing: a
    /// copy of the same values gives the same numbers, only slower (`CopyAll` in
    /// `tests/suite/parity.rs` checks those paths against HF).
    fn tap(&mut self, hook: Hook, x: Tensor) -> Result<Tensor>;
}

/// Hands each activation a [`CaptureSpec`] asks for to `sink`, narrowed to the spec's heads
/// on per-head hooks, and changes nothing.
pub struct Recorder<'a, F: FnMut(Hook, Tensor) -> Result<()>> {
    spec: &'a CaptureSpec,
    sink: F,
}

impl<'a, F: FnMut(Hook, Tensor) -> Result<()>> Recorder<'a, F> {
    pub fn new(spec: &'a CaptureSpec, sink: F) -> Self {
        Recorder { spec, sink }
    }
}

impl<F: FnMut(Hook, Tensor) -> Result<()>> Tap for Recorder<'_, F> {
    fn wants(&self, hook: Hook) -> bool {
        self.spec.wants(hook)
    }

    fn tap(&mut self, hook: Hook, x: Tensor) -> Result<Tensor> {
        if self.spec.wants(hook) {
            (self.sink)(hook, self.spec.narrow_heads(hook, &x)?)?;
        }
        Ok(x)
    }
}

/// Records into [`Activations`].
pub fn collect<'a>(
    spec: &'a CaptureSpec,
    into: &'a mut Activations,
) -> Recorder<'a, impl FnMut(Hook, Tensor) -> Result<()> + 'a> {
    Recorder::new(spec, move |hook, t| {
        into.insert(hook, t);
        Ok(())
    })
}

/// Notes the first activation, in data-flow order, that holds a NaN or an infinity, and
/// changes nothing. The masked attention scores (−∞ by design) are not looked at.
#[derive(Debug, Default)]
pub struct FirstNonFinite {
    pub found: Option<Hook>,
}

/// Whether `hook`'s values are all meant to be finite numbers: every activation but the
/// masked attention scores, which are −∞ by design.
pub fn meant_finite(hook: Hook) -> bool {
    !matches!(hook, Hook::Block(_, BlockHook::AttnScores))
}

impl Tap for FirstNonFinite {
    fn wants(&self, hook: Hook) -> bool {
        self.found.is_none() && meant_finite(hook)
    }

    fn tap(&mut self, hook: Hook, x: Tensor) -> Result<Tensor> {
        if self.wants(hook) && !all_finite(&x)? {
            self.found = Some(hook);
        }
        Ok(x)
    }
}

/// Whether every value of `x` is a finite number. An f32 tensor in memory is read in place,
/// in parallel (a 1,024-token attention capture is 600 MB: no copy); anything else as
/// `0 · x`, which is 0 where `x` is finite and NaN at a NaN or an infinity, summed.
pub fn all_finite(x: &Tensor) -> Result<bool> {
    use candle_core::{CpuStorage, Storage};
    use rayon::prelude::*;
    {
        let (storage, layout) = x.storage_and_layout();
        if let (Storage::Cpu(CpuStorage::F32(v)), Some((start, end))) =
            (&*storage, layout.contiguous_offsets())
        {
            return Ok(v[start..end]
                .par_chunks(1 << 16)
                .all(|c| c.iter().all(|v| v.is_finite())));
        }
    }
    let zero = x
        .affine(0.0, 0.0)?
        .to_dtype(candle_core::DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()?;
    Ok(zero == 0.0)
}

/// At one hook, replaces the activation `x` by `edit(x)` (same shape); elsewhere changes
/// nothing. What an SAE's splice, steering and clamping are.
pub struct Edit<F: FnMut(&Tensor) -> Result<Tensor>> {
    pub hook: Hook,
    pub edit: F,
}

impl<F: FnMut(&Tensor) -> Result<Tensor>> Tap for Edit<F> {
    fn wants(&self, hook: Hook) -> bool {
        hook == self.hook
    }

    fn tap(&mut self, hook: Hook, x: Tensor) -> Result<Tensor> {
        match hook == self.hook {
            true => (self.edit)(&x),
            false => Ok(x),
        }
    }
}

/// Two taps in turn at every hook: `first` sees the activation, `then` what `first` made
/// of it.
pub struct Chain<'a> {
    pub first: &'a mut dyn Tap,
    pub then: &'a mut dyn Tap,
}

impl Tap for Chain<'_> {
    fn wants(&self, hook: Hook) -> bool {
        self.first.wants(hook) || self.then.wants(hook)
    }

    fn tap(&mut self, hook: Hook, x: Tensor) -> Result<Tensor> {
        let x = self.first.tap(hook, x)?;
        self.then.tap(hook, x)
    }
}

/// Changes nothing and wants nothing.
pub struct Identity;

impl Tap for Identity {
    fn wants(&self, _: Hook) -> bool {
        false
    }

    fn tap(&mut self, _: Hook, x: Tensor) -> Result<Tensor> {
        Ok(x)
    }
}

#[cfg(test)]
mod finite_tests {
    use candle_core::{DType, Device, Tensor};

    use super::all_finite;

    #[test]
    fn all_finite_reads_every_layout_and_dtype() {
        let mut v: Vec<f32> = (0..200_000).map(|i| i as f32 * 1e-3).collect();
        let ok = Tensor::from_vec(v.clone(), (400, 500), &Device::Cpu).unwrap();
        assert!(all_finite(&ok).unwrap());
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            v[199_999] = bad;
            let t = Tensor::from_vec(v.clone(), (400, 500), &Device::Cpu).unwrap();
            assert!(!all_finite(&t).unwrap(), "{bad} in place");
            // Strided (the other path), and another dtype.
            assert!(!all_finite(&t.t().unwrap()).unwrap(), "{bad} transposed");
            assert!(
                !all_finite(&t.to_dtype(DType::F16).unwrap()).unwrap(),
                "{bad} f16"
            );
            // A view that leaves the bad value out is finite.
            assert!(all_finite(&t.narrow(0, 0, 399).unwrap()).unwrap());
        }
        assert!(all_finite(&ok.t().unwrap()).unwrap());
    }
}
