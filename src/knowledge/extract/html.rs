//! HTML with scraper (html5ever): page chrome and scripts are dropped (`script`, `style`, `nav`,
//! `header`, `footer`, `noscript`, …); headings, paragraphs, list items, table rows (keyed by a `<th>`
//! header row) and `<pre>` code become blocks. Entities are decoded by the parser; whitespace is
//! collapsed. The tree is walked iteratively, so deeply nested markup cannot overflow the stack.

use scraper::{Html, Node, Selector};

use super::markdown::keyed_row;
use super::text::push_collapsed;
use super::{Block, BlockKind, Extracted, Format};

/// Elements whose whole subtree is left out.
const DROPPED: &[&str] = &[
    "script", "style", "nav", "header", "footer", "noscript", "template", "head", "svg", "canvas",
    "iframe", "object", "select", "button", "aside", "form", "menu",
];

/// Elements that end the text before them and start a new block.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "li",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "pre",
    "blockquote",
    "section",
    "article",
    "main",
    "figure",
    "figcaption",
    "address",
    "hr",
    "table",
    "caption",
    "details",
    "summary",
    "body",
    "fieldset",
    "center",
];

fn heading_level(name: &str) -> Option<u8> {
    match name {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    }
}

#[derive(Default)]
struct Table {
    header: Option<Vec<String>>,
    rows: usize,
}

#[derive(Default)]
struct Walker {
    blocks: Vec<Block>,
    /// Text of the block being collected.
    buf: String,
    pending_space: bool,
    /// Kinds of the open block elements, innermost last.
    kinds: Vec<BlockKind>,
    /// Depth inside `<pre>`.
    pre: usize,
    tables: Vec<Table>,
    /// Cells of the row being collected (outermost table only).
    row: Option<(Vec<String>, bool)>,
    /// Depth inside a cell: text goes to the cell, block elements only separate words.
    cell_depth: usize,
    cell: String,
    cell_space: bool,
}

impl Walker {
    fn kind(&self) -> BlockKind {
        self.kinds.last().copied().unwrap_or(BlockKind::Paragraph)
    }

    fn flush(&mut self) {
        let text = std::mem::take(&mut self.buf);
        self.pending_space = false;
        let text = if self.kind() == BlockKind::Code {
            text.trim_matches('\n').trim_end().to_string()
        } else {
            text.trim().to_string()
        };
        if !text.is_empty() {
            self.blocks.push(Block::new(self.kind(), text));
        }
    }

    fn text(&mut self, text: &str) {
        if self.cell_depth > 0 {
            push_collapsed(&mut self.cell, text, &mut self.cell_space);
        } else if self.pre > 0 {
            self.buf.push_str(text);
        } else {
            push_collapsed(&mut self.buf, text, &mut self.pending_space);
        }
    }

    fn open(&mut self, name: &str) {
        if self.cell_depth > 0 {
            if name == "td" || name == "th" {
                self.cell_depth += 1;
            }
            self.cell_space = true;
            return;
        }
        match name {
            "br" => {
                if self.pre > 0 {
                    self.buf.push('\n');
                } else {
                    self.pending_space = true;
                }
                return;
            }
            "table" => {
                self.flush();
                self.tables.push(Table::default());
                return;
            }
            "tr" if !self.tables.is_empty() => {
                self.flush();
                self.row = Some((Vec::new(), true));
                return;
            }
            "td" | "th" if self.row.is_some() => {
                if name == "td" {
                    if let Some((_, all_th)) = &mut self.row {
                        *all_th = false;
                    }
                }
                self.cell_depth = 1;
                self.cell.clear();
                self.cell_space = false;
                return;
            }
            _ => {}
        }
        if !BLOCKS.contains(&name) {
            return;
        }
        self.flush();
        let kind = if let Some(level) = heading_level(name) {
            BlockKind::Heading(level)
        } else {
            match name {
                "li" | "dd" | "dt" => BlockKind::ListItem,
                "pre" => BlockKind::Code,
                // Paragraphs inside a list item stay part of the item.
                _ if self.kind() == BlockKind::ListItem && name != "ul" && name != "ol" => {
                    BlockKind::ListItem
                }
                _ => BlockKind::Paragraph,
            }
        };
        if name == "pre" {
            self.pre += 1;
        }
        self.kinds.push(kind);
    }

