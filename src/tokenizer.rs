//! GPT-2's byte-level BPE: text → tokens with ids, BPE symbols, decoded text and byte offsets.

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::models::bpe::BPE;
use tokenizers::AddedToken;

use crate::load::source::ModelSource;

pub const ENDOFTEXT: &str = "<|endoftext|>";

/// One token of an encoded text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: u32,
    /// The BPE symbol as the vocabulary spells it (`Ġhow`).
    pub symbol: String,
    /// The token decoded on its own (`" how"`); a token holding part of a multi-byte
    /// character decodes to U+FFFD.
    pub text: String,
    /// Byte offsets into the UTF-8 input; consecutive tokens tile it exactly.
    pub start: usize,
    pub end: usize,
}

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl Tokenizer {
    /// `tokenizer.json`, or the same byte-level BPE built from `vocab.json` + `merges.txt`.
    pub fn load(source: &ModelSource) -> Result<Self> {
        let has_json = source.has_local("tokenizer.json");
        let has_pair = source.has_local("vocab.json") && source.has_local("merges.txt");
        if let (ModelSource::Local(dir), false, true) = (source, has_json, has_pair) {
            return Self::from_vocab_merges(&dir.join("vocab.json"), &dir.join("merges.txt"));
        }
        let path = source.file("tokenizer.json")?;
        Self::from_file(&path)
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| anyhow!("cannot read tokenizer {}: {e}", path.display()))?;
        Ok(Tokenizer { inner })
    }

    /// Builds what Hugging Face's GPT-2 `tokenizer.json` describes: byte-level pre-tokenizer
    /// (no prefix space), BPE, byte-level decoder, and `<|endoftext|>` as a special token.
    pub fn from_vocab_merges(vocab: &Path, merges: &Path) -> Result<Self> {
        fn utf8(p: &Path) -> Result<&str> {
            p.to_str()
                .ok_or_else(|| anyhow!("path {} is not UTF-8", p.display()))
        }
        let bpe = BPE::from_file(utf8(vocab)?, utf8(merges)?)
            .build()
            .map_err(|e| {
                anyhow!(
                    "cannot build a tokenizer from {} and {}: {e}",
                    vocab.display(),
                    merges.display()
                )
            })?;
        let mut inner = tokenizers::Tokenizer::new(bpe);
        inner
            .with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
            .with_post_processor(Some(ByteLevel::new(true, false, true)))
            .with_decoder(Some(ByteLevel::default()));
        inner.add_special_tokens(&[AddedToken::from(ENDOFTEXT, true)]);
        Ok(Tokenizer { inner })
    }

    /// The id of `<|endoftext|>`, if this vocabulary has it.
    pub fn endoftext(&self) -> Option<u32> {
        self.inner.token_to_id(ENDOFTEXT)
    }

    pub fn encode(&self, text: &str) -> Result<Vec<Token>> {
        let mut tokens = Vec::new();
        self.encode_pieces(text, |piece| {
            tokens.extend(piece);
            Ok(())
        })?;
        Ok(tokens)
    }

    /// Encodes `text` a piece at a time, handing each piece's tokens to `each` in order:
    /// a long text is never held as one tokenizer encoding (tens of bytes per input byte).
    /// Pieces end where GPT-2's pre-tokenizer always splits, so the tokens are those of the
    /// whole text.
    pub fn encode_pieces(
        &self,
        text: &str,
        mut each: impl FnMut(Vec<Token>) -> Result<()>,
    ) -> Result<()> {
        // An added token with a space in it could straddle a cut: no cuts then.
        let cuttable = !self
            .inner
            .get_added_tokens_decoder()
            .values()
            .any(|t| t.content.contains(' '));
        let mut start = 0;
        while start < text.len() || start == 0 {
            let end = match cuttable {
                true => piece_end(text, start),
                false => text.len(),
            };
            each(self.encode_piece(&text[start..end], start)?)?;
            start = end;
            if end == text.len() {
                break;
            }
        }
        Ok(())
    }

    /// Tokens of `piece`, which starts at byte `offset` of the text.
    fn encode_piece(&self, piece: &str, offset: usize) -> Result<Vec<Token>> {
        let enc = self
            .inner
            .encode(piece, false)
            .map_err(|e| anyhow!("cannot tokenize the text: {e}"))?;
        let specials = self.inner.get_added_tokens_decoder();
        let mut tokens = Vec::with_capacity(enc.len());
        let mut pos = 0;
        for (&id, symbol) in enc.get_ids().iter().zip(enc.get_tokens()) {
            // Byte offsets from the symbols themselves: the tokenizer's own offsets give a
            // split multi-byte character's whole span to each of its tokens.
            let len = if specials.contains_key(&id) {
                symbol.len()
            } else {
                symbol_bytes(symbol)?.len()
            };
            tokens.push(Token {
                id,
                symbol: symbol.clone(),
                text: self.decode(&[id])?,
                start: offset + pos,
                end: offset + pos + len,
            });
            pos += len;
        }
        if pos != piece.len() {
            bail!(
                "this tokenizer changes the text before splitting it ({} bytes in, {pos} bytes in tokens); \
                 gpt2-inspect expects GPT-2's byte-level BPE without normalization",
                piece.len()
            );
        }
        Ok(tokens)
    }

    /// One token as a person reads it: its decoded text, or where it holds part of a
    /// multi-byte character (a piece of a CJK character or an emoji, which decodes to
    /// U+FFFD alone) those bytes as `<0xNN>` (SentencePiece's spelling of a byte token), so
    /// that such tokens can be told apart.
    pub fn token_text(&self, id: u32) -> Result<String> {
        let text = self.decode(&[id])?;
        if !text.contains('\u{FFFD}') {
            return Ok(text);
        }
        let Some(symbol) = self.inner.id_to_token(id) else {
            return Ok(text);
        };
        let Ok(bytes) = symbol_bytes(&symbol) else {
            return Ok(text);
        };
        let mut shown = String::new();
        for chunk in bytes.utf8_chunks() {
            shown.push_str(chunk.valid());
            for b in chunk.invalid() {
                shown.push_str(&format!("<0x{b:02X}>"));
            }
        }
        Ok(shown)
    }

    /// The tokens of `ids` and the text they spell: each token's bytes in turn, the text
    /// their UTF-8 (U+FFFD where the bytes end inside a character).
    pub fn from_ids(&self, ids: &[u32]) -> Result<(String, Vec<Token>)> {
        let specials = self.inner.get_added_tokens_decoder();
        let mut bytes = Vec::new();
        let mut tokens = Vec::with_capacity(ids.len());
        for &id in ids {
            let symbol = (self.inner.id_to_token(id))
                .ok_or_else(|| anyhow!("token id {id} is not in the tokenizer's vocabulary"))?;
            let own = match specials.contains_key(&id) {
                true => symbol.clone().into_bytes(),
                false => symbol_bytes(&symbol)?,
            };
            tokens.push(Token {
                id,
                text: self.decode(&[id])?,
                symbol,
                start: bytes.len(),
                end: bytes.len() + own.len(),
            });
            bytes.extend(own);
        }
        Ok((String::from_utf8_lossy(&bytes).into_owned(), tokens))
    }

    /// How many ids the vocabulary has, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Decodes ids to text, keeping special tokens.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| anyhow!("cannot decode ids {ids:?}: {e}"))
    }
}

