//! Markdown, line by line in one pass: ATX and setext headings, list items, fenced code, pipe tables
//! (one row per block, keyed by the header row) and paragraphs, with inline markup (emphasis, code
//! spans, links and images) reduced to its text.

use super::text::join_line;
use super::{Block, BlockKind, Extracted, Format};

/// The level and text of an ATX heading line (`## Title ##`).
pub(crate) fn atx_heading(line: &str) -> Option<(u8, &str)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let hashes = rest.len() - rest.trim_start_matches('#').len();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    let after = &rest[hashes..];
    if !after.is_empty() && !after.starts_with([' ', '\t']) {
        return None;
    }
    let mut text = after.trim();
    // A closing sequence of #'s preceded by a space is not part of the heading.
    let without = text.trim_end_matches('#');
    if without.is_empty() || without.ends_with([' ', '\t']) {
        text = without.trim_end();
    }
    if text.is_empty() {
        return None;
    }
    Some((hashes as u8, text))
}

/// `===` (level 1) or `---` (level 2) under a paragraph.
fn setext_underline(line: &str) -> Option<u8> {
    let t = line.trim();
    if line.len() - line.trim_start().len() > 3 || t.is_empty() {
        return None;
    }
    if t.bytes().all(|b| b == b'=') {
        Some(1)
    } else if t.bytes().all(|b| b == b'-') {
        Some(2)
    } else {
        None
    }
}

/// `---`, `***`, `___` (with optional spaces).
fn is_thematic_break(line: &str) -> bool {
    let t: Vec<u8> = line.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    t.len() >= 3 && matches!(t[0], b'-' | b'*' | b'_') && t.iter().all(|&b| b == t[0])
}

/// The text of a list item line (`- x`, `* x`, `+ x`, `1. x`, `1) x`).
fn list_item(line: &str) -> Option<&str> {
    let rest = line.trim_start();
    let marker_len = if rest.starts_with(['-', '*', '+']) {
        1
    } else {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 || digits > 9 || !rest[digits..].starts_with(['.', ')']) {
            return None;
        }
        digits + 1
    };
    let after = &rest[marker_len..];
    if after.is_empty() {
        return Some("");
    }
    if !after.starts_with([' ', '\t']) {
        return None;
    }
    Some(after.trim())
}

/// An opening code fence: the fence character and its length.
fn fence(line: &str) -> Option<(char, usize)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let c = rest.chars().next()?;
    if c != '`' && c != '~' {
        return None;
    }
    let n = rest.len() - rest.trim_start_matches(c).len();
    if n < 3 || (c == '`' && rest[n..].contains('`')) {
        return None;
    }
    Some((c, n))
}

fn is_closing_fence(line: &str, c: char, n: usize) -> bool {
    let t = line.trim();
    t.len() >= n && t.chars().all(|x| x == c)
}

/// The cells of a pipe-table row (outer pipes optional, `\|` is a literal pipe).
fn table_cells(line: &str) -> Vec<String> {
    let t = line.trim();
    let t = t.strip_prefix('|').unwrap_or(t);
    let t = if t.ends_with('|') && !t.ends_with("\\|") {
        &t[..t.len() - 1]
    } else {
        t
    };
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cell.push('|');
                chars.next();
            }
            '|' => cells.push(inline_text(cell.trim())),
            _ => cell.push(c),
        }
        if c == '|' {
            cell.clear();
        }
    }
    cells.push(inline_text(cell.trim()));
    cells
}

/// The number of columns of a delimiter row under a table header (`| --- | :---: |`), if it is one.
fn table_delimiter_columns(line: &str) -> Option<usize> {
    let t = line.trim();
    let t = t.strip_prefix('|').unwrap_or(t);
    let t = t.strip_suffix('|').unwrap_or(t);
    let mut columns = 0;
    for cell in t.split('|') {
        let c = cell.trim();
        let c = c.strip_prefix(':').unwrap_or(c);
        let c = c.strip_suffix(':').unwrap_or(c);
        if c.is_empty() || !c.bytes().all(|b| b == b'-') {
            return None;
        }
        columns += 1;
    }
    Some(columns)
}

/// A table row as `header: value; header2: value2` (cells without a header or value are left out or
/// given as bare values).
pub(crate) fn keyed_row(headers: &[String], cells: &[String]) -> String {
    let mut out = String::new();
    for (i, value) in cells.iter().enumerate() {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push_str("; ");
        }
        match headers.get(i).map(|h| h.trim()).filter(|h| !h.is_empty()) {
            Some(header) => {
                out.push_str(header);
                out.push_str(": ");
                out.push_str(value);
            }
            None => out.push_str(value),
        }
    }
    out
}

const MAX_LINK_LABEL: usize = 512;
const MAX_LINK_TARGET: usize = 2048;

