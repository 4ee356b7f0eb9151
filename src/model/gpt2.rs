//! GPT-2 as Hugging Face's `GPT2LMHeadModel` computes it (eager attention), with every
//! intermediate activation passing through a tap under its TransformerLens name, to be
//! recorded or replaced.
//!
//! Shapes: B batch, T tokens, C = n_embd, nh heads, hs = C / nh, V vocabulary.

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor, D};

use super::config::{Activation, Config};
use super::hooks::{Activations, BlockHook, CaptureSpec, Dim, Hook};
use super::tap::{all_finite, collect, meant_finite, FirstNonFinite, Tap};
use crate::load::checkpoint::{Checkpoint, Reader};
use crate::model::kernels::layer_norm::layer_norm;
use crate::model::kernels::softmax::{attention_pattern, masked_softmax, scaled_scores};
use crate::model::weights::{Bias, Weight};

/// Which positions get logits. Computing them costs a (C × V) matmul per position.
/// Chosen at run time, its output is an `Option`; [`NoLogits`], [`LastLogits`] and
/// [`AllLogits`] say it in the type, so that what a request asks for and what its output
/// holds cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    None,
    /// The last position of every sequence: `(B, 1, V)`.
    Last,
    /// The last `n` positions of every sequence (unpadded): `(B, n, V)`.
    Tail(usize),
    /// Every position: `(B, T, V)`.
    All,
}

/// No logits: the output's `logits` is `()`.
#[derive(Debug, Clone, Copy)]
pub struct NoLogits;

/// The last position's logits: a tensor `(B, 1, V)`.
#[derive(Debug, Clone, Copy)]
pub struct LastLogits;

/// Every position's logits: a tensor `(B, T, V)`.
#[derive(Debug, Clone, Copy)]
pub struct AllLogits;

/// The last `n` positions' logits: a tensor `(B, n, V)`.
#[derive(Debug, Clone, Copy)]
pub struct TailLogits(pub usize);

