//! An SAE in the model's run: its features at its hook, how well they reconstruct the
//! activation, the next-token loss with the reconstruction spliced in, steering, and what a
//! feature writes to the logits.

use anyhow::{anyhow, ensure, Result};
use candle_core::{DType, Tensor, D};

use super::{Rows, Sae};
use crate::model::hooks::Hook;

/// One text through the model and an SAE at its hook: the feature activations, how well
/// they reconstruct the activation (SAELens's evals: `mse` = mean over tokens of
/// ‖x − x̂‖², `fve` = 1 − mse / (E‖x‖² − ‖E x‖²)), and the next-token loss with the
/// reconstruction spliced in at every position (cross-entropy over the text's next tokens,
/// and KL(clean ‖ spliced) averaged over positions).
pub struct SaeRun {
    /// `(T, d_sae)`.
    pub acts: Tensor,
    pub mse: f64,
    pub fve: f64,
    /// `None` for a one-token text (nothing to predict).
    pub ce_clean: Option<f64>,
    pub ce_spliced: Option<f64>,
    pub kl_spliced: f64,
}

/// Runs `ids` `(1, T)`; `centered`: the SAE reads the residual stream with its mean over
/// d_model removed (what a TransformerLens model with `center_writing_weights` carries),
/// and the reconstruction gets the mean back before it is spliced in (no reader of the
/// residual stream sees the mean: each starts with a layer norm).
pub fn run(
    model: &crate::model::Gpt2,
    sae: &Sae,
    hook: Hook,
    ids: &Tensor,
    centered: bool,
) -> Result<SaeRun> {
    let (x, resume) = record_block_input(model, ids, hook)?; // (T, d), block l's input
    let (input, mean) = centre(&x, centered)?;
    let (acts, norm) = sae.encode(&input)?;
    let recon = sae.decode(&acts, &norm)?; // (T, d)
    let (mse, fve) = reconstruction(&input, &recon)?;
    let back = match mean {
        Some(mean) => recon.broadcast_add(&mean)?,
        None => recon,
    };
    let back = back.to_dtype(model.dtype())?;
    let (clean, spliced) = clean_and_spliced(model, ids, hook, &back, resume)?; // (T, V) each
    let ids = ids.squeeze(0)?.to_vec1::<u32>()?;
    let kl = clean
        .iter()
        .zip(&spliced)
        .map(|(c, s)| crate::dist::kl(c, s))
        .sum::<f64>();
    Ok(SaeRun {
        acts,
        mse,
        fve,
        ce_clean: cross_entropy(&clean, &ids),
        ce_spliced: cross_entropy(&spliced, &ids),
        kl_spliced: kl / clean.len() as f64,
    })
}

/// The activation `(T, d)` at `hook` of `ids` `(1, T)` in f32, and for a hook inside block
/// `l` that block's input `(1, T, d)`: where the clean and spliced runs part.
pub(super) fn record_block_input(
    model: &crate::model::Gpt2,
    ids: &Tensor,
    hook: Hook,
) -> Result<(Tensor, Option<(usize, Tensor)>)> {
    let Hook::Block(l, _) = hook else {
        let (x, ()) = record_at(model, ids, hook, crate::model::NoLogits)?;
        return Ok((x.to_dtype(DType::F32)?, None));
    };
    let resid_pre = Hook::Block(l, crate::model::hooks::BlockHook::ResidPre);
    let spec = crate::model::CaptureSpec::new([resid_pre, hook]);
    let req = crate::model::Request {
        capture: spec.clone(),
        logits: crate::model::NoLogits,
    };
    let mut seen = crate::model::Activations::default();
    {
        let mut record = crate::model::tap::collect(&spec, &mut seen);
        model.run(crate::model::Inputs::new(ids), &req, &mut record)?;
    }
    let x = seen.get(hook)?.squeeze(0)?.to_dtype(DType::F32)?;
    Ok((x, Some((l, seen.get(resid_pre)?.clone()))))
}

