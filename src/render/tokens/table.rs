//! The tokens family's tables: `tokenize`, `next`, `trace`, `embed`, `hidden`, `hooks`,
//! `dump`, `info`, `score`, and `generate`'s stream.

use std::io::{self, Write};

use crate::render::depth_label;
use crate::render::table::{columns, predictions, quoted, vectors, Align};
use crate::reports::{
    DepthShown, DumpReport, EmbedReport, HiddenReport, HookRow, HooksReport, InfoReport,
    NextReport, ShapeStep, TokenizeReport, TraceReport,
};
use crate::reports::{GenerateReport, Padding, ScoreReport, SteeredWith, StreamedToken};

fn shape(dims: &[usize]) -> String {
    let inner: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    if inner.len() == 1 {
        format!("({},)", inner[0])
    } else {
        format!("({})", inner.join(", "))
    }
}

fn list(ids: &[u32]) -> String {
    let inner: Vec<String> = ids.iter().map(|d| d.to_string()).collect();
    format!("[{}]", inner.join(", "))
}

pub fn tokenize(out: &mut dyn Write, r: &TokenizeReport) -> io::Result<()> {
    let rows: Vec<Vec<String>> = r
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            vec![
                i.to_string(),
                t.id.to_string(),
                crate::render::terminal_text(&t.token, false),
                quoted(&t.text),
                format!("{}..{}", t.start, t.end),
            ]
        })
        .collect();
    use Align::*;
    columns(
        out,
        &["index", "id", "token", "text", "bytes"],
        &[Right, Right, Left, Left, Left],
        &rows,
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "input_ids       {}  shape {}",
        list(&r.input_ids),
        shape(&r.shape)
    )?;
    writeln!(
        out,
        "attention_mask  {}  shape {}",
        list(&r.attention_mask),
        shape(&r.shape)
    )
}

/// A batch's padded `input_ids` and `attention_mask`, one row per text.
pub fn padding(out: &mut dyn Write, p: &Padding) -> io::Result<()> {
    let matrix = |out: &mut dyn Write, name: &str, m: &[Vec<u32>]| -> io::Result<()> {
        writeln!(out, "{name}  shape {}", shape(&p.shape))?;
        let rows: Vec<Vec<String>> = m
            .iter()
            .map(|r| r.iter().map(|v| v.to_string()).collect())
            .collect();
        let header: Vec<String> = (0..p.shape[1]).map(|i| i.to_string()).collect();
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        columns(out, &header, &vec![Align::Right; p.shape[1]], &rows)
    };
    matrix(out, "input_ids", &p.input_ids)?;
    writeln!(out)?;
    matrix(
        out,
        "attention_mask (1 = real token, 0 = padding)",
        &p.attention_mask,
    )
}

fn stages(out: &mut dyn Write, stages: &[ShapeStep]) -> io::Result<()> {
    use Align::*;
    let rows: Vec<Vec<String>> = stages
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                shape(&s.shape),
                s.dtype.clone(),
                s.note.clone(),
            ]
        })
        .collect();
    columns(
        out,
        &["stage", "shape", "dtype", "what it is"],
        &[Left, Left, Left, Left],
        &rows,
    )
}

pub fn next(out: &mut dyn Write, r: &NextReport) -> io::Result<()> {
    stages(out, &r.stages)?;
    writeln!(out)?;
    let Some(s) = &r.steered else {
        return predictions(out, &r.predictions);
    };
    writeln!(out, "before")?;
    predictions(out, &r.predictions)?;
    writeln!(out)?;
    let with = match &s.with {
        SteeredWith::Sae(dir) => format!("SAE {dir}"),
        SteeredWith::Jlens(file) => format!("Jacobian lens {file}"),
    };
    writeln!(out, "after {} at {} ({with})", s.changes.join(", "), s.hook)?;
    predictions(out, &s.predictions)
}