/// Inline markup reduced to text: `**b**`, `__b__`, `` `c` `` lose their markers; `[text](url)` and
/// `![alt](url)` become `text` / `alt`. Linear in the length of the line.
pub(crate) fn inline_text(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < line.len() {
        let rest = &line[i..];
        if rest.starts_with("**") || rest.starts_with("__") {
            i += 2;
            continue;
        }
        if rest.starts_with('`') {
            i += 1;
            continue;
        }
        if rest.starts_with("![") || rest.starts_with('[') {
            let open = if rest.starts_with('!') { 2 } else { 1 };
            // `[text](url)` with no nested brackets, within this line.
            // Searches are bounded so a line full of brackets stays linear.
            if let Some(close) = rest.as_bytes()[open..]
                .iter()
                .take(MAX_LINK_LABEL)
                .position(|&b| b == b']')
            {
                let label = &rest[open..open + close];
                let after = &rest[open + close + 1..];
                if !label.contains('[') && after.starts_with('(') {
                    if let Some(end) = after
                        .as_bytes()
                        .iter()
                        .take(MAX_LINK_TARGET)
                        .position(|&b| b == b')')
                    {
                        out.push_str(label);
                        i += open + close + 1 + end + 1;
                        continue;
                    }
                }
            }
        }
        if bytes[i] == b'\\' && i + 1 < bytes.len() && bytes[i + 1].is_ascii_punctuation() {
            i += 1;
        }
        let c = line[i..].chars().next().unwrap_or(' ');
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// What the paragraph being collected is.
#[derive(PartialEq)]
enum Open {
    None,
    Paragraph,
    ListItem,
}

struct Builder {
    blocks: Vec<Block>,
    current: String,
    open: Open,
    title: Option<String>,
}

impl Builder {
    fn flush(&mut self) {
        let text = std::mem::take(&mut self.current);
        let kind = match self.open {
            Open::ListItem => BlockKind::ListItem,
            _ => BlockKind::Paragraph,
        };
        self.open = Open::None;
        if !text.trim().is_empty() {
            self.blocks.push(Block::new(kind, text.trim()));
        }
    }

    fn heading(&mut self, level: u8, text: &str) {
        self.flush();
        let text = inline_text(text).trim().to_string();
        if text.is_empty() {
            return;
        }
        if level == 1 && self.title.is_none() {
            self.title = Some(text.clone());
        }
        self.blocks
            .push(Block::new(BlockKind::Heading(level), text));
    }
}

pub(crate) fn extract(text: &str) -> Extracted {
    let mut b = Builder {
        blocks: Vec::new(),
        current: String::new(),
        open: Open::None,
        title: None,
    };
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if line.trim().is_empty() {
            b.flush();
            continue;
        }
        if let Some((c, n)) = fence(line) {
            b.flush();
            let mut code: Vec<&str> = Vec::new();
            while i < lines.len() && !is_closing_fence(lines[i], c, n) {
                code.push(lines[i]);
                i += 1;
            }
            i += 1; // the closing fence (or the end)
            let code = code.join("\n");
            if !code.trim().is_empty() {
                b.blocks.push(Block::new(BlockKind::Code, code.trim_end()));
            }
            continue;
        }
        if let Some((level, heading)) = atx_heading(line) {
            b.heading(level, heading);
            continue;
        }
        if b.open == Open::Paragraph {
            if let Some(level) = setext_underline(line) {
                let heading = std::mem::take(&mut b.current);
                b.open = Open::None;
                b.heading(level, &heading);
                continue;
            }
        }
        if is_thematic_break(line) {
            b.flush();
            continue;
        }
        let headers = if line.contains('|') && i < lines.len() {
            table_delimiter_columns(lines[i])
                .map(|columns| (columns, table_cells(line)))
                .filter(|(columns, headers)| *columns == headers.len())
                .map(|(_, headers)| headers)
        } else {
            None
        };
        if let Some(headers) = headers {
            b.flush();
            i += 1;
            while i < lines.len() && lines[i].contains('|') && !lines[i].trim().is_empty() {
                let row = keyed_row(&headers, &table_cells(lines[i]));
                if !row.is_empty() {
                    b.blocks.push(Block::new(BlockKind::TableRow, row));
                }
                i += 1;
            }
            continue;
        }
        if let Some(item) = list_item(line) {
            b.flush();
            b.open = Open::ListItem;
            b.current = inline_text(item);
            continue;
        }
        let content = line.trim_start();
        let content = content
            .strip_prefix('>')
            .map(str::trim_start)
            .unwrap_or(content);
        if b.open == Open::None {
            b.open = Open::Paragraph;
        }
        join_line(&mut b.current, inline_text(content.trim_end()).trim());
    }
    b.flush();
    Extracted {
        format: Format::Markdown,
        title: b.title,
        blocks: b.blocks,
    }
}
