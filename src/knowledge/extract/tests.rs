//! Tests of sniffing and extraction against the fixtures in tests/fixtures/documents (see its
//! README.md) and against documents built in memory (zip bombs, huge lines, other encodings).

use std::io::Write;

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/documents/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
}

fn ok(bytes: &[u8], filename: &str) -> Extracted {
    extract(bytes, filename, &ExtractLimits::default())
        .unwrap_or_else(|err| panic!("{filename}: {} {err}", err.code()))
}

fn err(bytes: &[u8], filename: &str) -> ExtractError {
    match extract(bytes, filename, &ExtractLimits::default()) {
        Ok(e) => panic!("{filename}: expected an error, got {e:?}"),
        Err(err) => err,
    }
}

fn kinds_and_texts(e: &Extracted) -> Vec<(BlockKind, &str)> {
    e.blocks.iter().map(|b| (b.kind, b.text.as_str())).collect()
}

fn all_text(e: &Extracted) -> String {
    e.blocks
        .iter()
        .map(|b| b.text.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A zip with the given (name, content) entries, deflated.
fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1))
        .large_file(true);
    for (name, content) in entries {
        writer.start_file(*name, options).expect("start zip entry");
        writer.write_all(content).expect("write zip entry");
    }
    writer.finish().expect("finish zip").into_inner()
}

const DOCUMENT_XML: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>
<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Intro</w:t></w:r></w:p>
<w:p><w:r><w:t xml:space="preserve">A&amp;B </w:t></w:r><w:r><w:tab/><w:t>tabbed</w:t><w:br/><w:t>next line</w:t></w:r></w:p>
</w:body></w:document>"#;

// ---------------------------------------------------------------------------------------------
// Sniffing

#[test]
fn sniffs_by_content_not_name() {
    let limits = ExtractLimits::default();
    assert_eq!(
        sniff(&fixture("sample.pdf"), "notes.txt").ok(),
        Some(Format::Pdf)
    );
    assert_eq!(ok(&fixture("sample.pdf"), "notes.txt").format, Format::Pdf);
    assert_eq!(
        sniff(&fixture("sample.docx"), "upload.bin").ok(),
        Some(Format::Docx)
    );
    assert_eq!(
        sniff(&fixture("page.html"), "page.txt").ok(),
        Some(Format::Html)
    );
    assert_eq!(
        sniff(&fixture("guide.md"), "guide.md").ok(),
        Some(Format::Markdown)
    );
    // Markdown headings make Markdown whatever the name.
    assert_eq!(
        sniff(&fixture("guide.md"), "guide.txt").ok(),
        Some(Format::Markdown)
    );
    assert_eq!(
        sniff(&fixture("table.csv"), "table.csv").ok(),
        Some(Format::Csv)
    );
    // CSV needs its extension; without it, it is text.
    assert_eq!(
        sniff(&fixture("table.csv"), "table.txt").ok(),
        Some(Format::Text)
    );
    assert_eq!(
        sniff(&fixture("data.json"), "data.json").ok(),
        Some(Format::Json)
    );
    assert_eq!(
        sniff(&fixture("data.json"), "data.txt").ok(),
        Some(Format::Json)
    );
    assert_eq!(
        sniff(&fixture("gbk.txt"), "gbk.txt").ok(),
        Some(Format::Text)
    );
    assert_eq!(sniff(b"<p>hello</p>", "x.html").ok(), Some(Format::Html));
    assert_eq!(sniff(b"<p>hello</p>", "x.txt").ok(), Some(Format::Text));
    assert_eq!(
        sniff(b"<!-- c -->\n<!DOCTYPE html><p>x</p>", "x").ok(),
        Some(Format::Html)
    );
    // `[` that is not JSON stays text.
    assert_eq!(sniff(b"[draft] notes", "n.txt").ok(), Some(Format::Text));
    assert_eq!(
        extract(b"[draft] notes", "n.txt", &limits)
            .map(|e| e.format)
            .ok(),
        Some(Format::Text)
    );
}

