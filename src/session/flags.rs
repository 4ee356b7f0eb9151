//! The one place command-line values become the model's, analyses' and renderers' own:
//! each `…Arg` enum of `cli/` mapped to the type it names, every match exhaustive.

/// A grid figure's `--title` and `--cmap`.
pub fn grid_style(a: &crate::cli::GridFigureArgs) -> crate::render::svg::Style<'_> {
    crate::render::svg::Style {
        title: a.title.as_deref(),
        cmap: a.cmap.map(cmap),
    }
}

/// The colour map `--cmap` names.
pub fn cmap(c: crate::cli::CmapArg) -> crate::render::color::Cmap {
    use crate::cli::CmapArg;
    use crate::render::color::Cmap;
    match c {
        CmapArg::Blues => Cmap::Blues,
        CmapArg::Viridis => Cmap::Viridis,
        CmapArg::Rdbu => Cmap::RdBu,
    }
}

/// `--scale`.
pub fn scale(s: crate::cli::ScaleArg) -> crate::render::color::Scale {
    use crate::cli::ScaleArg;
    use crate::render::color::Scale;
    match s {
        ScaleArg::Absolute => Scale::Absolute,
        ScaleArg::Global => Scale::Global,
        ScaleArg::Row => Scale::Row,
        ScaleArg::Log => Scale::Log,
    }
}

/// `--dtype`.
pub fn dtype(d: crate::cli::DTypeArg) -> candle_core::DType {
    use crate::cli::DTypeArg;
    use candle_core::DType;
    match d {
        DTypeArg::F32 => DType::F32,
        DTypeArg::F16 => DType::F16,
        DTypeArg::Bf16 => DType::BF16,
    }
}

/// `--site`.
pub fn site(s: crate::cli::PatchSite) -> crate::analysis::patching::Site {
    use crate::analysis::patching::Site;
    use crate::cli::PatchSite;
    match s {
        PatchSite::ResidPre => Site::ResidPre,
        PatchSite::ResidMid => Site::ResidMid,
        PatchSite::AttnOut => Site::AttnOut,
        PatchSite::MlpOut => Site::MlpOut,
        PatchSite::Head => Site::Head,
        PatchSite::Q => Site::Q,
        PatchSite::K => Site::K,
        PatchSite::V => Site::V,
        PatchSite::Pattern => Site::Pattern,
        PatchSite::PatternDestSrc => Site::PatternDestSrc,
    }
}

/// `--to`: the receivers' input a path patch ends at (`None`: the logits), and its name.
pub fn path_to(t: crate::cli::PathTo) -> (Option<crate::analysis::edges::Qkv>, &'static str) {
    use crate::analysis::edges::Qkv;
    use crate::cli::PathTo;
    match t {
        PathTo::Q => (Some(Qkv::Q), "q"),
        PathTo::K => (Some(Qkv::K), "k"),
        PathTo::V => (Some(Qkv::V), "v"),
        PathTo::Logits => (None, "logits"),
    }
}

/// `patch --method`'s name in reports.
pub fn patch_method(m: crate::cli::PatchMethod) -> &'static str {
    use crate::cli::PatchMethod;
    match m {
        PatchMethod::Exact => "exact",
        PatchMethod::Attribution => "attribution",
        PatchMethod::Both => "both",
    }
}

/// `ablate --mode`.
pub fn ablation(m: crate::cli::AblateMode) -> crate::analysis::ablation::Ablation {
    use crate::analysis::ablation::Ablation;
    use crate::cli::AblateMode;
    match m {
        AblateMode::Zero => Ablation::Zero,
        AblateMode::Mean => Ablation::Mean,
    }
}

/// `--metric` of the causal commands.
pub fn causal_metric(m: crate::cli::CausalMetric) -> crate::analysis::metric::Kind {
    use crate::analysis::metric::{Kind, Quantity};
    use crate::cli::CausalMetric;
    match m {
        CausalMetric::Logit => Kind::Of(Quantity::Logit),
        CausalMetric::Logprob => Kind::Of(Quantity::LogProb),
        CausalMetric::Prob => Kind::Of(Quantity::Prob),
        CausalMetric::Kl => Kind::Kl,
    }
}

/// `saliency --metric`.
pub fn quantity(m: crate::cli::MetricArg) -> crate::analysis::metric::Quantity {
    use crate::analysis::metric::Quantity;
    use crate::cli::MetricArg;
    match m {
        MetricArg::Logit => Quantity::Logit,
        MetricArg::Logprob => Quantity::LogProb,
        MetricArg::Prob => Quantity::Prob,
    }
}

/// `saliency --method` with its `--steps` and `--baseline` (`eos`: the vocabulary's
/// `<|endoftext|>`).
pub fn saliency_method(
    args: &crate::cli::SaliencyArgs,
    tokenizer: &crate::tokenizer::Tokenizer,
) -> anyhow::Result<crate::analysis::saliency::Method> {
    use crate::analysis::saliency::{Baseline, Method};
    use crate::cli::{BaselineArg, MethodArg};
    Ok(match args.method {
        MethodArg::Gradient => Method::Gradient,
        MethodArg::InputXGradient => Method::InputXGradient,
        MethodArg::Rollout => Method::Rollout,
        MethodArg::IntegratedGradients => Method::IntegratedGradients {
            steps: args.steps as usize,
            baseline: match args.baseline {
                BaselineArg::Zero => Baseline::Zero,
                BaselineArg::Eos => Baseline::Token(tokenizer.endoftext().ok_or_else(|| {
                    crate::error::usage("--baseline eos: the vocabulary has no <|endoftext|>")
                })?),
            },
        },
    })
}

/// `--baseline`'s name in reports.
pub fn baseline_name(b: crate::cli::BaselineArg) -> &'static str {
    use crate::cli::BaselineArg;
    match b {
        BaselineArg::Zero => "zero",
        BaselineArg::Eos => "eos",
    }
}