pub fn trace(out: &mut dyn Write, r: &TraceReport) -> io::Result<()> {
    let tokens: Vec<String> = r.tokens.iter().map(|t| quoted(t)).collect();
    writeln!(
        out,
        "text    {}",
        quoted(r.header.text.as_deref().unwrap_or_default())
    )?;
    writeln!(out, "tokens  [{}]", tokens.join(", "))?;
    writeln!(out)?;
    stages(out, &r.stages)?;
    writeln!(out)?;
    writeln!(out, "next token")?;
    predictions(out, &r.predictions)
}

pub fn embed(out: &mut dyn Write, r: &EmbedReport) -> io::Result<()> {
    writeln!(
        out,
        "wte {}  token embeddings, one row per vocabulary entry",
        shape(&r.wte_shape)
    )?;
    writeln!(
        out,
        "wpe {}  position embeddings, one row per position",
        shape(&r.wpe_shape)
    )?;
    writeln!(out)?;
    let tokens: Vec<String> = r.tokens.iter().map(|t| t.token.clone()).collect();
    let norms =
        |f: fn(&crate::reports::EmbedToken) -> f32| r.tokens.iter().map(f).collect::<Vec<f32>>();
    for (what, values, norms) in [
        (
            "token embedding wte[id]",
            &r.token_embeddings,
            norms(|t| t.token_norm),
        ),
        (
            "position embedding wpe[position]",
            &r.position_embeddings,
            norms(|t| t.position_norm),
        ),
        (
            "embedding = token + position, the input of block 0",
            &r.embeddings,
            norms(|t| t.embedding_norm),
        ),
    ] {
        writeln!(out, "{what}")?;
        vectors(out, &tokens, values, Some(&norms))?;
        writeln!(out)?;
    }
    for t in &r.tokens {
        if let Some(nearest) = &t.nearest {
            let list: Vec<String> = nearest
                .iter()
                .map(|n| format!("{} {:.3}", quoted(&n.token), n.cosine))
                .collect();
            writeln!(
                out,
                "nearest to {} {}: {}",
                t.position,
                quoted(&t.token),
                list.join(", ")
            )?;
        }
    }
    Ok(())
}

pub fn hidden(out: &mut dyn Write, r: &HiddenReport) -> io::Result<()> {
    use Align::*;
    let depth = depth_label;
    let final_label = "ln_f (final hidden state)";
    match (&r.values, r.depth) {
        (Some(values), Some(d)) => {
            let shown = match d {
                DepthShown::Blocks(d) => depth(d),
                DepthShown::LnF(_) => final_label.to_string(),
            };
            writeln!(out, "hidden state at depth {shown} {}", shape(&r.shape))?;
            vectors(out, &r.tokens, values, r.norms.first().map(Vec::as_slice))
        }
        _ => {
            writeln!(
                out,
                "norm of each token's hidden state, by depth (blocks passed), then after ln_f"
            )?;
            let mut header = vec!["depth".to_string()];
            header.extend(
                r.tokens
                    .iter()
                    .enumerate()
                    .map(|(i, t)| format!("{i} {}", quoted(t))),
            );
            let header: Vec<&str> = header.iter().map(String::as_str).collect();
            let mut align = vec![Left];
            align.extend(std::iter::repeat_n(Right, r.tokens.len()));
            let labels = (0..r.norms.len())
                .map(depth)
                .chain([final_label.to_string()]);
            let rows: Vec<Vec<String>> = (r.norms.iter().chain(&r.ln_f_norms))
                .zip(labels)
                .map(|(n, label)| {
                    let mut cells = vec![label];
                    cells.extend(n.iter().map(|x| format!("{x:.3}")));
                    cells
                })
                .collect();
            columns(out, &header, &align, &rows)
        }
    }
}

fn hook_rows(out: &mut dyn Write, hooks: &[HookRow]) -> io::Result<()> {
    use Align::*;
    let rows: Vec<Vec<String>> = hooks
        .iter()
        .map(|h| {
            let dims: Vec<String> = h
                .shape
                .iter()
                .map(|d| d.map_or_else(|| "T".to_string(), |n| n.to_string()))
                .collect();
            vec![h.name.clone(), format!("[{}]", dims.join(", "))]
        })
        .collect();
    columns(out, &["name", "shape"], &[Left, Left], &rows)
}

