//! Plain text: decoding bytes to a `String` (UTF-8, UTF-16 with BOM, legacy encodings guessed by
//! chardetng), the binary-data and line-length checks, paragraphs split at blank lines, and the small
//! text helpers the other readers share (CJK-aware line joining, whitespace collapsing).

use super::{Block, BlockKind, ExtractError, Extracted, Format};

/// How many bytes chardetng looks at to guess a legacy encoding.
const GUESS_BYTES: usize = 1024 * 1024;

/// How many characters the control-character check samples.
const CONTROL_SAMPLE_CHARS: usize = 1024 * 1024;

/// Decodes `bytes` to text, or says why it is not text.
///
/// UTF-8 (with or without BOM) and UTF-16 LE/BE with a BOM are decoded directly; anything else that is
/// not valid UTF-8 is decoded with the encoding chardetng guesses (GBK, Big5, Shift-JIS,
/// windows-1252, …). NUL bytes (outside UTF-16), many control characters or many undecodable bytes
/// make it [`ExtractError::Binary`].
pub(crate) fn decode(bytes: &[u8]) -> Result<String, ExtractError> {
    let text = if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        decode_with(encoding_rs::UTF_8, rest)?
    } else if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        let encoding = if bytes[0] == 0xFF {
            encoding_rs::UTF_16LE
        } else {
            encoding_rs::UTF_16BE
        };
        decode_with(encoding, &bytes[2..])?
    } else {
        if bytes.contains(&0) {
            return Err(ExtractError::Binary(None));
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => text.to_string(),
            Err(_) => {
                let mut detector =
                    chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
                let sample = &bytes[..bytes.len().min(GUESS_BYTES)];
                detector.feed(sample, sample.len() == bytes.len());
                let encoding = detector.guess(None, chardetng::Utf8Detection::Allow);
                decode_with(encoding, bytes)?
            }
        }
    };
    if looks_binary(&text) {
        return Err(ExtractError::Binary(None));
    }
    Ok(text)
}

fn decode_with(
    encoding: &'static encoding_rs::Encoding,
    bytes: &[u8],
) -> Result<String, ExtractError> {
    let (text, had_errors) = encoding.decode_without_bom_handling(bytes);
    if had_errors {
        let total = text.chars().take(CONTROL_SAMPLE_CHARS).count().max(1);
        let bad = text
            .chars()
            .take(CONTROL_SAMPLE_CHARS)
            .filter(|&c| c == char::REPLACEMENT_CHARACTER)
            .count();
        // A few broken bytes are tolerated (a truncated file, one stray byte); more is not text.
        if bad * 50 > total {
            return Err(ExtractError::Binary(None));
        }
    }
    Ok(text.into_owned())
}

/// True when the text has NUL characters or more than 1% of control characters (tab, line breaks, form
/// feed and escape — colour codes in logs — do not count), in the first megabyte of characters.
fn looks_binary(text: &str) -> bool {
    let mut total = 0usize;
    let mut control = 0usize;
    for c in text.chars().take(CONTROL_SAMPLE_CHARS) {
        total += 1;
        if c == '\0' {
            return true;
        }
        if c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c' | '\x1b') {
            control += 1;
        }
    }
    control * 100 > total
}

/// Refuses text with a line longer than `limit` bytes (of its UTF-8 text).
pub(crate) fn check_line_lengths(text: &str, limit: usize) -> Result<(), ExtractError> {
    for (index, line) in text.split('\n').enumerate() {
        let bytes = line.strip_suffix('\r').unwrap_or(line).len();
        if bytes > limit {
            return Err(ExtractError::LineTooLong {
                line: index + 1,
                bytes,
                limit,
            });
        }
    }
    Ok(())
}

/// Plain text: one paragraph per run of non-blank lines; wrapped lines are joined with a space
/// (without one between two CJK characters).
pub(crate) fn extract_plain(text: &str) -> Extracted {
    let mut blocks = Vec::new();
    let mut paragraph = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            flush_paragraph(&mut paragraph, &mut blocks);
        } else {
            join_line(&mut paragraph, line);
        }
    }
    flush_paragraph(&mut paragraph, &mut blocks);
    Extracted {
        format: Format::Text,
        title: None,
        blocks,
    }
}

fn flush_paragraph(paragraph: &mut String, blocks: &mut Vec<Block>) {
    if !paragraph.is_empty() {
        blocks.push(Block::new(BlockKind::Paragraph, std::mem::take(paragraph)));
    }
}

/// Appends one (trimmed) line of a wrapped paragraph: separated by a space, except between two CJK
/// characters, where a line break is not a word break.
pub(crate) fn join_line(out: &mut String, line: &str) {
    if line.is_empty() {
        return;
    }
    if let (Some(last), Some(first)) = (out.chars().next_back(), line.chars().next()) {
        if !(is_cjk(last) && is_cjk(first)) {
            out.push(' ');
        }
    }
    out.push_str(line);
}

/// Appends `text` with runs of whitespace collapsed to one space (none between two CJK characters, and
/// none at the start of `out`). `pending_space` carries a whitespace run across calls.
pub(crate) fn push_collapsed(out: &mut String, text: &str, pending_space: &mut bool) {
    for c in text.chars() {
        if c.is_whitespace() {
            *pending_space = true;
            continue;
        }
        if *pending_space {
            if let Some(last) = out.chars().next_back() {
                let cjk_pair = is_cjk(last) && is_cjk(c);
                if !cjk_pair && !last.is_whitespace() {
                    out.push(' ');
                }
            }
            *pending_space = false;
        }
        out.push(c);
    }
}

/// Chinese and Japanese characters and CJK punctuation: scripts written without spaces between words.
/// (Hangul is not included: Korean separates words with spaces.)
pub(crate) fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x2E80..=0x2FDF      // radicals
        | 0x3000..=0x303F    // CJK symbols and punctuation
        | 0x3040..=0x30FF    // hiragana, katakana
        | 0x3100..=0x312F    // bopomofo
        | 0x31F0..=0x31FF    // katakana extensions
        | 0x3400..=0x4DBF    // extension A
        | 0x4E00..=0x9FFF    // unified ideographs
        | 0xF900..=0xFAFF    // compatibility ideographs
        | 0xFF00..=0xFF60    // full-width forms and punctuation
        | 0xFF61..=0xFF9F    // half-width katakana
        | 0x20000..=0x3134F  // extensions B–G
    )
}
