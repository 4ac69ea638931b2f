//! nDCG@10 and Recall@100 as trec_eval's `ndcg_cut_10` and `recall_100` define them;
//! `eval/metrics.md` is the specification, `eval/metrics.py` the Python twin.

use std::collections::{BTreeMap, HashMap, HashSet};

/// Judged documents per query: document id -> grade (> 0 is relevant).
pub type Qrels = BTreeMap<String, HashMap<String, i32>>;

/// A ranked list of document ids per query, best first.
pub type Run = BTreeMap<String, Vec<String>>;

/// Mean metrics over the queries with at least one relevant judgement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    pub ndcg_at_10: f64,
    pub recall_at_100: f64,
    pub queries: usize,
}

pub fn ndcg_at(cutoff: usize, ranking: &[String], judged: &HashMap<String, i32>) -> f64 {
    let gain = |grade: i32| f64::from(grade.max(0));
    let discount = |rank: usize| ((rank + 1) as f64).log2();
    let mut seen = HashSet::new();
    let dcg: f64 = ranking
        .iter()
        .filter(|doc| seen.insert(doc.as_str()))
        .take(cutoff)
        .enumerate()
        .map(|(i, doc)| gain(judged.get(doc).copied().unwrap_or(0)) / discount(i + 1))
        .sum();
    let mut ideal: Vec<i32> = judged.values().copied().filter(|&g| g > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(cutoff)
        .enumerate()
        .map(|(i, &grade)| gain(grade) / discount(i + 1))
        .sum();
    if idcg == 0.0 { 0.0 } else { dcg / idcg }
}

pub fn recall_at(cutoff: usize, ranking: &[String], judged: &HashMap<String, i32>) -> f64 {
    let relevant: HashSet<&str> = judged
        .iter()
        .filter(|(_, grade)| **grade > 0)
        .map(|(doc, _)| doc.as_str())
        .collect();
    if relevant.is_empty() {
        return 0.0;
    }
    let mut seen = HashSet::new();
    let found = ranking
        .iter()
        .filter(|doc| seen.insert(doc.as_str()))
        .take(cutoff)
        .filter(|doc| relevant.contains(doc.as_str()))
        .count();
    found as f64 / relevant.len() as f64
}

pub fn evaluate(qrels: &Qrels, run: &Run) -> Scores {
    let mut ndcg = 0.0;
    let mut recall = 0.0;
    let mut queries = 0;
    for (query, judged) in qrels {
        if !judged.values().any(|&grade| grade > 0) {
            continue;
        }
        let ranking = run.get(query).map(Vec::as_slice).unwrap_or(&[]);
        ndcg += ndcg_at(10, ranking, judged);
        recall += recall_at(100, ranking, judged);
        queries += 1;
    }
    let mean = |sum: f64| {
        if queries == 0 {
            0.0
        } else {
            sum / queries as f64
        }
    };
    Scores {
        ndcg_at_10: mean(ndcg),
        recall_at_100: mean(recall),
        queries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// The worked example of `eval/metrics.md`.
    #[test]
    fn the_worked_example_of_metrics_md() {
        let mut qrels = Qrels::new();
        qrels.insert(
            "q1".into(),
            [("d1", 2), ("d2", 1), ("d3", 0), ("d4", 1), ("d5", 3)]
                .into_iter()
                .map(|(d, g)| (d.to_string(), g))
                .collect(),
        );
        qrels.insert("q2".into(), [("d1".to_string(), 0)].into());
        qrels.insert("q3".into(), [("d9".to_string(), 1)].into());
        let mut run = Run::new();
        run.insert(
            "q1".into(),
            ids(&[
                "d2", "d3", "d1", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "d4",
            ]),
        );
        run.insert("q2".into(), ids(&["d1", "d2"]));
        run.insert("q3".into(), ids(&["d1", "d2", "d3"]));

        let q1 = &qrels["q1"];
        assert!((ndcg_at(10, &run["q1"], q1) - 0.3851682443570442).abs() < 1e-12);
        assert_eq!(recall_at(100, &run["q1"], q1), 0.75);
        let scores = evaluate(&qrels, &run);
        assert_eq!(scores.queries, 2);
        assert!((scores.ndcg_at_10 - 0.1925841221785221).abs() < 1e-12);
        assert!((scores.recall_at_100 - 0.375).abs() < 1e-12);
    }

    #[test]
    fn the_ideal_ranking_scores_one_and_rank_eleven_adds_nothing() {
        let judged: HashMap<String, i32> = [("a".to_string(), 2), ("b".to_string(), 1)].into();
        assert!((ndcg_at(10, &ids(&["a", "b"]), &judged) - 1.0).abs() < 1e-12);
        let late: Vec<String> = (0..10)
            .map(|i| format!("x{i}"))
            .chain(["a".to_string()])
            .collect();
        assert_eq!(ndcg_at(10, &late, &judged), 0.0);
        assert_eq!(recall_at(100, &late, &judged), 0.5);
    }

    #[test]
    fn a_repeated_document_counts_once() {
        let judged: HashMap<String, i32> = [("a".to_string(), 1)].into();
        let once = ndcg_at(10, &ids(&["x", "a"]), &judged);
        assert_eq!(ndcg_at(10, &ids(&["x", "x", "a"]), &judged), once);
    }
}