    fn close(&mut self, name: &str) {
        if self.cell_depth > 0 {
            if name == "td" || name == "th" {
                self.cell_depth -= 1;
                if self.cell_depth == 0 {
                    let cell = std::mem::take(&mut self.cell);
                    if let Some((cells, _)) = &mut self.row {
                        cells.push(cell.trim().to_string());
                    }
                }
            } else {
                self.cell_space = true;
            }
            return;
        }
        match name {
            "table" => {
                self.flush();
                self.tables.pop();
                return;
            }
            "tr" if self.row.is_some() => {
                self.finish_row();
                return;
            }
            _ => {}
        }
        if !BLOCKS.contains(&name) {
            return;
        }
        self.flush();
        if name == "pre" {
            self.pre = self.pre.saturating_sub(1);
        }
        self.kinds.pop();
    }

    fn finish_row(&mut self) {
        let Some((cells, all_th)) = self.row.take() else {
            return;
        };
        if cells.iter().all(|c| c.is_empty()) {
            return;
        }
        let Some(table) = self.tables.last_mut() else {
            return;
        };
        if all_th && table.header.is_none() && table.rows == 0 {
            table.header = Some(cells);
            return;
        }
        table.rows += 1;
        let text = match &table.header {
            Some(header) => keyed_row(header, &cells),
            None => keyed_row(&[], &cells),
        };
        self.blocks.push(Block::new(BlockKind::TableRow, text));
    }
}

pub(crate) fn extract(text: &str) -> Extracted {
    let document = Html::parse_document(text);
    let mut w = Walker::default();

    // Iterative depth-first walk with open/close events.
    let mut node = document.tree.root();
    'walk: loop {
        let mut descend = false;
        match node.value() {
            Node::Element(e) => {
                // A page header is chrome; an article's header holds its title.
                let dropped = DROPPED.contains(&e.name())
                    && !(e.name() == "header"
                        && node.ancestors().any(|a| {
                            matches!(a.value(), Node::Element(x) if x.name() == "article" || x.name() == "main")
                        }));
                if !dropped {
                    w.open(e.name());
                    descend = true;
                }
            }
            Node::Text(t) => w.text(t),
            Node::Document | Node::Fragment => descend = true,
            _ => {}
        }
        if descend {
            if let Some(child) = node.first_child() {
                node = child;
                continue;
            }
        }
        // Close this node and every ancestor that has no next sibling.
        loop {
            // `descend` is false only for the node itself when it was not opened.
            if let Node::Element(e) = node.value() {
                if descend {
                    w.close(e.name());
                }
            }
            descend = true;
            if let Some(next) = node.next_sibling() {
                node = next;
                continue 'walk;
            }
            match node.parent() {
                Some(parent) => node = parent,
                None => break 'walk,
            }
        }
    }
    w.flush();

    let title = title(&document).or_else(|| {
        w.blocks
            .iter()
            .find(|b| b.kind == BlockKind::Heading(1))
            .map(|b| b.text.clone())
    });
    Extracted {
        format: Format::Html,
        title,
        blocks: w.blocks,
    }
}

fn title(document: &Html) -> Option<String> {
    let selector = Selector::parse("title").ok()?;
    let element = document.select(&selector).next()?;
    let mut out = String::new();
    let mut space = false;
    for t in element.text() {
        push_collapsed(&mut out, t, &mut space);
    }
    let out = out.trim().to_string();
    (!out.is_empty()).then_some(out)
}
