//! One naming scheme for every activation: TransformerLens's hook names.
//!
//! Names are derived from [`Hook`], never typed by hand elsewhere, so `hooks`, `dump` and
//! every command agree on them. A [`CaptureSpec`] says what a forward pass records; the
//! recorded tensors come back in [`Activations`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use anyhow::Result;
use candle_core::Tensor;

use super::config::Config;

/// Declares [`BlockHook`] from one table, in data-flow order: each variant with its
/// TransformerLens suffix. [`BlockHook::ALL`] and [`BlockHook::suffix`] come from the same
/// rows, so adding a hook is a row here, its arms in [`BlockHook::head_axis`] and
/// [`Hook::dims`] (exhaustive matches: the compiler asks for them) and its tap in gpt2.rs.
macro_rules! block_hooks {
    (
        [$($(#[$doc:meta])* $variant:ident => $suffix:literal,)*]
        split [$($(#[$sdoc:meta])* $split:ident => $ssuffix:literal,)*]
    ) => {
        /// A point in a block where an activation can be recorded.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum BlockHook {
            $($(#[$doc])* $variant,)*
            $($(#[$sdoc])* $split,)*
        }

        impl BlockHook {
            /// In data-flow order (`dump` writes in this order). The split hooks are not
            /// among them: they exist only when a tap asks for them (see [`BlockHook::SPLIT`]).
            pub const ALL: &'static [BlockHook] = &[$(BlockHook::$variant,)*];

            /// Each reader's own copy of the residual stream, as TransformerLens's
            /// `use_split_qkv_input` and `use_hook_mlp_in` make them: the edges of a
            /// circuit end here. A tap that wants one of q/k/v's makes the block compute
            /// every head's query, key and value from its own copy, through its own ln_1
            /// (whose hooks then do not fire).
            pub const SPLIT: &'static [BlockHook] = &[$(BlockHook::$split,)*];

            fn suffix(self) -> &'static str {
                match self {
                    $(BlockHook::$variant => $suffix,)*
                    $(BlockHook::$split => $ssuffix,)*
                }
            }
        }
    };
}

block_hooks! {
    [
    ResidPre => "hook_resid_pre",
    /// `sqrt(var(x) + eps)` of ln_1's input, `[B, T, 1]`.
    Ln1Scale => "ln1.hook_scale",
    /// `(x - mean(x)) / scale`, before ln_1's weight and bias (as TransformerLens).
    Ln1Normalized => "ln1.hook_normalized",
    /// ln_1's output, `normalized * w + b` (Hugging Face's module output).
    Ln1Out => "ln1.hook_out",
    Q => "attn.hook_q",
    K => "attn.hook_k",
    V => "attn.hook_v",
    AttnScores => "attn.hook_attn_scores",
    Pattern => "attn.hook_pattern",
    Z => "attn.hook_z",
    /// Each head's output `z_h · W_O[h]`, before the sum over heads and without `b_O`:
    /// `[B, T, H, C]`.
    AttnResult => "attn.hook_result",
    AttnOut => "hook_attn_out",
    ResidMid => "hook_resid_mid",
    Ln2Scale => "ln2.hook_scale",
    Ln2Normalized => "ln2.hook_normalized",
    Ln2Out => "ln2.hook_out",
    MlpPre => "mlp.hook_pre",
    MlpPost => "mlp.hook_post",
    MlpOut => "hook_mlp_out",
    ResidPost => "hook_resid_post",
    ]
    split [
    /// The residual stream each head's query reads, before ln_1: `[B, T, H, C]`.
    QInput => "hook_q_input",
    KInput => "hook_k_input",
    VInput => "hook_v_input",
    /// The residual stream the MLP reads, before ln_2: `[B, T, C]`.
    MlpIn => "hook_mlp_in",
    ]
}

impl BlockHook {
    /// The head axis of this hook's tensor, which a [`CaptureSpec`] may narrow to some heads:
    /// 2 in `[B, T, H, d_head]` (q, k, v, z), 1 in `[B, H, T, T]` (scores, pattern).
    pub fn head_axis(self) -> Option<usize> {
        use BlockHook::*;
        match self {
            Q | K | V | Z | AttnResult | QInput | KInput | VInput => Some(2),
            AttnScores | Pattern => Some(1),
            ResidPre | Ln1Scale | Ln1Normalized | Ln1Out | AttnOut | ResidMid | Ln2Scale
            | Ln2Normalized | Ln2Out | MlpPre | MlpPost | MlpOut | ResidPost | MlpIn => None,
        }
    }
}

/// Every activation the model can record, named as in TransformerLens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hook {
    Embed,
    PosEmbed,
    Block(usize, BlockHook),
    LnFinalScale,
    /// ln_f's input centred and divided by its scale (TransformerLens's).
    LnFinalNormalized,
    /// ln_f's output: Hugging Face's last hidden state, the input of the unembedding.
    LnFinalOut,
    Logits,
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hook::Embed => f.write_str("hook_embed"),
            Hook::PosEmbed => f.write_str("hook_pos_embed"),
            Hook::Block(l, h) => write!(f, "blocks.{l}.{}", h.suffix()),
            Hook::LnFinalScale => f.write_str("ln_final.hook_scale"),
            Hook::LnFinalNormalized => f.write_str("ln_final.hook_normalized"),
            Hook::LnFinalOut => f.write_str("ln_final.hook_out"),
            Hook::Logits => f.write_str("logits"),
        }
    }
}

impl Hook {
    /// All hooks of a model, in data-flow order.
    pub fn all(cfg: &Config) -> Vec<Hook> {
        let blocks =
            (0..cfg.n_layer).flat_map(|l| BlockHook::ALL.iter().map(move |&h| Hook::Block(l, h)));
        [Hook::Embed, Hook::PosEmbed]
            .into_iter()
            .chain(blocks)
            .chain([
                Hook::LnFinalScale,
                Hook::LnFinalNormalized,
                Hook::LnFinalOut,
                Hook::Logits,
            ])
            .collect()
    }

    /// The shape this hook records, as in TransformerLens (`[B, T, H, d_head]` for
    /// q/k/v/z, `[B, H, T, T]` for scores and pattern).
    pub fn dims(&self, cfg: &Config) -> Vec<Dim> {
        use Dim::{Batch, Fixed, Seq};
        let (d, nh, hs) = (cfg.n_embd, cfg.n_head, cfg.head_dim());
        match self {
            Hook::Embed | Hook::PosEmbed | Hook::LnFinalNormalized | Hook::LnFinalOut => {
                vec![Batch, Seq, Fixed(d)]
            }
            Hook::LnFinalScale => vec![Batch, Seq, Fixed(1)],
            Hook::Logits => vec![Batch, Seq, Fixed(cfg.vocab_size)],
            Hook::Block(_, h) => {
                use BlockHook::*;
                match h {
                    Q | K | V | Z => vec![Batch, Seq, Fixed(nh), Fixed(hs)],
                    AttnResult | QInput | KInput | VInput => {
                        vec![Batch, Seq, Fixed(nh), Fixed(d)]
                    }
                    Ln1Scale | Ln2Scale => vec![Batch, Seq, Fixed(1)],
                    AttnScores | Pattern => vec![Batch, Fixed(nh), Seq, Seq],
                    MlpPre | MlpPost => vec![Batch, Seq, Fixed(cfg.n_inner())],
                    ResidPre | Ln1Normalized | Ln1Out | AttnOut | ResidMid | Ln2Normalized
                    | Ln2Out | MlpOut | ResidPost | MlpIn => vec![Batch, Seq, Fixed(d)],
                }
            }
        }
    }

    /// [`Hook::dims`] for a batch of `b` sequences of `t` tokens. `hook_pos_embed` is
    /// shared by the batch, so its first dimension is 1.
    pub fn shape(&self, cfg: &Config, b: usize, t: usize) -> Vec<usize> {
        let b = if *self == Hook::PosEmbed { 1 } else { b };
        self.dims(cfg)
            .into_iter()
            .map(|d| match d {
                Dim::Batch => b,
                Dim::Seq => t,
                Dim::Fixed(n) => n,
            })
            .collect()
    }

    /// How many blocks must run before this hook can be recorded.
    fn needs_blocks(&self, n_layer: usize) -> usize {
        match self {
            Hook::Embed | Hook::PosEmbed => 0,
            // The input of block l is the output of block l - 1.
            Hook::Block(l, BlockHook::ResidPre) => *l,
            Hook::Block(l, _) => l + 1,
            Hook::LnFinalScale | Hook::LnFinalNormalized | Hook::LnFinalOut | Hook::Logits => {
                n_layer
            }
        }
    }
}

/// One dimension of an activation: the batch, the sequence, or a size fixed by the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    Batch,
    Seq,
    Fixed(usize),
}

/// What a forward pass records.
#[derive(Debug, Clone, Default)]
pub struct CaptureSpec {
    hooks: BTreeSet<Hook>,
    /// Narrows per-head hooks (q, k, v, scores, pattern, z) to these heads; `None`: all heads.
    heads: Option<Vec<usize>>,
}

impl CaptureSpec {
    pub fn new(hooks: impl IntoIterator<Item = Hook>) -> Self {
        CaptureSpec {
            hooks: hooks.into_iter().collect(),
            heads: None,
        }
    }

    pub fn with_heads(mut self, heads: Option<Vec<usize>>) -> Self {
        self.heads = heads;
        self
    }

    pub fn wants(&self, hook: Hook) -> bool {
        self.hooks.contains(&hook)
    }

    /// `x` as recorded at `hook`: narrowed to the spec's heads on a per-head hook.
    pub fn narrow_heads(&self, hook: Hook, x: &Tensor) -> Result<Tensor> {
        let axis = match hook {
            Hook::Block(_, h) => h.head_axis(),
            _ => None,
        };
        match (axis, &self.heads) {
            (Some(axis), Some(heads)) => {
                let idx: Vec<u32> = heads.iter().map(|&h| h as u32).collect();
                let idx = Tensor::new(idx, x.device())?;
                // Some activations are views (hook_z is a transpose of the heads' output).
                Ok(x.contiguous()?.index_select(&idx, axis)?)
            }
            _ => Ok(x.clone()),
        }
    }

    /// How many blocks must run to record everything asked for.
    pub fn blocks_needed(&self, n_layer: usize) -> usize {
        self.hooks
            .iter()
            .map(|h| h.needs_blocks(n_layer))
            .max()
            .unwrap_or(0)
    }
}

/// Tensors recorded by a forward pass, keyed by hook.
#[derive(Debug, Default)]
pub struct Activations(BTreeMap<Hook, Tensor>);

impl Activations {
    pub(crate) fn insert(&mut self, hook: Hook, t: Tensor) {
        self.0.insert(hook, t);
    }

    pub fn get(&self, hook: Hook) -> Result<&Tensor> {
        self.0
            .get(&hook)
            .ok_or_else(|| anyhow::anyhow!("activation {hook} was not recorded"))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Hook, &Tensor)> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        serde_json::from_str(
            r#"{"vocab_size":50257,"n_positions":1024,"n_embd":768,"n_layer":12,"n_head":12}"#,
        )
        .unwrap()
    }

    #[test]
    fn names_follow_transformer_lens() {
        let names: Vec<String> = Hook::all(&cfg()).iter().map(|h| h.to_string()).collect();
        assert_eq!(BlockHook::ALL.len(), 20);
        assert_eq!(names.len(), 2 + 12 * BlockHook::ALL.len() + 4);
        assert_eq!(names[0], "hook_embed");
        assert_eq!(names[2], "blocks.0.hook_resid_pre");
        assert_eq!(names[3], "blocks.0.ln1.hook_scale");
        assert_eq!(names[10], "blocks.0.attn.hook_pattern");
        assert_eq!(names[12], "blocks.0.attn.hook_result");
        assert_eq!(names[names.len() - 3], "ln_final.hook_normalized");
        assert!(names.contains(&"blocks.11.mlp.hook_post".to_string()));
    }

    #[test]
    fn blocks_needed_stops_early() {
        let c = cfg();
        let spec = CaptureSpec::new([Hook::Block(0, BlockHook::Pattern)]);
        assert_eq!(spec.blocks_needed(c.n_layer), 1);
        assert_eq!(CaptureSpec::new([Hook::Embed]).blocks_needed(12), 0);
        assert_eq!(CaptureSpec::new([Hook::LnFinalOut]).blocks_needed(12), 12);
    }
}
