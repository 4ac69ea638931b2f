"""Specification of metrics.py; the worked example is the one in metrics.md.

Run: python -m unittest discover -s eval   (standard library only)
"""

import math
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import metrics  # noqa: E402

QRELS = {
    "q1": {"d1": 2, "d2": 1, "d3": 0, "d4": 1, "d5": 3},
    "q2": {"d1": 0},
    "q3": {"d9": 1},
}
RUN = {
    "q1": ["d2", "d3", "d1", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "d4"],
    "q2": ["d1", "d2"],
    "q3": ["d1", "d2", "d3"],
}


class WorkedExample(unittest.TestCase):
    def test_ndcg_of_q1_matches_hand_computation(self):
        dcg = 1 / math.log2(2) + 2 / math.log2(4)  # d2 at rank 1, d1 at rank 3
        idcg = 3 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4) + 1 / math.log2(5)
        self.assertAlmostEqual(metrics.ndcg_at_k(RUN["q1"], QRELS["q1"], 10), dcg / idcg, places=12)
        self.assertAlmostEqual(metrics.ndcg_at_k(RUN["q1"], QRELS["q1"], 10), 0.3851682443570442, places=12)

    def test_recall_of_q1_counts_relevant_found_in_top_100(self):
        self.assertEqual(metrics.recall_at_k(RUN["q1"], QRELS["q1"], 100), 0.75)

    def test_means_skip_queries_without_relevant_documents(self):
        result = metrics.evaluate(RUN, QRELS)
        self.assertEqual(result["queries"], 2)
        self.assertNotIn("q2", result["per_query"])
        self.assertAlmostEqual(result["ndcg@10"], 0.3851682443570442 / 2, places=12)
        self.assertEqual(result["recall@100"], 0.375)


class Definitions(unittest.TestCase):
    def test_ideal_ranking_scores_one(self):
        self.assertAlmostEqual(metrics.ndcg_at_k(["d5", "d1", "d2", "d4"], QRELS["q1"], 10), 1.0, places=12)

    def test_relevant_document_below_cutoff_adds_no_gain(self):
        self.assertEqual(metrics.ndcg_at_k([f"x{i}" for i in range(10)] + ["d9"], QRELS["q3"], 10), 0.0)
        self.assertEqual(metrics.recall_at_k([f"x{i}" for i in range(100)] + ["d9"], QRELS["q3"], 100), 0.0)

    def test_non_positive_grades_are_not_relevant(self):
        self.assertEqual(metrics.relevant_count({"a": 0, "b": -1, "c": 2}), 1)
        self.assertEqual(metrics.ndcg_at_k(["a", "b", "c"], {"a": 0, "b": -1, "c": 2}, 10), 1 / math.log2(4))

    def test_repeated_document_counts_once_at_first_rank(self):
        self.assertEqual(metrics.recall_at_k(["d9", "d9"], {"d9": 1, "d8": 1}, 100), 0.5)
        self.assertEqual(metrics.ndcg_at_k(["x", "d9", "d9"], {"d9": 1}, 10), 1 / math.log2(3))

    def test_query_missing_from_run_scores_zero(self):
        result = metrics.evaluate({"q1": RUN["q1"]}, QRELS)
        self.assertEqual(result["queries_missing_from_run"], 1)
        self.assertEqual(result["per_query"]["q3"], {"ndcg@10": 0.0, "recall@100": 0.0})

    def test_trec_eval_order_breaks_score_ties_by_descending_doc_id(self):
        self.assertEqual(metrics.trec_eval_order([("a", 1.0), ("c", 2.0), ("b", 1.0)]), ["c", "b", "a"])


class Files(unittest.TestCase):
    def test_qrels_and_trec_run_round_trip(self):
        with tempfile.TemporaryDirectory() as tmp:
            qrels_path = os.path.join(tmp, "test.tsv")
            with open(qrels_path, "w") as f:
                f.write("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\n")
            run_path = os.path.join(tmp, "run.trec")
            with open(run_path, "w") as f:
                f.write("q1 Q0 d2 1 9.5 t\nq1 Q0 d1 2 3.0 t\n")
            self.assertEqual(metrics.load_qrels(qrels_path), {"q1": {"d1": 2, "d2": 0}})
            self.assertEqual(metrics.load_trec_run(run_path), {"q1": ["d2", "d1"]})

    def test_qrels_without_beir_header_are_rejected(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "bad.tsv")
            with open(path, "w") as f:
                f.write("q1\td1\t1\n")
            with self.assertRaises(ValueError):
                metrics.load_qrels(path)


if __name__ == "__main__":
    unittest.main()