/// What a request's logits field asks for, and what the run hands back for it.
pub trait WantLogits: Copy {
    /// `()`, a tensor, or (for [`Logits`]) an `Option` of one.
    type Out: std::fmt::Debug;
    fn which(self) -> Logits;
    /// The run's logits as this request promised them; `run` makes them exactly when
    /// [`WantLogits::which`] is not `None`.
    fn take(logits: Option<Tensor>) -> Result<Self::Out>;
    fn tensor(out: &Self::Out) -> Option<&Tensor>;
    fn map(out: &Self::Out, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Self::Out>;
}

impl WantLogits for Logits {
    type Out = Option<Tensor>;
    fn which(self) -> Logits {
        self
    }
    fn take(logits: Option<Tensor>) -> Result<Self::Out> {
        Ok(logits)
    }
    fn tensor(out: &Self::Out) -> Option<&Tensor> {
        out.as_ref()
    }
    fn map(out: &Self::Out, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Self::Out> {
        out.as_ref().map(f).transpose()
    }
}

impl WantLogits for NoLogits {
    type Out = ();
    fn which(self) -> Logits {
        Logits::None
    }
    fn take(_: Option<Tensor>) -> Result<()> {
        Ok(())
    }
    fn tensor(_: &()) -> Option<&Tensor> {
        None
    }
    fn map(_: &(), _: impl Fn(&Tensor) -> Result<Tensor>) -> Result<()> {
        Ok(())
    }
}

/// [`LastLogits`] and [`AllLogits`]: a tensor the run always makes.
macro_rules! tensor_logits {
    ($($ty:ident => $which:expr),*) => {$(
        impl WantLogits for $ty {
            type Out = Tensor;
            fn which(self) -> Logits {
                $which(self)
            }
            fn take(logits: Option<Tensor>) -> Result<Tensor> {
                logits.ok_or_else(|| anyhow::anyhow!("the forward pass made no logits"))
            }
            fn tensor(out: &Tensor) -> Option<&Tensor> {
                Some(out)
            }
            fn map(out: &Tensor, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
                f(out)
            }
        }
    )*};
}

tensor_logits!(
    LastLogits => (|_| Logits::Last),
    AllLogits => (|_| Logits::All),
    TailLogits => (|t: TailLogits| Logits::Tail(t.0))
);

/// What a forward pass should produce besides the residual stream.
#[derive(Debug, Clone)]
pub struct Request<W = Logits> {
    pub capture: CaptureSpec,
    pub logits: W,
}

impl<W: WantLogits> Request<W> {
    /// Blocks that must run: the deepest recorded hook, or all of them for logits.
    pub fn blocks_needed(&self, cfg: &Config) -> usize {
        match self.logits.which() {
            Logits::None => self.capture.blocks_needed(cfg.n_layer),
            Logits::Last | Logits::Tail(_) | Logits::All => cfg.n_layer,
        }
    }
}

#[derive(Debug)]
pub struct Output<W: WantLogits = Logits> {
    pub activations: Activations,
    pub logits: W::Out,
}

impl<W: WantLogits> Output<W> {
    /// Whether the logits and every recorded activation meant to be finite are (see
    /// [`meant_finite`]).
    pub fn all_finite(&self) -> Result<bool> {
        if let Some(logits) = W::tensor(&self.logits) {
            if !all_finite(logits)? {
                return Ok(false);
            }
        }
        for (&hook, t) in self.activations.iter() {
            if meant_finite(hook) && !all_finite(t)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Sequence `i` of a batch cut to its first `len` tokens, shaped as if it had run alone
    /// (`B = 1`, `T = len`). Attention maps lose their padding rows and columns.
    pub fn sequence(&self, i: usize, len: usize, cfg: &Config) -> Result<Output<W>> {
        let mut activations = Activations::default();
        for (&hook, t) in self.activations.iter() {
            let mut t = t.clone();
            for (axis, dim) in hook.dims(cfg).into_iter().enumerate() {
                t = match dim {
                    // hook_pos_embed is (1, T, C), shared by the batch.
                    Dim::Batch if t.dim(axis)? > 1 => t.narrow(axis, i, 1)?,
                    Dim::Seq if t.dim(axis)? > 1 => t.narrow(axis, 0, len)?,
                    _ => t,
                };
            }
            activations.insert(hook, t);
        }
        let logits = W::map(&self.logits, |l| {
            let l = l.narrow(0, i, 1)?; // (1, T or 1, V)
            Ok(match l.dim(1)? {
                1 => l,
                _ => l.narrow(1, 0, len)?,
            })
        })?;
        Ok(Output {
            activations,
            logits,
        })
    }
}

/// Keys and values of the positions already run, per block, each `(B, nh, T_past, hs)`:
/// the state [`Gpt2::forward_cached`] reads and extends, so generating a token runs the model
/// on that one position instead of the whole prefix.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<(Tensor, Tensor)>,
    len: usize,
}

impl KvCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Positions cached so far: the position of the next token.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// HF's `Conv1D`: y = x W + b with W stored (in, out), so no transpose is needed.
struct Conv1D {
    weight: Weight, // (in, out)
    bias: Bias,     // (out,)
}

impl Conv1D {
    fn load(r: &Reader) -> Result<Self> {
        let weight = r.weight("weight")?;
        let bias = Bias::new(r.get("bias")?, &weight)?;
        Ok(Conv1D { weight, bias })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, c_in) = x.dims3()?;
        let c_out = self.weight.dims()?.1;
        // A 2-D matmul: broadcasting a 3-D input against the 2-D weight would copy the weight.
        let y = self.weight.matmul(&x.reshape((b * t, c_in))?, &self.bias)?; // (B*T, out)
        Ok(y.reshape((b, t, c_out))?) // (B, T, out)
    }
}

struct LayerNorm {
    weight: Tensor, // (C,)
    bias: Tensor,   // (C,)
    eps: f32,
    /// Its hooks `[scale, normalized, out]` (ln1, ln2 or ln_final).
    hooks: [Hook; 3],
}

impl LayerNorm {
    fn load(r: &Reader, cfg: &Config, hooks: [Hook; 3]) -> Result<Self> {
        Ok(LayerNorm {
            weight: r.get("weight")?,
            bias: r.get("bias")?,
            eps: cfg.layer_norm_epsilon as f32,
            hooks,
        })
    }

    /// `ln(x)` through its hooks `[scale, normalized, out]`: TransformerLens's
    /// `hook_scale` = sqrt(var(x) + eps) `(B, T, 1)` and `hook_normalized` = (x - mean) /
    /// scale, taken apart only when a tap wants them, then the output `normalized * w + b`.
    /// Unless a tap replaced a part, the output is the fused kernel's.
    fn forward(&self, x: &Tensor, tap: &mut dyn Tap) -> Result<Tensor> {
        let [scale_hook, normalized_hook, out_hook] = self.hooks;
        let fused = layer_norm(x, &self.weight, &self.bias, self.eps)?;
        let y = if tap.wants(scale_hook) || tap.wants(normalized_hook) {
            let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?; // (B, T, C)
            let scale = (centred.sqr()?.mean_keepdim(D::Minus1)? + self.eps as f64)?.sqrt()?; // (B, T, 1)
            let scale_id = scale.id();
            let scale = tap.tap(scale_hook, scale)?;
            let normalized = centred.broadcast_div(&scale)?; // (B, T, C)
            let normalized_id = normalized.id();
            let normalized = tap.tap(normalized_hook, normalized)?;
            if scale.id() == scale_id && normalized.id() == normalized_id {
                fused
            } else {
                normalized
                    .broadcast_mul(&self.weight)?
                    .broadcast_add(&self.bias)?
            }
        } else {
            fused
        };
        tap.tap(out_hook, y)
    }

