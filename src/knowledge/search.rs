//! Retrieval: keyword (BM25 over the Tantivy index), semantic (cosine over the segment vectors) and
//! hybrid, which fuses both lists: by default relative score fusion (each candidate's min-max
//! normalised BM25 and its exact cosine, weighted), or weighted reciprocal rank fusion on request.
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

/// How hybrid mode combines the keyword and the semantic list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Fusion {
    /// Weighted sum of each candidate's BM25 score and cosine similarity, each min-max normalised
    /// over the candidates. Every candidate's cosine is computed, also for those only the keyword
    /// list found; a candidate the keyword list did not find counts 0 there.
    #[default]
    RelativeScore,
    /// Weighted reciprocal rank fusion, `Σ weight / (60 + rank)`: only the ranks count.
    Rrf,
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
    #[serde(default)]
    pub fusion: Fusion,
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

/// The candidates' rows, for `marks` placeholders. `CROSS JOIN` fixes the join order: segments by
/// primary key first, then each one's document. Left to choose, SQLite's planner walks the
/// `documents_by_status` index instead (every ready document and all its segments), which made each
/// search cost time in proportion to the whole knowledge base.
fn ready_rows_sql(marks: &str) -> String {
    format!(
        "SELECT s.id, s.dataset_id, s.document_id, d.title, d.filename, s.position, s.heading_path, s.page, s.text
         FROM segments s CROSS JOIN documents d ON d.id = s.document_id
         WHERE s.id IN ({marks}) AND d.status = 'ready'"
    )
}

/// Fetches the rows of `ids` that belong to ready documents.
fn ready_rows(conn: &Connection, ids: &[i64]) -> rusqlite::Result<HashMap<i64, Row>> {
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut stmt = conn.prepare(&ready_rows_sql(&marks))?;
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
    let mut vector_sets = Vec::new();
    if mode.uses_vectors() {
        for dataset_id in &request.dataset_ids {
            let Some(query) = prepared.query_vectors.get(dataset_id) else {
                continue;
            };
            let vectors = knowledge.vectors.get(conn, dataset_id)?;
            semantic.extend(
                vectors
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .search(query, candidates, documents.as_ref())
                    .into_iter()
                    .map(|s| (s.segment_id, s.score)),
            );
            vector_sets.push((vectors, query));
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
    let mut semantic_scores: HashMap<i64, f32> = semantic.iter().copied().collect();
    let weights = request.weights.unwrap_or_default();
    let ranked: Vec<(i64, f32)> = match (mode, request.fusion) {
        (SearchMode::Keyword, _) => keyword,
        (SearchMode::Semantic, _) => semantic,
        (SearchMode::Hybrid, Fusion::Rrf) => fuse(&keyword, &semantic, weights),
        (SearchMode::Hybrid, Fusion::RelativeScore) => {
            // The keyword-only candidates' cosines, from the dataset that holds each.
            let missing: Vec<i64> = keyword
                .iter()
                .map(|(id, _)| *id)
                .filter(|id| !semantic_scores.contains_key(id))
                .collect();
            for (vectors, query) in &vector_sets {
                let vectors = vectors
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                semantic_scores.extend(vectors.scores_of(query, &missing));
            }
            fuse_relative(&keyword, &semantic_scores, weights)
        }
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

/// Relative score fusion: each candidate (of either list; `cosines` holds every candidate's cosine)
/// scores `wk·bm25' + ws·cos'` with the weights summing to 1, where `bm25'` is its BM25 score
/// min-max normalised over the keyword list (0 when that list did not find it) and `cos'` its cosine
/// min-max normalised over all candidates. Best in both lists scores 1.
pub fn fuse_relative(
    keyword: &[(i64, f32)],
    cosines: &HashMap<i64, f32>,
    weights: Weights,
) -> Vec<(i64, f32)> {
    let total = weights.keyword + weights.semantic;
    let (wk, ws) = (weights.keyword / total, weights.semantic / total);
    let normaliser = |values: &mut dyn Iterator<Item = f32>| {
        let (lo, hi) = values.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        move |v: f32| if hi > lo { (v - lo) / (hi - lo) } else { 1.0 }
    };
    let keyword_norm = normaliser(&mut keyword.iter().map(|(_, s)| *s));
    let cosine_norm = normaliser(&mut cosines.values().copied());
    let mut fused: HashMap<i64, f32> = cosines
        .iter()
        .map(|(id, cos)| (*id, ws * cosine_norm(*cos)))
        .collect();
    for (id, bm25) in keyword {
        *fused.entry(*id).or_insert(0.0) += wk * keyword_norm(*bm25);
    }
    let mut out: Vec<(i64, f32)> = fused.into_iter().collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
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

    /// The candidates' rows are looked up by segment id, whatever the number of ready documents.
    #[test]
    fn candidate_rows_are_read_by_primary_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tenant.db");
        let mut conn = Connection::open(&path).expect("open");
        crate::db::migrate::MigrationSet::tenant()
            .expect("set")
            .apply(&mut conn, &path)
            .expect("migrate");
        let marks = vec!["?"; 30].join(",");
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", ready_rows_sql(&marks)))
            .expect("explain");
        let plan: Vec<String> = stmt
            .query_map(params_from_iter(1..=30), |r| r.get::<_, String>(3))
            .expect("plan")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert!(
            plan.first()
                .is_some_and(|step| step.contains("SEARCH s USING INTEGER PRIMARY KEY")),
            "{plan:?}"
        );
    }

    #[test]
    fn relative_fusion_weighs_normalised_scores_of_every_candidate() {
        // Keyword finds 1, 2, 3; the vectors give every candidate's cosine (4 only semantically).
        let keyword = [(1, 12.0), (2, 8.0), (3, 2.0)];
        let cosines: HashMap<i64, f32> = [(1, 0.30), (2, 0.70), (3, 0.20), (4, 0.60)].into();
        let fused = fuse_relative(&keyword, &cosines, Weights::default());
        let score = |id: i64| fused.iter().find(|(i, _)| *i == id).map(|(_, s)| *s);
        // 1: 0.5·1 + 0.5·0.2 = 0.6; 2: 0.5·0.6 + 0.5·1 = 0.8; 3: 0 + 0; 4: 0 + 0.5·0.8 = 0.4.
        assert_eq!(
            fused.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            [2, 1, 4, 3]
        );
        for (id, want) in [(1, 0.6), (2, 0.8), (3, 0.0), (4, 0.4)] {
            assert!(
                (score(id).unwrap_or(-1.0) - want).abs() < 1e-5,
                "{id}: {fused:?}"
            );
        }
        let keyword_only = fuse_relative(
            &keyword,
            &cosines,
            Weights {
                keyword: 2.0,
                semantic: 0.0,
            },
        );
        assert_eq!(keyword_only[0], (1, 1.0), "weights are normalised");
        let alone = fuse_relative(&[(7, 3.0)], &[(7, 0.5)].into(), Weights::default());
        assert_eq!(alone, [(7, 1.0)], "first in both scores 1");
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
            fusion: Fusion::default(),
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
