//! DOCX (Office Open XML) with zip + quick-xml. The archive is checked against the limits before
//! anything is inflated (entry count, each entry's declared size, their total, the ratio to the file's
//! size), and again while inflating, since declared sizes can lie. `word/document.xml` gives the
//! blocks: heading styles (via `word/styles.xml`: "heading N", "Title", outline levels), numbered or
//! bulleted paragraphs, tables (one block per row, keyed by a header row). The title comes from
//! `docProps/core.xml`, else the first Title/level-1 heading.

use std::collections::HashMap;
use std::io::{Cursor, Read};

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::markdown::keyed_row;
use super::{Block, BlockKind, ExtractError, ExtractLimits, Extracted, Format};

type Archive<'a> = zip::ZipArchive<Cursor<&'a [u8]>>;

pub(crate) fn extract(bytes: &[u8], limits: &ExtractLimits) -> Result<Extracted, ExtractError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|err| corrupt(format!("it cannot be opened as a zip archive ({err})")))?;
    let mut budget = check_archive(&mut archive, bytes.len() as u64, limits)?;

    let document = read_entry(&mut archive, "word/document.xml", &mut budget)?
        .ok_or_else(|| corrupt("it has no word/document.xml".to_string()))?;
    let styles = match read_entry(&mut archive, "word/styles.xml", &mut budget)? {
        Some(xml) => parse_styles(&xml).unwrap_or_default(),
        None => HashMap::new(),
    };
    let core_title = match read_entry(&mut archive, "docProps/core.xml", &mut budget)? {
        Some(xml) => core_title(&xml),
        None => None,
    };
    let (blocks, first_heading) = parse_document(&document, &styles)?;
    Ok(Extracted {
        format: Format::Docx,
        title: core_title.or(first_heading),
        blocks,
    })
}

fn corrupt(why: String) -> ExtractError {
    ExtractError::Corrupt(format!("the DOCX is damaged: {why}"))
}

/// What may still be inflated: the smaller of `max_unpacked_bytes` and `max_compression_ratio` times
/// the size of the file.
struct Budget {
    remaining: u64,
    limit: u64,
}

/// Checks the central directory against the limits before inflating anything.
fn check_archive(
    archive: &mut Archive<'_>,
    file_size: u64,
    limits: &ExtractLimits,
) -> Result<Budget, ExtractError> {
    if archive.len() > limits.max_archive_entries {
        return Err(ExtractError::ArchiveBomb(format!(
            "{} entries; the limit is {}",
            archive.len(),
            limits.max_archive_entries
        )));
    }
    let by_ratio = file_size.saturating_mul(limits.max_compression_ratio);
    let limit = limits.max_unpacked_bytes.min(by_ratio);
    let mut total: u64 = 0;
    for index in 0..archive.len() {
        let entry = archive
            .by_index_raw(index)
            .map_err(|err| corrupt(format!("entry {index} cannot be read ({err})")))?;
        let size = entry.size();
        if size > limits.max_unpacked_bytes {
            return Err(ExtractError::ArchiveBomb(format!(
                "one part is {size} bytes uncompressed; the limit is {}",
                limits.max_unpacked_bytes
            )));
        }
        total = total.saturating_add(size);
    }
    if total > limits.max_unpacked_bytes {
        return Err(ExtractError::ArchiveBomb(format!(
            "{total} bytes uncompressed; the limit is {}",
            limits.max_unpacked_bytes
        )));
    }
    if total > by_ratio {
        return Err(ExtractError::ArchiveBomb(format!(
            "{total} bytes uncompressed from {file_size}, more than {} times its size",
            limits.max_compression_ratio
        )));
    }
    Ok(Budget {
        remaining: limit,
        limit,
    })
}

/// Inflates one entry, never more than the budget allows (whatever its header claims).
fn read_entry(
    archive: &mut Archive<'_>,
    name: &str,
    budget: &mut Budget,
) -> Result<Option<Vec<u8>>, ExtractError> {
    let Some(index) = archive.index_for_name(name) else {
        return Ok(None);
    };
    let entry = archive.by_index(index).map_err(|err| match err {
        zip::result::ZipError::UnsupportedArchive(what) if what.contains("ncrypt") => {
            ExtractError::Encrypted("DOCX")
        }
        err => corrupt(format!("{name} cannot be read ({err})")),
    })?;
    let declared = entry.size();
    let mut data = Vec::with_capacity(declared.min(budget.remaining) as usize);
    let result = entry
        .take(budget.remaining.saturating_add(1))
        .read_to_end(&mut data);
    if let Err(err) = result {
        // zip stops at the declared size itself; a part that tries to go beyond it is a bomb.
        if data.len() as u64 >= declared {
            return Err(ExtractError::ArchiveBomb(format!(
                "{name} inflates to more than the {declared} bytes it declares"
            )));
        }
        return Err(corrupt(format!("{name} cannot be inflated ({err})")));
    }
    let read = data.len() as u64;
    if read > budget.remaining {
        return Err(ExtractError::ArchiveBomb(format!(
            "{name} inflates to more than {} bytes",
            budget.limit
        )));
    }
    budget.remaining -= read;
    Ok(Some(data))
}

