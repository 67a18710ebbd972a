//! Text extraction for knowledge-base documents: the format is sniffed from the content (never from
//! the file name alone), then each format's reader turns the file into a flat list of structural
//! [`Block`]s (headings, paragraphs, list items, table rows, code) that `knowledge::chunk` cuts into
//! segments. Failures are [`ExtractError`]s whose [`ExtractError::code`] is the per-document error code
//! of docs/knowledge.md and whose message is meant for the person who uploaded the file.

mod docx;
mod html;
mod markdown;
mod pdf;
mod sniff;
mod tabular;
pub(crate) mod text;

use std::fmt;

pub use sniff::sniff;

/// Limits that protect the server from hostile or absurd files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtractLimits {
    /// Total uncompressed size the parts of a DOCX may unpack to (default 200 MiB).
    pub max_unpacked_bytes: u64,
    /// Largest ratio of a DOCX's uncompressed size to its size as uploaded (default 100).
    pub max_compression_ratio: u64,
    /// Most entries a DOCX (zip) may hold (default 10,000).
    pub max_archive_entries: usize,
    /// Longest line of a text, Markdown or CSV file, in bytes of its UTF-8 text (default 1 MiB).
    pub max_line_bytes: usize,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        Self {
            max_unpacked_bytes: 200 * 1024 * 1024,
            max_compression_ratio: 100,
            max_archive_entries: 10_000,
            max_line_bytes: 1024 * 1024,
        }
    }
}

/// A supported document format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Text,
    Markdown,
    Html,
    Pdf,
    Docx,
    Csv,
    Json,
}

impl Format {
    /// The MIME type recorded for documents of this format.
    pub fn mime(self) -> &'static str {
        match self {
            Format::Text => "text/plain",
            Format::Markdown => "text/markdown",
            Format::Html => "text/html",
            Format::Pdf => "application/pdf",
            Format::Docx => {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            }
            Format::Csv => "text/csv",
            Format::Json => "application/json",
        }
    }

    /// Short lower-case name: `text`, `markdown`, `html`, `pdf`, `docx`, `csv`, `json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Markdown => "markdown",
            Format::Html => "html",
            Format::Pdf => "pdf",
            Format::Docx => "docx",
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text of a document, in reading order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extracted {
    pub format: Format,
    /// The document's own title (PDF/DOCX metadata, HTML `<title>`, first level-1 heading), if any.
    pub title: Option<String>,
    /// Never empty, and at least one block has non-whitespace text.
    pub blocks: Vec<Block>,
}

/// One structural unit of a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub kind: BlockKind,
    /// Trimmed text; for table rows `key: value; key2: value2` (or cells joined by `; ` when the
    /// table has no header row); for code the lines joined by `\n`.
    pub text: String,
    /// 1-based page number (PDF only).
    pub page: Option<u32>,
}

impl Block {
    pub(crate) fn new(kind: BlockKind, text: impl Into<String>) -> Self {
        Self {
            kind,
            text: text.into(),
            page: None,
        }
    }
}

/// What a [`Block`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// A heading of level 1..=6 (a document title counts as level 1).
    Heading(u8),
    Paragraph,
    ListItem,
    TableRow,
    Code,
}

/// Why a document could not be read. [`ExtractError::code`] gives the error code of docs/knowledge.md;
/// `Display` gives a message for the uploader.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// No text at all; the string says what was found (e.g. "the file is empty").
    #[error("{0}")]
    Empty(String),
    /// Not a supported format; the string names what the file looks like ("a PNG image").
    #[error(
        "this file looks like {0}, which is not a supported format; upload plain text, Markdown, HTML, PDF, DOCX, CSV or JSON"
    )]
    Unsupported(String),
    /// Binary data; the string names what it looks like when known ("an ELF executable").
    #[error("{}", binary_message(.0))]
    Binary(Option<String>),
    /// The file is damaged; the string says how, for the uploader.
    #[error("{0}")]
    Corrupt(String),
    /// Password-protected; the format says which kind of document.
    #[error("the {0} is password-protected; remove the password and upload it again")]
    Encrypted(&'static str),
    /// A DOCX that unpacks beyond the limits; the string says which limit.
    #[error("the DOCX unpacks to too much data ({0}); it is refused as a possible zip bomb")]
    ArchiveBomb(String),
    /// A line longer than [`ExtractLimits::max_line_bytes`] (1-based line number).
    #[error(
        "line {line} is {bytes} bytes long; the limit is {limit} — this does not look like a text document"
    )]
    LineTooLong {
        line: usize,
        bytes: usize,
        limit: usize,
    },
}

fn binary_message(what: &Option<String>) -> String {
    match what {
        Some(what) => format!(
            "the file contains binary data (it looks like {what}), not a text document, whatever its name says"
        ),
        None => "the file contains binary data, not text, whatever its name says".to_string(),
    }
}

impl ExtractError {
    /// The per-document error code of docs/knowledge.md.
    pub fn code(&self) -> &'static str {
        match self {
            ExtractError::Empty(_) => "empty_document",
            ExtractError::Unsupported(_) => "unsupported_format",
            ExtractError::Binary(_) => "binary_content",
            ExtractError::Corrupt(_) => "corrupt_document",
            ExtractError::Encrypted(_) => "encrypted_document",
            ExtractError::ArchiveBomb(_) => "archive_bomb",
            ExtractError::LineTooLong { .. } => "line_too_long",
        }
    }

    pub(crate) fn empty_file() -> Self {
        ExtractError::Empty("the file is empty".to_string())
    }

    pub(crate) fn no_text(format: Format) -> Self {
        let what = match format {
            Format::Pdf => "PDF",
            Format::Docx => "DOCX",
            Format::Html => "HTML page",
            Format::Json => "JSON file",
            Format::Csv => "CSV file",
            Format::Text | Format::Markdown => "file",
        };
        ExtractError::Empty(format!("the {what} contains no text"))
    }
}

/// Sniffs the format of `bytes` and extracts its text.
///
/// `filename` only breaks ties between text formats (`.md`, `.csv`, `.json`, `.html`); it never makes
/// binary data acceptable.
pub fn extract(
    bytes: &[u8],
    filename: &str,
    limits: &ExtractLimits,
) -> Result<Extracted, ExtractError> {
    let extracted = match sniff::detect(bytes, filename)? {
        sniff::Detected::Pdf => pdf::extract(bytes)?,
        sniff::Detected::Docx => docx::extract(bytes, limits)?,
        sniff::Detected::Text { format, text } => {
            if matches!(format, Format::Text | Format::Markdown | Format::Csv) {
                text::check_line_lengths(&text, limits.max_line_bytes)?;
            }
            match format {
                Format::Markdown => markdown::extract(&text),
                Format::Html => html::extract(&text),
                Format::Csv => tabular::extract_csv(&text, sniff::extension(filename).as_deref())?,
                Format::Json => tabular::extract_json(&text)?,
                _ => text::extract_plain(&text),
            }
        }
    };
    finish(extracted)
}

/// Drops blocks without text and refuses a document that has none.
fn finish(mut extracted: Extracted) -> Result<Extracted, ExtractError> {
    extracted.blocks.retain(|b| !b.text.trim().is_empty());
    if extracted.blocks.is_empty() {
        return Err(ExtractError::no_text(extracted.format));
    }
    if let Some(title) = &extracted.title {
        if title.trim().is_empty() {
            extracted.title = None;
        }
    }
    Ok(extracted)
}

#[cfg(test)]
mod tests;
