//! `features`: an SAE's features at each token of a text, how well they reconstruct the
//! activation at the SAE's hook, and the next-token loss with the reconstruction in its
//! place.

use std::io::Write;

use anyhow::Result;
use candle_core::Tensor;

use crate::analysis::sae::{self, Sae};
use crate::cli::FeaturesArgs;
use crate::dist;
use crate::error::usage;
use crate::model::{Gpt2, Hook};
use crate::render::features::heatmap;
use crate::render::features::table;
use crate::reports::{FeatureValue, FeaturesReport, MostActive};
use crate::session::texts::Texts;
use crate::session::Take;
use crate::session::{decoded, Session};
use crate::tokenizer::Tokenizer;

pub fn run(session: &Session, args: &FeaturesArgs, out: &mut dyn Write) -> Result<()> {
    if let Some(k) = args.top_k {
        return Err(usage(format!(
            "-k {k}: in every command -k counts candidate tokens; features listed per token is \
             --per-token {k}"
        )));
    }
    let cfg = session.config()?;
    let a = &args.sae;
    let (sae, hook, centered) =
        session.sae(&a.sae, a.sae_revision.as_deref(), a.sae_centered, cfg)?;
    if sae.cfg.prepend_bos && !session.prepend_bos {
        eprintln!(
            "warning: this SAE was trained with a BOS before every text; without --prepend-bos \
             its activations differ from the published ones"
        );
    }
    // The whole model: the spliced run needs the logits.
    let (prepared, model) =
        session.prepare_and_load(&args.input, cfg, cfg.n_layer, Take::STRICT)?;
    let Texts {
        texts,
        ids,
        tokenizer,
        ..
    } = &prepared;
    let reports = (texts.iter().zip(ids))
        .map(|text| {
            build(
                session,
                args,
                (&model, tokenizer),
                (&sae, hook, centered),
                text,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let palette = (session.output.palette, session.output.width);
    prepared.emit(session, out, reports, |out, r| {
        table::features(out, r)?;
        heatmap::heatmap(out, r, palette.0, palette.1)
    })
}

/// The report `features` prints for one text.
pub fn build(
    session: &Session,
    args: &FeaturesArgs,
    (model, tokenizer): (&Gpt2, &Tokenizer),
    (sae, hook, centered): (&Sae, Hook, bool),
    (text, ids): (&String, &Vec<u32>),
) -> Result<FeaturesReport> {
    let input = Tensor::new(ids.as_slice(), model.device())?.unsqueeze(0)?;
    let r = sae::run(model, sae, hook, &input, centered)?;
    let acts = r.acts.to_vec2::<f32>()?;
    Ok(FeaturesReport {
        header: session.header(Some(text))?,
        sae: args.sae.sae.clone(),
        hook: hook.to_string(),
        architecture: sae.cfg.architecture.name().into(),
        k: sae.cfg.architecture.k(),
        d_sae: sae.cfg.d_sae,
        centered,
        input_ids: ids.clone(),
        tokens: decoded(tokenizer, ids)?,
        features: acts
            .iter()
            .map(|row| top(row, args.per_token as usize))
            .collect(),
        l0: acts
            .iter()
            .map(|row| row.iter().filter(|&&a| a != 0.0).count())
            .collect(),
        most_active: most_active(&acts, MOST_ACTIVE),
        mse: r.mse,
        fve: r.fve,
        ce_clean: r.ce_clean,
        ce_spliced: r.ce_spliced,
        kl_spliced: r.kl_spliced,
    })
}

/// The `k` most active features of a token, active ones only, in the tool's one order.
fn top(acts: &[f32], k: usize) -> Vec<FeatureValue> {
    (dist::top_k(acts, k).into_iter())
        .filter(|&f| acts[f] != 0.0)
        .map(|f| FeatureValue {
            id: f,
            activation: acts[f],
        })
        .collect()
}

/// Columns of the tokens × features heatmap at most.
const MOST_ACTIVE: usize = 12;

/// The `n` features with the highest peaks over the text's tokens `acts` `[T][d_sae]`
/// (active ones only), and their activations at every token.
fn most_active(acts: &[Vec<f32>], n: usize) -> MostActive {
    let d = acts.first().map_or(0, Vec::len);
    let peaks: Vec<f32> = (0..d)
        .map(|f| acts.iter().map(|row| row[f]).fold(0f32, f32::max))
        .collect();
    let ids: Vec<usize> = (dist::top_k(&peaks, n).into_iter())
        .filter(|&f| peaks[f] > 0.0)
        .collect();
    MostActive {
        activations: acts
            .iter()
            .map(|row| ids.iter().map(|&f| row[f]).collect())
            .collect(),
        ids,
    }
}