fn xml_error(part: &str, err: impl std::fmt::Display) -> ExtractError {
    corrupt(format!("{part} is not well-formed XML ({err})"))
}

fn attr(e: &BytesStart<'_>, local: &[u8]) -> Option<String> {
    e.attributes().flatten().find_map(|a| {
        (a.key.local_name().as_ref() == local)
            .then(|| {
                a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .ok()
                    .map(|v| v.into_owned())
            })
            .flatten()
    })
}

/// How a paragraph style formats its paragraphs.
#[derive(Clone, Debug, Default)]
struct Style {
    heading: Option<u8>,
    list: bool,
}

/// Heading level from a style's name or id: "heading 2" / "Heading2" → 2, "Title" → 1.
fn heading_from_name(name: &str) -> Option<u8> {
    let lower = name.to_ascii_lowercase().replace(' ', "");
    if lower == "title" {
        return Some(1);
    }
    let level: u8 = lower.strip_prefix("heading")?.parse().ok()?;
    (1..=9).contains(&level).then_some(level.min(6))
}

/// Outline level 0..8 of `w:outlineLvl` → heading 1..6 (9 is body text).
fn heading_from_outline(value: &str) -> Option<u8> {
    let level: u8 = value.parse().ok()?;
    (level < 9).then_some((level + 1).min(6))
}

/// Paragraph styles by id, with `basedOn` inheritance resolved.
fn parse_styles(xml: &[u8]) -> Result<HashMap<String, Style>, ExtractError> {
    struct Raw {
        name: Option<String>,
        outline: Option<u8>,
        list: bool,
        based_on: Option<String>,
    }
    let mut raw: HashMap<String, Raw> = HashMap::new();
    let mut reader = Reader::from_reader(xml);
    let mut current: Option<(String, Raw)> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|err| xml_error("word/styles.xml", err))?;
        match event {
            Event::Start(e) | Event::Empty(e) => match e.local_name().as_ref() {
                b"style" => {
                    let paragraph = attr(&e, b"type").is_none_or(|t| t == "paragraph");
                    current = match (attr(&e, b"styleId"), paragraph) {
                        (Some(id), true) => Some((
                            id,
                            Raw {
                                name: None,
                                outline: None,
                                list: false,
                                based_on: None,
                            },
                        )),
                        _ => None,
                    };
                }
                b"name" => {
                    if let Some((_, r)) = &mut current {
                        r.name = attr(&e, b"val");
                    }
                }
                b"basedOn" => {
                    if let Some((_, r)) = &mut current {
                        r.based_on = attr(&e, b"val");
                    }
                }
                b"outlineLvl" => {
                    if let Some((_, r)) = &mut current {
                        r.outline = attr(&e, b"val").and_then(|v| heading_from_outline(&v));
                    }
                }
                b"numId" => {
                    if let Some((_, r)) = &mut current {
                        r.list = attr(&e, b"val").is_some_and(|v| v != "0");
                    }
                }
                _ => {}
            },
            Event::End(e) if e.local_name().as_ref() == b"style" => {
                if let Some((id, r)) = current.take() {
                    raw.insert(id, r);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let own = |id: &str, r: &Raw| Style {
        heading: r
            .name
            .as_deref()
            .and_then(heading_from_name)
            .or_else(|| heading_from_name(id))
            .or(r.outline),
        list: r.list,
    };
    let mut styles = HashMap::new();
    for (id, r) in &raw {
        let mut style = own(id, r);
        // Follow basedOn (bounded, in case of a cycle) for what the style does not say itself.
        let mut parent = r.based_on.clone();
        for _ in 0..16 {
            let Some(p) = parent.and_then(|p| raw.get_key_value(&p)) else {
                break;
            };
            let inherited = own(p.0, p.1);
            style.heading = style.heading.or(inherited.heading);
            style.list = style.list || inherited.list;
            parent = p.1.based_on.clone();
        }
        styles.insert(id.clone(), style);
    }
    Ok(styles)
}

/// `dc:title` of docProps/core.xml.
fn core_title(xml: &[u8]) -> Option<String> {
    let mut reader = Reader::from_reader(xml);
    let mut in_title = false;
    let mut title = String::new();
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) if e.local_name().as_ref() == b"title" => in_title = true,
            Event::End(e) if e.local_name().as_ref() == b"title" => break,
            Event::Text(t) if in_title => title.push_str(&t.decode().ok()?),
            Event::GeneralRef(r) if in_title => push_entity(&mut title, &r),
            Event::Eof => break,
            _ => {}
        }
    }
    let title = title.trim();
    (!title.is_empty()).then(|| title.to_string())
}

