//! Structured text: CSV (the header row keys every row: `name: Alice; city: Lyon`) and JSON (flattened
//! to `path: value` lines; one paragraph per element of a top-level array or per top-level key of an
//! object).

use serde_json::Value;

use super::markdown::keyed_row;
use super::{Block, BlockKind, ExtractError, Extracted, Format};

/// How many records the CSV sniffing looks at.
const SNIFF_RECORDS: usize = 100;

fn delimiters(ext: Option<&str>) -> &'static [u8] {
    if ext == Some("tsv") {
        b"\t"
    } else {
        b",;\t"
    }
}

fn reader(text: &str, delimiter: u8) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes())
}

/// The delimiter under which the first records all have the same number (≥ 2) of fields.
fn consistent_delimiter(text: &str, ext: Option<&str>) -> Option<u8> {
    delimiters(ext).iter().copied().find(|&delimiter| {
        let mut columns = None;
        for record in reader(text, delimiter).records().take(SNIFF_RECORDS) {
            let Ok(record) = record else {
                return false;
            };
            if record.len() == 1 && record.get(0).is_some_and(|f| f.trim().is_empty()) {
                continue; // blank line
            }
            match columns {
                None if record.len() >= 2 => columns = Some(record.len()),
                Some(n) if n == record.len() => {}
                _ => return false,
            }
        }
        columns.is_some()
    })
}

/// Whether the text parses as CSV (or TSV) with at least two columns in every record sampled.
pub(crate) fn looks_like_csv(text: &str, ext: Option<&str>) -> bool {
    consistent_delimiter(text, ext).is_some()
}

pub(crate) fn extract_csv(text: &str, ext: Option<&str>) -> Result<Extracted, ExtractError> {
    let delimiter = consistent_delimiter(text, ext).unwrap_or(b',');
    let mut records = reader(text, delimiter).into_records();
    let header: Vec<String> = match records.next() {
        Some(Ok(record)) => record.iter().map(|f| f.trim().to_string()).collect(),
        Some(Err(err)) => return Err(csv_error(&err)),
        None => Vec::new(),
    };
    let mut blocks = Vec::new();
    for record in records {
        let record = record.map_err(|err| csv_error(&err))?;
        let cells: Vec<String> = record.iter().map(str::to_string).collect();
        let row = keyed_row(&header, &cells);
        if !row.is_empty() {
            blocks.push(Block::new(BlockKind::TableRow, row));
        }
    }
    if blocks.is_empty() && !header.is_empty() {
        // Only one row: it is data, not a header.
        blocks.push(Block::new(BlockKind::TableRow, keyed_row(&[], &header)));
    }
    Ok(Extracted {
        format: Format::Csv,
        title: None,
        blocks,
    })
}

fn csv_error(err: &csv::Error) -> ExtractError {
    let line = err.position().map(|p| p.line()).unwrap_or(0);
    ExtractError::Corrupt(format!("the CSV file cannot be read at line {line}"))
}

/// The error for invalid JSON, with the parser's line and column.
pub(crate) fn json_error(err: &serde_json::Error) -> ExtractError {
    ExtractError::Corrupt(format!(
        "the JSON is not valid at line {}, column {}",
        err.line(),
        err.column()
    ))
}

pub(crate) fn extract_json(text: &str) -> Result<Extracted, ExtractError> {
    // serde_json refuses nesting deeper than 128 levels, so the recursion below is bounded.
    let value: Value = serde_json::from_str(text).map_err(|err| json_error(&err))?;
    let mut blocks = Vec::new();
    match &value {
        Value::Array(items) => {
            for item in items {
                let mut lines = String::new();
                flatten("", item, &mut lines);
                push_paragraph(&mut blocks, lines);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let mut lines = String::new();
                flatten(key, item, &mut lines);
                push_paragraph(&mut blocks, lines);
            }
        }
        scalar => {
            let mut lines = String::new();
            flatten("", scalar, &mut lines);
            push_paragraph(&mut blocks, lines);
        }
    }
    Ok(Extracted {
        format: Format::Json,
        title: None,
        blocks,
    })
}

fn push_paragraph(blocks: &mut Vec<Block>, lines: String) {
    let text = lines.trim_end();
    if !text.trim().is_empty() {
        blocks.push(Block::new(BlockKind::Paragraph, text));
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => Some("null".to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// Appends `path: value` lines for `value`: objects extend the path with `.key`, arrays of scalars are
/// one line (`tags: a, b, c`), other arrays extend it with `[i]`.
fn flatten(path: &str, value: &Value, out: &mut String) {
    let mut line = |text: &str| {
        if path.is_empty() {
            out.push_str(text);
        } else {
            out.push_str(path);
            out.push_str(": ");
            out.push_str(text);
        }
        out.push('\n');
    };
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                flatten(&child, item, out);
            }
        }
        Value::Array(items) if items.iter().all(|i| scalar_text(i).is_some()) => {
            if !items.is_empty() {
                let joined: Vec<String> = items.iter().filter_map(scalar_text).collect();
                line(&joined.join(", "));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten(&format!("{path}[{i}]"), item, out);
            }
        }
        scalar => {
            if let Some(text) = scalar_text(scalar) {
                line(&text);
            }
        }
    }
}