/// Pieces of a long text are about this long.
const PIECE: usize = 64 << 10;

/// Where the piece from `start` ends: at a space between two ASCII letters at least
/// [`PIECE`] bytes on (or the end of the text). GPT-2's pre-tokenizer
/// (`'s|'t|… | ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`) always ends a match
/// before such a space (no alternative holds both a letter and a space after it) and
/// starts the next one there with ` ?\p{L}+`, as it would on the text alone; BPE then
/// works within matches. So the pieces' tokens are the whole text's.
fn piece_end(text: &str, start: usize) -> usize {
    let b = text.as_bytes();
    let mut i = start + PIECE;
    while i + 1 < b.len() {
        if b[i] == b' ' && b[i - 1].is_ascii_alphabetic() && b[i + 1].is_ascii_alphabetic() {
            return i;
        }
        i += 1;
    }
    text.len()
}

/// The bytes a byte-level BPE symbol stands for (`Ġ` → b' ').
fn symbol_bytes(symbol: &str) -> Result<Vec<u8>> {
    let table = char_to_byte();
    symbol
        .chars()
        .map(|c| table.get(&c).copied())
        .collect::<Option<Vec<u8>>>()
        .with_context(|| format!("token {symbol:?} is not a byte-level BPE symbol"))
}

/// Inverse of GPT-2's `bytes_to_unicode`: printable bytes stand for themselves, the other
/// bytes for the code points from U+0100 on, in byte order.
fn char_to_byte() -> &'static HashMap<char, u8> {
    static TABLE: OnceLock<HashMap<char, u8>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let mut next = 256u32;
        (0..=255u8)
            .map(|b| {
                let c = if printable(b) {
                    char::from(b)
                } else {
                    next += 1;
                    char::from_u32(next - 1).expect("U+0100..U+0143 are chars")
                };
                (c, b)
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_end_between_words() {
        let text = "ab ".repeat(PIECE);
        let end = piece_end(&text, 0);
        assert!((PIECE..PIECE + 3).contains(&end));
        assert_eq!(&text[end - 1..end + 2], "b a");
        assert_eq!(piece_end("short text", 0), 10);
        assert_eq!(piece_end(&"x".repeat(3 * PIECE), 0), 3 * PIECE);
    }

    #[test]
    fn byte_table_matches_gpt2() {
        assert_eq!(symbol_bytes("Ġhow").unwrap(), b" how");
        assert_eq!(symbol_bytes("Ċ").unwrap(), b"\n");
        assert_eq!(symbol_bytes("ĉ").unwrap(), b"\t");
        assert_eq!(char_to_byte().len(), 256);
    }
}
