//! GPT-2 as Hugging Face's `GPT2LMHeadModel` computes it (eager attention), with every
//! intermediate activation recordable under its TransformerLens name.
//!
//! Shapes: B batch, T tokens, C = n_embd, nh heads, hs = C / nh, V vocabulary.

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};

use super::config::{Activation, Config};
use super::hooks::{Activations, BlockHook, CaptureSpec, Hook};
use super::load::{Checkpoint, Reader};

/// Which positions get logits. Computing them costs a (C × V) matmul per position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    None,
    /// The last position of every sequence: `(B, 1, V)`.
    Last,
    /// Every position: `(B, T, V)`.
    All,
}

/// What a forward pass should produce besides the residual stream.
#[derive(Debug, Clone)]
pub struct Request {
    pub capture: CaptureSpec,
    pub logits: Logits,
}

impl Request {
    /// Blocks that must run: the deepest recorded hook, or all of them for logits.
    pub fn blocks_needed(&self, cfg: &Config) -> usize {
        match self.logits {
            Logits::None => self.capture.blocks_needed(cfg.n_layer),
            Logits::Last | Logits::All => cfg.n_layer,
        }
    }
}

#[derive(Debug)]
pub struct Output {
    pub activations: Activations,
    pub logits: Option<Tensor>,
}

/// HF's `Conv1D`: y = x W + b with W stored (in, out), so no transpose is needed.
struct Conv1D {
    weight: Tensor, // (in, out)
    bias: Tensor,   // (out,)
}

