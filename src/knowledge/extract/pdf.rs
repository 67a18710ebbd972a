//! PDF with lopdf: the text layer page by page (1-based page numbers on every block), lines placed by
//! the text matrices and grouped into paragraphs by their spacing (lines starting with a bullet are
//! list items); the title from the Info dictionary. Password-protected files are refused; lopdf runs
//! under `catch_unwind` because hostile input can make it panic.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use lopdf::{Document, Object};

use super::text::{join_line, push_collapsed};
use super::{Block, BlockKind, ExtractError, Extracted, Format};

const ENCRYPTED: ExtractError = ExtractError::Encrypted("PDF");

pub(crate) fn extract(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    match catch_unwind(AssertUnwindSafe(|| extract_inner(bytes))) {
        Ok(result) => result,
        Err(_) => Err(ExtractError::Corrupt(
            "the PDF is damaged: its structure could not be read".to_string(),
        )),
    }
}

/// Whether the trailer names an encryption dictionary (looked up in the raw bytes, for files lopdf
/// cannot even load).
fn has_encrypt_entry(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(64 * 1024)..];
    tail.windows(8).any(|w| w == b"/Encrypt")
}

fn extract_inner(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let document = match Document::load_mem(bytes) {
        Ok(document) => document,
        Err(err) => {
            if has_encrypt_entry(bytes) || matches!(err, lopdf::Error::Decryption(_)) {
                return Err(ENCRYPTED);
            }
            return Err(ExtractError::Corrupt(format!(
                "the PDF is damaged and cannot be read ({err})"
            )));
        }
    };
    // lopdf opens files encrypted with an empty user password (only an owner password, restricting
    // printing or copying) by itself; anything it could not decrypt still has its /Encrypt entry.
    if document.is_encrypted() && !document.was_encrypted() {
        return Err(ENCRYPTED);
    }

    let pages = document.get_pages();
    if pages.is_empty() {
        return Err(ExtractError::Corrupt("the PDF has no pages".to_string()));
    }
    let mut blocks = Vec::new();
    for (&number, &page_id) in &pages {
        // A page whose content cannot be decoded contributes nothing; the others still count.
        let Ok(lines) = page_lines(&document, page_id) else {
            continue;
        };
        for (kind, text) in paragraphs(&lines) {
            blocks.push(Block {
                kind,
                text,
                page: Some(number),
            });
        }
    }
    if blocks.iter().all(|b| b.text.trim().is_empty()) {
        return Err(ExtractError::Empty(
            "the PDF has no text layer (it may be a scanned document: run it through OCR first)"
                .to_string(),
        ));
    }
    Ok(Extracted {
        format: Format::Pdf,
        title: info_title(&document),
        blocks,
    })
}

/// An affine matrix `[a b c d e f]` as in PDF.
type Matrix = [f32; 6];

const IDENTITY: Matrix = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];

/// `m × n` (apply `m`, then `n`).
fn multiply(m: &Matrix, n: &Matrix) -> Matrix {
    [
        m[0] * n[0] + m[1] * n[2],
        m[0] * n[1] + m[1] * n[3],
        m[2] * n[0] + m[3] * n[2],
        m[2] * n[1] + m[3] * n[3],
        m[4] * n[0] + m[5] * n[2] + n[4],
        m[4] * n[1] + m[5] * n[3] + n[5],
    ]
}

fn numbers<const N: usize>(operands: &[Object]) -> Option<[f32; N]> {
    let mut out = [0.0; N];
    for (slot, operand) in out.iter_mut().zip(operands) {
        *slot = operand.as_float().ok()?;
    }
    (operands.len() >= N && out.iter().all(|v| v.is_finite())).then_some(out)
}

/// One line of text on a page, with its baseline and font height in user space.
#[derive(Debug)]
struct Line {
    text: String,
    y: f32,
    size: f32,
}

