//! The steering flags (`--sae` with `--steer`, `--clamp`, `--ablate-feature`): an SAE's
//! features changed at its hook, at every position, as an [`Edit`] tap.

use anyhow::Result;
use candle_core::Tensor;

use crate::analysis::sae::{self, Change, Sae};
use crate::cli::SteerArgs;
use crate::error::usage;
use crate::model::tap::Edit;
use crate::model::{AllLogits, Config, Gpt2, Hook, Inputs, LastLogits, Request, WantLogits};
use crate::session::Session;

pub(crate) struct Steering {
    pub sae: Sae,
    pub hook: Hook,
    pub changes: Vec<(usize, Change)>,
    pub centered: bool,
}

impl Steering {
    /// The flags' steering, `None` without `--sae`; feature ids are checked against the SAE.
    pub fn from_args(session: &Session, args: &SteerArgs, cfg: &Config) -> Result<Option<Self>> {
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
            sae,
            hook,
            changes,
            centered,
        }))
    }

    /// What each change does, as the output says it.
    pub fn describe(&self) -> Vec<String> {
        (self.changes.iter())
            .map(|&(f, c)| match c {
                Change::Add(a) => format!("{a:+} · W_dec[{f}]"),
                Change::Clamp(0.0) => format!("feature {f} ablated"),
                Change::Clamp(v) => format!("feature {f} clamped to {v}"),
            })
            .collect()
    }

    /// The changes as a tap.
    pub fn tap(&self) -> Edit<impl FnMut(&Tensor) -> anyhow::Result<Tensor> + '_> {
        Edit {
            hook: self.hook,
            edit: |x: &Tensor| sae::steer(&self.sae, x, &self.changes, self.centered),
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
