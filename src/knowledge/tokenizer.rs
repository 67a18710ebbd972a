//! The keyword tokenizer: words for alphabetic scripts, character bigrams for Chinese, Japanese and
//! Korean.
//!
//! Latin, Cyrillic, Greek and other spaced scripts are split into runs of letters and digits, lower-cased
//! (then stemmed for English by the analyzer in `index`). CJK text has no spaces, so each run of CJK
//! characters becomes its overlapping bigrams (`知识库` → `知识`, `识库`), the approach of Lucene's and
//! Elasticsearch's `cjk` analyzer: no dictionary to ship, and every language of the family works. When
//! indexing, single characters are indexed too, so that a one-character query still finds them; a
//! query uses bigrams only (or the single character of a one-character run), so a two-character word
//! is not counted three times.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// Whether tokens are made for the index or for a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Index,
    Query,
}

/// The tantivy tokenizer (see the module documentation).
#[derive(Debug, Clone)]
pub struct MixedScriptTokenizer {
    mode: Mode,
    tokens: Vec<Token>,
}

impl MixedScriptTokenizer {
    pub fn new(mode: Mode) -> MixedScriptTokenizer {
        MixedScriptTokenizer {
            mode,
            tokens: Vec::new(),
        }
    }
}

/// Whether `c` is a letter of a script searched by bigrams: Han and kana (written without spaces) and
/// Hangul. Unlike `extract::text::is_cjk`, which decides where text may be joined or cut, this leaves
/// CJK punctuation out (it separates tokens) and takes Hangul in.
pub fn searched_by_bigrams(c: char) -> bool {
    matches!(c as u32,
        0x3400..=0x4DBF      // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xF900..=0xFAFF    // compatibility ideographs
        | 0x20000..=0x2EBEF  // extensions B–F
        | 0x3040..=0x309F    // hiragana
        | 0x30A0..=0x30FF    // katakana
        | 0x31F0..=0x31FF    // katakana extensions
        | 0xAC00..=0xD7AF    // hangul syllables
        | 0x1100..=0x11FF    // hangul jamo
        | 0x3130..=0x318F) // hangul compatibility jamo
}

/// Splits `text` into tokens (byte offsets into `text`, lower-cased words, CJK unigrams/bigrams).
pub fn tokenize(text: &str, mode: Mode, out: &mut Vec<Token>) {
    out.clear();
    let mut position = 0usize;
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if searched_by_bigrams(c) {
            let mut run: Vec<(usize, char)> = Vec::new();
            while let Some(&(at, c)) = chars.peek() {
                if !searched_by_bigrams(c) {
                    break;
                }
                run.push((at, c));
                chars.next();
            }
            push_cjk_run(text, &run, mode, &mut position, out);
        } else if c.is_alphanumeric() {
            let mut end = start;
            while let Some(&(at, c)) = chars.peek() {
                if !c.is_alphanumeric() || searched_by_bigrams(c) {
                    break;
                }
                end = at + c.len_utf8();
                chars.next();
            }
            out.push(Token {
                offset_from: start,
                offset_to: end,
                position,
                text: text[start..end].to_lowercase(),
                position_length: 1,
            });
            position += 1;
        } else {
            chars.next();
        }
    }
}

fn push_cjk_run(
    text: &str,
    run: &[(usize, char)],
    mode: Mode,
    position: &mut usize,
    out: &mut Vec<Token>,
) {
    let end_of = |i: usize| run[i].0 + run[i].1.len_utf8();
    if run.len() == 1 {
        out.push(Token {
            offset_from: run[0].0,
            offset_to: end_of(0),
            position: *position,
            text: text[run[0].0..end_of(0)].to_string(),
            position_length: 1,
        });
        *position += 1;
        return;
    }
    for i in 0..run.len() {
        if mode == Mode::Index {
            out.push(Token {
                offset_from: run[i].0,
                offset_to: end_of(i),
                position: *position,
                text: text[run[i].0..end_of(i)].to_string(),
                position_length: 1,
            });
        }
        if i + 1 < run.len() {
            out.push(Token {
                offset_from: run[i].0,
                offset_to: end_of(i + 1),
                position: *position,
                text: text[run[i].0..end_of(i + 1)].to_string(),
                position_length: 1,
            });
        }
        *position += 1;
    }
}

/// The token stream of one text.
pub struct MixedScriptStream<'a> {
    tokens: &'a mut Vec<Token>,
    next: usize,
}

impl Tokenizer for MixedScriptTokenizer {
    type TokenStream<'a> = MixedScriptStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> MixedScriptStream<'a> {
        tokenize(text, self.mode, &mut self.tokens);
        MixedScriptStream {
            tokens: &mut self.tokens,
            next: 0,
        }
    }
}

impl TokenStream for MixedScriptStream<'_> {
    fn advance(&mut self) -> bool {
        if self.next < self.tokens.len() {
            self.next += 1;
            true
        } else {
            false
        }
    }

    // tantivy calls these only after `advance` returned true, so `next - 1` is a valid index.
    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str, mode: Mode) -> Vec<String> {
        let mut out = Vec::new();
        tokenize(text, mode, &mut out);
        out.into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn words_are_split_and_lower_cased() {
        assert_eq!(
            texts("Rotate the API-key (v2)!", Mode::Query),
            ["rotate", "the", "api", "key", "v2"]
        );
    }

    #[test]
    fn cjk_runs_become_bigrams_and_unigrams_when_indexing() {
        assert_eq!(texts("知识库", Mode::Query), ["知识", "识库"]);
        assert_eq!(
            texts("知识库", Mode::Index),
            ["知", "知识", "识", "识库", "库"]
        );
        assert_eq!(texts("书", Mode::Query), ["书"]);
        assert_eq!(
            texts("Enclave的知识库", Mode::Query),
            ["enclave", "的知", "知识", "识库"]
        );
    }

    #[test]
    fn offsets_are_byte_offsets_into_the_text() {
        let mut out = Vec::new();
        let text = "a 知识 b";
        tokenize(text, Mode::Query, &mut out);
        let spans: Vec<&str> = out
            .iter()
            .map(|t| &text[t.offset_from..t.offset_to])
            .collect();
        assert_eq!(spans, ["a", "知识", "b"]);
    }
}
