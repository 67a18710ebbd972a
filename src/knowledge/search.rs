//! Retrieval: keyword (BM25 over the Tantivy index), semantic (cosine over the segment vectors) and
//! hybrid (weighted reciprocal rank fusion of both lists).
//!
//! Every candidate is checked against the database before it is returned: only segments of documents
//! whose status is `ready` come back, whatever the index holds at that instant.

use std::collections::{HashMap, HashSet};

use rusqlite::{params_from_iter, Connection};
use serde::{Deserialize, Serialize};

use super::index::{highlights, TenantIndex};
use super::{KnowledgeError, TenantKnowledge};

/// The rank constant of reciprocal rank fusion (the value of the original paper, used by most systems).
pub const RRF_K: f32 = 60.0;
/// The most hits one search returns.
pub const MAX_TOP_K: usize = 100;
/// The most datasets one search may name.
pub const MAX_DATASETS: usize = 50;
/// The longest query, in bytes.
pub const MAX_QUERY_BYTES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    Keyword,
    Semantic,
    #[default]
    Hybrid,
}

impl SearchMode {
    pub fn uses_vectors(self) -> bool {
        matches!(self, SearchMode::Semantic | SearchMode::Hybrid)
    }
    pub fn uses_keywords(self) -> bool {
        matches!(self, SearchMode::Keyword | SearchMode::Hybrid)
    }
}

/// Weights of the two lists in hybrid mode.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    pub keyword: f32,
    pub semantic: f32,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            keyword: 0.5,
            semantic: 0.5,
        }
    }
}

/// A search as the API takes it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    pub query: String,
    pub dataset_ids: Vec<String>,
    #[serde(default)]
    pub mode: SearchMode,
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    #[serde(default)]
    pub score_threshold: Option<f32>,
    #[serde(default)]
    pub document_ids: Option<Vec<String>>,
    #[serde(default)]
    pub weights: Option<Weights>,
}

fn default_top_k() -> usize {
    5
}

impl SearchRequest {
    /// Checks the request's values.
    pub fn validate(&self) -> Result<(), KnowledgeError> {
        let bad = |m: String| Err(KnowledgeError::Invalid(m));
        if self.query.trim().is_empty() {
            return bad("query must not be empty".into());
        }
        if self.query.len() > MAX_QUERY_BYTES {
            return bad(format!(
                "query is {} bytes long; the limit is {MAX_QUERY_BYTES}",
                self.query.len()
            ));
        }
        if self.dataset_ids.is_empty() || self.dataset_ids.len() > MAX_DATASETS {
            return bad(format!(
                "dataset_ids must name between 1 and {MAX_DATASETS} knowledge bases"
            ));
        }
        if !(1..=MAX_TOP_K).contains(&self.top_k) {
            return bad(format!(
                "top_k must be between 1 and {MAX_TOP_K}, not {}",
                self.top_k
            ));
        }
        if let Some(t) = self.score_threshold {
            if !t.is_finite() {
                return bad("score_threshold must be a number".into());
            }
        }
        if let Some(w) = self.weights {
            if !(w.keyword.is_finite() && w.semantic.is_finite())
                || w.keyword < 0.0
                || w.semantic < 0.0
                || w.keyword + w.semantic <= 0.0
            {
                return bad("weights must be non-negative and not both zero".into());
            }
        }
        Ok(())
    }
}

/// One result, with what a citation needs.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Hit {
    pub segment_id: i64,
    pub dataset_id: String,
    pub document_id: String,
    pub document_title: String,
    pub filename: String,
    pub position: u32,
    pub heading_path: Vec<String>,
    pub page: Option<u32>,
    pub text: String,
    pub score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyword_score: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub semantic_score: Option<f32>,
    /// `[start, end)` code-point offsets in `text` where query terms occur.
    pub highlights: Vec<[usize; 2]>,
}