pub fn hooks(out: &mut dyn Write, r: &HooksReport) -> io::Result<()> {
    hook_rows(out, &r.hooks)
}

pub fn dump(out: &mut dyn Write, r: &DumpReport) -> io::Result<()> {
    writeln!(
        out,
        "wrote {} activations ({} bytes) to {}",
        r.hooks.len(),
        r.bytes,
        r.output
    )?;
    hook_rows(out, &r.hooks)
}

pub fn info(out: &mut dyn Write, r: &InfoReport) -> io::Result<()> {
    use Align::*;
    writeln!(out, "model       {}", r.header.model)?;
    writeln!(
        out,
        "checkpoint  {} ({}, {} bytes, {})",
        r.checkpoint, r.format, r.checkpoint_bytes, r.layout
    )?;
    if r.files.len() > 1 {
        writeln!(out, "shards      {}", r.files.len())?;
    }
    writeln!(out, "parameters  {}", r.parameters)?;
    writeln!(out)?;
    writeln!(out, "config.json")?;
    if let Some(fields) = r.config.as_object() {
        let rows: Vec<Vec<String>> = fields
            .iter()
            .map(|(k, v)| vec![format!("  {k}"), v.to_string()])
            .collect();
        columns(out, &["  field", "value"], &[Left, Left], &rows)?;
    }
    writeln!(out)?;
    let rows: Vec<Vec<String>> = r
        .tensors
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                shape(&t.shape),
                t.dtype.clone(),
                if t.buffer {
                    "buffer, not used".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    columns(
        out,
        &["tensor", "shape", "dtype", ""],
        &[Left, Left, Left, Left],
        &rows,
    )
}

pub fn score(out: &mut dyn Write, r: &ScoreReport) -> io::Result<()> {
    use Align::*;
    if let Some(changes) = &r.steered {
        let at = r.steered_at.as_deref().unwrap_or_default();
        writeln!(out, "steered: {} at {at}", changes.join(", "))?;
        writeln!(out)?;
    }
    let rows: Vec<Vec<String>> = r
        .tokens
        .iter()
        .map(|s| {
            let mut row = vec![
                s.position.to_string(),
                quoted(&s.token),
                format!("{:.4}", s.logprob),
                s.rank.to_string(),
                format!("{} {:.3}", quoted(&s.top.token), s.top.prob),
            ];
            if let (Some(h), Some(alts)) = (s.entropy_bits, &s.alternatives) {
                row.push(format!("{h:.3}"));
                let alts: Vec<String> = (alts.iter())
                    .map(|a| format!("{} {:.3}", quoted(&a.token), a.prob))
                    .collect();
                row.push(alts.join("  "));
            }
            row
        })
        .collect();
    let with_k = r.tokens.first().and_then(|s| s.alternatives.as_ref());
    let top = with_k.map(|a| format!("top {}", a.len()));
    let mut heads = vec!["position", "token", "logprob", "rank", "model's top guess"];
    let mut aligns = vec![Right, Left, Right, Right, Left];
    if let Some(top) = &top {
        heads.extend(["entropy (bits)", top.as_str()]);
        aligns.extend([Right, Left]);
    }
    columns(out, &heads, &aligns, &rows)?;
    writeln!(out)?;
    writeln!(
        out,
        "total log-likelihood  {:.4} (natural log, {} scored)",
        r.total_logprob,
        crate::render::counted(r.tokens.len(), "token")
    )?;
    writeln!(
        out,
        "mean surprisal        {:.4} bits per token",
        r.mean_surprisal_bits
    )?;
    // exp of the mean: the log-probabilities' 1e-4 becomes a relative 1e-4 here, so five
    // significant digits are what the numbers support (134820, not 134820.1066).
    writeln!(
        out,
        "perplexity            {}",
        significant(r.perplexity, 5)
    )
}

/// `x` to `digits` significant digits, without an exponent.
fn significant(x: f64, digits: usize) -> String {
    if !x.is_finite() || x == 0.0 {
        return format!("{x}");
    }
    let magnitude = x.abs().log10().floor() as i64;
    let decimals = (digits as i64 - 1 - magnitude).max(0) as usize;
    let rounded = if magnitude >= digits as i64 {
        let unit = 10f64.powi((magnitude + 1 - digits as i64) as i32);
        (x / unit).round() * unit
    } else {
        x
    };
    format!("{rounded:.decimals$}")
}

/// Streams `generate` while it runs: the text as it grows, or with --show-probs (or a
/// watched head) one line per token.
pub struct GenerateStream {
    lines: bool,
    /// Escape control characters of the running text (stdout is a terminal).
    escape: bool,
    watch: Option<[usize; 2]>,
    /// Labels of the positions so far, for naming where a token attended.
    labels: Vec<String>,
}

impl GenerateStream {
    pub fn new(show_probs: bool, watch: Option<[usize; 2]>, escape: bool) -> Self {
        GenerateStream {
            lines: show_probs || watch.is_some(),
            escape,
            watch,
            labels: Vec::new(),
        }
    }

    pub fn start(
        &mut self,
        out: &mut dyn Write,
        prompt: &str,
        tokens: &[String],
    ) -> io::Result<()> {
        self.labels = tokens.to_vec();
        if !self.lines {
            write!(out, "{}", self.running(prompt))?;
            return out.flush();
        }
        let attends = match self.watch {
            Some([l, h]) => format!("  layer {l} head {h} attends to (top 3)"),
            None => String::new(),
        };
        writeln!(
            out,
            "{:>4}  {:>6}  {:<16}  {:>6}  alternatives (prob){attends}",
            "step", "id", "token", "prob"
        )?;
        out.flush()
    }

    pub fn step(&mut self, out: &mut dyn Write, step: StreamedToken) -> io::Result<()> {
        let t = step.token;
        if self.lines {
            let alternatives: Vec<String> = t
                .top
                .iter()
                .map(|p| format!("{} {:.3}", quoted(&p.token), p.prob))
                .collect();
            // Padded by display width: a wide (CJK) token takes two columns a character.
            let token = quoted(&t.token);
            let fill = " ".repeat(16usize.saturating_sub(crate::render::display_width(&token)));
            let mut line = format!(
                "{:>4}  {:>6}  {token}{fill}  {:>6.4}  {}",
                step.index,
                t.id,
                t.prob,
                alternatives.join(", ")
            );
            if let Some(weights) = &t.attention {
                let top: Vec<String> = t
                    .attention_top
                    .iter()
                    .map(|&p| {
                        let label = self.labels.get(p).map_or(String::new(), |l| quoted(l));
                        format!("{p}:{label} {:.3}", weights[p])
                    })
                    .collect();
                line.push_str(&format!("  | {}", top.join(", ")));
            }
            writeln!(out, "{line}")?;
        } else {
            write!(out, "{}", self.running(step.text))?;
        }
        self.labels.push(t.token.clone());
        out.flush()
    }

    fn running<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        match self.escape {
            true => crate::render::terminal_text(text, true).into(),
            false => text.into(),
        }
    }

    pub fn finish(&mut self, out: &mut dyn Write, r: &GenerateReport) -> io::Result<()> {
        if !self.lines {
            return writeln!(out);
        }
        writeln!(out)?;
        writeln!(
            out,
            "{} ({}), stopped at {}",
            crate::render::counted(r.generated_ids.len(), "token"),
            r.sampling,
            r.stop_reason
        )?;
        let whole = format!(
            "{}{}",
            r.header.text.as_deref().unwrap_or(""),
            r.generated_text
        );
        writeln!(out, "text  {}", quoted(&whole))
    }
}

#[cfg(test)]
mod tests {
    use super::significant;

    #[test]
    fn significant_digits() {
        assert_eq!(significant(134820.0808, 5), "134820");
        assert_eq!(significant(1234567.0, 5), "1234600");
        assert_eq!(significant(12.34567, 5), "12.346");
        assert_eq!(significant(0.00123456, 5), "0.0012346");
        assert_eq!(significant(f64::INFINITY, 5), "inf");
    }
}