impl Conv1D {
    fn load(r: &Reader, prefix: &str) -> Result<Self> {
        Ok(Conv1D {
            weight: r.get(&format!("{prefix}.weight"))?,
            bias: r.get(&format!("{prefix}.bias"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, c_in) = x.dims3()?;
        let c_out = self.weight.dim(1)?;
        // A 2-D matmul: broadcasting a 3-D input against the 2-D weight would copy the weight.
        let y = x.reshape((b * t, c_in))?.matmul(&self.weight)?; // (B*T, out)
        Ok(y.broadcast_add(&self.bias)?.reshape((b, t, c_out))?) // (B, T, out)
    }
}

struct LayerNorm {
    weight: Tensor, // (C,)
    bias: Tensor,   // (C,)
    eps: f32,
}

impl LayerNorm {
    fn load(r: &Reader, prefix: &str, cfg: &Config) -> Result<Self> {
        Ok(LayerNorm {
            weight: r.get(&format!("{prefix}.weight"))?,
            bias: r.get(&format!("{prefix}.bias"))?,
            eps: cfg.layer_norm_epsilon as f32,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::layer_norm(
            x,
            &self.weight,
            &self.bias,
            self.eps,
        )?)
    }
}

struct Attention {
    c_attn: Conv1D,
    c_proj: Conv1D,
    n_head: usize,
    scale: f64,
}

impl Attention {
    fn load(r: &Reader, prefix: &str, cfg: &Config, layer: usize) -> Result<Self> {
        let mut scale = 1.0;
        if cfg.scale_attn_weights {
            scale /= (cfg.head_dim() as f64).sqrt();
        }
        if cfg.scale_attn_by_inverse_layer_idx {
            scale /= (layer + 1) as f64;
        }
        Ok(Attention {
            c_attn: Conv1D::load(r, &format!("{prefix}.c_attn"))?,
            c_proj: Conv1D::load(r, &format!("{prefix}.c_proj"))?,
            n_head: cfg.n_head,
            scale,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        mask: &Tensor,
        layer: usize,
        rec: &mut Recorder,
    ) -> Result<Tensor> {
        let hook = |h| Hook::Block(layer, h);
        let (b, t, c) = x.dims3()?;
        let (nh, hs) = (self.n_head, c / self.n_head);
        let qkv = self.c_attn.forward(x)?; // (B, T, 3C)
        let split = |i: usize| -> Result<Tensor> {
            Ok(qkv.narrow(2, i * c, c)?.reshape((b, t, nh, hs))?) // (B, T, nh, hs)
        };
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        rec.heads(hook(BlockHook::Q), &q, 2)?;
        rec.heads(hook(BlockHook::K), &k, 2)?;
        rec.heads(hook(BlockHook::V), &v, 2)?;
        let q = q.transpose(1, 2)?.contiguous()?; // (B, nh, T, hs)
        let k = k.transpose(1, 2)?.contiguous()?; // (B, nh, T, hs)
        let v = v.transpose(1, 2)?.contiguous()?; // (B, nh, T, hs)

        let scores = (q.matmul(&k.t()?)? * self.scale)?; // (B, nh, T, T)
                                                         // mask: 0 where a query may look, -inf at future keys (and padding).
        let scores = scores.broadcast_add(mask)?; // (B, nh, T, T)
        rec.heads(hook(BlockHook::AttnScores), &scores, 1)?;
        let pattern = candle_nn::ops::softmax_last_dim(&scores)?; // (B, nh, T, T), rows sum to 1
        rec.heads(hook(BlockHook::Pattern), &pattern, 1)?;

        let z = pattern.matmul(&v)?.transpose(1, 2)?; // (B, T, nh, hs)
        rec.heads(hook(BlockHook::Z), &z, 2)?;
        let z = z.reshape((b, t, c))?; // (B, T, C), heads concatenated
        self.c_proj.forward(&z) // (B, T, C)
    }
}

struct Mlp {
    c_fc: Conv1D,
    c_proj: Conv1D,
    act: Activation,
}

impl Mlp {
    fn load(r: &Reader, prefix: &str, cfg: &Config) -> Result<Self> {
        Ok(Mlp {
            c_fc: Conv1D::load(r, &format!("{prefix}.c_fc"))?,
            c_proj: Conv1D::load(r, &format!("{prefix}.c_proj"))?,
            act: cfg.activation_function,
        })
    }

    fn forward(&self, x: &Tensor, layer: usize, rec: &mut Recorder) -> Result<Tensor> {
        let pre = self.c_fc.forward(x)?; // (B, T, 4C)
        rec.record(Hook::Block(layer, BlockHook::MlpPre), &pre)?;
        let post = match self.act {
            Activation::GeluTanh => pre.gelu()?,
            Activation::GeluErf => pre.gelu_erf()?,
            Activation::Relu => pre.relu()?,
            Activation::Silu => pre.silu()?,
        }; // (B, T, 4C)
        rec.record(Hook::Block(layer, BlockHook::MlpPost), &post)?;
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
        let p = format!("h.{layer}");
        Ok(Block {
            layer,
            ln_1: LayerNorm::load(r, &format!("{p}.ln_1"), cfg)?,
            attn: Attention::load(r, &format!("{p}.attn"), cfg, layer)?,
            ln_2: LayerNorm::load(r, &format!("{p}.ln_2"), cfg)?,
            mlp: Mlp::load(r, &format!("{p}.mlp"), cfg)?,
        })
    }

    /// Pre-LN: x + attn(ln_1(x)), then + mlp(ln_2(.)). The input (hook_resid_pre) is
    /// recorded by the caller.
    fn forward(&self, x: &Tensor, mask: &Tensor, rec: &mut Recorder) -> Result<Tensor> {
        let l = self.layer;
        let hook = |h| Hook::Block(l, h);
        let h = self.ln_1.forward(x)?; // (B, T, C)
        rec.record(hook(BlockHook::Ln1Normalized), &h)?;
        let attn_out = self.attn.forward(&h, mask, l, rec)?; // (B, T, C)
        rec.record(hook(BlockHook::AttnOut), &attn_out)?;
        let x = (x + attn_out)?; // (B, T, C)
        rec.record(hook(BlockHook::ResidMid), &x)?;
        let h = self.ln_2.forward(&x)?; // (B, T, C)
        rec.record(hook(BlockHook::Ln2Normalized), &h)?;
        let mlp_out = self.mlp.forward(&h, l, rec)?; // (B, T, C)
        rec.record(hook(BlockHook::MlpOut), &mlp_out)?;
        let x = (x + mlp_out)?; // (B, T, C)
        rec.record(hook(BlockHook::ResidPost), &x)?;
        Ok(x)
    }
}

/// Passes the activations the spec asks for to the caller's sink, as they are computed.
struct Recorder<'a> {
    spec: &'a CaptureSpec,
    sink: &'a mut dyn FnMut(Hook, Tensor) -> Result<()>,
}

impl Recorder<'_> {
    fn record(&mut self, hook: Hook, t: &Tensor) -> Result<()> {
        if self.spec.wants(hook) {
            (self.sink)(hook, t.clone())?;
        }
        Ok(())
    }

    /// Like `record`, narrowed to the spec's heads along `head_dim`.
    fn heads(&mut self, hook: Hook, t: &Tensor, head_dim: usize) -> Result<()> {
        if !self.spec.wants(hook) {
            return Ok(());
        }
        let t = match self.spec.heads() {
            Some(heads) => {
                let idx = Tensor::new(
                    heads.iter().map(|&i| i as u32).collect::<Vec<_>>(),
                    t.device(),
                )?;
                t.index_select(&idx, head_dim)?
            }
            None => t.clone(),
        };
        (self.sink)(hook, t)
    }
}

/// GPT-2 with its LM head tied to `wte`. Holds the first `h.len()` blocks only: a command
/// that looks at early layers never loads (or runs) the later ones.
pub struct Gpt2 {
    wte: Tensor, // (V, C)
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
        let h = (0..n_blocks)
            .map(|l| Block::load(&r, l, cfg))
            .collect::<Result<Vec<_>>>()?;
        let ln_f = if n_blocks == cfg.n_layer {
            Some(LayerNorm::load(&r, "ln_f", cfg)?)
        } else {
            None
        };
        Ok(Gpt2 {
            wte: r.get("wte.weight")?,
            wpe: r.get("wpe.weight")?,
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
    pub fn wte(&self) -> &Tensor {
        &self.wte
    }

    /// The position embedding matrix, `(n_positions, C)`.
    pub fn wpe(&self) -> &Tensor {
        &self.wpe
    }

    /// Runs the model on `input_ids` `(B, T)` (u32), returning what `req` asks for.
    pub fn forward(&self, input_ids: &Tensor, req: &Request) -> Result<Output> {
        let mut activations = Activations::default();
        let logits = self.forward_with(input_ids, req, &mut |hook, t| {
            activations.insert(hook, t);
            Ok(())
        })?;
        Ok(Output {
            activations,
            logits,
        })
    }

    /// Runs the model, handing each recorded activation to `sink` as soon as it is computed
    /// (in data-flow order), so a caller can write it out instead of holding every layer.
    /// Returns the logits `req` asks for.
    pub fn forward_with(
        &self,
        input_ids: &Tensor,
        req: &Request,
        sink: &mut dyn FnMut(Hook, Tensor) -> Result<()>,
    ) -> Result<Option<Tensor>> {
        let (b, t) = input_ids.dims2()?;
        if t == 0 {
            bail!("no tokens to run the model on");
        }
        if t > self.cfg.n_positions {
            bail!(
                "{t} tokens exceed the model's {} positions",
                self.cfg.n_positions
            );
        }
        let n_blocks = req.blocks_needed(&self.cfg);
        if n_blocks > self.h.len() {
            bail!(
                "this request needs {n_blocks} blocks but only {} were loaded",
                self.h.len()
            );
        }
        let mut rec = Recorder {
            spec: &req.capture,
            sink,
        };

        let c = self.cfg.n_embd;
        let tok_emb = self
            .wte
            .embedding(&input_ids.flatten_all()?)?
            .reshape((b, t, c))?; // (B, T, C)
        rec.record(Hook::Embed, &tok_emb)?;
        let positions = Tensor::arange(0u32, t as u32, &self.device)?;
        let pos_emb = self.wpe.embedding(&positions)?.unsqueeze(0)?; // (1, T, C)
        rec.record(Hook::PosEmbed, &pos_emb)?;
        let mut x = tok_emb.broadcast_add(&pos_emb)?; // (B, T, C)

        let mask = self.causal_mask(t)?; // (T, T)
        for block in self.h.iter().take(n_blocks) {
            rec.record(Hook::Block(block.layer, BlockHook::ResidPre), &x)?;
            x = block.forward(&x, &mask, &mut rec)?; // (B, T, C)
        }
        if n_blocks < self.cfg.n_layer {
            // The input of the first block not run is the output of the last one run.
            rec.record(Hook::Block(n_blocks, BlockHook::ResidPre), &x)?;
            return Ok(None);
        }

        let ln_f = self
            .ln_f
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("ln_f was not loaded"))?;
        let x = ln_f.forward(&x)?; // (B, T, C)
        rec.record(Hook::LnFinal, &x)?;
        let logits = match req.logits {
            Logits::None => None,
            Logits::Last => Some(self.unembed(&x.narrow(1, t - 1, 1)?)?), // (B, 1, V)
            Logits::All => Some(self.unembed(&x)?),                       // (B, T, V)
        };
        if let Some(l) = &logits {
            rec.record(Hook::Logits, l)?;
        }
        Ok(logits)
    }

    /// The tied LM head: `x @ wteᵀ`, for `x` `(B, T, C)` already through ln_f.
    pub fn unembed(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, c) = x.dims3()?;
        let v = self.cfg.vocab_size;
        let logits = x.reshape((b * t, c))?.matmul(&self.wte.t()?)?; // (B*T, V)
        Ok(logits.reshape((b, t, v))?) // (B, T, V)
    }

    /// ln_f alone, for the logit lens. `None` when the model was loaded partially.
    pub fn final_norm(&self, x: &Tensor) -> Result<Tensor> {
        match &self.ln_f {
            Some(ln) => ln.forward(x),
            None => bail!("ln_f was not loaded"),
        }
    }

    /// 0 where key ≤ query, -inf above the diagonal: future positions get exactly 0 weight.
    fn causal_mask(&self, t: usize) -> Result<Tensor> {
        let mask: Vec<f32> = (0..t)
            .flat_map(|i| (0..t).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        Ok(Tensor::from_vec(mask, (t, t), &self.device)?.to_dtype(self.dtype)?)
    }
}
