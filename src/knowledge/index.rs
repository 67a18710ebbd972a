//! The tenant's Tantivy index: one Tantivy document per segment, for BM25 keyword search.
//!
//! Fields: `segment_id` (fast field, the link back to the database), `dataset_id` and `document_id`
//! (raw strings, for filters and deletes), `title`, `headings` and `text` (analysed with
//! [`super::tokenizer`] and the English stemmer). The index lives in `<tenant>/index/` and is
//! derived data: `enclave index rebuild` makes it again from the database.
//!
//! One writer per tenant, created when first needed and released when the ingestion worker has
//! nothing more for the tenant (Tantivy's writer holds a memory arena and a lock file).

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;

use tantivy::query::{BooleanQuery, BoostQuery, EnableScoring, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, STRING,
};
use tantivy::tokenizer::{Language, RemoveLongFilter, Stemmer, TextAnalyzer, TokenStream};
use tantivy::{
    doc, DocSet, Index, IndexReader, IndexWriter, ReloadPolicy, SegmentReader, TantivyDocument,
    Term, TERMINATED,
};

use super::tokenizer::{MixedScriptTokenizer, Mode};
use super::top::TopK;
use super::KnowledgeError;

/// The index directory inside the tenant directory.
pub const INDEX_DIR: &str = "index";
const INDEX_ANALYZER: &str = "enclave_index";
const QUERY_ANALYZER: &str = "enclave_query";
/// The writer's memory arena (Tantivy's minimum is 15 MB).
const WRITER_MEMORY: usize = 32 * 1024 * 1024;
/// Field weights: the segment's own text counts most.
const TEXT_BOOST: f32 = 1.0;
const HEADINGS_BOOST: f32 = 0.6;
const TITLE_BOOST: f32 = 0.4;

/// The analyzer used when indexing and for highlights.
pub fn index_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(MixedScriptTokenizer::new(Mode::Index))
        .filter(RemoveLongFilter::limit(48))
        .filter(Stemmer::new(Language::English))
        .build()
}

/// The analyzer used for queries (CJK bigrams only).
pub fn query_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(MixedScriptTokenizer::new(Mode::Query))
        .filter(RemoveLongFilter::limit(48))
        .filter(Stemmer::new(Language::English))
        .build()
}

/// The distinct terms of a query, in order of first appearance.
pub fn query_terms(query: &str) -> Vec<String> {
    let mut analyzer = query_analyzer();
    let mut stream = analyzer.token_stream(query);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    while stream.advance() {
        let text = stream.token().text.clone();
        if seen.insert(text.clone()) {
            out.push(text);
        }
    }
    out
}

/// `[start, end)` code-point ranges of `text` where one of `terms` occurs (merged when they overlap).
pub fn highlights(text: &str, terms: &HashSet<String>) -> Vec<[usize; 2]> {
    if terms.is_empty() {
        return Vec::new();
    }
    let mut analyzer = index_analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut byte_ranges: Vec<(usize, usize)> = Vec::new();
    while stream.advance() {
        let token = stream.token();
        if terms.contains(&token.text) {
            byte_ranges.push((token.offset_from, token.offset_to));
        }
    }
    byte_ranges.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (from, to) in byte_ranges {
        match merged.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => merged.push((from, to)),
        }
    }
    // Byte offsets → code-point offsets, in one pass.
    let mut out = Vec::with_capacity(merged.len());
    let mut chars_before = 0usize;
    let mut byte_at = 0usize;
    let count_to = |target: usize, chars_before: &mut usize, byte_at: &mut usize| {
        *chars_before += text[*byte_at..target].chars().count();
        *byte_at = target;
        *chars_before
    };
    for (from, to) in merged {
        let start = count_to(from, &mut chars_before, &mut byte_at);
        let end = count_to(to, &mut chars_before, &mut byte_at);
        out.push([start, end]);
    }
    out
}

struct Fields {
    segment_id: Field,
    dataset_id: Field,
    document_id: Field,
    title: Field,
    headings: Field,
    text: Field,
}