/// The search's inputs once the query is embedded: per dataset, the query vector of its model.
pub struct Prepared<'a> {
    pub request: &'a SearchRequest,
    pub terms: Vec<String>,
    pub query_vectors: HashMap<String, Vec<f32>>,
}

struct Row {
    dataset_id: String,
    document_id: String,
    title: String,
    filename: String,
    position: u32,
    headings: String,
    page: Option<u32>,
    text: String,
}

/// Fetches the rows of `ids` that belong to ready documents.
fn ready_rows(conn: &Connection, ids: &[i64]) -> rusqlite::Result<HashMap<i64, Row>> {
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut stmt = conn.prepare(&format!(
            "SELECT s.id, s.dataset_id, s.document_id, d.title, d.filename, s.position, s.heading_path, s.page, s.text
             FROM segments s JOIN documents d ON d.id = s.document_id
             WHERE s.id IN ({marks}) AND d.status = 'ready'"
        ))?;
        let rows = stmt.query_map(params_from_iter(chunk.iter()), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                Row {
                    dataset_id: r.get(1)?,
                    document_id: r.get(2)?,
                    title: r.get(3)?,
                    filename: r.get(4)?,
                    position: r.get::<_, i64>(5)? as u32,
                    headings: r.get(6)?,
                    page: r.get::<_, Option<i64>>(7)?.map(|p| p as u32),
                    text: r.get(8)?,
                },
            ))
        })?;
        for row in rows {
            let (id, row) = row?;
            out.insert(id, row);
        }
    }
    Ok(out)
}

/// How many candidates each list contributes before fusion and filtering.
pub fn candidates(request: &SearchRequest) -> usize {
    match request.mode {
        SearchMode::Hybrid => (request.top_k * 4).max(40),
        _ => request.top_k * 2 + 10,
    }
}

/// The keyword list (blocking: Tantivy). Independent of the query's embedding, so it runs while the
/// query is being embedded.
pub fn keyword_candidates(
    knowledge: &TenantKnowledge,
    request: &SearchRequest,
    terms: &[String],
) -> Result<Vec<(i64, f32)>, KnowledgeError> {
    if !request.mode.uses_keywords() {
        return Ok(Vec::new());
    }
    let index: std::sync::Arc<TenantIndex> = knowledge.index()?;
    Ok(index
        .search(
            terms,
            &request.dataset_ids,
            request.document_ids.as_deref(),
            candidates(request),
        )?
        .into_iter()
        .map(|h| (h.segment_id, h.score))
        .collect())
}

/// Finishes a search (blocking: vectors and SQL) given its keyword list.
pub fn run(
    conn: &Connection,
    knowledge: &TenantKnowledge,
    prepared: &Prepared<'_>,
    keyword: Vec<(i64, f32)>,
) -> Result<Vec<Hit>, KnowledgeError> {
    let request = prepared.request;
    let mode = request.mode;
    let candidates = candidates(request);
    let documents: Option<HashSet<String>> = request
        .document_ids
        .as_ref()
        .map(|ids| ids.iter().cloned().collect());
    let mut keyword = keyword;
    let mut semantic: Vec<(i64, f32)> = Vec::new();
    if mode.uses_vectors() {
        for dataset_id in &request.dataset_ids {
            let Some(query) = prepared.query_vectors.get(dataset_id) else {
                continue;
            };
            let vectors = knowledge.vectors.get(conn, dataset_id)?;
            let vectors = vectors
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            semantic.extend(
                vectors
                    .search(query, candidates, documents.as_ref())
                    .into_iter()
                    .map(|s| (s.segment_id, s.score)),
            );
        }
        semantic.sort_by(|a, b| b.1.total_cmp(&a.1));
        semantic.truncate(candidates);
    }

    let mut ids: Vec<i64> = keyword.iter().chain(&semantic).map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    let rows = ready_rows(conn, &ids)?;
    keyword.retain(|(id, _)| rows.contains_key(id));
    semantic.retain(|(id, _)| rows.contains_key(id));

    let keyword_scores: HashMap<i64, f32> = keyword.iter().copied().collect();
    let semantic_scores: HashMap<i64, f32> = semantic.iter().copied().collect();
    let ranked: Vec<(i64, f32)> = match mode {
        SearchMode::Keyword => keyword,
        SearchMode::Semantic => semantic,
        SearchMode::Hybrid => fuse(&keyword, &semantic, request.weights.unwrap_or_default()),
    };

    let terms: HashSet<String> = prepared.terms.iter().cloned().collect();
    let mut hits = Vec::with_capacity(request.top_k);
    for (id, score) in ranked {
        if hits.len() == request.top_k {
            break;
        }
        if request.score_threshold.is_some_and(|t| score < t) {
            continue;
        }
        let Some(row) = rows.get(&id) else { continue };
        hits.push(Hit {
            segment_id: id,
            dataset_id: row.dataset_id.clone(),
            document_id: row.document_id.clone(),
            document_title: row.title.clone(),
            filename: row.filename.clone(),
            position: row.position,
            heading_path: super::store::decode_headings(&row.headings),
            page: row.page,
            highlights: highlights(&row.text, &terms),
            text: row.text.clone(),
            score,
            keyword_score: keyword_scores.get(&id).copied(),
            semantic_score: semantic_scores.get(&id).copied(),
        });
    }
    Ok(hits)
}

