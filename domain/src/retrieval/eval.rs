//! Ranking metrics as BEIR computes them (binary or graded relevance, linear
//! gain, log2 discount).

use std::collections::HashMap;

/// nDCG@k of `ranked` document ids against graded judgments.
pub fn ndcg_at(ranked: &[String], judged: &HashMap<String, u32>, k: usize) -> f64 {
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, id)| judged.get(id).copied().unwrap_or(0) as f64 / (i as f64 + 2.0).log2())
        .sum();
    let mut ideal: Vec<u32> = judged.values().copied().filter(|r| *r > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, r)| *r as f64 / (i as f64 + 2.0).log2())
        .sum();
    if idcg == 0.0 { 0.0 } else { dcg / idcg }
}

/// Share of the relevant documents found in the first `k`.
pub fn recall_at(ranked: &[String], judged: &HashMap<String, u32>, k: usize) -> f64 {
    let relevant = judged.values().filter(|r| **r > 0).count();
    if relevant == 0 {
        return 0.0;
    }
    let found = ranked
        .iter()
        .take(k)
        .filter(|id| judged.get(*id).is_some_and(|r| *r > 0))
        .count();
    found as f64 / relevant as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn perfect_and_partial_rankings() {
        let judged: HashMap<String, u32> = [("a".to_string(), 1), ("b".to_string(), 1)].into();
        assert!((ndcg_at(&ids(&["a", "b", "c"]), &judged, 10) - 1.0).abs() < 1e-12);
        // Relevant at ranks 2 and 3: (1/log2 3 + 1/log2 4) / (1 + 1/log2 3).
        let expected = (1.0 / 3f64.log2() + 0.5) / (1.0 + 1.0 / 3f64.log2());
        assert!((ndcg_at(&ids(&["c", "a", "b"]), &judged, 10) - expected).abs() < 1e-12);
        assert_eq!(ndcg_at(&ids(&["c", "a", "b"]), &judged, 1), 0.0);
        assert_eq!(recall_at(&ids(&["c", "a"]), &judged, 10), 0.5);
        assert_eq!(recall_at(&ids(&["c", "a", "b"]), &judged, 2), 0.5);
    }
}