    /// ln_f as a plain function (the logit lens applies it to every layer).
    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        Ok(layer_norm(x, &self.weight, &self.bias, self.eps)?)
    }
}

struct Attention {
    c_attn: Conv1D,
    c_proj: Conv1D,
    n_head: usize,
    scale: f64,
    /// config.json's `reorder_and_upcast_attn`: scores and softmax in f32 whatever the
    /// model's dtype (HF's `_upcast_and_reordered_attn`); in f32 it changes nothing.
    upcast: bool,
    layer: usize,
}

impl Attention {
    fn load(r: &Reader, cfg: &Config, layer: usize) -> Result<Self> {
        let mut scale = 1.0;
        if cfg.scale_attn_weights {
            scale /= (cfg.head_dim() as f64).sqrt();
        }
        if cfg.scale_attn_by_inverse_layer_idx {
            scale /= (layer + 1) as f64;
        }
        Ok(Attention {
            c_attn: Conv1D::load(&r.pp("c_attn"))?,
            c_proj: Conv1D::load(&r.pp("c_proj"))?,
            n_head: cfg.n_head,
            scale,
            upcast: cfg.reorder_and_upcast_attn,
            layer,
        })
    }

    /// The queries, keys and values of ln_1's output `h` `(B, T, C)`: `(B, T, nh, hs)` each.
    fn qkv(&self, h: &Tensor) -> Result<[Tensor; 3]> {
        let (b, t, c) = h.dims3()?;
        let qkv = self.c_attn.forward(h)?; // (B, T, 3C)
        let split = |i: usize| -> Result<Tensor> {
            Ok(qkv
                .narrow(2, i * c, c)?
                .reshape((b, t, self.n_head, c / self.n_head))?)
        };
        Ok([split(0)?, split(1)?, split(2)?])
    }

    /// [`Attention::qkv`] with split inputs: `inputs[i]` `(B, T, nh, C)` holds each head's
    /// own copy of the residual stream for its queries (i = 0), keys (1) or values (2),
    /// each through `ln_1` and that head's columns of c_attn.
    fn qkv_split(&self, inputs: [Tensor; 3], ln_1: &LayerNorm) -> Result<[Tensor; 3]> {
        let (b, t, nh, c) = inputs[0].dims4()?;
        let hs = c / nh;
        let w = self.c_attn.weight.tensor()?; // (C, 3C)
        let bias = &self.c_attn.bias.tensor; // (3C,)
        let mut out = Vec::with_capacity(3);
        for (i, x) in inputs.into_iter().enumerate() {
            let h = ln_1.apply(&x)?.transpose(1, 2)?.contiguous()?; // (B, nh, T, C)
            let w_i = w
                .narrow(1, i * c, c)?
                .reshape((c, nh, hs))?
                .transpose(0, 1)?; // (nh, C, hs)
            let b_i = bias.narrow(0, i * c, c)?.reshape((nh, 1, hs))?;
            let y = h.broadcast_matmul(&w_i.contiguous()?.unsqueeze(0)?)?; // (B, nh, T, hs)
            out.push(
                y.broadcast_add(&b_i)?
                    .transpose(1, 2)?
                    .reshape((b, t, nh, hs))?,
            );
        }
        Ok([out.remove(0), out.remove(0), out.remove(0)])
    }

    /// Attention of `qkv` (each `(B, T, nh, hs)`, through hook_q, hook_k, hook_v here).
    /// Returns the output and this call's keys and values, preceded by `past`'s:
    /// `(B, nh, T_past + T, hs)` each.
    fn forward(
        &self,
        [q, k, v]: [Tensor; 3],
        mask: &Tensor,
        past: Option<&(Tensor, Tensor)>,
        tap: &mut dyn Tap,
    ) -> Result<(Tensor, (Tensor, Tensor))> {
        let at = |h| Hook::Block(self.layer, h);
        let (b, t, nh, hs) = q.dims4()?;
        let c = nh * hs;
        let mut heads = |hook, x| -> Result<Tensor> {
            Ok(tap.tap(at(hook), x)?.transpose(1, 2)?.contiguous()?) // (B, nh, T, hs)
        };
        let q = heads(BlockHook::Q, q)?;
        let k = heads(BlockHook::K, k)?;
        let v = heads(BlockHook::V, v)?;
        let (k, v) = match past {
            Some((pk, pv)) => (Tensor::cat(&[pk, &k], 2)?, Tensor::cat(&[pv, &v], 2)?), // (B, nh, Tk, hs)
            None => (k, v),
        };

        // The scores as `scaled_scores` makes them (q scaled first in f32).
        let dtype = v.dtype();
        let (qs, ks, mask) = match self.upcast && dtype != DType::F32 {
            true => (
                q.to_dtype(DType::F32)?,
                k.to_dtype(DType::F32)?,
                mask.to_dtype(DType::F32)?,
            ),
            false => (q, k.clone(), mask.clone()),
        };
        // (B, nh, T, Tk), rows summing to 1. A backward pass through the fused op holds no
        // scores; a tap that wants the scores gets them.
        let wants_scores = tap.wants(Hook::Block(self.layer, BlockHook::AttnScores));
        let pattern = match (qs.track_op() || ks.track_op()) && !wants_scores {
            true => attention_pattern(&qs, &ks, self.scale, &mask)?,
            false => {
                let scores = scaled_scores(&qs, &ks, self.scale)?; // (B, nh, T, Tk)
                self.pattern(&scores, &mask, tap)?
            }
        }
        .to_dtype(dtype)?;
        let pattern = tap.tap(at(BlockHook::Pattern), pattern)?;
        let z = pattern.matmul(&v)?.transpose(1, 2)?; // (B, T, nh, hs)
        let z = tap.tap(at(BlockHook::Z), z)?;
        let out = self.c_proj.forward(&z.reshape((b, t, c))?)?; // (B, T, C), heads concatenated
        Ok((self.result(&z, out, tap)?, (k, v)))
    }

