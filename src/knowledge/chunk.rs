//! Structure-aware chunking of extracted blocks into segments for embedding.
//!
//! A heading closes the current chunk and updates the heading path (headings are not part of chunk
//! text). Consecutive blocks under one heading and on one page are packed into a chunk, joined by
//! `\n`, while they fit in `max_tokens`. A block larger than that is split at sentence ends (`.!?`
//! followed by a space, CJK `。！？；`, line breaks); a sentence still too long is split between words,
//! and CJK text between characters. Consecutive pieces of one split block overlap by about
//! `overlap_tokens`.
//!
//! Work is linear: every block, sentence and word is counted once (plus at most one sentence's words
//! again for each overlap) and counts are added up, which is exact for WordPiece-style tokenizers that
//! split on whitespace, punctuation and CJK characters first. The final `token_count` of every chunk is
//! counted exactly; should a packed chunk of several blocks still exceed `max_tokens` (a tokenizer
//! whose counts do not add up), it is halved until it fits.
//!
//! Every chunk has at most `max_tokens` tokens, except a chunk made of a single indivisible unit (one
//! word without spaces, one CJK character) that alone is larger.

use super::extract::text::is_cjk;
use super::extract::{Block, BlockKind};

/// How documents are cut into chunks: a dataset's setting, fixed for each document when it is uploaded.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct ChunkSettings {
    /// Most tokens of one chunk (at least 1 is used).
    pub max_tokens: usize,
    /// Tokens repeated between consecutive pieces of one long block (at most half of `max_tokens` is
    /// used).
    pub overlap_tokens: usize,
}

impl Default for ChunkSettings {
    fn default() -> Self {
        Self {
            max_tokens: 200,
            overlap_tokens: 32,
        }
    }
}

/// Counts the tokens of the embedding model's tokenizer, without special tokens.
pub trait TokenCounter {
    fn count(&self, text: &str) -> usize;
}

/// One segment of a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// 0, 1, 2, … in document order.
    pub position: u32,
    pub text: String,
    /// The headings above this chunk, outermost first.
    pub heading_path: Vec<String>,
    /// `counter.count(&text)`.
    pub token_count: usize,
    /// The page of its blocks (a chunk never spans two pages).
    pub page: Option<u32>,
}

/// Cuts `blocks` into chunks. Deterministic; never returns an empty chunk.
pub fn chunk(blocks: &[Block], settings: &ChunkSettings, counter: &dyn TokenCounter) -> Vec<Chunk> {
    let max = settings.max_tokens.max(1);
    let mut chunker = Chunker {
        max,
        overlap: settings.overlap_tokens.min(max / 2),
        counter,
        out: Vec::new(),
        path: Vec::new(),
        parts: Vec::new(),
        tokens: 0,
        page: None,
    };
    for block in blocks {
        chunker.add(block);
    }
    chunker.flush();
    chunker.out
}

struct Chunker<'a> {
    max: usize,
    overlap: usize,
    counter: &'a dyn TokenCounter,
    out: Vec<Chunk>,
    /// (level, heading text), outermost first.
    path: Vec<(u8, String)>,
    /// Texts of the open chunk with their token counts.
    parts: Vec<(&'a str, usize)>,
    tokens: usize,
    page: Option<u32>,
}

impl<'a> Chunker<'a> {
    fn add(&mut self, block: &'a Block) {
        let text = block.text.trim();
        if let BlockKind::Heading(level) = block.kind {
            self.flush();
            self.path.retain(|(l, _)| *l < level);
            if !text.is_empty() {
                self.path.push((level, text.to_string()));
            }
            return;
        }
        if text.is_empty() {
            return;
        }
        if block.page != self.page {
            self.flush();
            self.page = block.page;
        }
        let tokens = self.counter.count(text);
        if tokens <= self.max {
            if self.tokens + tokens > self.max {
                self.flush();
            }
            self.push(text, tokens);
            return;
        }
        self.flush();
        let pieces = split_long(text, self.max, self.overlap, self.counter);
        let last = pieces.len().saturating_sub(1);
        for (i, (piece, tokens)) in pieces.into_iter().enumerate() {
            self.push(piece, tokens);
            // The last piece stays open: following short blocks may join it.
            if i < last {
                self.flush();
            }
        }
    }

    fn push(&mut self, text: &'a str, tokens: usize) {
        self.parts.push((text, tokens));
        self.tokens += tokens;
    }

    fn flush(&mut self) {
        let parts = std::mem::take(&mut self.parts);
        self.tokens = 0;
        self.emit(&parts);
    }