impl Fields {
    /// The Tantivy document of a segment.
    fn document(&self, s: &IndexedSegment<'_>) -> TantivyDocument {
        doc!(
            self.segment_id => s.segment_id as u64,
            self.dataset_id => s.dataset_id,
            self.document_id => s.document_id,
            self.title => s.title,
            self.headings => s.headings,
            self.text => s.text,
        )
    }
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let analysed = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(INDEX_ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let fields = Fields {
        segment_id: builder.add_u64_field("segment_id", FAST),
        dataset_id: builder.add_text_field("dataset_id", STRING),
        document_id: builder.add_text_field("document_id", STRING),
        title: builder.add_text_field("title", analysed.clone()),
        headings: builder.add_text_field("headings", analysed.clone()),
        text: builder.add_text_field("text", analysed),
    };
    (builder.build(), fields)
}

/// A segment as it goes into the index.
pub struct IndexedSegment<'a> {
    pub segment_id: i64,
    pub dataset_id: &'a str,
    pub document_id: &'a str,
    pub title: &'a str,
    pub headings: &'a str,
    pub text: &'a str,
}

/// One keyword hit.
#[derive(Debug, Clone, Copy)]
pub struct KeywordHit {
    pub segment_id: i64,
    pub score: f32,
}

/// A tenant's index.
pub struct TenantIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    writer: Mutex<Option<IndexWriter>>,
}

impl TenantIndex {
    /// Opens the index in `dir`, creating it when missing. An index with another schema (from an
    /// older version) is moved aside and created again; `enclave index rebuild` refills it.
    pub fn open(dir: &Path) -> Result<TenantIndex, KnowledgeError> {
        let (schema, fields) = schema();
        std::fs::create_dir_all(dir)
            .map_err(|e| KnowledgeError::Io(format!("creating {}: {e}", dir.display())))?;
        let directory = tantivy::directory::MmapDirectory::open(dir)
            .map_err(|e| KnowledgeError::Index(e.to_string()))?;
        let index = Index::open_or_create(directory, schema)?;
        index
            .tokenizers()
            .register(INDEX_ANALYZER, index_analyzer());
        index
            .tokenizers()
            .register(QUERY_ANALYZER, query_analyzer());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(TenantIndex {
            index,
            reader,
            fields,
            writer: Mutex::new(None),
        })
    }

    fn with_writer<T>(
        &self,
        work: impl FnOnce(&mut IndexWriter, &Fields) -> Result<T, KnowledgeError>,
    ) -> Result<T, KnowledgeError> {
        let mut guard = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.is_none() {
            *guard = Some(self.index.writer_with_num_threads(1, WRITER_MEMORY)?);
        }
        let writer = guard
            .as_mut()
            .ok_or_else(|| KnowledgeError::Index("no index writer".into()))?;
        match work(writer, &self.fields) {
            Ok(value) => {
                self.reader.reload()?;
                Ok(value)
            }
            Err(e) => {
                // Whatever was added but not committed is thrown away with the writer.
                if let Some(writer) = guard.take() {
                    let _ = writer.wait_merging_threads();
                }
                Err(e)
            }
        }
    }

