//! Taps: what the forward pass does with each activation as it flows past a hook.
//!
//! As in TransformerLens, a hook is an identity that may replace its input: the forward
//! pass writes `x = tap.tap(hook, x)?` at every hook, so recording, patching and ablating
//! all go through the one path, and the data flow reads as one line per step. A tap that
//! wants nothing at a hook hands the tensor back untouched (no copy, no work).

use anyhow::Result;
use candle_core::Tensor;

use super::hooks::{Activations, CaptureSpec, Hook};

pub trait Tap {
    /// Whether `hook` matters to this tap. When false, [`Tap::tap`] returns its input and
    /// the model may skip work done only for that hook (the masked attention scores).
    fn wants(&self, hook: Hook) -> bool;

    /// The activation at `hook`; returns what flows on: `x` itself, or a replacement of
    /// the same shape.
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

/// Two taps in turn: `first` sees the model's activation, `then` sees what `first` let
/// through (an intervention, then a recorder that sees the patched value).
pub struct Chain<'a>(pub &'a mut dyn Tap, pub &'a mut dyn Tap);

impl Tap for Chain<'_> {
    fn wants(&self, hook: Hook) -> bool {
        self.0.wants(hook) || self.1.wants(hook)
    }

    fn tap(&mut self, hook: Hook, x: Tensor) -> Result<Tensor> {
        let x = self.0.tap(hook, x)?;
        self.1.tap(hook, x)
    }
}