    /// Emits `parts` as one chunk, or halves them while the exact count is over the budget.
    fn emit(&mut self, parts: &[(&str, usize)]) {
        if parts.is_empty() {
            return;
        }
        let text = parts.iter().map(|(t, _)| *t).collect::<Vec<_>>().join("\n");
        let token_count = self.counter.count(&text);
        if token_count > self.max && parts.len() > 1 {
            let (first, second) = parts.split_at(parts.len() / 2);
            self.emit(first);
            self.emit(second);
            return;
        }
        if text.trim().is_empty() {
            return;
        }
        self.out.push(Chunk {
            position: self.out.len() as u32,
            text,
            heading_path: self.path.iter().map(|(_, h)| h.clone()).collect(),
            token_count,
            page: self.page,
        });
    }
}

/// A span of the block's text with its token count.
#[derive(Clone, Copy, Debug)]
struct Unit {
    start: usize,
    end: usize,
    tokens: usize,
}

/// Byte ranges of the sentences of `text`, trimmed: a sentence ends after `.`, `!` or `?` followed by
/// whitespace (closing quotes and brackets stay with it), after `。！？；`, and at a line break.
fn sentences(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let end = match c {
            '\n' => Some(i),
            '。' | '！' | '？' | '；' | '.' | '!' | '?' => {
                let mut end = i + c.len_utf8();
                while let Some(&(j, q)) = chars.peek() {
                    if matches!(
                        q,
                        '"' | '\'' | '”' | '’' | '」' | '』' | '）' | ')' | ']' | '》'
                    ) {
                        end = j + q.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let cjk_stop = matches!(c, '。' | '！' | '？' | '；');
                let followed_by_space = chars.peek().is_none_or(|&(_, n)| n.is_whitespace());
                (cjk_stop || followed_by_space).then_some(end)
            }
            _ => None,
        };
        if let Some(end) = end {
            push_trimmed(text, start, end, &mut out);
            start = end;
        }
    }
    push_trimmed(text, start, text.len(), &mut out);
    out
}

fn push_trimmed(text: &str, start: usize, end: usize, out: &mut Vec<(usize, usize)>) {
    let slice = &text[start..end];
    let trimmed_start = slice.len() - slice.trim_start().len();
    let trimmed = slice.trim();
    if !trimmed.is_empty() {
        let s = start + trimmed_start;
        out.push((s, s + trimmed.len()));
    }
}

/// Byte ranges (relative to `text`) of its words: runs of non-space, non-CJK characters, and single
/// CJK characters.
fn words(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut word_start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() || is_cjk(c) {
            if let Some(s) = word_start.take() {
                out.push((s, i));
            }
            if is_cjk(c) {
                out.push((i, i + c.len_utf8()));
            }
        } else if word_start.is_none() {
            word_start = Some(i);
        }
    }
    if let Some(s) = word_start {
        out.push((s, text.len()));
    }
    out
}

/// Counted word units of `text[start..end]`.
fn word_units(text: &str, start: usize, end: usize, counter: &dyn TokenCounter) -> Vec<Unit> {
    words(&text[start..end])
        .into_iter()
        .map(|(s, e)| Unit {
            start: start + s,
            end: start + e,
            tokens: counter.count(&text[start + s..start + e]),
        })
        .collect()
}

/// Splits a block longer than `max` tokens into pieces of at most `max` tokens (except an indivisible
/// unit that alone is larger), consecutive pieces overlapping by about `overlap` tokens.
fn split_long<'t>(
    text: &'t str,
    max: usize,
    overlap: usize,
    counter: &dyn TokenCounter,
) -> Vec<(&'t str, usize)> {
    let mut units = Vec::new();
    for (start, end) in sentences(text) {
        let tokens = counter.count(&text[start..end]);
        if tokens <= max {
            units.push(Unit { start, end, tokens });
        } else {
            units.extend(word_units(text, start, end, counter));
        }
    }

    let mut pieces = Vec::new();
    // The open piece: its start byte, tokens, and the index of its first new unit.
    let mut start: Option<usize> = None;
    let mut tokens = 0usize;
    let mut first = 0usize;
    for (j, unit) in units.iter().enumerate() {
        if start.is_some() && tokens + unit.tokens > max {
            let piece_start = start.unwrap_or(unit.start);
            let piece_end = units[j - 1].end;
            pieces.push((&text[piece_start..piece_end], tokens));
            let budget = overlap.min(max.saturating_sub(unit.tokens));
            let (tail_start, tail_tokens) = overlap_tail(text, &units[first..j], budget, counter);
            start = tail_start;
            tokens = tail_tokens;
            first = j;
        }
        if start.is_none() {
            start = Some(unit.start);
        }
        tokens += unit.tokens;
    }
    if let (Some(s), Some(last)) = (start, units.last()) {
        pieces.push((&text[s..last.end], tokens));
    }
    pieces
}

