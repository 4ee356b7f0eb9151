//! The gradients family's flags: `saliency`, its methods, metric and baseline.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{at_least_one, TextArgs};

#[derive(Debug, Args)]
pub struct SaliencyArgs {
    #[command(flatten)]
    pub input: TextArgs,
    /// The token whose prediction to explain (one token); default: the top prediction at
    /// the position
    #[arg(long, value_name = "TOKEN", conflicts_with_all = ["generate", "continuation"])]
    pub answer: Option<String>,
    /// Explain answer − wrong of the metric instead (one token)
    #[arg(long, value_name = "TOKEN", conflicts_with_all = ["generate", "continuation"])]
    pub wrong: Option<String>,
    /// Position whose prediction to explain (default: the last); tokens after it cannot
    /// matter and get no score
    #[arg(long, value_name = "P", conflicts_with_all = ["generate", "continuation"])]
    pub position: Option<usize>,
    /// What of the answer token to explain
    #[arg(long, value_enum, default_value_t = MetricArg::Logit)]
    pub metric: MetricArg,
    #[arg(long, value_enum, default_value_t = MethodArg::Gradient)]
    pub method: MethodArg,
    /// Integrated gradients: points of the Gauss–Legendre rule (Captum's default, 50)
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub steps: u32,
    /// Integrated gradients: where the path starts, all zeros or <|endoftext|>'s embedding
    /// at every position
    #[arg(long, value_enum, default_value_t = BaselineArg::Zero)]
    pub baseline: BaselineArg,
    /// Continue greedily for N tokens and explain each generated token by every token
    /// before it: a matrix
    #[arg(long, value_name = "N", value_parser = at_least_one, conflicts_with = "continuation")]
    pub generate: Option<u32>,
    /// Explain each token of this continuation of the text (teacher forcing): a matrix
    #[arg(long, value_name = "TEXT")]
    pub continuation: Option<String>,
    /// Also draw the scores as an SVG figure (written atomically)
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

/// What the gradient commands take of the answer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MetricArg {
    /// Its logit
    Logit,
    /// Its log-probability
    Logprob,
    /// Its probability
    Prob,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    /// The L2 norm of the metric's gradient with respect to the token's embedding
    Gradient,
    /// The embedding times that gradient, summed over the embedding (signed)
    InputXGradient,
    /// Integrated gradients from a baseline (signed; the scores add up to the metric's change)
    IntegratedGradients,
    /// Attention rollout: attention weights through the layers (no gradient, and no answer:
    /// --answer, --wrong and --metric do not apply)
    Rollout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BaselineArg {
    Zero,
    Eos,
}
