//! What every family's commands share: the texts (`TEXT`, `--file`, `--lines`, `--ids`,
//! `--truncate`), `--top-k`, token ids, windows, and the figure flags.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// TEXT's help for the commands that explain one text (report, ablate, attribute, saliency).
pub(super) const ONE_TEXT: &str =
    "The text (one: this command explains a single text). `-` reads standard \
input. Omitted: standard input when it is not a terminal, else a sample sentence";

/// Where the text comes from, and what to do with texts longer than the model's context.
#[derive(Debug, Clone, Args)]
pub struct TextArgs {
    /// The text; several texts run as one right-padded batch, each reported as if run
    /// alone. `-` reads standard input. Omitted: standard input when it is not a terminal,
    /// else a sample sentence. One trailing newline of standard input or a file is dropped.
    #[arg(value_name = "TEXT")]
    pub texts: Vec<String>,

    /// The text as token ids, comma-separated (`464,3797,3332`), instead of TEXT; repeat it
    /// for several texts. The text shown is what the tokens spell
    #[arg(
        help_heading = "Input options",
        long = "ids",
        value_name = "IDS",
        value_parser = token_ids,
        conflicts_with_all = ["texts", "file", "lines"]
    )]
    pub ids: Vec<TokenIds>,

    /// Read the text from a file (`-`: standard input)
    #[arg(
        help_heading = "Input options",
        long,
        value_name = "PATH",
        conflicts_with = "texts"
    )]
    pub file: Option<PathBuf>,

    /// One text per line (of --file, or of standard input), run in batches; empty lines are
    /// skipped. A line that cannot be run (too long, too short for the command) is reported
    /// by its line number and the others still run; the exit code is then 1
    #[arg(help_heading = "Input options", long)]
    pub lines: bool,

    /// With --lines: stop before running anything when a line cannot be run
    #[arg(help_heading = "Input options", long, requires = "lines")]
    pub fail_fast: bool,

    /// A text longer than the limit (n_positions, or --max-length) keeps its last tokens
    /// (`left`: cut from the start; the choice for next-token prediction) or its first
    /// (`right`). Without it such a text is an error. What is cut is reported on stderr.
    #[arg(help_heading = "Input options", long, value_enum, value_name = "SIDE")]
    pub truncate: Option<Truncate>,

    /// Lower the limit on tokens per text below the model's n_positions
    #[arg(help_heading = "Input options", long, value_name = "N",
          value_parser = at_least_one)]
    pub max_length: Option<u32>,

    /// Run at most N texts as one padded batch (texts of similar length together); results
    /// are written in input order as each batch is done
    #[arg(help_heading = "Input options", long, value_name = "N", default_value_t = 16,
          value_parser = at_least_one)]
    pub batch_size: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Truncate {
    /// Keep the last tokens
    Left,
    /// Keep the first tokens
    Right,
}

#[derive(Debug, Args)]
pub struct TopKArgs {
    /// How many candidate tokens to show
    #[arg(long, short = 'k', value_name = "N", default_value_t = 5,
          value_parser = at_least_one)]
    pub top_k: u32,
}

/// How a heatmap looks: its title and how values become colours.
#[derive(Debug, Args)]
#[command(next_help_heading = "Figure options")]
pub struct FigureArgs {
    /// Title of the --svg figure (default: the model's short name, the layer and the head)
    #[arg(long, value_name = "TEXT", requires = "svg")]
    pub title: Option<String>,

