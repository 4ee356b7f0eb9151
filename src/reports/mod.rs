//! What each command found, as plain data. Serialized as is for `--json` (schema 1);
//! the table renderer reads the same values. No formatting and no model code here.

mod attention;
mod causal;
mod features;
mod gradients;
mod tokens;
pub use attention::*;
pub use causal::*;
pub use features::*;
pub use gradients::*;
pub use tokens::*;

use serde::Serialize;

pub const SCHEMA: u32 = 1;

/// Fields every JSON object starts with.
#[derive(Debug, Clone, Serialize)]
pub struct Header {
    pub schema: u32,
    /// This tool's version.
    pub version: &'static str,
    /// The `--model` value as given.
    pub model: String,
    /// The commit the hub model resolved to; `null` for a local directory.
    pub revision: Option<String>,
    /// The input text, as far as it was analysed (what `--truncate` kept); `null` for
    /// commands without one.
    pub text: Option<String>,
    /// What `--truncate` cut from the text, when it cut anything (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<Truncated>,
}

impl Header {
    pub fn new(model: &str, revision: Option<String>, text: Option<&str>) -> Self {
        Header {
            schema: SCHEMA,
            version: env!("CARGO_PKG_VERSION"),
            model: model.to_string(),
            revision,
            text: text.map(str::to_string),
            truncated: None,
        }
    }
}

/// What `--truncate` cut from a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Truncated {
    /// `left` (the start was cut) or `right` (the end was).
    pub side: &'static str,
    pub cut_tokens: usize,
}

/// A report that starts with the [`Header`], so a batch can say what was cut of its text.
pub trait Headed {
    fn header_mut(&mut self) -> &mut Header;
}

/// [`Headed`] for reports whose `header` field is the header.
macro_rules! headed {
    ($($report:ty),* $(,)?) => {
        $(impl Headed for $report {
            fn header_mut(&mut self) -> &mut Header {
                &mut self.header
            }
        })*
    };
}

/// A text of a batch that was not run, written where its report would be.
#[derive(Debug, Clone, Serialize)]
pub struct NotRun {
    /// Why, naming the text as stderr does.
    pub error: String,
    pub text: String,
    /// With --lines: its line in the input, from 1.
    pub line: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub rank: usize,
    pub id: u32,
    /// Decoded token.
    pub token: String,
    pub prob: f32,
    pub logprob: f32,
    pub logit: f32,
}

/// A file a command wrote, for stdout.
#[derive(Debug, Clone, Serialize)]
pub struct WrittenReport {
    #[serde(flatten)]
    pub header: Header,
    pub path: String,
    pub bytes: u64,
    /// What is in it, in a few words.
    pub contents: String,
}

/// A token named on the command line: its id and how it decodes.
#[derive(Debug, Clone, Serialize)]
pub struct NamedToken {
    pub id: u32,
    pub token: String,
}

headed!(
    NextReport,
    AttentionReport,
    TraceReport,
    EmbedReport,
    HiddenReport,
    LensReport,
    LensGridReport,
    ScoreReport,
    GenerateReport,
    PageReport,
    TokenizeReport,
    FeaturesReport,
    DumpReport,
);