    /// softmax(scores + mask) `(B, nh, T, Tk)`, rows summing to 1. mask: 0 where a query may
    /// look, -inf at future keys and padding; the fused softmax adds it itself, so the
    /// masked scores are only made when a tap wants them, and used only if it replaced
    /// them.
    fn pattern(&self, scores: &Tensor, mask: &Tensor, tap: &mut dyn Tap) -> Result<Tensor> {
        let hook = Hook::Block(self.layer, BlockHook::AttnScores);
        if !tap.wants(hook) {
            return Ok(masked_softmax(scores, mask)?);
        }
        let masked = scores.broadcast_add(mask)?; // (B, nh, T, Tk)
        let id = masked.id();
        let tapped = tap.tap(hook, masked)?;
        match tapped.id() == id {
            true => Ok(masked_softmax(scores, mask)?),
            // The replacement holds the mask's -inf already; adding it again changes nothing.
            false => Ok(masked_softmax(&tapped, mask)?),
        }
    }

    /// The attention output `out` `(B, T, C)`, through hook_result when a tap wants each
    /// head's share (rebuilt from the shares if it replaced them).
    fn result(&self, z: &Tensor, out: Tensor, tap: &mut dyn Tap) -> Result<Tensor> {
        let hook = Hook::Block(self.layer, BlockHook::AttnResult);
        if !tap.wants(hook) {
            return Ok(out);
        }
        let (_, _, nh, hs) = z.dims4()?;
        let c = nh * hs;
        // Each head's share of c_proj: W_O[h] is rows h·hs..(h+1)·hs of its (C, C) weight.
        let w_o = (self.c_proj.weight.tensor()?)
            .reshape((nh, hs, c))?
            .unsqueeze(0)?; // (1, nh, hs, C)
        let result = z
            .transpose(1, 2)?
            .contiguous()?
            .broadcast_matmul(&w_o)? // (B, nh, T, C)
            .transpose(1, 2)?
            .contiguous()?; // (B, T, nh, C)
        let id = result.id();
        let result = tap.tap(hook, result)?;
        Ok(match result.id() == id {
            true => out,
            false => result.sum(2)?.broadcast_add(&self.c_proj.bias.tensor)?, // (B, T, C)
        })
    }
}

struct Mlp {
    c_fc: Conv1D,
    c_proj: Conv1D,
    act: Activation,
    layer: usize,
}

impl Mlp {
    fn load(r: &Reader, cfg: &Config, layer: usize) -> Result<Self> {
        Ok(Mlp {
            c_fc: Conv1D::load(&r.pp("c_fc"))?,
            c_proj: Conv1D::load(&r.pp("c_proj"))?,
            act: cfg.activation_function,
            layer,
        })
    }

    fn forward(&self, x: &Tensor, tap: &mut dyn Tap) -> Result<Tensor> {
        let at = |h| Hook::Block(self.layer, h);
        let pre = tap.tap(at(BlockHook::MlpPre), self.c_fc.forward(x)?)?; // (B, T, 4C)
        let post = super::activation::apply(self.act, &pre)?; // (B, T, 4C)
        let post = tap.tap(at(BlockHook::MlpPost), post)?;
        self.c_proj.forward(&post) // (B, T, C)
    }
}

struct Block {
    layer: usize,
    ln_1: LayerNorm,
    attn: Attention,
    ln_2: LayerNorm,
    mlp: Mlp,
}

impl Block {
    fn load(r: &Reader, layer: usize, cfg: &Config) -> Result<Self> {
        use BlockHook::{Ln1Normalized, Ln1Out, Ln1Scale, Ln2Normalized, Ln2Out, Ln2Scale};
        let at = |hooks: [BlockHook; 3]| hooks.map(|h| Hook::Block(layer, h));
        let ln1 = at([Ln1Scale, Ln1Normalized, Ln1Out]);
        let ln2 = at([Ln2Scale, Ln2Normalized, Ln2Out]);
        Ok(Block {
            layer,
            ln_1: LayerNorm::load(&r.pp("ln_1"), cfg, ln1)?,
            attn: Attention::load(&r.pp("attn"), cfg, layer)?,
            ln_2: LayerNorm::load(&r.pp("ln_2"), cfg, ln2)?,
            mlp: Mlp::load(&r.pp("mlp"), cfg, layer)?,
        })
    }

