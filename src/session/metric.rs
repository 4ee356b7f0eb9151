//! `--metric`, `--answer` and `--wrong` of the causal commands (`patch`, `ablate`,
//! `circuit`): the model's [`Measure`] and the reports' [`MetricSpec`] of one choice.

use anyhow::Result;

use crate::analysis::metric::{Kind, Measure};
use crate::cli::{CausalMetric, PairArgs};
use crate::error::usage;
use crate::reports::{MetricSpec, NamedToken};
use crate::session::{named, one_token};
use crate::tokenizer::Tokenizer;

/// `--answer` as its tokens, one or more.
pub(crate) fn answer_tokens(tokenizer: &Tokenizer, text: &str) -> Result<Vec<NamedToken>> {
    let ids: Vec<u32> = tokenizer.encode(text)?.iter().map(|t| t.id).collect();
    if ids.is_empty() {
        return Err(usage(
            "--answer is empty; give the token(s) the text should continue with",
        ));
    }
    ids.iter().map(|&id| named(tokenizer, id)).collect()
}

/// `--wrong` as its one token.
pub(crate) fn wrong_token(tokenizer: &Tokenizer, text: Option<&str>) -> Result<Option<NamedToken>> {
    text.map(|w| one_token(tokenizer, "wrong", w)).transpose()
}

/// The metric `--metric` names of `answer` (minus `wrong`), checked as the flags spell it;
/// `reference` names the run KL compares with.
pub(crate) fn measure(
    metric: CausalMetric,
    answer: Vec<NamedToken>,
    wrong: Option<NamedToken>,
    reference: &'static str,
) -> Result<(Measure, MetricSpec)> {
    let kind = crate::session::flags::causal_metric(metric);
    match (kind, answer.len(), &wrong) {
        (Kind::Of(q), 0, _) => {
            return Err(usage(format!("--metric {} needs --answer", q.as_str())));
        }
        (Kind::Of(_), n @ 2.., Some(_)) => {
            return Err(usage(format!(
                "--wrong needs an --answer of one token; --answer is {n} tokens, measured alone \
                 (drop --wrong, or give one token)"
            )));
        }
        (Kind::Kl, _, Some(_)) => {
            return Err(usage(
                "--metric kl compares whole distributions: drop --wrong",
            ));
        }
        _ => {}
    }
    let ids = answer.iter().map(|t| t.id).collect();
    let measure = Measure::new(kind, ids, wrong.as_ref().map(|w| w.id))?;
    let spec = MetricSpec {
        name: kind.as_str(),
        answer,
        wrong,
        reference,
    };
    Ok((measure, spec))
}

/// `--metric`, `--answer` and `--wrong` of the commands that take a pair (`patch`,
/// `circuit`): the answer one token or several, `--wrong` optional.
pub(crate) fn pair_measure(
    tokenizer: &Tokenizer,
    pair: &PairArgs,
    metric: CausalMetric,
) -> Result<(Measure, MetricSpec)> {
    let answer = match &pair.answer {
        Some(a) => answer_tokens(tokenizer, a)?,
        None => vec![],
    };
    let wrong = wrong_token(tokenizer, pair.wrong.as_deref())?;
    measure(metric, answer, wrong, "clean")
}