/// All positions' logits `(T, V)` of the clean run and of the run with `back` `(T, d)` in
/// place of the activation at `hook`: from block `l`'s input as one batch of two when
/// `resume` gives it, else two whole runs.
pub(super) fn clean_and_spliced(
    model: &crate::model::Gpt2,
    ids: &Tensor,
    hook: Hook,
    back: &Tensor,
    resume: Option<(usize, Tensor)>,
) -> Result<(Rows, Rows)> {
    use crate::model::tap::Edit;
    use crate::model::{AllLogits, CaptureSpec, Inputs, Request};
    let req = Request {
        capture: CaptureSpec::default(),
        logits: AllLogits,
    };
    // The SAE computes in f32; an f16 or bf16 model gets the reconstruction in its dtype,
    // and its logits are read as f32.
    let back = &back.to_dtype(model.dtype())?;
    let rows = |t: Tensor| -> Result<Rows> { Ok(t.to_dtype(DType::F32)?.to_vec2()?) };
    let Some((l, resid_pre)) = resume else {
        let clean = model.run(Inputs::new(ids), &req, &mut crate::model::tap::Identity)?;
        let mut splice = Edit {
            hook,
            edit: |_: &Tensor| Ok(back.unsqueeze(0)?),
        };
        let spliced = model.run(Inputs::new(ids), &req, &mut splice)?;
        return Ok((rows(clean.squeeze(0)?)?, rows(spliced.squeeze(0)?)?));
    };
    // Row 0 runs clean, row 1 gets the reconstruction at the hook.
    let pair = Tensor::cat(&[ids, ids], 0)?; // (2, T)
    let start = Tensor::cat(&[&resid_pre, &resid_pre], 0)?; // (2, T, d)
    let mut splice = Edit {
        hook,
        edit: |x: &Tensor| Ok(Tensor::cat(&[&x.narrow(0, 0, 1)?, &back.unsqueeze(0)?], 0)?),
    };
    let inputs = Inputs {
        start: Some((l, &start)),
        ..Inputs::new(&pair)
    };
    let logits = model.run(inputs, &req, &mut splice)?; // (2, T, V)
    Ok((rows(logits.get(0)?)?, rows(logits.get(1)?)?))
}

/// The activation `(T, d)` at `hook` of `ids` `(1, T)`, and the logits `logits` asks for.
pub(super) fn record_at<W: crate::model::WantLogits>(
    model: &crate::model::Gpt2,
    ids: &Tensor,
    hook: Hook,
    logits: W,
) -> Result<(Tensor, W::Out)> {
    // The spec names the hook so that a run without logits goes as far as it.
    let req = crate::model::Request {
        capture: crate::model::CaptureSpec::new([hook]),
        logits,
    };
    let mut seen = None;
    let mut record = crate::model::tap::Edit {
        hook,
        edit: |x: &Tensor| {
            seen = Some(x.squeeze(0)?);
            Ok(x.clone())
        },
    };
    let out = model.run(crate::model::Inputs::new(ids), &req, &mut record)?;
    let x = seen.ok_or_else(|| anyhow!("the forward pass never reached {hook}"))?;
    Ok((x, out))
}

/// The SAE's feature activations `(T, d_sae)` for `ids` `(1, T)` (no logits computed).
pub fn activations(
    model: &crate::model::Gpt2,
    sae: &Sae,
    hook: Hook,
    ids: &Tensor,
    centered: bool,
) -> Result<Tensor> {
    let (x, ()) = record_at(model, ids, hook, crate::model::NoLogits)?;
    encode_at(sae, &x, centered)
}

/// The SAE's feature activations `(N, d_sae)` of the hook's activation `x` `(N, d_in)` (in
/// the model's dtype), centred first when the SAE reads a centred stream.
pub fn encode_at(sae: &Sae, x: &Tensor, centered: bool) -> Result<Tensor> {
    let x = x.to_dtype(DType::F32)?;
    Ok(sae.encode(&centre(&x, centered)?.0)?.0)
}

/// `x` `(N, d)` less its mean `(N, 1)` over d_model when `centered` (what a TransformerLens
/// model with `center_writing_weights` carries in its residual stream), and that mean.
pub(super) fn centre(x: &Tensor, centered: bool) -> Result<(Tensor, Option<Tensor>)> {
    Ok(match centered {
        true => {
            let mean = x.mean_keepdim(D::Minus1)?;
            (x.broadcast_sub(&mean)?, Some(mean))
        }
        false => (x.clone(), None),
    })
}