fn push_entity(out: &mut String, r: &quick_xml::events::BytesRef<'_>) {
    if let Ok(Some(c)) = r.resolve_char_ref() {
        out.push(c);
    } else if let Ok(name) = r.decode() {
        if let Some(s) = quick_xml::escape::resolve_predefined_entity(&name) {
            out.push_str(s);
        }
    }
}

/// One `w:p` being read.
#[derive(Default)]
struct Paragraph {
    text: String,
    style: Option<String>,
    outline: Option<u8>,
    numbered: bool,
}

/// One `w:tbl` being read.
#[derive(Default)]
struct Table {
    rows: Vec<Vec<String>>,
    header_marked: bool,
    row: Vec<String>,
    cell: String,
}

fn parse_document(
    xml: &[u8],
    styles: &HashMap<String, Style>,
) -> Result<(Vec<Block>, Option<String>), ExtractError> {
    let part = "word/document.xml";
    let mut reader = Reader::from_reader(xml);
    let mut blocks = Vec::new();
    let mut first_heading: Option<String> = None;
    // Paragraphs nest (text boxes inside a run), tables nest (a table in a cell).
    let mut paragraphs: Vec<Paragraph> = Vec::new();
    let mut tables: Vec<Table> = Vec::new();
    let mut in_text = false;
    let mut in_ppr = 0usize;
    let mut in_rpr = 0usize;
    // Depth of subtrees skipped: the fallback of alternate content (a copy of the choice), deleted
    // text, field instructions.
    let mut skip = 0usize;
    let mut saw_body = false;

    loop {
        let event = reader.read_event().map_err(|err| xml_error(part, err))?;
        match event {
            Event::Start(e) => {
                let name = e.local_name();
                let name = name.as_ref();
                if skip > 0 {
                    skip += 1;
                    continue;
                }
                match name {
                    b"Fallback" | b"delText" | b"instrText" => skip = 1,
                    b"body" => saw_body = true,
                    b"p" => paragraphs.push(Paragraph::default()),
                    b"pPr" => in_ppr += 1,
                    b"rPr" => in_rpr += 1,
                    b"t" => in_text = true,
                    b"tbl" => tables.push(Table::default()),
                    b"tr" => {
                        if let Some(t) = tables.last_mut() {
                            t.row.clear();
                        }
                    }
                    b"tc" => {
                        if let Some(t) = tables.last_mut() {
                            t.cell.clear();
                        }
                    }
                    _ => paragraph_property(name, &e, in_ppr, in_rpr, &mut paragraphs),
                }
            }
            Event::Empty(e) => {
                if skip > 0 {
                    continue;
                }
                let name = e.local_name();
                let name = name.as_ref();
                match name {
                    b"tab" if in_ppr == 0 => push_text(&mut paragraphs, "\t"),
                    b"br" | b"cr" if in_ppr == 0 => push_text(&mut paragraphs, "\n"),
                    b"tblHeader" => {
                        let on = attr(&e, b"val").is_none_or(|v| v != "false" && v != "0");
                        if let Some(t) = tables.last_mut() {
                            if on && t.rows.is_empty() {
                                t.header_marked = true;
                            }
                        }
                    }
                    _ => paragraph_property(name, &e, in_ppr, in_rpr, &mut paragraphs),
                }
            }
            Event::Text(t) if in_text && skip == 0 => {
                let text = t.decode().map_err(|err| xml_error(part, err))?;
                push_text(&mut paragraphs, &text);
            }
            Event::CData(t) if in_text && skip == 0 => {
                let text = t.decode().map_err(|err| xml_error(part, err))?;
                push_text(&mut paragraphs, &text);
            }
            Event::GeneralRef(r) if in_text && skip == 0 => {
                if let Some(p) = paragraphs.last_mut() {
                    push_entity(&mut p.text, &r);
                }
            }
            Event::End(e) => {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                match e.local_name().as_ref() {
                    b"t" => in_text = false,
                    b"pPr" => in_ppr = in_ppr.saturating_sub(1),
                    b"rPr" => in_rpr = in_rpr.saturating_sub(1),
                    b"p" => {
                        let Some(p) = paragraphs.pop() else {
                            continue;
                        };
                        end_paragraph(p, styles, &mut tables, &mut blocks, &mut first_heading);
                    }
                    b"tc" => {
                        if let Some(t) = tables.last_mut() {
                            let cell = std::mem::take(&mut t.cell);
                            t.row.push(cell.trim().to_string());
                        }
                    }
                    b"tr" => {
                        if let Some(t) = tables.last_mut() {
                            let row = std::mem::take(&mut t.row);
                            if row.iter().any(|c| !c.is_empty()) {
                                t.rows.push(row);
                            }
                        }
                    }
                    b"tbl" => {
                        let Some(table) = tables.pop() else {
                            continue;
                        };
                        let rows = table_rows(table);
                        match tables.last_mut() {
                            // A table inside a cell: its rows become text of that cell.
                            Some(outer) => {
                                for row in rows {
                                    append_cell_text(&mut outer.cell, &row);
                                }
                            }
                            None => blocks.extend(
                                rows.into_iter()
                                    .map(|row| Block::new(BlockKind::TableRow, row)),
                            ),
                        }
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_body {
        return Err(corrupt(format!("{part} has no document body")));
    }
    Ok((blocks, first_heading))
}

/// Paragraph properties: style, outline level, numbering.
fn paragraph_property(
    name: &[u8],
    e: &BytesStart<'_>,
    in_ppr: usize,
    in_rpr: usize,
    paragraphs: &mut [Paragraph],
) {
    if in_ppr == 0 || in_rpr > 0 {
        return;
    }
    let Some(p) = paragraphs.last_mut() else {
        return;
    };
    match name {
        b"pStyle" => p.style = attr(e, b"val"),
        b"outlineLvl" => p.outline = attr(e, b"val").and_then(|v| heading_from_outline(&v)),
        // numId 0 means "no numbering".
        b"numId" => p.numbered = attr(e, b"val").is_some_and(|v| v != "0"),
        _ => {}
    }
}

fn push_text(paragraphs: &mut [Paragraph], text: &str) {
    if let Some(p) = paragraphs.last_mut() {
        p.text.push_str(text);
    }
}

fn append_cell_text(cell: &mut String, text: &str) {
    let text = text.trim();
    if text.is_empty() {
        return;
    }
    if !cell.is_empty() {
        cell.push(' ');
    }
    cell.push_str(text);
}

fn end_paragraph(
    p: Paragraph,
    styles: &HashMap<String, Style>,
    tables: &mut [Table],
    blocks: &mut Vec<Block>,
    first_heading: &mut Option<String>,
) {
    // Inside a table, paragraphs are the text of the current cell.
    if let Some(t) = tables.last_mut() {
        append_cell_text(&mut t.cell, &p.text);
        return;
    }
    let text = p.text.trim();
    if text.is_empty() {
        return;
    }
    let style = p.style.as_deref().and_then(|id| styles.get(id));
    let heading = p
        .style
        .as_deref()
        .and_then(|id| {
            style
                .and_then(|s| s.heading)
                .or_else(|| heading_from_name(id))
        })
        .or(p.outline);
    let kind = if let Some(level) = heading {
        BlockKind::Heading(level)
    } else if p.numbered || style.is_some_and(|s| s.list) {
        BlockKind::ListItem
    } else {
        BlockKind::Paragraph
    };
    if kind == BlockKind::Heading(1) && first_heading.is_none() {
        *first_heading = Some(text.to_string());
    }
    blocks.push(Block::new(kind, text));
}

/// A table's rows as block texts: keyed by the first row when it is a header (marked as one, or short
/// non-empty cells over at least two columns followed by more rows), else cells joined by `; `.
fn table_rows(table: Table) -> Vec<String> {
    let Table {
        rows,
        header_marked,
        ..
    } = table;
    let looks_like_header = |row: &[String]| {
        row.len() >= 2
            && row
                .iter()
                .all(|c| !c.is_empty() && c.chars().count() <= 60 && c.parse::<f64>().is_err())
    };
    let has_header =
        rows.len() >= 2 && (header_marked || rows.first().is_some_and(|r| looks_like_header(r)));
    if has_header {
        let header = &rows[0];
        rows[1..]
            .iter()
            .map(|row| keyed_row(header, row))
            .filter(|r| !r.is_empty())
            .collect()
    } else {
        rows.iter()
            .map(|row| keyed_row(&[], row))
            .filter(|r| !r.is_empty())
            .collect()
    }
}