    /// Pre-LN, every step through its hook. Also returns the block's keys and values (see
    /// [`Attention::forward`]).
    fn forward(
        &self,
        x: Tensor,
        mask: &Tensor,
        past: Option<&(Tensor, Tensor)>,
        tap: &mut dyn Tap,
    ) -> Result<(Tensor, (Tensor, Tensor))> {
        let at = |h| Hook::Block(self.layer, h);
        let x = tap.tap(at(BlockHook::ResidPre), x)?; // (B, T, C)
        let (attn_out, kv) = self.attn(&x, mask, past, tap)?;
        let x = tap.tap(at(BlockHook::ResidMid), (x + attn_out)?)?; // x = x + attn(ln_1(x))
        let mlp_out = self.mlp(&x, tap)?;
        let x = tap.tap(at(BlockHook::ResidPost), (x + mlp_out)?)?; // x = x + mlp(ln_2(x))
        Ok((x, kv))
    }

    /// `attn(ln_1(x))` through hook_attn_out, and the keys and values. When a tap wants a
    /// split input (hook_q_input, hook_k_input, hook_v_input), every head reads its own
    /// copy of `x` for each of the three.
    fn attn(
        &self,
        x: &Tensor,
        mask: &Tensor,
        past: Option<&(Tensor, Tensor)>,
        tap: &mut dyn Tap,
    ) -> Result<(Tensor, (Tensor, Tensor))> {
        let at = |h| Hook::Block(self.layer, h);
        let split = [BlockHook::QInput, BlockHook::KInput, BlockHook::VInput];
        let qkv = if split.iter().any(|&h| tap.wants(at(h))) {
            let (b, t, c) = x.dims3()?;
            let nh = self.attn.n_head;
            let mut copies = Vec::with_capacity(3);
            for hook in split {
                let copy = x.unsqueeze(2)?.broadcast_as((b, t, nh, c))?.contiguous()?; // (B, T, nh, C)
                copies.push(tap.tap(at(hook), copy)?);
            }
            let inputs = [copies.remove(0), copies.remove(0), copies.remove(0)];
            self.attn.qkv_split(inputs, &self.ln_1)?
        } else {
            self.attn.qkv(&self.ln_1.forward(x, tap)?)? // ln_1: (B, T, C)
        };
        let (out, kv) = self.attn.forward(qkv, mask, past, tap)?;
        Ok((tap.tap(at(BlockHook::AttnOut), out)?, kv))
    }