    /// Adds a document's segments (replacing any it had) and commits.
    pub fn replace_document(
        &self,
        document_id: &str,
        segments: &[IndexedSegment<'_>],
    ) -> Result<(), KnowledgeError> {
        self.with_writer(|writer, f| {
            writer.delete_term(Term::from_field_text(f.document_id, document_id));
            for s in segments {
                writer.add_document(f.document(s))?;
            }
            writer.commit()?;
            Ok(())
        })
    }

    /// Removes a document's segments.
    pub fn delete_document(&self, document_id: &str) -> Result<(), KnowledgeError> {
        self.with_writer(|writer, f| {
            writer.delete_term(Term::from_field_text(f.document_id, document_id));
            writer.commit()?;
            Ok(())
        })
    }

    /// Removes a dataset's segments.
    pub fn delete_dataset(&self, dataset_id: &str) -> Result<(), KnowledgeError> {
        self.with_writer(|writer, f| {
            writer.delete_term(Term::from_field_text(f.dataset_id, dataset_id));
            writer.commit()?;
            Ok(())
        })
    }

    /// Empties the index and adds `segments` (read in batches by the caller through `feed`).
    pub fn rebuild(
        &self,
        feed: impl FnOnce(
            &mut dyn FnMut(IndexedSegment<'_>) -> Result<(), KnowledgeError>,
        ) -> Result<(), KnowledgeError>,
    ) -> Result<u64, KnowledgeError> {
        self.with_writer(|writer, f| {
            writer.delete_all_documents()?;
            let mut added = 0u64;
            let mut add = |s: IndexedSegment<'_>| -> Result<(), KnowledgeError> {
                writer.add_document(f.document(&s))?;
                added += 1;
                Ok(())
            };
            feed(&mut add)?;
            writer.commit()?;
            Ok(added)
        })
    }

    /// Drops the writer (its memory and lock) until it is needed again.
    pub fn release_writer(&self) {
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(writer) = writer {
            if let Err(e) = writer.wait_merging_threads() {
                tracing::warn!(error = %e, "index merge did not finish cleanly");
            }
        }
    }

    /// BM25 search over title, headings and text, restricted to `datasets` (and `documents` when
    /// given). Returns at most `limit` hits, best first.
    ///
    /// The query is a plain disjunction of term queries, so Tantivy scores it with block-max WAND:
    /// postings blocks that cannot reach the current top `limit` are skipped (a frequent word such
    /// as "the" costs little). The dataset and document filters are not query clauses (a required
    /// clause would make Tantivy score every matching segment); they are a per-segment set of the
    /// allowed Tantivy documents, checked for each candidate.
    pub fn search(
        &self,
        terms: &[String],
        datasets: &[String],
        documents: Option<&[String]>,
        limit: usize,
    ) -> Result<Vec<KeywordHit>, KnowledgeError> {
        if terms.is_empty() || datasets.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let f = &self.fields;
        let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for term in terms {
            for (field, boost) in [
                (f.text, TEXT_BOOST),
                (f.headings, HEADINGS_BOOST),
                (f.title, TITLE_BOOST),
            ] {
                let q = TermQuery::new(
                    Term::from_field_text(field, term),
                    IndexRecordOption::WithFreqs,
                );
                should.push((Occur::Should, Box::new(BoostQuery::new(Box::new(q), boost))));
            }
        }
        let query = BooleanQuery::new(should);
        let searcher = self.reader.searcher();
        let weight = query.weight(EnableScoring::enabled_from_searcher(&searcher))?;
        let mut best = TopK::new(limit);
        for reader in searcher.segment_readers() {
            let mut allowed = allowed_docs(reader, f.dataset_id, datasets)?;
            if let Some(documents) = documents {
                allowed.intersect(&allowed_docs(reader, f.document_id, documents)?);
            }
            if allowed.is_empty() {
                continue;
            }
            let ids = reader.fast_fields().u64("segment_id")?;
            let mut failed = None;
            weight.for_each_pruning(best.threshold(), reader, &mut |doc, score| {
                if allowed.contains(doc) {
                    match ids.first(doc) {
                        Some(id) => best.offer(id as i64, score),
                        None => failed = Some(doc),
                    }
                }
                best.threshold()
            })?;
            if let Some(doc) = failed {
                return Err(KnowledgeError::Index(format!(
                    "index document {doc} has no segment id"
                )));
            }
        }
        Ok(best
            .into_sorted()
            .into_iter()
            .map(|(segment_id, score)| KeywordHit { segment_id, score })
            .collect())
    }

    /// Segments in the index (for checks).
    pub fn num_segments(&self) -> u64 {
        self.reader.searcher().num_docs()
    }
}

/// The live Tantivy documents of one index segment that carry one of `values` in `field`.
fn allowed_docs(
    reader: &SegmentReader,
    field: Field,
    values: &[String],
) -> Result<DocBits, KnowledgeError> {
    let mut bits = DocBits::new(reader.max_doc());
    let inverted = reader.inverted_index(field)?;
    for value in values {
        let term = Term::from_field_text(field, value);
        let postings = inverted
            .read_postings(&term, IndexRecordOption::Basic)
            .map_err(|e| KnowledgeError::Index(format!("reading the index: {e}")))?;
        if let Some(mut postings) = postings {
            let mut doc = postings.doc();
            while doc != TERMINATED {
                bits.insert(doc);
                doc = postings.advance();
            }
        }
    }
    if let Some(alive) = reader.alive_bitset() {
        bits.retain(|doc| alive.is_alive(doc));
    }
    Ok(bits)
}

/// A set of document ids of one index segment.
struct DocBits {
    words: Vec<u64>,
}

impl DocBits {
    fn new(max_doc: u32) -> DocBits {
        DocBits {
            words: vec![0; (max_doc as usize).div_ceil(64)],
        }
    }