/// Weighted reciprocal rank fusion of two ranked lists, normalised so that first in both lists is 1.
pub fn fuse(keyword: &[(i64, f32)], semantic: &[(i64, f32)], weights: Weights) -> Vec<(i64, f32)> {
    let total = weights.keyword + weights.semantic;
    let best = total / (RRF_K + 1.0);
    let mut fused: HashMap<i64, f32> = HashMap::new();
    for (list, weight) in [(keyword, weights.keyword), (semantic, weights.semantic)] {
        for (rank, (id, _)) in list.iter().enumerate() {
            *fused.entry(*id).or_insert(0.0) += weight / (RRF_K + rank as f32 + 1.0);
        }
    }
    let mut out: Vec<(i64, f32)> = fused.into_iter().map(|(id, s)| (id, s / best)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusion_rewards_agreement_and_is_normalised() {
        let keyword = [(1, 9.0), (2, 5.0), (3, 1.0)];
        let semantic = [(3, 0.9), (1, 0.8), (4, 0.7)];
        let fused = fuse(&keyword, &semantic, Weights::default());
        assert_eq!(fused[0].0, 1, "first and second beats first and third");
        assert!(fused[0].1 <= 1.0 && fused[0].1 > 0.9);
        let both_first = fuse(&[(7, 1.0)], &[(7, 1.0)], Weights::default());
        assert!((both_first[0].1 - 1.0).abs() < 1e-6);
        let keyword_only = fuse(
            &keyword,
            &semantic,
            Weights {
                keyword: 1.0,
                semantic: 0.0,
            },
        );
        assert_eq!(keyword_only[0].0, 1);
        assert_eq!(keyword_only[1].0, 2);
    }

    #[test]
    fn requests_are_validated() {
        let ok = SearchRequest {
            query: "x".into(),
            dataset_ids: vec!["a".into()],
            mode: SearchMode::Hybrid,
            top_k: 5,
            score_threshold: None,
            document_ids: None,
            weights: None,
        };
        assert!(ok.validate().is_ok());
        for bad in [
            SearchRequest {
                query: " ".into(),
                ..ok.clone()
            },
            SearchRequest {
                top_k: 0,
                ..ok.clone()
            },
            SearchRequest {
                top_k: 101,
                ..ok.clone()
            },
            SearchRequest {
                dataset_ids: vec![],
                ..ok.clone()
            },
            SearchRequest {
                weights: Some(Weights {
                    keyword: 0.0,
                    semantic: 0.0,
                }),
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
