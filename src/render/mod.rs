//! Renderers: each writes a report to any `io::Write` and computes no model values.

pub mod attention;
pub mod causal;
pub mod color;
pub mod features;
pub mod format;
pub mod gradients;
pub mod svg;
pub mod table;
pub mod tokens;

use crate::reports::{AttentionReport, HeadMap, Matrix};

/// Colours a terminal can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Palette {
    /// 24-bit colour (`COLORTERM=truecolor` or `24bit`).
    Truecolor,
    /// The xterm 256-colour palette.
    Ansi256,
}

/// A token as a one-line label: whitespace and control characters become visible symbols
/// (space `␣`, newline `↵`, tab `⇥`, other controls their Control Pictures), so every token
/// has a width and no label can break a line, a terminal or an XML document (U+FFFE and
/// U+FFFF, not allowed in XML, become `�`).
pub fn label(token: &str) -> String {
    token
        .chars()
        .map(|c| match c {
            ' ' => '␣',
            '\n' => '↵',
            '\t' => '⇥',
            '\u{7f}' => '␡',
            c if (c as u32) < 0x20 => char::from_u32(0x2400 + c as u32).unwrap_or('�'),
            c if c.is_control() || c == '\u{fffe}' || c == '\u{ffff}' => '�',
            c => c,
        })
        .collect()
}

/// Text for a terminal, as it is except for characters that would steer the terminal
/// instead of showing (controls such as ESC, and bidirectional overrides), which become
/// visible escapes (`\u{1b}`). `keep_lines` keeps newlines and tabs (running text);
/// without it they are escaped too (a table cell).
pub fn terminal_text(s: &str, keep_lines: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if (c.is_control() && !(keep_lines && matches!(c, '\n' | '\t'))) || bidi {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// A text as a one-line caption: spaces stay spaces, newlines and controls show as in
/// [`label`].
pub fn sentence(text: &str) -> String {
    text.split(' ').map(label).collect::<Vec<_>>().join(" ")
}

/// Columns `s` takes in a terminal (or a monospace figure): East Asian wide characters
/// take two, combining marks none.
pub fn display_width(s: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(s)
}

/// With `--window`: which span is shown and what that leaves out.
pub fn window_note(r: &AttentionReport) -> Option<String> {
    r.window.map(|[a, b]| {
        format!(
            "positions {a} to {} of the text (--window {a}:{b}): keys before {a} are not shown, so a row may sum to less than 1",
            b - 1
        )
    })
}

/// Text or an attribute value for XML (SVG) and HTML. Characters XML 1.0 forbids (controls
/// other than tab, newline and carriage return; U+FFFE, U+FFFF) become U+FFFD, so the file
/// stays well-formed whatever the input.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// How a depth (blocks passed) is labelled everywhere: `0 (embeddings)`, `2 (after block
/// 1)`; one meaning in `hidden`, `lens` and the report (the state after ln_f is `ln_f`).
pub fn depth_label(depth: usize) -> String {
    match depth {
        0 => "0 (embeddings)".to_string(),
        d => format!("{d} (after block {})", d - 1),
    }
}

/// How a lens reads each depth, in a table's or figure's words.
pub fn lens_reading(kind: crate::reports::LensKind) -> &'static str {
    use crate::reports::LensKind::*;
    match kind {
        Logit => "ln_f and the unembedding applied after each block",
        Tuned => {
            "the stream at each depth through its tuned-lens translator, ln_f and the unembedding"
        }
        Jacobian => {
            "the stream after each block moved by its Jacobian J (into the last block's \
             output), ln_f and the unembedding"
        }
    }
}

/// A model as a figure names it: the last part of a hub id or a path (`openai-community/gpt2`
/// and `./models/gpt2/` are both `gpt2`).
pub fn model_name(model: &str) -> &str {
    let m = model.trim_end_matches(['/', '\\']);
    m.rsplit(['/', '\\'])
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or(model)
}

/// The largest of the finite values (0 when there is none): the top of a colour scale of
/// probabilities (`--scale global`, `--scale row`).
pub(crate) fn largest<'a>(values: impl IntoIterator<Item = &'a f32>) -> f32 {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(0f32, |m, &v| m.max(v))
}

/// The largest probability any query gives a key it can see, over maps of `[T][T]`.
pub(crate) fn largest_visible(maps: &[HeadMap<'_, Matrix>]) -> f32 {
    largest(
        maps.iter()
            .flat_map(|m| m.matrix.iter().enumerate().flat_map(|(i, row)| &row[..=i])),
    )
}

/// The largest |v| among the finite values (0 when there is none): the scale of a
/// diverging colour map for signed values.
pub(crate) fn max_abs<'a>(values: impl IntoIterator<Item = &'a f32>) -> f32 {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(0f32, |m, v| m.max(v.abs()))
}

/// "fires on X% of N tokens (M texts)": a feature's density over a corpus, in words.
pub fn corpus_density(c: &crate::reports::FeatureCorpus) -> String {
    format!(
        "fires on {:.4}% of {} ({})",
        100.0 * c.density,
        counted(c.tokens as usize, "token"),
        counted(c.texts, "text")
    )
}

/// `n` and the noun, plural unless `n` is 1: "1 token", "3 tokens".
pub fn counted(n: usize, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        _ => format!("{n} {noun}s"),
    }
}

/// A feature's firing frequency in training from its log10 (sparsity.safetensors), in words.
pub fn training_density(log10: f32) -> String {
    format!(
        "fired on {:.4}% of training tokens (sparsity.safetensors: log10 {log10:.3})",
        100.0 * 10f64.powf(f64::from(log10))
    )
}

#[cfg(test)]
mod tests {
    use super::{escape, label, terminal_text};

    #[test]
    fn terminal_text_cannot_steer_the_terminal() {
        let hostile = "a\u{1b}]0;title\u{7}b\u{9b}2J\u{202e}c\nd\te";
        let shown = terminal_text(hostile, true);
        assert!(!shown
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'));
        assert!(shown.contains("\\u{1b}") && shown.contains("\\u{202e}"));
        assert!(shown.contains("c\nd\te"));
        assert_eq!(terminal_text("a\nb", false), "a\\u{a}b");
        assert_eq!(terminal_text("Ġhow", false), "Ġhow");
    }

    #[test]
    fn figures_name_the_model_not_its_path() {
        use super::model_name;
        assert_eq!(model_name("gpt2"), "gpt2");
        assert_eq!(model_name("openai-community/gpt2"), "gpt2");
        assert_eq!(model_name("tests/fixtures/tiny-gpt2/"), "tiny-gpt2");
        assert_eq!(model_name("/"), "/");
    }

    #[test]
    fn labels_show_whitespace_and_controls() {
        assert_eq!(label(" cat\n"), "␣cat↵");
        assert_eq!(label("\0\t\u{1b}\u{7f}\u{85}"), "␀⇥␛␡�");
        assert_eq!(label("é🙂"), "é🙂");
    }

    #[test]
    fn escape_leaves_no_markup_and_no_forbidden_characters() {
        assert_eq!(
            escape("<script>alert('1')</script> & \"x\""),
            "&lt;script&gt;alert(&#39;1&#39;)&lt;/script&gt; &amp; &quot;x&quot;"
        );
        assert_eq!(
            escape("a\0b\u{1b}c\td\ne\u{ffff}"),
            "a\u{fffd}b\u{fffd}c\td\ne\u{fffd}"
        );
    }
}
