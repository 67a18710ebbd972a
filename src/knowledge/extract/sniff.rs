//! Format sniffing by content: magic numbers for PDF, zip (DOCX or other), OLE2 (old Office files and
//! encrypted OOXML), images, archives and executables; then text decoding and the choice between
//! HTML, JSON, CSV, Markdown and plain text, where the file name's extension only breaks ties.

use super::{tabular, text, ExtractError, Format};

/// What [`detect`] found; text formats carry the decoded text so it is decoded only once.
pub(crate) enum Detected {
    Pdf,
    Docx,
    Text { format: Format, text: String },
}

impl Detected {
    fn format(&self) -> Format {
        match self {
            Detected::Pdf => Format::Pdf,
            Detected::Docx => Format::Docx,
            Detected::Text { format, .. } => *format,
        }
    }
}

/// Sniffs the format of a document from its content; `filename` only breaks ties between text
/// formats. Refuses what cannot be extracted (empty, binary, unsupported, encrypted Office file).
pub fn sniff(bytes: &[u8], filename: &str) -> Result<Format, ExtractError> {
    detect(bytes, filename).map(|d| d.format())
}

/// The lower-case extension of `filename`, if any.
pub(crate) fn extension(filename: &str) -> Option<String> {
    let name = filename.rsplit(['/', '\\']).next().unwrap_or(filename);
    let (stem, ext) = name.rsplit_once('.')?;
    if stem.is_empty() || ext.is_empty() {
        return None;
    }
    Some(ext.to_ascii_lowercase())
}

pub(crate) fn detect(bytes: &[u8], filename: &str) -> Result<Detected, ExtractError> {
    if bytes.is_empty() {
        return Err(ExtractError::empty_file());
    }
    if is_pdf(bytes) {
        return Ok(Detected::Pdf);
    }
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return sniff_zip(bytes);
    }
    if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        return Err(sniff_ole2(bytes));
    }
    if let Some(err) = known_binary(bytes) {
        return Err(err);
    }
    let text = text::decode(bytes)?;
    if text.trim().is_empty() {
        return Err(ExtractError::Empty(
            "the file contains only whitespace".to_string(),
        ));
    }
    let format = classify_text(&text, extension(filename).as_deref())?;
    Ok(Detected::Text { format, text })
}