/// `(mse, fve)` of a reconstruction `(T, d)`, in f64.
pub(super) fn reconstruction(x: &Tensor, recon: &Tensor) -> Result<(f64, f64)> {
    let (x, r) = (x.to_dtype(DType::F64)?, recon.to_dtype(DType::F64)?);
    let t = x.dim(0)? as f64;
    let mse = (&x - &r)?.sqr()?.sum_all()?.to_scalar::<f64>()? / t;
    let mean_sq = x.sqr()?.sum_all()?.to_scalar::<f64>()? / t;
    let mean = x.mean(0)?.sqr()?.sum_all()?.to_scalar::<f64>()?;
    let total = mean_sq - mean;
    let fve = match total < 1e-10 {
        true => f64::from(u8::from(mse < 1e-10)),
        false => 1.0 - mse / total,
    };
    Ok((mse, fve))
}

/// Mean −log p(ids[t+1] | logits[t]) over the text, `None` with nothing to predict.
pub(super) fn cross_entropy(logits: &[Vec<f32>], ids: &[u32]) -> Option<f64> {
    let n = ids.len().checked_sub(1).filter(|&n| n > 0)?;
    let sum: f64 = (0..n)
        .map(|t| -crate::dist::log_prob(&logits[t], ids[t + 1] as usize))
        .sum();
    Some(sum / n as f64)
}

/// What a steering flag does to one feature at every position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    /// `--steer F=α`: x + α · W_dec[f].
    Add(f64),
    /// `--clamp F=v` (`--ablate-feature F`: v = 0): x + (v − f(x)) · W_dec[f], the error
    /// term kept.
    Clamp(f64),
}

/// `x` `(B, T, d_in)` with every change applied, each feature's activation `f(x)` read from
/// the unchanged `x` (centred first when the SAE reads a centred stream).
pub fn steer(sae: &Sae, x: &Tensor, changes: &[(usize, Change)], centered: bool) -> Result<Tensor> {
    let (b, t, d) = x.dims3()?;
    let mut acts = None;
    if changes.iter().any(|(_, c)| matches!(c, Change::Clamp(_))) {
        acts = Some(encode_at(sae, &x.reshape((b * t, d))?, centered)?); // (B·T, d_sae)
    }
    // The SAE computes in f32: an f16 or bf16 stream is changed in f32 and given back in
    // its own dtype.
    let mut out = x.to_dtype(DType::F32)?;
    for &(f, change) in changes {
        ensure!(
            f < sae.cfg.d_sae,
            "feature {f} is out of range: the SAE has {} features (0 to {})",
            sae.cfg.d_sae,
            sae.cfg.d_sae - 1
        );
        let direction = sae.direction(f)?; // (d_in,)
        let scale = match (change, &acts) {
            (Change::Add(alpha), _) => Tensor::full(alpha as f32, (b * t, 1), x.device())?,
            (Change::Clamp(v), Some(a)) => a.narrow(1, f, 1)?.affine(-1.0, v)?, // (B·T, 1)
            (Change::Clamp(_), None) => unreachable!("encoded above"),
        };
        let delta = scale
            .broadcast_mul(&direction.unsqueeze(0)?)?
            .reshape((b, t, d))?;
        out = (out + delta)?;
    }
    Ok(out.to_dtype(x.dtype())?)
}

/// Feature `f`'s decoder direction read through the unembedding, `W_dec[f] · W_Uᵀ` `(V,)`:
/// the logits it adds directly (Neuronpedia's logit tables).
pub fn direct_logits(model: &crate::model::Gpt2, sae: &Sae, f: usize) -> Result<Vec<f32>> {
    ensure!(
        f < sae.cfg.d_sae,
        "feature {f} is out of range: the SAE has {} features (0 to {})",
        sae.cfg.d_sae,
        sae.cfg.d_sae - 1
    );
    let row = sae.direction(f)?.unsqueeze(0)?.to_dtype(model.dtype())?; // (1, d_in)
    Ok(model
        .unembedding()
        .matmul_t(&row)?
        .flatten_all()?
        .to_dtype(DType::F32)?
        .to_vec1()?)
}
