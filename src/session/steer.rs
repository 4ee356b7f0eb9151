//! The steering flags: an SAE's features changed at its hook (`--sae` with `--steer`,
//! `--clamp`, `--ablate-feature`), or tokens' Jacobian-lens vectors added at a block's
//! output (`--jlens` with `--steer-token`, `--at`), at every position, as an [`Edit`] tap.

use anyhow::Result;
use candle_core::Tensor;

use crate::analysis::sae::{self, Change, Sae};
use crate::cli::SteerArgs;
use crate::error::usage;
use crate::model::tap::Edit;
use crate::model::{AllLogits, Config, Gpt2, Hook, Inputs, LastLogits, Request, WantLogits};
use crate::session::Session;

pub(crate) struct Steering {
    pub by: SteerBy,
    pub hook: Hook,
    /// The SAE's directory or the lens's file, as given.
    pub source: String,
}

/// What the steering adds at its hook.
pub(crate) enum SteerBy {
    Sae {
        sae: Box<Sae>,
        changes: Vec<(usize, Change)>,
        centered: bool,
    },
    /// Σ α · v(token), `(C,)` in the model's dtype, and each token with its α.
    LensVectors {
        add: Tensor,
        tokens: Vec<(String, f64)>,
    },
}

impl Steering {
    /// The flags' steering, `None` without `--sae` or `--jlens`; feature ids are checked
    /// against the SAE, tokens and the block against the lens.
    pub fn from_args(session: &Session, args: &SteerArgs, cfg: &Config) -> Result<Option<Self>> {
        if let Some(spec) = &args.jlens {
            return lens_vectors(session, args, spec, cfg).map(Some);
        }
        let Some(spec) = &args.sae.sae else {
            return Ok(None);
        };
        let revision = args.sae.sae_revision.as_deref();
        let (sae, hook, centered) = session.sae(spec, revision, args.sae.sae_centered, cfg)?;
        let changes: Vec<(usize, Change)> = (args.steer.iter().map(|&(f, a)| (f, Change::Add(a))))
            .chain(args.clamp.iter().map(|&(f, v)| (f, Change::Clamp(v))))
            .chain(args.ablate_feature.iter().map(|&f| (f, Change::Clamp(0.0))))
            .collect();
        if changes.is_empty() {
            return Err(usage(
                "--sae: give --steer F=α, --clamp F=v or --ablate-feature F",
            ));
        }
        session.check_features(spec, &sae, changes.iter().map(|(f, _)| *f))?;
        Ok(Some(Steering {
            by: SteerBy::Sae {
                sae: Box::new(sae),
                changes,
                centered,
            },
            hook,
            source: spec.clone(),
        }))
    }

    /// What steered, as reports name it: the SAE's directory, or the lens's file.
    pub fn with(&self) -> crate::reports::SteeredWith {
        match &self.by {
            SteerBy::Sae { sae, .. } => {
                crate::reports::SteeredWith::Sae(sae.dir.display().to_string())
            }
            SteerBy::LensVectors { .. } => crate::reports::SteeredWith::Jlens(self.source.clone()),
        }
    }

    /// What each change does, as the output says it.
    pub fn describe(&self) -> Vec<String> {
        match &self.by {
            SteerBy::Sae { changes, .. } => (changes.iter())
                .map(|&(f, c)| match c {
                    Change::Add(a) => format!("{a:+} · W_dec[{f}]"),
                    Change::Clamp(0.0) => format!("feature {f} ablated"),
                    Change::Clamp(v) => format!("feature {f} clamped to {v}"),
                })
                .collect(),
            SteerBy::LensVectors { tokens, .. } => (tokens.iter())
                .map(|(t, a)| format!("{a:+} · J-lens vector of {t:?}"))
                .collect(),
        }
    }

    /// The changes as a tap.
    pub fn tap(&self) -> Edit<impl FnMut(&Tensor) -> anyhow::Result<Tensor> + '_> {
        Edit {
            hook: self.hook,
            edit: |x: &Tensor| match &self.by {
                SteerBy::Sae {
                    sae,
                    changes,
                    centered,
                } => sae::steer(sae, x, changes, *centered),
                SteerBy::LensVectors { add, .. } => Ok(x.broadcast_add(add)?),
            },
        }
    }

    /// The last position's logits `(V,)` of `ids` with the changes applied.
    pub fn last_logits(&self, model: &Gpt2, ids: &[u32]) -> Result<Tensor> {
        self.finite(self.logits(model, ids, LastLogits)?.flatten_all()?)
    }

    /// Every position's logits `(1, T, V)` of `ids` with the changes applied.
    pub fn all_logits(&self, model: &Gpt2, ids: &[u32]) -> Result<Tensor> {
        self.finite(self.logits(model, ids, AllLogits)?)
    }

    /// `logits`, or the error that says the steering made them NaN or infinite (exit 1).
    fn finite(&self, logits: Tensor) -> Result<Tensor> {
        if crate::model::tap::all_finite(&logits)? {
            return Ok(logits);
        }
        anyhow::bail!(
            "steering ({}) at {} made the values non-finite (NaN or infinity) from there on; \
             the steered logits are not numbers: choose smaller values",
            self.describe().join(", "),
            self.hook
        )
    }

    /// The logits `want` asks for of `ids` with the changes applied.
    pub fn logits<W: WantLogits>(&self, model: &Gpt2, ids: &[u32], want: W) -> Result<W::Out> {
        let input = Tensor::new(ids, model.device())?.unsqueeze(0)?;
        let req = Request {
            capture: Default::default(),
            logits: want,
        };
        model.run(Inputs::new(&input), &req, &mut self.tap())
    }
}

/// `--jlens FILE --steer-token TOKEN=α… --at L`: Σ α · v(TOKEN) at block L's output, where
/// v(t) = J_Lᵀ W_U[:, t] (TransformerLens's `lens_vectors`).
fn lens_vectors(session: &Session, args: &SteerArgs, spec: &str, cfg: &Config) -> Result<Steering> {
    let at = args.at.expect("clap requires --at with --steer-token");
    let lens = session.lens(&crate::cli::LensArg::Jacobian(spec.to_string()), cfg)?;
    let crate::analysis::lens::Lens::Jacobian(j) = lens else {
        unreachable!("a jlens spec reads a Jacobian lens");
    };
    let Some(matrix) = j.matrix(at) else {
        return Err(usage(format!(
            "--at {at}: the Jacobian lens in {spec} has matrices for blocks {}",
            (j.layers.iter().map(|l| l.to_string()))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let tokenizer = session.tokenizer()?;
    let model = session.model(cfg, cfg.n_layer)?;
    let mut add = Tensor::zeros(
        cfg.n_embd,
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )?;
    for (token, alpha) in &args.steer_token {
        let id = crate::session::checks::one_token(&tokenizer, "steer-token", token)?.id;
        let ids = Tensor::new(&[id], model.device())?;
        let column = model.unembedding().embedding(&ids)?.squeeze(0)?; // W_U[:, id], (C,)
        let column = column
            .to_dtype(candle_core::DType::F32)?
            .to_device(&candle_core::Device::Cpu)?;
        let v = matrix.t()?.matmul(&column.unsqueeze(1)?)?.squeeze(1)?; // J_Lᵀ W_U[:, id]
        add = (add + (v * *alpha)?)?;
    }
    Ok(Steering {
        by: SteerBy::LensVectors {
            add: add.to_dtype(model.dtype())?.to_device(model.device())?,
            tokens: args.steer_token.clone(),
        },
        hook: Hook::Block(at, crate::model::BlockHook::ResidPost),
        source: spec.to_string(),
    })
}