    /// `mlp(ln_2(x))` through hook_mlp_out; the MLP reads its own copy of `x` through
    /// hook_mlp_in.
    fn mlp(&self, x: &Tensor, tap: &mut dyn Tap) -> Result<Tensor> {
        let x = tap.tap(Hook::Block(self.layer, BlockHook::MlpIn), x.clone())?;
        let h = self.ln_2.forward(&x, tap)?; // (B, T, C)
        let out = self.mlp.forward(&h, tap)?;
        tap.tap(Hook::Block(self.layer, BlockHook::MlpOut), out)
    }
}

/// What a forward pass runs over: token ids `(B, T)` (u32) and how they relate to what
/// came before.
pub struct Inputs<'a> {
    pub ids: &'a Tensor,
    /// Real tokens per sequence of a right-padded batch (padding after them, attended to by
    /// no real token); `None`: every position is real.
    pub lengths: Option<&'a [usize]>,
    /// Keys and values of earlier positions: `ids` continue them, and this call's keys and
    /// values are appended.
    pub cache: Option<&'a mut KvCache>,
    /// Start at block `l` with this residual stream `(B, T, C)` as its hook_resid_pre
    /// instead of embedding `ids`: the blocks before `l` (and their hooks) are skipped.
    /// For runs known to equal another run up to block `l` (activation patching).
    pub start: Option<(usize, &'a Tensor)>,
    /// Token embeddings `(B, T, C)` to use instead of `wte[ids]` (Hugging Face's
    /// `inputs_embeds`): what gradients with respect to the input are taken of. `ids` still
    /// give the shape.
    pub embeds: Option<&'a Tensor>,
}

impl<'a> Inputs<'a> {
    pub fn new(ids: &'a Tensor) -> Self {
        Inputs {
            ids,
            lengths: None,
            cache: None,
            start: None,
            embeds: None,
        }
    }
}

/// A block's weights on an attribution graph's linear path ([`Gpt2::frozen_block`]).
pub struct FrozenBlock {
    pub ln1_gain: Tensor,
    pub ln2_gain: Tensor,
    pub w_v: Tensor,
    pub w_o: Tensor,
}

/// GPT-2 with its LM head (`wte`, or its own `lm_head.weight` when config.json unties
/// them). Holds the first `h.len()` blocks only: a command that looks at early layers never
/// loads (or runs) the later ones.
pub struct Gpt2 {
    wte: Weight, // (V, C)
    /// The untied LM head `(V, C)`; `None`: `wte` unembeds.
    lm_head: Option<Weight>,
    wpe: Tensor, // (n_positions, C)
    h: Vec<Block>,
    ln_f: Option<LayerNorm>,
    cfg: Config,
    device: Device,
    dtype: DType,
}

impl Gpt2 {
    /// Loads the embeddings and the first `n_blocks` blocks (plus ln_f when all are loaded),
    /// after checking every tensor's shape against the config.
    pub fn load(
        ckpt: &Checkpoint,
        cfg: &Config,
        n_blocks: usize,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        ckpt.check_shapes(cfg)?;
        let n_blocks = n_blocks.min(cfg.n_layer);
        let r = ckpt.reader(device, dtype)?;
        // Reading weights is bound by the kernel handing out fresh pages, which scales with
        // cores: the token embedding and the blocks are read on parallel threads.
        let (wte, h) = std::thread::scope(|s| -> Result<_> {
            let wte = s.spawn(|| r.pp("wte").weight("weight"));
            let h = (0..n_blocks)
                .map(|l| Block::load(&r.pp("h").pp(l), l, cfg))
                .collect::<Result<Vec<_>>>();
            let wte = wte
                .join()
                .map_err(|_| anyhow::anyhow!("the thread reading wte.weight panicked"))?;
            Ok((wte?, h?))
        })?;
        let ln_final = [
            Hook::LnFinalScale,
            Hook::LnFinalNormalized,
            Hook::LnFinalOut,
        ];
        let ln_f = if n_blocks == cfg.n_layer {
            Some(LayerNorm::load(&r.pp("ln_f"), cfg, ln_final)?)
        } else {
            None
        };
        let lm_head = match cfg.tie_word_embeddings {
            true => None,
            false => Some(r.weight("lm_head.weight")?),
        };
        Ok(Gpt2 {
            wte,
            lm_head,
            wpe: r.pp("wpe").get("weight")?,
            h,
            ln_f,
            cfg: cfg.clone(),
            device: device.clone(),
            dtype,
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The token embedding matrix, `(V, C)`.
    pub fn wte(&self) -> &Weight {
        &self.wte
    }

    /// The dtype the model computes in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// ln_f's weight and bias, `(C,)` each.
    pub fn final_norm_params(&self) -> Result<(&Tensor, &Tensor)> {
        match &self.ln_f {
            Some(ln) => Ok((&ln.weight, &ln.bias)),
            None => bail!("ln_f was not loaded"),
        }
    }

    /// The bias `b_O` added to the heads' summed output in layer `l`, `(C,)`.
    pub fn attn_out_bias(&self, l: usize) -> Result<&Tensor> {
        match self.h.get(l) {
            Some(b) => Ok(&b.attn.c_proj.bias.tensor),
            None => bail!("block {l} was not loaded"),
        }
    }

    /// Block `l`'s weights on the path an attribution graph differentiates, where the
    /// attention pattern and every layer norm's scale are held at a run's values: ln_1's
    /// gain `(C,)`, the values' W_V `(C, C)` (c_attn's last C columns) and W_O `(C, C)`.
    pub fn frozen_block(&self, l: usize) -> Result<FrozenBlock> {
        let Some(b) = self.h.get(l) else {
            bail!("block {l} was not loaded")
        };
        let c = self.cfg.n_embd;
        Ok(FrozenBlock {
            ln1_gain: b.ln_1.weight.clone(),
            ln2_gain: b.ln_2.weight.clone(),
            w_v: b
                .attn
                .c_attn
                .weight
                .tensor()?
                .narrow(1, 2 * c, c)?
                .contiguous()?,
            w_o: b.attn.c_proj.weight.tensor()?,
        })
    }

    /// The position embedding matrix, `(n_positions, C)`.
    pub fn wpe(&self) -> &Tensor {
        &self.wpe
    }

    /// Runs the model on `input_ids` `(B, T)` (u32), every position a real token, and
    /// returns what `req` asks for.
    pub fn forward<W: WantLogits>(
        &self,
        input_ids: &Tensor,
        req: &Request<W>,
    ) -> Result<Output<W>> {
        self.collect(Inputs::new(input_ids), req)
    }

    /// [`forward`](Self::forward) over a right-padded batch: sequence `i` has `lengths[i]`
    /// real tokens. `Logits::Last` gives each sequence's last real token.
    pub fn forward_padded<W: WantLogits>(
        &self,
        input_ids: &Tensor,
        lengths: &[usize],
        req: &Request<W>,
    ) -> Result<Output<W>> {
        let inputs = Inputs {
            lengths: Some(lengths),
            ..Inputs::new(input_ids)
        };
        self.collect(inputs, req)
    }

    /// [`forward`](Self::forward) of the positions after those in `cache`, attending to
    /// the cached keys and values, and appending this call's to `cache`. Attention hooks
    /// record `(B, nh, T, T_past + T)`.
    pub fn forward_cached<W: WantLogits>(
        &self,
        input_ids: &Tensor,
        cache: &mut KvCache,
        req: &Request<W>,
    ) -> Result<Output<W>> {
        let inputs = Inputs {
            cache: Some(cache),
            ..Inputs::new(input_ids)
        };
        self.collect(inputs, req)
    }

    /// Where values stop being finite numbers (a broken checkpoint, an overflow in f16)
    /// when `input_ids` `(1, T)` runs through the loaded blocks: the first such hook in
    /// data-flow order, or `None` when every activation is finite.
    pub fn first_non_finite(&self, input_ids: &Tensor) -> Result<Option<Hook>> {
        let n = self.h.len();
        let all_logits = n == self.cfg.n_layer && self.ln_f.is_some();
        let req = Request {
            capture: CaptureSpec::new(Hook::all(&self.cfg).into_iter().filter(|h| match h {
                Hook::Embed | Hook::PosEmbed => true,
                Hook::Block(l, _) => *l < n,
                _ => all_logits,
            })),
            logits: if all_logits {
                Logits::All
            } else {
                Logits::None
            },
        };
        // The logits pass through the tap too (as `logits`).
        let mut tap = FirstNonFinite::default();
        self.run(Inputs::new(input_ids), &req, &mut tap)?;
        Ok(tap.found)
    }

    fn collect<W: WantLogits>(&self, inputs: Inputs, req: &Request<W>) -> Result<Output<W>> {
        self.collect_with(inputs, req, &mut super::tap::Identity)
    }

    /// [`forward`](Self::forward) with `edit` applied at every hook before what the request
    /// records sees the activation (steering while generating).
    pub fn collect_with<W: WantLogits>(
        &self,
        inputs: Inputs,
        req: &Request<W>,
        edit: &mut dyn Tap,
    ) -> Result<Output<W>> {
        let mut activations = Activations::default();
        let logits = {
            let mut record = collect(&req.capture, &mut activations);
            let mut both = super::tap::Chain {
                first: edit,
                then: &mut record,
            };
            self.run(inputs, req, &mut both)?
        };
        Ok(Output {
            activations,
            logits,
        })
    }

    /// The forward pass itself: every activation flows through `tap` as it is computed (in
    /// data-flow order), which may record it or replace it. `req` says how many blocks run
    /// and which logits are made; what is recorded is the tap's business. Returns the
    /// logits as `req` asked for them.
    pub fn run<W: WantLogits>(
        &self,
        inputs: Inputs,
        req: &Request<W>,
        tap: &mut dyn Tap,
    ) -> Result<W::Out> {
        let Inputs {
            ids: input_ids,
            lengths,
            mut cache,
            start,
            embeds,
        } = inputs;
        let (b, t) = input_ids.dims2()?;
        let past = cache.as_ref().map_or(0, |c| c.len);
        let n_blocks = self.check_run(b, t, past, lengths, req, cache.is_some())?;
        if start.is_some() && past > 0 {
            bail!("a run that starts inside the model cannot continue a cache");
        }

        let (first, mut x) = match start {
            Some((l, x)) => (l, x.clone()),
            None => (0, self.embed(input_ids, embeds, past, tap)?),
        };
        let mask = self.mask(t, past, lengths)?; // (B or 1, 1, T, Tk)
        for block in self.h.iter().take(n_blocks).skip(first) {
            let l = block.layer;
            let cached = cache.as_ref().and_then(|c| c.layers.get(l));
            let (y, kv) = block.forward(x, &mask, cached, tap)?; // (B, T, C)
            x = y;
            if let Some(cache) = cache.as_mut() {
                match cache.layers.get_mut(l) {
                    Some(slot) => *slot = kv,
                    None => cache.layers.push(kv),
                }
            }
        }
        if let Some(cache) = cache.as_mut() {
            cache.len += t;
        }
        if n_blocks < self.cfg.n_layer {
            // The input of the first block not run is the output of the last one run.
            tap.tap(Hook::Block(n_blocks, BlockHook::ResidPre), x)?;
            return W::take(None);
        }

        let ln_f = self
            .ln_f
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("ln_f was not loaded"))?;
        let x = ln_f.forward(&x, tap)?; // (B, T, C)
        let logits = match req.logits.which() {
            Logits::None => None,
            which => Some(tap.tap(Hook::Logits, self.logits(&x, which, lengths)?)?),
        };
        W::take(logits)
    }

    /// The logits `which` asks for of `x` `(B, T, C)` after ln_f: `(B, 1, V)` at each
    /// sequence's last real token, or `(B, T, V)`.
    fn logits(&self, x: &Tensor, which: Logits, lengths: Option<&[usize]>) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        match which {
            Logits::Last => {
                let last = match lengths {
                    Some(lengths) => {
                        let rows = (0..b)
                            .map(|i| x.narrow(0, i, 1)?.narrow(1, lengths[i] - 1, 1))
                            .collect::<candle_core::Result<Vec<_>>>()?;
                        Tensor::cat(&rows, 0)? // (B, 1, C)
                    }
                    None => x.narrow(1, t - 1, 1)?, // (B, 1, C)
                };
                self.unembed(&last) // (B, 1, V)
            }
            Logits::Tail(n) if lengths.is_none() && (1..=t).contains(&n) => {
                self.unembed(&x.narrow(1, t - n, n)?) // (B, n, V)
            }
            Logits::Tail(n) => bail!("the last {n} positions' logits of {t} (unpadded)"),
            Logits::All => self.unembed(x), // (B, T, V)
            Logits::None => bail!("no logits were asked for"),
        }
    }

    /// `wte[ids] + wpe[past..past+T]` (or `embeds + wpe[…]`), through hook_embed and
    /// hook_pos_embed: `(B, T, C)`.
    fn embed(
        &self,
        input_ids: &Tensor,
        embeds: Option<&Tensor>,
        past: usize,
        tap: &mut dyn Tap,
    ) -> Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        let c = self.cfg.n_embd;
        let tok_emb = match embeds {
            Some(e) if e.dims3()? == (b, t, c) => e.clone(),
            Some(e) => bail!("embeddings {:?} for ids {:?}", e.dims(), input_ids.dims()),
            None => (self.wte)
                .embedding(&input_ids.flatten_all()?)?
                .reshape((b, t, c))?, // (B, T, C)
        };
        let tok_emb = tap.tap(Hook::Embed, tok_emb)?;
        // Right padding leaves every real token at its own index, so positions past..past+T
        // count real tokens only; padding positions are never attended to.
        let positions = Tensor::arange(past as u32, (past + t) as u32, &self.device)?;
        let pos_emb = self.wpe.embedding(&positions)?.unsqueeze(0)?; // (1, T, C)
        let pos_emb = tap.tap(Hook::PosEmbed, pos_emb)?;
        Ok(tok_emb.broadcast_add(&pos_emb)?) // (B, T, C)
    }