    fn insert(&mut self, doc: u32) {
        let (word, bit) = ((doc / 64) as usize, doc % 64);
        if let Some(w) = self.words.get_mut(word) {
            *w |= 1 << bit;
        }
    }

    fn contains(&self, doc: u32) -> bool {
        let (word, bit) = ((doc / 64) as usize, doc % 64);
        self.words.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    fn retain(&mut self, keep: impl Fn(u32) -> bool) {
        for (i, word) in self.words.iter_mut().enumerate() {
            let mut rest = *word;
            while rest != 0 {
                let bit = rest.trailing_zeros();
                rest &= rest - 1;
                if !keep(i as u32 * 64 + bit) {
                    *word &= !(1 << bit);
                }
            }
        }
    }

    fn intersect(&mut self, other: &DocBits) {
        for (i, word) in self.words.iter_mut().enumerate() {
            *word &= other.words.get(i).copied().unwrap_or(0);
        }
    }

    fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg<'a>(id: i64, doc: &'a str, text: &'a str) -> IndexedSegment<'a> {
        IndexedSegment {
            segment_id: id,
            dataset_id: "ds",
            document_id: doc,
            title: "",
            headings: "",
            text,
        }
    }

    #[test]
    fn english_and_chinese_keywords_are_found_and_deletes_take_effect() {
        let dir = tempfile::tempdir().expect("tempdir");
        let index = TenantIndex::open(dir.path()).expect("open");
        index
            .replace_document(
                "d1",
                &[
                    seg(1, "d1", "Rotating API keys keeps automation safe."),
                    seg(2, "d1", "知识库支持中文检索和引用。"),
                ],
            )
            .expect("add");
        index
            .replace_document("d2", &[seg(3, "d2", "Backups are encrypted with age.")])
            .expect("add");
        let ds = vec!["ds".to_string()];
        let hits = index
            .search(&query_terms("rotate key"), &ds, None, 10)
            .expect("search");
        assert_eq!(hits.first().map(|h| h.segment_id), Some(1), "stemmed match");
        let hits = index
            .search(&query_terms("中文检索"), &ds, None, 10)
            .expect("search");
        assert_eq!(hits.first().map(|h| h.segment_id), Some(2), "bigram match");
        let hits = index
            .search(&query_terms("encrypted"), &ds, Some(&["d1".into()]), 10)
            .expect("search");
        assert!(hits.is_empty(), "document filter");
        assert!(index
            .search(&query_terms("encrypted"), &["other".into()], None, 10)
            .expect("search")
            .is_empty());
        index.delete_document("d2").expect("delete");
        assert!(index
            .search(&query_terms("encrypted"), &ds, None, 10)
            .expect("search")
            .is_empty());
        assert_eq!(index.num_segments(), 2);
    }

    /// The pruned, filtered search returns what scoring every segment under the same filters does.
    #[test]
    fn pruned_search_matches_exhaustive_scoring_under_filters() {
        use tantivy::collector::TopDocs;
        use tantivy::query::ConstScoreQuery;
        let dir = tempfile::tempdir().expect("tempdir");
        let index = TenantIndex::open(dir.path()).expect("open");
        let words = [
            "backup", "restore", "key", "the", "of", "ldap", "quota", "index", "model", "chat",
            "token", "segment", "vector", "tenant", "audit",
        ];
        let mut seed: u64 = 7;
        let mut next = move |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        let mut texts = Vec::new();
        for i in 0..600 {
            let len = 3 + next(40);
            let text: Vec<&str> = (0..len).map(|_| words[next(words.len())]).collect();
            let dataset = if i % 3 == 0 { "other" } else { "ds" };
            let document = format!("doc{}", i % 7);
            texts.push((i as i64, dataset, document, text.join(" ")));
        }
        for doc in 0..7 {
            let document = format!("doc{doc}");
            let segments: Vec<IndexedSegment<'_>> = texts
                .iter()
                .filter(|t| t.2 == document)
                .map(|(id, dataset, document, text)| IndexedSegment {
                    segment_id: *id,
                    dataset_id: dataset,
                    document_id: document,
                    title: "",
                    headings: "",
                    text,
                })
                .collect();
            index.replace_document(&document, &segments).expect("add");
        }
        index.delete_document("doc6").expect("delete");
        let exhaustive = |terms: &[String], datasets: &[&str], documents: Option<&[&str]>| {
            let f = &index.fields;
            let should: Vec<(Occur, Box<dyn Query>)> = terms
                .iter()
                .flat_map(|t| {
                    [
                        (f.text, TEXT_BOOST),
                        (f.headings, HEADINGS_BOOST),
                        (f.title, TITLE_BOOST),
                    ]
                    .map(|(field, boost)| {
                        let q = TermQuery::new(
                            Term::from_field_text(field, t),
                            IndexRecordOption::WithFreqs,
                        );
                        let q: Box<dyn Query> = Box::new(BoostQuery::new(Box::new(q), boost));
                        (Occur::Should, q)
                    })
                })
                .collect();
            let any = |field: Field, values: &[&str]| -> Box<dyn Query> {
                let clauses: Vec<(Occur, Box<dyn Query>)> = values
                    .iter()
                    .map(|v| {
                        let q: Box<dyn Query> = Box::new(TermQuery::new(
                            Term::from_field_text(field, v),
                            IndexRecordOption::Basic,
                        ));
                        (Occur::Should, q)
                    })
                    .collect();
                Box::new(ConstScoreQuery::new(
                    Box::new(BooleanQuery::new(clauses)),
                    0.0,
                ))
            };
            let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![
                (Occur::Must, Box::new(BooleanQuery::new(should))),
                (Occur::Must, any(f.dataset_id, datasets)),
            ];
            if let Some(documents) = documents {
                clauses.push((Occur::Must, any(f.document_id, documents)));
            }
            let searcher = index.reader.searcher();
            let top = searcher
                .search(&BooleanQuery::new(clauses), &TopDocs::with_limit(10_000))
                .expect("search");
            top.into_iter()
                .map(|(score, address)| {
                    let ids = searcher
                        .segment_reader(address.segment_ord)
                        .fast_fields()
                        .u64("segment_id")
                        .expect("column");
                    (ids.first(address.doc_id).expect("id") as i64, score)
                })
                .collect::<std::collections::HashMap<i64, f32>>()
        };
        let queries = [
            "the backup key",
            "ldap quota of the tenant",
            "vector",
            "of the",
        ];
        for query in queries {
            let terms = query_terms(query);
            for (datasets, documents) in [
                (vec!["ds"], None),
                (vec!["other", "ds"], None),
                (vec!["ds"], Some(vec!["doc1", "doc3", "doc6"])),
            ] {
                let reference = exhaustive(&terms, &datasets, documents.as_deref());
                let mut expected: Vec<f32> = reference.values().copied().collect();
                expected.sort_by(|a, b| b.total_cmp(a));
                let datasets: Vec<String> = datasets.iter().map(|d| d.to_string()).collect();
                let documents: Option<Vec<String>> =
                    documents.map(|d| d.iter().map(|d| d.to_string()).collect());
                for limit in [1, 5, 40] {
                    let hits = index
                        .search(&terms, &datasets, documents.as_deref(), limit)
                        .expect("search");
                    assert_eq!(hits.len(), limit.min(expected.len()), "{query} {limit}");
                    for (hit, want) in hits.iter().zip(&expected) {
                        assert!(
                            (hit.score - want).abs() < 1e-4,
                            "{query}: {} vs {want}",
                            hit.score
                        );
                        let own = reference.get(&hit.segment_id).copied();
                        assert!(
                            own.is_some_and(|s| (s - hit.score).abs() < 1e-4),
                            "{query}: segment {} outside the filter",
                            hit.segment_id
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn highlights_are_code_point_ranges() {
        let terms: HashSet<String> = query_terms("知识 keys").into_iter().collect();
        let text = "中文知识库 and API keys";
        let ranges = highlights(text, &terms);
        let chars: Vec<char> = text.chars().collect();
        let marked: Vec<String> = ranges
            .iter()
            .map(|[a, b]| chars[*a..*b].iter().collect())
            .collect();
        assert_eq!(marked, ["知识", "keys"]);
    }
}