/// `%PDF-` at the start, or within the first KiB after some junk when the file also ends like a PDF.
fn is_pdf(bytes: &[u8]) -> bool {
    if bytes.starts_with(b"%PDF-") {
        return true;
    }
    let head = &bytes[..bytes.len().min(1024)];
    if find(head, b"%PDF-").is_none() {
        return false;
    }
    let tail = &bytes[bytes.len().saturating_sub(2048)..];
    find(tail, b"%%EOF").is_some() || find(tail, b"startxref").is_some()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn sniff_zip(bytes: &[u8]) -> Result<Detected, ExtractError> {
    let archive = match zip::ZipArchive::new(std::io::Cursor::new(bytes)) {
        Ok(archive) => archive,
        Err(err) => {
            // A DOCX whose central directory is damaged (e.g. truncated) still names its parts in the
            // local headers.
            if find(bytes, b"word/document.xml").is_some() {
                return Err(ExtractError::Corrupt(format!(
                    "the DOCX is damaged and cannot be opened ({err})"
                )));
            }
            return Err(ExtractError::Unsupported(
                "a damaged zip archive".to_string(),
            ));
        }
    };
    let has = |name: &str| archive.index_for_name(name).is_some();
    // A package with Word parts is a DOCX, even a broken one without word/document.xml.
    if has("word/document.xml") || archive.file_names_raw().any(|n| n.starts_with(b"word/")) {
        return Ok(Detected::Docx);
    }
    let what = if has("xl/workbook.xml") {
        "an Excel workbook (.xlsx)"
    } else if has("ppt/presentation.xml") {
        "a PowerPoint presentation (.pptx)"
    } else if has("content.xml") && has("mimetype") {
        "an OpenDocument file (.odt/.ods/.odp)"
    } else if has("META-INF/container.xml") {
        "an EPUB e-book"
    } else if has("[Content_Types].xml") {
        "an Office Open XML package that is not a Word document"
    } else {
        "a zip archive"
    };
    Err(ExtractError::Unsupported(what.to_string()))
}

/// An OLE2 compound file: an encrypted OOXML document (the directory holds `EncryptedPackage`) or an
/// old binary Office file.
fn sniff_ole2(bytes: &[u8]) -> ExtractError {
    if ole2_has_entry(bytes, "EncryptedPackage") {
        return ExtractError::Encrypted("Office document");
    }
    let what = if ole2_has_entry(bytes, "WordDocument") {
        "an old Word document (.doc — save it as .docx)"
    } else if ole2_has_entry(bytes, "Workbook") || ole2_has_entry(bytes, "Book") {
        "an old Excel workbook (.xls)"
    } else if ole2_has_entry(bytes, "PowerPoint Document") {
        "an old PowerPoint presentation (.ppt)"
    } else {
        "a Microsoft compound document (an old Office format)"
    };
    ExtractError::Unsupported(what.to_string())
}

/// Whether a directory entry called `name` exists. Directory entries are 128 bytes, start with their
/// NUL-terminated UTF-16LE name and lie in sectors after the 512-byte header, so they are always at
/// file offsets that are multiples of 128.
fn ole2_has_entry(bytes: &[u8], name: &str) -> bool {
    let mut pattern: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
    pattern.extend_from_slice(&[0, 0]);
    (512..bytes.len())
        .step_by(128)
        .any(|offset| bytes[offset..].starts_with(&pattern))
}

/// Well-known binary formats, named for the error message.
fn known_binary(bytes: &[u8]) -> Option<ExtractError> {
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    let at =
        |offset: usize, magic: &[u8]| bytes.get(offset..).is_some_and(|b| b.starts_with(magic));
    let has_nul = bytes[..bytes.len().min(512)].contains(&0);
    let binary = |what: &str| Some(ExtractError::Binary(Some(what.to_string())));
    let unsupported = |what: &str| Some(ExtractError::Unsupported(what.to_string()));

    if starts(b"\x7fELF") {
        return binary("an ELF executable (a Linux program)");
    }
    if starts(b"MZ") && has_nul {
        return binary("a Windows executable");
    }
    if [
        &[0xFE, 0xED, 0xFA, 0xCE][..],
        &[0xFE, 0xED, 0xFA, 0xCF],
        &[0xCE, 0xFA, 0xED, 0xFE],
        &[0xCF, 0xFA, 0xED, 0xFE],
    ]
    .iter()
    .any(|m| starts(m))
    {
        return binary("a macOS executable");
    }
    if starts(&[0xCA, 0xFE, 0xBA, 0xBE]) {
        return binary("a compiled program (Java class or macOS executable)");
    }
    if starts(b"\0asm") {
        return binary("a WebAssembly module");
    }
    if starts(b"SQLite format 3\0") {
        return unsupported("an SQLite database");
    }
    if starts(b"\x89PNG\r\n\x1a\n") {
        return unsupported("a PNG image");
    }
    if starts(&[0xFF, 0xD8, 0xFF]) {
        return unsupported("a JPEG image");
    }
    if starts(b"GIF87a") || starts(b"GIF89a") {
        return unsupported("a GIF image");
    }
    if starts(b"II*\0") || starts(b"MM\0*") {
        return unsupported("a TIFF image");
    }
    if starts(b"BM") && has_nul {
        return unsupported("a BMP image");
    }
    if starts(b"RIFF") {
        if at(8, b"WEBP") {
            return unsupported("a WebP image");
        }
        if at(8, b"WAVE") {
            return unsupported("a WAV audio file");
        }
        if at(8, b"AVI ") {
            return unsupported("an AVI video");
        }
    }
    if at(4, b"ftyp") {
        return unsupported("a video or image (MP4, MOV or HEIC)");
    }
    if starts(b"ID3") || starts(&[0xFF, 0xFB]) {
        return unsupported("an MP3 audio file");
    }
    if starts(b"OggS") {
        return unsupported("an Ogg audio or video file");
    }
    if starts(b"fLaC") {
        return unsupported("a FLAC audio file");
    }
    if starts(&[0x1A, 0x45, 0xDF, 0xA3]) {
        return unsupported("a Matroska or WebM video");
    }
    if starts(&[0x1F, 0x8B]) {
        return unsupported("a gzip archive");
    }
    if starts(b"BZh") && has_nul {
        return unsupported("a bzip2 archive");
    }
    if starts(&[0xFD, b'7', b'z', b'X', b'Z', 0]) {
        return unsupported("an xz archive");
    }
    if starts(&[0x28, 0xB5, 0x2F, 0xFD]) {
        return unsupported("a zstd archive");
    }
    if starts(&[b'7', b'z', 0xBC, 0xAF, 0x27, 0x1C]) {
        return unsupported("a 7-Zip archive");
    }
    if starts(b"Rar!\x1a\x07") {
        return unsupported("a RAR archive");
    }
    if at(257, b"ustar") {
        return unsupported("a tar archive");
    }
    if starts(b"wOFF") || starts(b"wOF2") || starts(b"OTTO") || starts(&[0, 1, 0, 0]) {
        return unsupported("a font file");
    }
    if starts(b"{\\rtf") {
        return unsupported("an RTF document");
    }
    if starts(b"%!PS") {
        return unsupported("a PostScript file");
    }
    None
}

/// Chooses among the text formats.
fn classify_text(text: &str, ext: Option<&str>) -> Result<Format, ExtractError> {
    if looks_like_html(text, ext) {
        return Ok(Format::Html);
    }
    let trimmed = text.trim_start();
    if ext == Some("json") {
        return match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => Ok(Format::Json),
            Err(err) => Err(tabular::json_error(&err)),
        };
    }
    if (trimmed.starts_with('{') || trimmed.starts_with('['))
        && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
    {
        return Ok(Format::Json);
    }
    if matches!(ext, Some("csv" | "tsv")) && tabular::looks_like_csv(text, ext) {
        return Ok(Format::Csv);
    }
    if matches!(ext, Some("md" | "markdown" | "mdown" | "mkd" | "mkdn")) || has_atx_heading(text) {
        return Ok(Format::Markdown);
    }
    Ok(Format::Text)
}