    /// Checks a run's sizes against the model; returns how many blocks it runs.
    fn check_run<W: WantLogits>(
        &self,
        b: usize,
        t: usize,
        past: usize,
        lengths: Option<&[usize]>,
        req: &Request<W>,
        cached: bool,
    ) -> Result<usize> {
        if t == 0 {
            bail!("no tokens to run the model on");
        }
        if past + t > self.cfg.n_positions {
            bail!(
                "{} tokens exceed the model's {} positions",
                past + t,
                self.cfg.n_positions
            );
        }
        if let Some(lengths) = lengths {
            if lengths.len() != b || lengths.iter().any(|&n| n == 0 || n > t) {
                bail!("lengths {lengths:?} do not fit a batch of {b} sequences of {t} tokens");
            }
        }
        let n_blocks = req.blocks_needed(&self.cfg);
        if n_blocks > self.h.len() {
            bail!(
                "this request needs {n_blocks} blocks but only {} were loaded",
                self.h.len()
            );
        }
        if cached && n_blocks < self.cfg.n_layer {
            bail!("a cached forward pass must run every block to keep the cache whole");
        }
        Ok(n_blocks)
    }

    /// The unembedding W_Uᵀ `(V, C)`: `wte` for a tied head, else `lm_head.weight`.
    pub fn unembedding(&self) -> &Weight {
        self.lm_head.as_ref().unwrap_or(&self.wte)
    }