#[test]
fn formats_have_names_and_mime_types() {
    assert_eq!(Format::Markdown.as_str(), "markdown");
    assert_eq!(Format::Docx.as_str(), "docx");
    assert_eq!(Format::Pdf.mime(), "application/pdf");
    assert_eq!(Format::Text.mime(), "text/plain");
    assert_eq!(Format::Json.mime(), "application/json");
}

#[test]
fn empty_and_whitespace_files_are_empty() {
    for bytes in [&b""[..], b"   \n\t\r\n", b"\xEF\xBB\xBF  \n"] {
        let e = err(bytes, "empty.txt");
        assert_eq!(e.code(), "empty_document", "{e}");
    }
    assert_eq!(err(b"", "empty.txt").to_string(), "the file is empty");
    assert_eq!(err(b"{}", "empty.json").code(), "empty_document");
    assert_eq!(
        err(b"<html><body> </body></html>", "e.html").code(),
        "empty_document"
    );
}

#[test]
fn binary_data_is_refused_whatever_its_name() {
    let e = err(&fixture("binary.txt"), "binary.txt");
    assert_eq!(e.code(), "binary_content");
    assert!(e.to_string().contains("ELF executable"), "{e}");

    let mut noise: Vec<u8> = (0u32..4000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    noise.retain(|&b| b != 0);
    assert_eq!(err(&noise, "noise.txt").code(), "binary_content");
    assert_eq!(err(b"text with a \0 NUL", "a.md").code(), "binary_content");
    let controls = "abc\x01\x02\x03\x04def".repeat(50);
    assert_eq!(err(controls.as_bytes(), "c.txt").code(), "binary_content");
}

#[test]
fn unsupported_formats_are_named() {
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01";
    let e = err(png, "picture.txt");
    assert_eq!(e.code(), "unsupported_format");
    assert!(e.to_string().contains("PNG image"), "{e}");

    let e = err(&fixture("legacy.doc"), "legacy.doc");
    assert_eq!(e.code(), "unsupported_format");
    assert!(e.to_string().contains("old Word document"), "{e}");

    let e = err(&zip_of(&[("notes.txt", b"hello")]), "archive.docx");
    assert_eq!(e.code(), "unsupported_format");
    assert!(e.to_string().contains("zip archive"), "{e}");

    let e = err(&zip_of(&[("xl/workbook.xml", b"<x/>")]), "book.docx");
    assert!(e.to_string().contains("Excel"), "{e}");

    assert_eq!(err(b"{\\rtf1 hello}", "a.txt").code(), "unsupported_format");
}

#[test]
fn error_codes_match_the_documentation() {
    let cases = [
        (ExtractError::Empty(String::new()), "empty_document"),
        (
            ExtractError::Unsupported(String::new()),
            "unsupported_format",
        ),
        (ExtractError::Binary(None), "binary_content"),
        (ExtractError::Corrupt(String::new()), "corrupt_document"),
        (ExtractError::Encrypted("PDF"), "encrypted_document"),
        (ExtractError::ArchiveBomb(String::new()), "archive_bomb"),
        (
            ExtractError::LineTooLong {
                line: 1,
                bytes: 2,
                limit: 1,
            },
            "line_too_long",
        ),
    ];
    for (error, code) in cases {
        assert_eq!(error.code(), code);
        assert!(!error.to_string().contains("{"), "{error}");
    }
}

// ---------------------------------------------------------------------------------------------
// Text and encodings

#[test]
fn gbk_chinese_text_is_decoded() {
    let e = ok(&fixture("gbk.txt"), "gbk.txt");
    assert_eq!(e.format, Format::Text);
    assert_eq!(
        kinds_and_texts(&e),
        vec![
            (BlockKind::Paragraph, "知识库使用说明"),
            (
                BlockKind::Paragraph,
                "知识库保存用户上传的文档。系统会提取文档中的文字，并把它切分成片段。"
            ),
            (
                BlockKind::Paragraph,
                "每个片段都会被嵌入模型编码，以便按含义检索。检索结果会给出文档、位置和页码。"
            ),
        ]
    );
}

#[test]
fn legacy_encodings_are_guessed() {
    let cases: [(&'static encoding_rs::Encoding, &str); 3] = [
        (
            encoding_rs::BIG5,
            "知識庫保存使用者上傳的文件。系統會擷取文件中的文字，並把它切分成片段。每個片段都會被編碼。",
        ),
        (
            encoding_rs::SHIFT_JIS,
            "ナレッジベースはアップロードされた文書を保存します。システムは文書から文字を抽出し、断片に分割します。",
        ),
        (
            encoding_rs::WINDOWS_1252,
            "Le café est très apprécié à Zürich; the naïve coöperation of façades — déjà vu.",
        ),
    ];
    for (encoding, text) in cases {
        let (bytes, _, _) = encoding.encode(text);
        let e = ok(&bytes, "legacy.txt");
        assert_eq!(all_text(&e), text, "{}", encoding.name());
    }
}

#[test]
fn utf8_bom_and_utf16_with_bom_are_decoded() {
    let text = "Grüße aus 北京\n\nzweiter Absatz";
    let mut utf8 = b"\xEF\xBB\xBF".to_vec();
    utf8.extend_from_slice(text.as_bytes());
    let mut le = vec![0xFF, 0xFE];
    le.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    let mut be = vec![0xFE, 0xFF];
    be.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
    for bytes in [utf8, le, be] {
        let e = ok(&bytes, "t.txt");
        assert_eq!(
            kinds_and_texts(&e),
            vec![
                (BlockKind::Paragraph, "Grüße aus 北京"),
                (BlockKind::Paragraph, "zweiter Absatz")
            ]
        );
    }
}

#[test]
fn plain_text_paragraphs_join_wrapped_lines() {
    let text = "First line\nwraps here.\r\n\r\n第一行\n第二行\n\n\nlast";
    let e = ok(text.as_bytes(), "t.txt");
    assert_eq!(e.title, None);
    assert_eq!(
        kinds_and_texts(&e),
        vec![
            (BlockKind::Paragraph, "First line wraps here."),
            (BlockKind::Paragraph, "第一行第二行"),
            (BlockKind::Paragraph, "last"),
        ]
    );
}

#[test]
fn a_ten_megabyte_line_is_too_long() {
    let line = vec![b'a'; 10 * 1024 * 1024];
    let e = err(&line, "huge.txt");
    assert_eq!(e.code(), "line_too_long");
    assert_eq!(
        e.to_string(),
        "line 1 is 10485760 bytes long; the limit is 1048576 — this does not look like a text document"
    );
    let mut text = b"short\nlines\n".to_vec();
    text.extend_from_slice(&line);
    match err(&text, "huge.md") {
        ExtractError::LineTooLong { line, bytes, limit } => {
            assert_eq!((line, bytes, limit), (3, 10 * 1024 * 1024, 1024 * 1024));
        }
        other => panic!("{other}"),
    }
    // A line just at the limit is fine.
    let limits = ExtractLimits {
        max_line_bytes: 10,
        ..ExtractLimits::default()
    };
    assert!(extract(b"0123456789\nabc", "ok.txt", &limits).is_ok());
    assert!(extract(b"0123456789a\nabc", "ok.txt", &limits).is_err());
}

#[test]
fn large_text_extracts_quickly() {
    let paragraph = "Enclave keeps every tenant's data in its own directory. 知识库保存文档。\n";
    let mut text = String::new();
    while text.len() < 5 * 1024 * 1024 {
        text.push_str(paragraph);
        text.push_str(paragraph);
        text.push('\n');
    }
    let started = std::time::Instant::now();
    let e = ok(text.as_bytes(), "big.txt");
    assert!(e.blocks.len() > 10_000);
    // Generous: debug builds are slow; release does 50 MB in well under a second or two.
    assert!(started.elapsed().as_secs() < 20);
}

/// Run with `cargo test --release -- --ignored fifty_megabytes` to time a 50 MB text file.
#[test]
#[ignore]
fn fifty_megabytes_of_text() {
    let line = "Enclave keeps every tenant's data in its own directory, 知识库保存文档。\n";
    let mut text = String::new();
    while text.len() < 50 * 1024 * 1024 {
        text.push_str(line);
        text.push_str(line);
        text.push('\n');
    }
    for name in ["big.txt", "big.md"] {
        let started = std::time::Instant::now();
        let e = ok(text.as_bytes(), name);
        let elapsed = started.elapsed();
        println!("{name}: {} blocks in {elapsed:?}", e.blocks.len());
        assert!(elapsed.as_secs() < 5);
    }
}

// ---------------------------------------------------------------------------------------------
// Markdown

#[test]
fn markdown_structure() {
    let e = ok(&fixture("guide.md"), "guide.md");
    assert_eq!(e.format, Format::Markdown);
    assert_eq!(e.title.as_deref(), Some("Enclave Guide"));
    assert_eq!(
        kinds_and_texts(&e),
        vec![
            (BlockKind::Heading(1), "Enclave Guide"),
            (
                BlockKind::Paragraph,
                "Enclave is a private AI platform that runs inside your network."
            ),
            (BlockKind::Heading(2), "Installation"),
            (BlockKind::Paragraph, "Copy the binary and start it:"),
            (
                BlockKind::Code,
                "enclave init --data /var/lib/enclave\nenclave serve"
            ),
            (BlockKind::Heading(2), "Requirements"),
            (BlockKind::ListItem, "A 64-bit x86 processor"),
            (BlockKind::ListItem, "8 GB of memory"),
            (BlockKind::ListItem, "A local disk"),
            (BlockKind::ListItem, "First numbered step"),
            (BlockKind::ListItem, "Second numbered step"),
            (BlockKind::Heading(3), "Limits"),
            (BlockKind::TableRow, "Limit: File size; Default: 50 MiB"),
            (BlockKind::TableRow, "Limit: Files per upload; Default: 100"),
            (BlockKind::Heading(2), "中文说明"),
            (
                BlockKind::Paragraph,
                "知识库保存用户上传的文档。系统会提取文档中的文字。"
            ),
        ]
    );
}

#[test]
fn markdown_inline_markup_and_edge_cases() {
    let md = "Intro with **bold**, `code` and a [link](https://example.com).\n\
              \n\
              ## Closed heading ##\n\
              \n\
              > quoted\n\
              > text\n\
              \n\
              ---\n\
              \n\
              - item\n  continued\n\
              #hashtag is not a heading\n";
    let e = ok(md.as_bytes(), "notes.md");
    assert_eq!(e.title, None);
    assert_eq!(
        kinds_and_texts(&e),
        vec![
            (BlockKind::Paragraph, "Intro with bold, code and a link."),
            (BlockKind::Heading(2), "Closed heading"),
            (BlockKind::Paragraph, "quoted text"),
            (
                BlockKind::ListItem,
                "item continued #hashtag is not a heading"
            ),
        ]
    );
    // Brackets without links stay linear and intact.
    let brackets = "[".repeat(100_000);
    let e = ok(brackets.as_bytes(), "b.md");
    assert_eq!(e.blocks[0].text.len(), 100_000);
}

// ---------------------------------------------------------------------------------------------
// HTML

#[test]
fn html_drops_chrome_and_keeps_structure() {
    let e = ok(&fixture("page.html"), "page.html");
    assert_eq!(e.format, Format::Html);
    assert_eq!(e.title.as_deref(), Some("Rotating API keys & secrets"));
    assert_eq!(
        kinds_and_texts(&e),
        vec![
            (BlockKind::Heading(1), "Rotating API keys"),
            (
                BlockKind::Paragraph,
                "An API key can be rotated without downtime: the old key keeps working for an overlap period."
            ),
            (BlockKind::Heading(2), "Steps"),
            (BlockKind::ListItem, "Open Settings → API keys."),
            (BlockKind::ListItem, "Choose Rotate and pick the overlap."),
            (BlockKind::Heading(2), "Overlap periods"),
            (BlockKind::TableRow, "Plan: Standard; Longest overlap: 7 days"),
            (BlockKind::TableRow, "Plan: Enterprise; Longest overlap: 30 days"),
            (BlockKind::Code, "enclave keys rotate --overlap 7d"),
            (BlockKind::Paragraph, "Café <tags> are decoded."),
        ]
    );
    let text = all_text(&e);
    for dropped in [
        "analytics",
        "Navigation",
        "Home",
        "Copyright",
        "JavaScript",
        "also dropped",
    ] {
        assert!(!text.contains(dropped), "{dropped} was not dropped");
    }
}

#[test]
fn html_title_falls_back_to_h1_and_deep_nesting_is_safe() {
    let e = ok(
        b"<html><body><h1>Main</h1><div>a<b>b</b>c</div></body></html>",
        "p.html",
    );
    assert_eq!(e.title.as_deref(), Some("Main"));
    assert_eq!(e.blocks[1].text, "abc");

    let deep = format!(
        "<html><body>{}deep{}</body></html>",
        "<div>".repeat(20_000),
        "</div>".repeat(20_000)
    );
    let e = ok(deep.as_bytes(), "deep.html");
    assert_eq!(all_text(&e), "deep");

    // A table without a header row: cells joined with "; ".
    let e = ok(
        b"<!doctype html><table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td></td></tr></table>",
        "t.html",
    );
    assert_eq!(
        kinds_and_texts(&e),
        vec![(BlockKind::TableRow, "a; b"), (BlockKind::TableRow, "c")]
    );
}

// ---------------------------------------------------------------------------------------------
// PDF

#[test]
fn pdf_pages_title_and_paragraphs() {
    let e = ok(&fixture("sample.pdf"), "sample.pdf");
    assert_eq!(e.format, Format::Pdf);
    assert_eq!(e.title.as_deref(), Some("Enclave Sample Manual"));
    assert!(e.blocks.iter().all(|b| matches!(b.page, Some(1 | 2))));
    let page = |n: u32| {
        e.blocks
            .iter()
            .filter(|b| b.page == Some(n))
            .map(|b| b.text.as_str())
            .collect::<Vec<_>>()
    };
    let one = page(1);
    assert!(one.contains(
        &"Enclave runs as one binary inside your network. Copy the binary to the server and create a data directory for it. The first start creates an administrator account and prints its one-time password."
    ), "{one:?}");
    assert!(one.contains(&"Installation"));
    assert!(!one.iter().any(|t| t.contains("Knowledge bases")));
    let two = page(2);
    assert_eq!(two[0], "Operation");
    assert!(two[1].starts_with("Knowledge bases hold documents"));
    let items: Vec<&str> = e
        .blocks
        .iter()
        .filter(|b| b.kind == BlockKind::ListItem)
        .map(|b| b.text.as_str())
        .collect();
    assert_eq!(items[0], "A 64-bit x86 processor with AVX2");
    assert_eq!(items[1], "At least 8 GB of memory");
}

#[test]
fn pdf_with_chinese_text_via_tounicode() {
    let e = ok(&fixture("chinese.pdf"), "chinese.pdf");
    assert_eq!(e.title.as_deref(), Some("知识库使用说明"));
    let texts: Vec<(Option<u32>, &str)> =
        e.blocks.iter().map(|b| (b.page, b.text.as_str())).collect();
    assert!(texts.contains(&(
        Some(1),
        "知识库保存用户上传的文档。系统会提取文档中的文字，并把它切分成片段。每个片段都会被嵌入模型编码，以便按含义检索。"
    )), "{texts:?}");
    assert!(
        texts.contains(&(
            Some(2),
            "检索可以按关键词进行，也可以按语义进行，或者两者结合。结果会给出文档、位置和页码。"
        )),
        "{texts:?}"
    );
}

#[test]
fn password_protected_pdf_is_encrypted() {
    let e = err(&fixture("encrypted.pdf"), "encrypted.pdf");
    assert_eq!(e.code(), "encrypted_document");
    assert_eq!(
        e.to_string(),
        "the PDF is password-protected; remove the password and upload it again"
    );
}

#[test]
fn pdf_with_only_an_owner_password_is_read() {
    // Restricted (printing, copying) but opens without a password: the text is readable.
    let e = ok(&fixture("restricted.pdf"), "restricted.pdf");
    assert!(all_text(&e).contains("Knowledge bases hold documents"));
}

#[test]
fn damaged_pdfs_are_corrupt() {
    let e = err(&fixture("truncated.pdf"), "truncated.pdf");
    assert_eq!(e.code(), "corrupt_document", "{e}");
    assert!(e.to_string().starts_with("the PDF is damaged"), "{e}");
    assert_eq!(
        err(b"%PDF-1.7\n garbage", "g.pdf").code(),
        "corrupt_document"
    );
}

#[test]
fn pdf_without_text_is_empty() {
    use lopdf::{dictionary, Object, Stream};
    let mut doc = lopdf::Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let content_id = doc.add_object(Stream::new(dictionary! {}, b"0 0 m 10 10 l S".to_vec()));
    let page_id = doc.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => pages_id,
        "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        "Contents" => content_id,
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => vec![page_id.into()],
            "Count" => 1,
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).expect("save PDF");

    let e = err(&bytes, "scan.pdf");
    assert_eq!(e.code(), "empty_document");
    assert!(e.to_string().contains("scanned"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// DOCX

#[test]
fn docx_styles_lists_and_tables() {
    let e = ok(&fixture("sample.docx"), "sample.docx");
    assert_eq!(e.format, Format::Docx);
    assert_eq!(e.title.as_deref(), Some("Enclave Sample Manual"));
    assert_eq!(
        kinds_and_texts(&e),
        vec![
            (BlockKind::Heading(1), "Enclave Sample Manual"),
            (BlockKind::Heading(1), "Installation"),
            (
                BlockKind::Paragraph,
                "Enclave runs as one binary inside your network. Copy the binary to the server and create a data directory for it."
            ),
            (
                BlockKind::Paragraph,
                "The first start creates an administrator account and prints its one-time password."
            ),
            (BlockKind::Heading(2), "Requirements"),
            (BlockKind::ListItem, "A 64-bit x86 processor with AVX2"),
            (BlockKind::ListItem, "At least 8 GB of memory"),
            (BlockKind::ListItem, "A local disk with 20 GB free"),
            (
                BlockKind::TableRow,
                "Setting: max_tokens; Default: 200; Meaning: Largest segment"
            ),
            (
                BlockKind::TableRow,
                "Setting: overlap_tokens; Default: 32; Meaning: Overlap between pieces"
            ),
            (BlockKind::Heading(1), "Operation"),
            (
                BlockKind::Paragraph,
                "Knowledge bases hold documents that people upload. Enclave extracts their text and cuts it into segments."
            ),
            (
                BlockKind::Paragraph,
                "Search finds segments by keywords, by meaning, or both."
            ),
        ]
    );
}

#[test]
fn docx_with_chinese_text() {
    let e = ok(&fixture("chinese.docx"), "chinese.docx");
    assert_eq!(e.title.as_deref(), Some("知识库使用说明"));
    let texts = kinds_and_texts(&e);
    assert!(texts.contains(&(BlockKind::Heading(2), "上传文件")));
    assert!(texts.contains(&(BlockKind::ListItem, "单个文件不超过五十兆字节")));
    assert!(texts.contains(&(BlockKind::TableRow, "设置: 最大词元数; 默认值: 200")));
}

#[test]
fn docx_runs_tabs_breaks_entities_and_title_fallback() {
    let docx = zip_of(&[("word/document.xml", DOCUMENT_XML.as_bytes())]);
    let e = ok(&docx, "minimal.docx");
    assert_eq!(e.title.as_deref(), Some("Intro"));
    assert_eq!(
        kinds_and_texts(&e),
        vec![
            (BlockKind::Heading(1), "Intro"),
            (BlockKind::Paragraph, "A&B \ttabbed\nnext line"),
        ]
    );
}

#[test]
fn encrypted_docx_is_encrypted() {
    let e = err(&fixture("encrypted.docx"), "encrypted.docx");
    assert_eq!(e.code(), "encrypted_document");
    assert!(e.to_string().contains("password-protected"), "{e}");
}

#[test]
fn broken_docx_is_corrupt() {
    let malformed = zip_of(&[(
        "word/document.xml",
        b"<w:document xmlns:w=\"x\"><w:body><w:p></w:body></w:document>",
    )]);
    let e = err(&malformed, "bad.docx");
    assert_eq!(e.code(), "corrupt_document", "{e}");

    let missing = zip_of(&[
        ("word/styles.xml", b"<w:styles/>"),
        ("[Content_Types].xml", b"<Types/>"),
    ]);
    let e = err(&missing, "missing.docx");
    assert_eq!(e.code(), "corrupt_document", "{e}");
    assert!(e.to_string().contains("word/document.xml"), "{e}");

    let mut truncated = fixture("sample.docx");
    truncated.truncate(truncated.len() / 2);
    assert_eq!(err(&truncated, "truncated.docx").code(), "corrupt_document");
}

#[test]
fn docx_zip_bomb_is_refused_before_inflating() {
    // 300 MB of zeros deflate (at the fast level used here) to about 3 MB.
    let zeros = vec![b'0'; 300 * 1024 * 1024];
    let bomb = zip_of(&[("word/document.xml", &zeros)]);
    drop(zeros);
    assert!(bomb.len() < 4 * 1024 * 1024, "{}", bomb.len());
    let e = err(&bomb, "bomb.docx");
    assert_eq!(e.code(), "archive_bomb", "{e}");
    assert!(e.to_string().contains("zip bomb"), "{e}");
}

#[test]
fn docx_compression_ratio_and_entry_count_limits() {
    let zeros = vec![b' '; 4 * 1024 * 1024];
    let mut xml = DOCUMENT_XML.as_bytes().to_vec();
    xml.extend_from_slice(&zeros);
    let dense = zip_of(&[("word/document.xml", &xml)]);
    let e = err(&dense, "dense.docx");
    assert_eq!(e.code(), "archive_bomb");
    assert!(e.to_string().contains("100 times"), "{e}");

    let names: Vec<String> = (0..20).map(|i| format!("word/media/{i}.bin")).collect();
    let mut entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
    entries.push(("word/document.xml", DOCUMENT_XML.as_bytes()));
    let many = zip_of(&entries);
    let limits = ExtractLimits {
        max_archive_entries: 10,
        ..ExtractLimits::default()
    };
    let e = extract(&many, "many.docx", &limits)
        .map(|_| ())
        .expect_err("too many entries");
    assert_eq!(e.code(), "archive_bomb");
    assert!(extract(&many, "many.docx", &ExtractLimits::default()).is_ok());
}

#[test]
fn docx_lying_about_its_sizes_is_stopped_while_inflating() {
    let mut xml = DOCUMENT_XML.as_bytes().to_vec();
    xml.extend(std::iter::repeat_n(b' ', 8 * 1024 * 1024));
    let mut docx = zip_of(&[("word/document.xml", &xml)]);
    // Declare 1000 bytes uncompressed in the local header and the central directory (large_file
    // wrote ZIP64 extra fields; patch the sizes there too).
    let small = 1000u64;
    let patch = |docx: &mut Vec<u8>, sig: &[u8], size_offset: usize| {
        let positions: Vec<usize> = docx
            .windows(4)
            .enumerate()
            .filter(|(_, w)| *w == sig)
            .map(|(i, _)| i)
            .collect();
        for p in positions {
            let at = p + size_offset;
            if docx[at..at + 4] == [0xFF; 4] {
                continue;
            }
            docx[at..at + 4].copy_from_slice(&(small as u32).to_le_bytes());
        }
    };
    patch(&mut docx, b"PK\x03\x04", 22);
    patch(&mut docx, b"PK\x01\x02", 24);
    // ZIP64 extra fields (header id 0x0001): the first 8 bytes of data are the uncompressed size.
    let needle = [0x01u8, 0x00];
    let mut i = 0;
    while i + 12 <= docx.len() {
        if docx[i..i + 2] == needle
            && (docx[i + 2] == 16 || docx[i + 2] == 24 || docx[i + 2] == 8)
            && docx[i + 3] == 0
        {
            let size = u64::from_le_bytes(docx[i + 4..i + 12].try_into().expect("8 bytes"));
            if size == xml.len() as u64 {
                docx[i + 4..i + 12].copy_from_slice(&small.to_le_bytes());
            }
        }
        i += 1;
    }
    let e = err(&docx, "liar.docx");
    assert_eq!(e.code(), "archive_bomb", "{e}");
    assert!(e.to_string().contains("declares"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// CSV and JSON

#[test]
fn csv_rows_are_keyed_by_the_header() {
    let e = ok(&fixture("table.csv"), "table.csv");
    assert_eq!(e.format, Format::Csv);
    assert_eq!(
        kinds_and_texts(&e),
        vec![
            (
                BlockKind::TableRow,
                "name: Alice Martin; role: administrator; city: Lyon"
            ),
            (
                BlockKind::TableRow,
                "name: Bob Chen; role: editor; city: Shanghai, China"
            ),
            (
                BlockKind::TableRow,
                "name: Carla Diaz; role: viewer; city: Madrid"
            ),
        ]
    );
    let e = ok(b"a;b\n1;2\n", "semi.csv");
    assert_eq!(
        kinds_and_texts(&e),
        vec![(BlockKind::TableRow, "a: 1; b: 2")]
    );
    let e = ok(b"a\tb\n1\t2\n", "tabs.tsv");
    assert_eq!(
        kinds_and_texts(&e),
        vec![(BlockKind::TableRow, "a: 1; b: 2")]
    );
    // One column is not a table: it is read as text.
    assert_eq!(ok(b"just\nwords\n", "one.csv").format, Format::Text);
}

#[test]
fn json_is_flattened() {
    let e = ok(&fixture("data.json"), "data.json");
    assert_eq!(e.format, Format::Json);
    let texts: Vec<&str> = e.blocks.iter().map(|b| b.text.as_str()).collect();
    assert!(texts.contains(&"product: Enclave"));
    assert!(texts.contains(&"version.major: 1\nversion.minor: 4"));
    assert!(texts.contains(&"limits.formats: text, pdf, docx\nlimits.max_file_bytes: 52428800"));
    assert!(texts.contains(&"enabled: true"));

    let e = ok(
        br#"[{"q": "How?", "a": {"text": "Like this", "tags": ["x", "y"]}}, {"q": "Why?", "items": [{"n": 1}]}]"#,
        "faq.json",
    );
    assert_eq!(
        kinds_and_texts(&e),
        vec![
            (
                BlockKind::Paragraph,
                "a.tags: x, y\na.text: Like this\nq: How?"
            ),
            (BlockKind::Paragraph, "items[0].n: 1\nq: Why?"),
        ]
    );
}

#[test]
fn invalid_json_named_json_is_corrupt_with_position() {
    let e = err(b"{\n  \"a\": 1,\n  \"b\" 2\n}", "bad.json");
    assert_eq!(e.code(), "corrupt_document");
    assert_eq!(e.to_string(), "the JSON is not valid at line 3, column 7");
    // Not named .json and not valid: plain text.
    assert_eq!(ok(b"{ not json", "x.txt").format, Format::Text);
}