    /// Colour map: blues (matplotlib's Blues), viridis (perceptually uniform) or rdbu
    /// (diverging RdBu_r: white at 0, for signed values; probabilities run white to red)
    #[arg(long, value_enum, value_name = "MAP", default_value_t = CmapArg::Blues,
          conflicts_with_all = ["stages", "neuron"])]
    pub cmap: CmapArg,

    /// Where a probability falls on the map: absolute (--vmin..--vmax, 0..1 unless given),
    /// global (0 to the largest value shown, so a diffuse head is not pale), row (0 to the
    /// largest value of each query's row) or log (log10 from --vmin, 1e-4 unless given, to
    /// --vmax)
    #[arg(long, value_enum, value_name = "SCALE", default_value_t = ScaleArg::Absolute,
          conflicts_with_all = ["stages", "neuron"])]
    pub scale: ScaleArg,

    /// The probability at the low end of the map (smaller values get its colour)
    #[arg(long, value_name = "V", value_parser = probability,
          conflicts_with_all = ["stages", "neuron"])]
    pub vmin: Option<f32>,

    /// The probability at the high end of the map (larger values get its colour)
    #[arg(long, value_name = "V", value_parser = probability,
          conflicts_with_all = ["stages", "neuron"])]
    pub vmax: Option<f32>,
}

/// A grid figure's title and colour map (patch, ablate --sweep, attribute, heads).
#[derive(Debug, Args)]
#[command(next_help_heading = "Figure options")]
pub struct GridFigureArgs {
    /// Title of the --svg figure (default: what it shows)
    #[arg(long, value_name = "TEXT", requires = "svg")]
    pub title: Option<String>,

    /// Colour map of the --svg figure, across the range its colour bar names: blues,
    /// viridis or rdbu (default: rdbu, white at 0, for signed values; blues for head scores)
    #[arg(long, value_enum, value_name = "MAP", requires = "svg")]
    pub cmap: Option<CmapArg>,
}

/// `--cmap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CmapArg {
    Blues,
    Viridis,
    Rdbu,
}

/// `--scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScaleArg {
    Absolute,
    Global,
    Row,
    Log,
}

/// A probability for `--vmin`/`--vmax`: a number from 0 to 1.
pub(super) fn probability(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        Ok(_) => Err("must be a probability, from 0 to 1".into()),
        Err(_) => Err(format!("`{s}` is not a number")),
    }
}

/// `attention --head H`: a head of the chosen layer. `L.H`, as other commands name a head,
/// is answered with the spelling that works here.
pub(super) fn head_of_layer(s: &str) -> Result<usize, String> {
    if let Some((l, h)) = s.trim().split_once('.') {
        return Err(format!(
            "attention names a head by its layer and its index: write --layer {l} --head {h}"
        ));
    }
    s.trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a head index"))
}

/// `hidden --depth`: the residual stream after D blocks, or the final hidden state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    Blocks(usize),
    LnF,
}

pub(super) fn depth(s: &str) -> Result<Depth, String> {
    match s.trim() {
        "ln_f" | "final" => Ok(Depth::LnF),
        d => (d.parse::<usize>())
            .map(Depth::Blocks)
            .map_err(|_| format!("`{s}` is not a depth: give a number of blocks or ln_f")),
    }
}

/// Token ids as `--ids` takes them: `464,3797,3332`.
#[derive(Debug, Clone)]
pub struct TokenIds(pub Vec<u32>);

pub(super) fn token_ids(s: &str) -> Result<TokenIds, String> {
    let ids = (s.split(',').map(str::trim).filter(|t| !t.is_empty()))
        .map(|t| {
            t.parse::<u32>()
                .map_err(|_| format!("`{t}` is not a token id"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    match ids.is_empty() {
        true => Err("no token ids: give them comma-separated, as 464,3797".into()),
        false => Ok(TokenIds(ids)),
    }
}

pub(super) fn at_least_one(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) if s.trim().starts_with('-') => Err("must be at least 1".into()),
        Err(_) => Err(format!("`{s}` is not a whole number")),
    }
}

/// `--window START:END`, either end open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: Option<usize>,
    pub end: Option<usize>,
}

pub(super) fn parse_window(s: &str) -> Result<Window, String> {
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not START:END (for example 0:16, 10: or :20)"))?;
    let num = |x: &str| -> Result<Option<usize>, String> {
        match x.trim() {
            "" => Ok(None),
            x => x
                .parse()
                .map(Some)
                .map_err(|_| format!("`{x}` is not a position (a number from 0)")),
        }
    };
    Ok(Window {
        start: num(a)?,
        end: num(b)?,
    })
}
