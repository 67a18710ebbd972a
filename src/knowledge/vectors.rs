//! Segment vectors: stored as int8 components with one scale (in the segment's row), held in memory
//! per dataset for brute-force cosine search.
//!
//! Embeddings are L2-normalised, so cosine similarity is a dot product. A vector `v` is stored as
//! `q[i] = round(v[i] / s)` with `s = max|v| / 127` (384 bytes plus 4 for all-MiniLM-L6-v2, a quarter
//! of f32); the query is quantised the same way and the dot product runs on integers. The error this
//! adds to a cosine is about 1e-3, well below what separates relevant from irrelevant segments.
//!
//! The cache holds, per dataset, the vectors of its *ready* documents. It compares the dataset's
//! `ready_version` and `removal_version` (bumped in the transactions that make a document ready or
//! remove ready segments) with what it loaded: new ready documents are appended, a removal reloads
//! the dataset.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use rusqlite::{params, Connection, OptionalExtension};

use super::top::TopK;
use super::KnowledgeError;

/// Quantises a vector: its int8 components followed by the f32 scale, little-endian.
pub fn encode(vector: &[f32]) -> Vec<u8> {
    let max = vector.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    let mut out = Vec::with_capacity(vector.len() + 4);
    for x in vector {
        out.push((x / scale).round().clamp(-127.0, 127.0) as i8 as u8);
    }
    out.extend_from_slice(&scale.to_le_bytes());
    out
}

/// The int8 components and scale of a stored vector.
pub fn decode(blob: &[u8]) -> Option<(&[u8], f32)> {
    if blob.len() < 5 {
        return None;
    }
    let (components, scale) = blob.split_at(blob.len() - 4);
    let scale = f32::from_le_bytes([scale[0], scale[1], scale[2], scale[3]]);
    Some((components, scale))
}

/// Quantises a query vector.
pub fn quantize_query(vector: &[f32]) -> (Vec<i8>, f32) {
    let blob = encode(vector);
    let (components, scale) = decode(&blob).unwrap_or((&[], 1.0));
    (components.iter().map(|&b| b as i8).collect(), scale)
}

fn dot(a: &[i8], b: &[i8]) -> i32 {
    // Written so the compiler vectorises it (i8 → i16 multiply-add into i32 lanes).
    a.iter()
        .zip(b)
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum()
}

/// Cosine of a quantised query (`q`, `q_scale`) and one stored row (`row`, `scale`).
fn similarity(q: &[i8], q_scale: f32, row: &[i8], scale: f32) -> f32 {
    dot(q, row) as f32 * q_scale * scale
}

/// The vectors of one dataset's ready documents.
#[derive(Default)]
pub struct DatasetVectors {
    dims: usize,
    segment_ids: Vec<i64>,
    /// Row of each segment id (for scoring given segments).
    row_of: HashMap<i64, u32>,
    /// Index into `documents` for each segment.
    document_of: Vec<u32>,
    documents: Vec<String>,
    document_index: HashMap<String, u32>,
    data: Vec<i8>,
    scales: Vec<f32>,
    ready_version: i64,
    removal_version: i64,
}

/// One scored segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub segment_id: i64,
    pub score: f32,
}

impl DatasetVectors {
    pub fn len(&self) -> usize {
        self.segment_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.segment_ids.is_empty()
    }

    fn push(&mut self, segment_id: i64, document_id: &str, blob: &[u8]) {
        let Some((components, scale)) = decode(blob) else {
            return;
        };
        if self.dims == 0 {
            self.dims = components.len();
        }
        if components.len() != self.dims {
            tracing::warn!(segment_id, "a segment vector has the wrong length; skipped");
            return;
        }
        let doc = match self.document_index.get(document_id) {
            Some(&i) => i,
            None => {
                let i = self.documents.len() as u32;
                self.documents.push(document_id.to_string());
                self.document_index.insert(document_id.to_string(), i);
                i
            }
        };
        self.row_of
            .insert(segment_id, self.segment_ids.len() as u32);
        self.segment_ids.push(segment_id);
        self.document_of.push(doc);
        self.data.extend(components.iter().map(|&b| b as i8));
        self.scales.push(scale);
    }

    /// The similarity to `query` (normalised) of each of `segment_ids` this dataset holds, computed
    /// exactly as [`Self::search`] does.
    pub fn scores_of(&self, query: &[f32], segment_ids: &[i64]) -> Vec<(i64, f32)> {
        if self.dims == 0 || query.len() != self.dims {
            return Vec::new();
        }
        let (q, q_scale) = quantize_query(query);
        segment_ids
            .iter()
            .filter_map(|id| {
                let row = *self.row_of.get(id)? as usize;
                let data = self.data.get(row * self.dims..(row + 1) * self.dims)?;
                Some((*id, similarity(&q, q_scale, data, self.scales[row])))
            })
            .collect()
    }

    /// The `top_k` segments most similar to `query` (normalised), optionally only of `documents`.
    pub fn search(
        &self,
        query: &[f32],
        top_k: usize,
        documents: Option<&HashSet<String>>,
    ) -> Vec<Scored> {
        if self.dims == 0 || query.len() != self.dims || top_k == 0 {
            return Vec::new();
        }
        let allowed: Option<Vec<bool>> =
            documents.map(|set| self.documents.iter().map(|d| set.contains(d)).collect());
        let (q, q_scale) = quantize_query(query);
        let mut best = TopK::new(top_k);
        for (i, row) in self.data.chunks_exact(self.dims).enumerate() {
            if let Some(allowed) = &allowed {
                if !allowed[self.document_of[i] as usize] {
                    continue;
                }
            }
            let score = similarity(&q, q_scale, row, self.scales[i]);
            if score > best.threshold() {
                best.offer(self.segment_ids[i], score);
            }
        }
        best.into_sorted()
            .into_iter()
            .map(|(segment_id, score)| Scored { segment_id, score })
            .collect()
    }
}

