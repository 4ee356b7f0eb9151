//! Tokenization against Hugging Face's GPT-2 tokenizer on tricky strings
//! (tests/fixtures/tokenizer_cases.json, written by scripts/make_fixtures.py).

use crate::common::{fixtures, model_dir};
use gpt2_inspect::tokenizer::Tokenizer;
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    tokens: Vec<String>,
    decoded: Vec<String>,
    byte_offsets: Vec<[usize; 2]>,
    roundtrip: String,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(fixtures().join("tokenizer_cases.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn check(tok: &Tokenizer, case: &Case) {
    let got = tok.encode(&case.text).unwrap();
    let what = format!("{:?}", case.text);
    assert_eq!(
        got.iter().map(|t| t.id).collect::<Vec<_>>(),
        case.ids,
        "ids of {what}"
    );
    assert_eq!(
        got.iter().map(|t| t.symbol.clone()).collect::<Vec<_>>(),
        case.tokens,
        "symbols of {what}"
    );
    assert_eq!(
        got.iter().map(|t| t.text.clone()).collect::<Vec<_>>(),
        case.decoded,
        "decoded tokens of {what}"
    );
    assert_eq!(
        tok.decode(&case.ids).unwrap(),
        case.roundtrip,
        "decode of {what}"
    );

    // Byte offsets tile the input.
    let mut pos = 0;
    for t in &got {
        assert_eq!(
            t.start, pos,
            "{what}: token {:?} starts at {}",
            t.symbol, t.start
        );
        pos = t.end;
    }
    assert_eq!(pos, case.text.len(), "{what}: offsets end at {pos}");

    // HF reports character offsets, which cannot express a token boundary inside a
    // multi-byte character; every other token has exactly HF's span.
    for (i, (t, hf)) in got.iter().zip(&case.byte_offsets).enumerate() {
        if case.text.is_char_boundary(t.start) && case.text.is_char_boundary(t.end) {
            assert_eq!(
                [t.start, t.end],
                *hf,
                "{what}: offsets of token {i} {:?}",
                t.symbol
            );
        }
    }
}

#[test]
fn tokenizer_json_matches_hf() {
    let tok = Tokenizer::from_file(&model_dir().join("tokenizer.json")).unwrap();
    let cases = cases();
    assert!(cases.len() >= 20);
    for case in &cases {
        check(&tok, case);
    }
}

#[test]
fn vocab_and_merges_build_the_same_tokenizer() {
    let dir = model_dir();
    let tok =
        Tokenizer::from_vocab_merges(&dir.join("vocab.json"), &dir.join("merges.txt")).unwrap();
    for case in &cases() {
        check(&tok, case);
    }
}

#[test]
fn the_ids_every_gpt2_user_knows() {
    let tok = Tokenizer::from_file(&model_dir().join("tokenizer.json")).unwrap();
    let ids: Vec<u32> = tok
        .encode("Hello, how are you?")
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, [15496, 11, 703, 389, 345, 30]);
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn tokenizer() -> &'static Tokenizer {
        static TOK: OnceLock<Tokenizer> = OnceLock::new();
        TOK.get_or_init(|| Tokenizer::from_file(&model_dir().join("tokenizer.json")).unwrap())
    }

    /// Any Unicode text: decode(encode(s)) == s, and the tokens' byte spans tile s exactly.
    fn holds(s: &str) -> Result<(), TestCaseError> {
        let tokens = tokenizer().encode(s).unwrap();
        let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
        prop_assert_eq!(tokenizer().decode(&ids).unwrap(), s);
        let mut at = 0;
        for t in &tokens {
            prop_assert_eq!(t.start, at, "tokens must be contiguous");
            prop_assert!(t.end > t.start, "no empty token");
            at = t.end;
        }
        prop_assert_eq!(at, s.len());
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn roundtrip_and_offsets_tile_any_string(s in any::<String>()) {
            holds(&s)?;
        }

        /// Text shaped like GPT-2's hard cases: whitespace runs, contractions, digits,
        /// emoji with modifiers and joiners, combining marks, the special token.
        #[test]
        fn roundtrip_and_offsets_tile_tricky_pieces(
            parts in prop::collection::vec(
                prop::sample::select(vec![
                    " ", "  ", "\n", "\t", "'s", "'ll", "n't", "123", "4.5", "Hello", " world",
                    "👋", "\u{1f3fd}", "\u{200d}", "👩", "\u{301}", "é", "東京", "<|endoftext|>",
                    "\r\n", "\0", "ﬁ", "İ",
                ]),
                0..24,
            )
        ) {
            holds(&parts.concat())?;
        }
    }
}

/// A token holding part of a multi-byte character shows its bytes (`<0xNN>`), not U+FFFD,
/// wherever tokens are shown one by one: two such tokens can be told apart.
#[test]
fn byte_fragment_tokens_show_their_bytes() {
    let text = "東京 👋🏽 ok";
    let v = crate::common::json(&["score", text]);
    let shown: Vec<String> = (v["tokens"].as_array().unwrap().iter())
        .map(|t| t["token"].as_str().unwrap().to_string())
        .collect();
    assert!(shown.iter().all(|t| !t.contains('\u{FFFD}')), "{shown:?}");
    let fragments: Vec<&String> = shown.iter().filter(|t| t.contains("<0x")).collect();
    assert!(fragments.len() >= 2, "{shown:?}");
    // The bytes are the tokens' own: together with the whole characters they spell the text.
    let tok =
        gpt2_inspect::tokenizer::Tokenizer::from_file(&model_dir().join("tokenizer.json")).unwrap();
    let mut bytes = Vec::new();
    for t in tok.encode(text).unwrap().iter().skip(1) {
        let s = tok.token_text(t.id).unwrap();
        let mut rest = s.as_str();
        while let Some(at) = rest.find("<0x") {
            bytes.extend_from_slice(&rest.as_bytes()[..at]);
            bytes.push(u8::from_str_radix(&rest[at + 3..at + 5], 16).unwrap());
            rest = &rest[at + 6..];
        }
        bytes.extend_from_slice(rest.as_bytes());
    }
    let first = tok.encode(text).unwrap()[0].end;
    assert_eq!(bytes, text.as_bytes()[first..]);
    // Attention's heatmap labels too.
    let out = crate::common::cmd()
        .args(["attention", text, "--layer", "0", "--head", "0"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        !table.contains('\u{FFFD}') && table.contains("<0x"),
        "{table}"
    );
}