/// `<!doctype html` or `<html` first (after whitespace, an XML declaration and comments), or an
/// `.html`/`.htm` name and at least one tag.
fn looks_like_html(text: &str, ext: Option<&str>) -> bool {
    let mut rest = text.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
    loop {
        if let Some(after) = rest.strip_prefix("<!--") {
            match after.find("-->") {
                Some(end) => rest = after[end + 3..].trim_start(),
                None => return false,
            }
        } else if rest.starts_with("<?xml") {
            match rest.find("?>") {
                Some(end) => rest = rest[end + 2..].trim_start(),
                None => return false,
            }
        } else {
            break;
        }
    }
    let head: String = rest
        .chars()
        .take(14)
        .collect::<String>()
        .to_ascii_lowercase();
    if head.starts_with("<!doctype html") || head.starts_with("<html") {
        return true;
    }
    matches!(ext, Some("html" | "htm" | "xhtml")) && has_tag(text)
}

/// Whether the text has something like `<p>`, `<div class=…>` or `</p>`.
fn has_tag(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.windows(2).enumerate().any(|(i, w)| {
        w[0] == b'<'
            && (w[1].is_ascii_alphabetic() || w[1] == b'/')
            && bytes[i + 1..]
                .iter()
                .take(1024)
                .take_while(|&&b| b != b'<' && b != b'\n')
                .any(|&b| b == b'>')
    })
}

/// A line `# Title` … `###### Title` (up to three spaces of indentation).
fn has_atx_heading(text: &str) -> bool {
    text.lines()
        .any(|line| super::markdown::atx_heading(line).is_some())
}