/// Most nested `q` a page may have; deeper saves are ignored.
const MAX_GRAPHICS_STACK: usize = 256;

/// The text of one page as lines, from its content stream: text-showing operators decoded with their
/// font's encoding (ToUnicode maps included), placed by the text and transformation matrices.
fn page_lines(document: &Document, page_id: lopdf::ObjectId) -> lopdf::Result<Vec<Line>> {
    let fonts = document.get_page_fonts(page_id)?;
    let encodings: BTreeMap<Vec<u8>, lopdf::Encoding<'_>> = fonts
        .into_iter()
        .filter_map(|(name, font)| font.get_font_encoding(document).ok().map(|e| (name, e)))
        .collect();
    let content = document.get_and_decode_page_content(page_id)?;

    let mut lines: Vec<Line> = Vec::new();
    let mut ctm = IDENTITY;
    let mut saved: Vec<Matrix> = Vec::new();
    let mut tm = IDENTITY;
    let mut tlm = IDENTITY;
    let mut font_size = 0.0f32;
    let mut leading = 0.0f32;
    let mut encoding: Option<&lopdf::Encoding<'_>> = None;
    let mut pending_space = false;
    // Text placed anew (BT, Td, Tm, …) on the same line is a separate word or cell.
    let mut moved = false;

    for op in &content.operations {
        let operands = op.operands.as_slice();
        let mut shown: Vec<&Object> = Vec::new();
        match op.operator.as_str() {
            "q" if saved.len() < MAX_GRAPHICS_STACK => saved.push(ctm),
            "Q" => ctm = saved.pop().unwrap_or(IDENTITY),
            "cm" => {
                if let Some(m) = numbers::<6>(operands) {
                    ctm = multiply(&m, &ctm);
                }
            }
            "BT" => {
                tm = IDENTITY;
                tlm = IDENTITY;
                moved = true;
            }
            "Tm" => {
                if let Some(m) = numbers::<6>(operands) {
                    tm = m;
                    tlm = m;
                    moved = true;
                }
            }
            "Td" | "TD" => {
                if let Some([tx, ty]) = numbers::<2>(operands) {
                    if op.operator == "TD" {
                        leading = -ty;
                    }
                    tlm = multiply(&[1.0, 0.0, 0.0, 1.0, tx, ty], &tlm);
                    tm = tlm;
                    moved = true;
                }
            }
            "T*" => {
                tlm = multiply(&[1.0, 0.0, 0.0, 1.0, 0.0, -leading], &tlm);
                tm = tlm;
            }
            "TL" => {
                if let Some([l]) = numbers::<1>(operands) {
                    leading = l;
                }
            }
            "Tf" => {
                encoding = operands
                    .first()
                    .and_then(|o| o.as_name().ok())
                    .and_then(|name| encodings.get(name));
                if let Some(size) = operands.get(1).and_then(|o| o.as_float().ok()) {
                    font_size = size;
                }
            }
            "Tj" => shown.extend(operands.first()),
            "TJ" => shown.extend(operands.first()),
            "'" => {
                tlm = multiply(&[1.0, 0.0, 0.0, 1.0, 0.0, -leading], &tlm);
                tm = tlm;
                shown.extend(operands.first());
            }
            "\"" => {
                tlm = multiply(&[1.0, 0.0, 0.0, 1.0, 0.0, -leading], &tlm);
                tm = tlm;
                shown.extend(operands.get(2));
            }
            _ => {}
        }
        if shown.is_empty() {
            continue;
        }
        let Some(encoding) = encoding else {
            continue;
        };
        let mut text = String::new();
        for operand in shown {
            decode_shown(operand, encoding, &mut text);
        }
        let m = multiply(&tm, &ctm);
        let y = m[5];
        let size = (font_size * m[2].hypot(m[3])).abs().max(0.1);
        let same_line = lines
            .last()
            .is_some_and(|l| (l.y - y).abs() < 0.5 * l.size.max(size));
        match lines.last_mut() {
            Some(line) if same_line => {
                let mut space = pending_space || moved;
                push_collapsed(&mut line.text, &text, &mut space);
                line.size = line.size.max(size);
            }
            _ => {
                let mut space = false;
                let mut line_text = String::new();
                push_collapsed(&mut line_text, &text, &mut space);
                lines.push(Line {
                    text: line_text,
                    y,
                    size,
                });
            }
        }
        // lopdf's rule: a TJ array ends a word.
        pending_space = op.operator == "TJ" || text.ends_with(char::is_whitespace);
        moved = false;
    }
    lines.retain(|l| !l.text.trim().is_empty());
    Ok(lines)
}

