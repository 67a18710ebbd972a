//! The best `limit` scored segments of a search, kept while candidates stream by (a bounded
//! min-heap), so neither list ever holds every segment of a large knowledge base.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// A scored segment, ordered by score, then by the lower segment id (so ties rank the same way
/// every time).
#[derive(PartialEq)]
struct Ranked {
    score: f32,
    segment_id: i64,
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then(other.segment_id.cmp(&self.segment_id))
    }
}

/// The best `limit` segments offered so far.
pub struct TopK {
    limit: usize,
    heap: BinaryHeap<Reverse<Ranked>>,
}

impl TopK {
    pub fn new(limit: usize) -> TopK {
        TopK {
            limit,
            heap: BinaryHeap::with_capacity(limit + 1),
        }
    }

    /// The score a segment must beat to enter: the lowest one kept once `limit` are kept.
    pub fn threshold(&self) -> f32 {
        match self.heap.peek() {
            Some(Reverse(lowest)) if self.heap.len() >= self.limit => lowest.score,
            _ => f32::MIN,
        }
    }

    pub fn offer(&mut self, segment_id: i64, score: f32) {
        if self.limit == 0 {
            return;
        }
        self.heap.push(Reverse(Ranked { score, segment_id }));
        if self.heap.len() > self.limit {
            self.heap.pop();
        }
    }

    /// The kept segments with their scores, best first.
    pub fn into_sorted(self) -> Vec<(i64, f32)> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse(r)| (r.segment_id, r.score))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_best_in_order_with_ties_by_segment_id() {
        let mut top = TopK::new(3);
        assert_eq!(top.threshold(), f32::MIN);
        for (id, score) in [(1, 0.5), (2, 0.9), (3, 0.1), (4, 0.9), (5, 0.7), (6, 0.2)] {
            top.offer(id, score);
        }
        assert_eq!(top.threshold(), 0.7);
        assert_eq!(top.into_sorted(), [(2, 0.9), (4, 0.9), (5, 0.7)]);
        let mut none = TopK::new(0);
        none.offer(1, 1.0);
        assert!(none.into_sorted().is_empty());
    }
}