    /// The LM head: `x @ W_U`, for `x` `(B, T, C)` already through ln_f.
    pub fn unembed(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, c) = x.dims3()?;
        let v = self.cfg.vocab_size;
        let logits = self.unembedding().matmul_t(&x.reshape((b * t, c))?)?; // (B*T, V)
        Ok(logits.reshape((b, t, v))?) // (B, T, V)
    }

    /// ln_f alone, for the logit lens; an error when the model was loaded partially.
    pub fn final_norm(&self, x: &Tensor) -> Result<Tensor> {
        match &self.ln_f {
            Some(ln) => ln.apply(x),
            None => bail!("ln_f was not loaded"),
        }
    }

    /// Additive attention mask `(B or 1, 1, T, T_past + T)`: 0 where query i (at position
    /// past + i) may look, -inf at future keys and at padding, so they get exactly 0 weight.
    fn mask(&self, t: usize, past: usize, lengths: Option<&[usize]>) -> Result<Tensor> {
        let tk = past + t;
        let rows: Vec<usize> = match lengths {
            Some(lengths) => lengths.to_vec(),
            None => vec![tk],
        };
        let mask: Vec<f32> = rows
            .iter()
            .flat_map(|&real| {
                (0..t).flat_map(move |i| {
                    (0..tk).map(move |j| {
                        if j > past + i || j >= real {
                            f32::NEG_INFINITY
                        } else {
                            0.0
                        }
                    })
                })
            })
            .collect();
        Ok(Tensor::from_vec(mask, (rows.len(), 1, t, tk), &self.device)?.to_dtype(self.dtype)?)
    }
}