/// Decodes a string or a TJ array; a kerning adjustment beyond 100/1000 em is a word space.
fn decode_shown(operand: &Object, encoding: &lopdf::Encoding<'_>, out: &mut String) {
    match operand {
        Object::String(bytes, _) => {
            let _ = encoding.write_to_string(bytes, out);
        }
        Object::Array(items) => {
            for item in items {
                match item {
                    Object::Integer(i) if *i < -100 => out.push(' '),
                    Object::Real(r) if *r < -100.0 => out.push(' '),
                    other => decode_shown(other, encoding, out),
                }
            }
        }
        _ => {}
    }
}

/// Groups lines into paragraphs: a new paragraph starts when the font size changes, the text moves
/// up (a new column) or the gap to the previous line is clearly larger than the page's usual line
/// spacing.
fn paragraphs(lines: &[Line]) -> Vec<(BlockKind, String)> {
    let mut ratios: Vec<f32> = lines
        .windows(2)
        .filter(|w| (w[0].size - w[1].size).abs() <= 0.05 * w[1].size)
        .map(|w| (w[0].y - w[1].y) / w[1].size)
        .filter(|r| *r > 0.0)
        .collect();
    ratios.sort_by(f32::total_cmp);
    let threshold = if ratios.len() >= 4 {
        (ratios[ratios.len() / 4] * 1.25).clamp(1.3, 3.0)
    } else {
        1.45
    };

    let mut out = Vec::new();
    let mut current = String::new();
    let mut kind = BlockKind::Paragraph;
    let mut previous: Option<&Line> = None;
    for line in lines {
        let text = line.text.trim();
        let item = text.strip_prefix(BULLETS).map(str::trim_start);
        if let Some(prev) = previous {
            let gap = (prev.y - line.y) / line.size.max(prev.size);
            let size_changed = (prev.size - line.size).abs() > 0.05 * line.size;
            if size_changed || gap <= 0.0 || gap > threshold || item.is_some() {
                push_paragraph(kind, &mut current, &mut out);
                kind = BlockKind::Paragraph;
            }
        }
        if item.is_some() {
            kind = BlockKind::ListItem;
        }
        join_line(&mut current, item.unwrap_or(text));
        previous = Some(line);
    }
    push_paragraph(kind, &mut current, &mut out);
    out
}

/// Bullet glyphs that start a list item.
const BULLETS: &[char] = &['•', '◦', '▪', '‣', '●', '○', '■', '□', '–', '·', '\u{f0b7}'];

fn push_paragraph(kind: BlockKind, current: &mut String, out: &mut Vec<(BlockKind, String)>) {
    let text = std::mem::take(current);
    if !text.trim().is_empty() {
        out.push((kind, text.trim().to_string()));
    }
}

fn info_title(document: &Document) -> Option<String> {
    let info = match document.trailer.get(b"Info").ok()? {
        Object::Reference(id) => document.get_dictionary(*id).ok()?,
        Object::Dictionary(dict) => dict,
        _ => return None,
    };
    let title = info.get(b"Title").ok()?;
    let title = lopdf::decode_text_string(title).ok()?;
    let title = title.trim().trim_matches('\0').trim();
    (!title.is_empty()).then(|| title.to_string())
}