/// The start and tokens of the tail of `units` (the piece just emitted) worth at most `budget`
/// tokens: whole units from the end, then the last words of the unit that did not fit whole.
fn overlap_tail(
    text: &str,
    units: &[Unit],
    budget: usize,
    counter: &dyn TokenCounter,
) -> (Option<usize>, usize) {
    let mut start = None;
    let mut tokens = 0;
    if budget == 0 {
        return (None, 0);
    }
    for unit in units.iter().rev() {
        if tokens + unit.tokens <= budget {
            tokens += unit.tokens;
            start = Some(unit.start);
            continue;
        }
        for word in word_units(text, unit.start, unit.end, counter).iter().rev() {
            if tokens + word.tokens > budget {
                break;
            }
            tokens += word.tokens;
            start = Some(word.start);
        }
        break;
    }
    (start, tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One token per whitespace-separated word, and one per CJK character.
    struct Words;

    impl TokenCounter for Words {
        fn count(&self, text: &str) -> usize {
            words(text).len()
        }
    }

    fn block(kind: BlockKind, text: &str) -> Block {
        Block {
            kind,
            text: text.to_string(),
            page: None,
        }
    }

    fn para(text: &str) -> Block {
        block(BlockKind::Paragraph, text)
    }

    fn settings(max_tokens: usize, overlap_tokens: usize) -> ChunkSettings {
        ChunkSettings {
            max_tokens,
            overlap_tokens,
        }
    }

    fn check_invariants(chunks: &[Chunk], max: usize) {
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c.position as usize, i);
            assert!(!c.text.trim().is_empty());
            assert_eq!(c.token_count, Words.count(&c.text));
            assert!(
                c.token_count <= max,
                "chunk {i} has {} tokens",
                c.token_count
            );
        }
    }

    #[test]
    fn heading_paths_follow_levels() {
        let blocks = vec![
            block(BlockKind::Heading(1), "Guide"),
            para("intro text"),
            block(BlockKind::Heading(2), "Install"),
            para("install text"),
            block(BlockKind::Heading(3), "On Debian"),
            para("debian text"),
            block(BlockKind::Heading(2), "Usage"),
            para("usage text"),
            block(BlockKind::Heading(1), "Appendix"),
            para("appendix text"),
        ];
        let chunks = chunk(&blocks, &settings(50, 5), &Words);
        let paths: Vec<Vec<String>> = chunks.iter().map(|c| c.heading_path.clone()).collect();
        assert_eq!(
            paths,
            vec![
                vec!["Guide".to_string()],
                vec!["Guide".into(), "Install".into()],
                vec!["Guide".into(), "Install".into(), "On Debian".into()],
                vec!["Guide".into(), "Usage".into()],
                vec!["Appendix".to_string()],
            ]
        );
        assert_eq!(chunks[2].text, "debian text");
        assert!(chunks.iter().all(|c| !c.text.contains("Guide")));
        check_invariants(&chunks, 50);
    }

    #[test]
    fn packs_blocks_while_they_fit() {
        let blocks = vec![
            para("one two three"),
            block(BlockKind::ListItem, "four five"),
            block(BlockKind::TableRow, "a: six; b: seven"),
            para("eight nine ten eleven"),
        ];
        let chunks = chunk(&blocks, &settings(10, 2), &Words);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].text, "one two three\nfour five\na: six; b: seven");
        assert_eq!(chunks[0].token_count, 9);
        assert_eq!(chunks[1].text, "eight nine ten eleven");
        check_invariants(&chunks, 10);
    }

    #[test]
    fn long_paragraph_is_split_at_sentences_with_overlap() {
        let sentences: Vec<String> = (0..20)
            .map(|i| format!("Sentence number {i} has exactly seven words."))
            .collect();
        let text = sentences.join(" ");
        let chunks = chunk(&[para(&text)], &settings(30, 8), &Words);
        check_invariants(&chunks, 30);
        assert!(chunks.len() > 4);
        // Pieces end at sentence ends.
        for c in &chunks {
            assert!(c.text.ends_with("words."), "{:?}", c.text);
        }
        // Each piece starts with about 8 tokens of the previous one's end.
        for pair in chunks.windows(2) {
            let prev: Vec<&str> = pair[0].text.split_whitespace().collect();
            let next: Vec<&str> = pair[1].text.split_whitespace().collect();
            let shared = (1..=prev.len().min(next.len()))
                .rev()
                .find(|&n| prev[prev.len() - n..] == next[..n])
                .unwrap_or(0);
            assert!((4..=8).contains(&shared), "overlap of {shared} words");
        }
        // Nothing is lost: every sentence appears somewhere.
        for s in &sentences {
            assert!(chunks.iter().any(|c| c.text.contains(s.as_str())), "{s}");
        }
    }

    #[test]
    fn overlong_sentence_is_split_between_words() {
        let text = (0..100)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let chunks = chunk(&[para(&text)], &settings(25, 5), &Words);
        check_invariants(&chunks, 25);
        assert!(chunks.iter().all(|c| c.token_count >= 5));
        assert_eq!(chunks[0].text.split_whitespace().next(), Some("w0"));
        assert!(chunks.last().is_some_and(|c| c.text.ends_with("w99")));
        assert!(chunks[1].text.starts_with("w20 "), "{}", chunks[1].text);
    }

    #[test]
    fn chinese_without_spaces_is_split_at_sentences_and_characters() {
        let sentence = "知识库保存用户上传的文档并提取其中的文字。";
        let text = sentence.repeat(12);
        let chunks = chunk(&[para(&text)], &settings(50, 10), &Words);
        check_invariants(&chunks, 50);
        assert!(chunks.len() >= 5);
        for c in &chunks {
            assert!(!c.text.contains(' '));
            assert!(c.text.ends_with('。'));
        }
        // Overlap: a piece starts with the end of the previous one.
        let head: String = chunks[1].text.chars().take(10).collect();
        assert!(
            chunks[0].text.ends_with(&head),
            "{} / {}",
            chunks[0].text,
            chunks[1].text
        );

        // One sentence longer than the budget: cut between characters.
        let long = "字".repeat(120);
        let chunks = chunk(&[para(&long)], &settings(50, 10), &Words);
        check_invariants(&chunks, 50);
        assert_eq!(chunks[0].token_count, 50);
        assert_eq!(chunks[1].token_count, 50);
    }

    #[test]
    fn page_changes_start_new_chunks() {
        let mut a = para("page one text");
        a.page = Some(1);
        let mut b = para("more page one");
        b.page = Some(1);
        let mut c = para("page two text");
        c.page = Some(2);
        let chunks = chunk(&[a, b, c], &settings(100, 10), &Words);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].page, Some(1));
        assert_eq!(chunks[0].text, "page one text\nmore page one");
        assert_eq!(chunks[1].page, Some(2));
    }

    #[test]
    fn empty_blocks_and_headings_make_no_chunks() {
        let blocks = vec![
            block(BlockKind::Heading(1), "Only a heading"),
            para("   "),
            block(BlockKind::Heading(2), "Another"),
        ];
        assert!(chunk(&blocks, &settings(10, 2), &Words).is_empty());
        assert!(chunk(&[], &settings(10, 2), &Words).is_empty());
    }

    #[test]
    fn indivisible_word_is_the_only_exception() {
        struct Chars;
        impl TokenCounter for Chars {
            fn count(&self, text: &str) -> usize {
                text.chars().filter(|c| !c.is_whitespace()).count()
            }
        }
        let word = "x".repeat(30);
        let text = format!("short {word} tail");
        let chunks = chunk(&[para(&text)], &settings(10, 2), &Chars);
        assert!(chunks.iter().any(|c| c.text == word && c.token_count == 30));
        assert!(chunks
            .iter()
            .filter(|c| c.token_count > 10)
            .all(|c| c.text == word));
    }

    #[test]
    fn miscounted_packs_are_halved_until_they_fit() {
        // Counts 1 per block alone, but 10 per line once joined: sums underestimate.
        struct Joined;
        impl TokenCounter for Joined {
            fn count(&self, text: &str) -> usize {
                let lines = text.lines().count();
                if lines > 1 {
                    lines * 3
                } else {
                    1
                }
            }
        }
        let blocks: Vec<Block> = (0..8).map(|i| para(&format!("b{i}"))).collect();
        let chunks = chunk(&blocks, &settings(7, 0), &Joined);
        assert!(chunks.iter().all(|c| c.token_count <= 7));
        assert_eq!(
            chunks.iter().map(|c| c.text.lines().count()).sum::<usize>(),
            8
        );
    }

    #[test]
    fn output_is_deterministic_and_positions_consecutive() {
        let mut blocks = Vec::new();
        for i in 0..30 {
            if i % 7 == 0 {
                blocks.push(block(BlockKind::Heading(2), &format!("Section {i}")));
            }
            blocks.push(para(&format!(
                "Paragraph {i} talks about things. It has two sentences and some 中文字符。"
            )));
        }
        let a = chunk(&blocks, &settings(20, 4), &Words);
        let b = chunk(&blocks, &settings(20, 4), &Words);
        assert_eq!(a, b);
        check_invariants(&a, 20);
    }

    #[test]
    fn large_input_is_fast() {
        let text = "This is a sentence of nine words for the test. ".repeat(100_000);
        let started = std::time::Instant::now();
        let chunks = chunk(&[para(&text)], &settings(200, 32), &Words);
        assert!(chunks.len() > 1000);
        check_invariants(&chunks, 200);
        assert!(started.elapsed().as_secs() < 20);
    }
}
