//! What a causal run (patched, ablated, a circuit's) is measured by: a quantity of the
//! answer's tokens, or the KL divergence from a reference run, at the run's last positions.
//!
//! An answer of n tokens is teacher-forced: the run's input ends with its first n − 1
//! tokens, and the metric sums over the last n positions the quantity of the token each
//! predicts.

use anyhow::{bail, Result};
use candle_core::{DType, Tensor, D};

use crate::model::gpt2::{Gpt2, Inputs, LastLogits, Request};
use crate::model::hooks::CaptureSpec;

/// What the metric measures of the answer token at its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    Logit,
    LogProb,
    Prob,
}

impl Quantity {
    pub fn as_str(self) -> &'static str {
        match self {
            Quantity::Logit => "logit",
            Quantity::LogProb => "logprob",
            Quantity::Prob => "prob",
        }
    }
}

/// `l - logsumexp(l)` over the last axis of `(…, V)`; the shift by the row's maximum is a
/// constant (it cancels in the value and in the gradient).
pub fn log_softmax(l: &Tensor) -> Result<Tensor> {
    let max = l.max_keepdim(D::Minus1)?.detach(); // (…, 1)
    let shifted = l.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?; // (…, 1)
    Ok(shifted.broadcast_sub(&lse)?)
}

/// The model's top prediction after `ids` (ties to the lower id, as `next` ranks): the
/// answer a metric explains when none is given, decided before any backward pass.
pub fn top_answer(model: &Gpt2, ids: &[u32]) -> Result<u32> {
    let row = Tensor::new(ids, model.device())?.unsqueeze(0)?; // (1, T)
    let req = Request {
        capture: CaptureSpec::default(),
        logits: LastLogits,
    };
    let logits = model.run(Inputs::new(&row), &req, &mut crate::model::tap::Identity)?;
    let row: Vec<f32> = logits.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    Ok(crate::dist::top_k(&row, 1)[0] as u32)
}

/// What the metric measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The answer's logit, log-probability or probability (minus the wrong token's).
    Of(Quantity),
    /// KL(reference ‖ run) of the next-token distributions, in nats.
    Kl,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Of(q) => q.as_str(),
            Kind::Kl => "kl",
        }
    }
}

/// A metric before its reference run is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measure {
    pub kind: Kind,
    /// The answer's tokens; empty only for [`Kind::Kl`] (the last position alone).
    pub answer: Vec<u32>,
    /// Subtracted at the answer's one position; only with a one-token answer.
    pub wrong: Option<u32>,
}

impl Measure {
    /// `logit[answer] − logit[wrong]` at the last position.
    pub fn logit_diff(answer: u32, wrong: u32) -> Measure {
        Measure {
            kind: Kind::Of(Quantity::Logit),
            answer: vec![answer],
            wrong: Some(wrong),
        }
    }

    /// Checks what the metric can mean: an answer for a quantity, a wrong token only with
    /// one answer token, none for KL.
    pub fn new(kind: Kind, answer: Vec<u32>, wrong: Option<u32>) -> Result<Measure> {
        match (kind, answer.len(), wrong) {
            (Kind::Of(_), 0, _) => bail!("the metric needs an answer"),
            (Kind::Of(_), 2.., Some(_)) => bail!("a wrong token needs an answer of one token"),
            (Kind::Kl, _, Some(_)) => bail!("the KL divergence takes no wrong token"),
            _ => Ok(Measure {
                kind,
                answer,
                wrong,
            }),
        }
    }

    /// How many last positions of a run the metric reads.
    pub fn positions(&self) -> usize {
        self.answer.len().max(1)
    }

    /// The tokens the run's input ends with: all of the answer but its last.
    pub fn forced(&self) -> &[u32] {
        &self.answer[..self.answer.len().saturating_sub(1)]
    }

    /// The metric of the answer's quantity, which needs no reference run (an error for KL).
    pub fn bound(&self) -> Result<Bound> {
        match self.kind {
            Kind::Of(_) => Ok(Bound {
                measure: self.clone(),
                reference: None,
            }),
            Kind::Kl => bail!("the KL divergence needs a reference run"),
        }
    }

    /// The metric, its reference the run whose logits `(1, n, V)` are given (the clean
    /// run, or the unablated one).
    pub fn against(&self, reference: &Tensor) -> Result<Bound> {
        let reference = match self.kind {
            Kind::Kl => Some(log_softmax(&reference.to_dtype(DType::F32)?)?.detach()),
            Kind::Of(_) => None,
        };
        Ok(Bound {
            measure: self.clone(),
            reference,
        })
    }
}

/// A [`Measure`] with its reference run's log-probabilities `(1, n, V)` (KL only).
#[derive(Debug, Clone)]
pub struct Bound {
    pub measure: Measure,
    reference: Option<Tensor>,
}

impl Bound {
    /// The metric of each row of `logits` `(B, n, V)`: `(B,)` in f32, differentiable.
    pub fn tensor(&self, logits: &Tensor) -> Result<Tensor> {
        let n = self.measure.positions();
        let logits = logits.to_dtype(DType::F32)?;
        if logits.dim(1)? != n {
            bail!(
                "the metric reads {n} positions, the run gave {:?}",
                logits.dims()
            );
        }
        let q = match (self.measure.kind, &self.reference) {
            (Kind::Kl, Some(r)) => {
                // Σ_positions Σ_v p_ref (log p_ref − log p_run)
                let diff = log_softmax(&logits)?.broadcast_sub(r)?.neg()?;
                let kl = r.exp()?.broadcast_mul(&diff)?.sum(D::Minus1)?; // (B, n)
                return Ok(kl.sum(1)?);
            }
            (Kind::Kl, None) => bail!("the KL divergence has no reference run"),
            (Kind::Of(Quantity::Logit), _) => logits,
            (Kind::Of(Quantity::LogProb), _) => log_softmax(&logits)?,
            (Kind::Of(Quantity::Prob), _) => log_softmax(&logits)?.exp()?,
        };
        let pick = |i: usize, id: u32| -> Result<Tensor> {
            Ok(q.narrow(1, i, 1)?
                .narrow(2, id as usize, 1)?
                .flatten_all()?)
        };
        let mut sum = pick(0, self.measure.answer[0])?;
        for (i, &id) in self.measure.answer.iter().enumerate().skip(1) {
            sum = (sum + pick(i, id)?)?;
        }
        Ok(match self.measure.wrong {
            Some(w) => (sum - pick(0, w)?)?,
            None => sum,
        })
    }

    /// [`Bound::tensor`] as numbers.
    pub fn of(&self, logits: &Tensor) -> Result<Vec<f32>> {
        Ok(self.tensor(logits)?.to_vec1()?)
    }
}