/// Per-dataset vectors of one tenant.
#[derive(Default)]
pub struct VectorCache {
    datasets: Mutex<HashMap<String, Arc<RwLock<DatasetVectors>>>>,
}

fn versions(conn: &Connection, dataset_id: &str) -> rusqlite::Result<Option<(i64, i64)>> {
    conn.query_row(
        "SELECT ready_version, removal_version FROM datasets WHERE id = ?1",
        [dataset_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

fn load_rows(
    conn: &Connection,
    dataset_id: &str,
    after_version: Option<i64>,
    up_to_version: i64,
    into: &mut DatasetVectors,
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.id, s.document_id, s.vector FROM segments s JOIN documents d ON d.id = s.document_id
         WHERE d.dataset_id = ?1 AND d.status = 'ready' AND s.vector IS NOT NULL
           AND (?2 IS NULL OR d.ready_version > ?2) AND d.ready_version <= ?3
         ORDER BY s.id",
    )?;
    let mut rows = stmt.query(params![dataset_id, after_version, up_to_version])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let doc: String = row.get(1)?;
        let blob = row.get_ref(2)?.as_blob()?;
        into.push(id, &doc, blob);
    }
    Ok(())
}

impl VectorCache {
    /// The dataset's vectors, brought up to date with the database first.
    pub fn get(
        &self,
        conn: &Connection,
        dataset_id: &str,
    ) -> Result<Arc<RwLock<DatasetVectors>>, KnowledgeError> {
        let (ready, removal) = versions(conn, dataset_id)?
            .ok_or_else(|| KnowledgeError::DatasetNotFound(dataset_id.to_string()))?;
        let entry = self
            .datasets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(dataset_id.to_string())
            .or_default()
            .clone();
        let stale = {
            let current = entry
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            current.ready_version != ready || current.removal_version != removal
        };
        if stale {
            let mut current = entry
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Versions read again under the write lock: another search may have loaded them.
            let (ready, removal) = versions(conn, dataset_id)?.unwrap_or((ready, removal));
            if current.removal_version != removal || current.ready_version > ready {
                let mut fresh = DatasetVectors::default();
                load_rows(conn, dataset_id, None, ready, &mut fresh)?;
                fresh.ready_version = ready;
                fresh.removal_version = removal;
                *current = fresh;
            } else if current.ready_version < ready {
                let after = current.ready_version;
                load_rows(conn, dataset_id, Some(after), ready, &mut current)?;
                current.ready_version = ready;
            }
        }
        Ok(entry)
    }

    /// Forgets a dataset (after it was deleted).
    pub fn forget(&self, dataset_id: &str) {
        self.datasets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(dataset_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalised(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn quantised_dot_products_stay_close_to_the_real_cosine() {
        let a = normalised(&[0.3, -0.2, 0.9, 0.05, -0.4, 0.11, 0.6, -0.7]);
        let b = normalised(&[0.25, -0.1, 0.8, 0.2, -0.5, 0.0, 0.4, -0.6]);
        let exact: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let mut set = DatasetVectors::default();
        set.push(7, "d", &encode(&b));
        let hits = set.search(&a, 1, None);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].segment_id, 7);
        assert!(
            (hits[0].score - exact).abs() < 0.01,
            "{} vs {exact}",
            hits[0].score
        );
    }

    #[test]
    fn search_ranks_filters_and_cuts_at_top_k() {
        let mut set = DatasetVectors::default();
        set.push(1, "a", &encode(&normalised(&[1.0, 0.0, 0.0])));
        set.push(2, "b", &encode(&normalised(&[0.9, 0.1, 0.0])));
        set.push(3, "b", &encode(&normalised(&[0.0, 1.0, 0.0])));
        set.push(4, "c", &encode(&normalised(&[-1.0, 0.0, 0.0])));
        let q = normalised(&[1.0, 0.05, 0.0]);
        let ids: Vec<i64> = set
            .search(&q, 2, None)
            .iter()
            .map(|s| s.segment_id)
            .collect();
        assert_eq!(ids, [1, 2]);
        let only_b: HashSet<String> = ["b".to_string()].into();
        let ids: Vec<i64> = set
            .search(&q, 10, Some(&only_b))
            .iter()
            .map(|s| s.segment_id)
            .collect();
        assert_eq!(ids, [2, 3]);
        assert!(
            set.search(&[1.0, 0.0], 3, None).is_empty(),
            "wrong dimensions"
        );
        let listed: Vec<(i64, f32)> = set
            .search(&q, 4, None)
            .iter()
            .map(|s| (s.segment_id, s.score))
            .collect();
        let mut asked = set.scores_of(&q, &[4, 2, 99, 1, 3]);
        assert_eq!(asked.len(), 4, "an unknown segment has no score");
        asked.sort_by(|a, b| b.1.total_cmp(&a.1));
        assert_eq!(asked, listed, "the same scores as the search");
    }
}
