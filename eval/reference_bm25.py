#!/usr/bin/env python3
"""Reference BM25 runs on a BEIR-format collection: bm25s and rank_bm25.

Both systems see the same text and the same tokens, so the gap between them
(and between them and chatgate) is the scoring function, not the analysis:
  document text = title + " " + text        (as BEIR and bm25s's BEIR example do)
  tokens        = bm25s.tokenize(..., stopwords="en", stemmer=PyStemmer english):
                  lowercase, regex (?u)\\b\\w\\w+\\b, drop bm25s's 33 English
                  stopwords (Lucene's classic list), Snowball English stem
  bm25s         method="lucene", k1=1.2, b=0.75 (bm25s's examples/evaluate_on_beir.py;
                  the library default k1 is 1.5: pass --k1 1.5 for that)
  rank_bm25     BM25Okapi with the same k1/b and its default epsilon=0.25

Usage: reference_bm25.py DATA_DIR [--split test] [--k1 1.2] [--b 0.75]
           [--top-k 100] [--out-dir DIR] [--systems bm25s,rank_bm25] [--pytrec-check]
Writes DIR/<system>.json (metrics + parameters) and DIR/<system>.trec (TREC run);
DIR defaults to DATA_DIR/runs.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import metrics  # noqa: E402

STOPWORDS = "en"
STEMMER_LANGUAGE = "english"
TOKEN_PATTERN = r"(?u)\b\w\w+\b"


def load_beir(data_dir: str, split: str):
    corpus_ids, corpus_texts = [], []
    with open(os.path.join(data_dir, "corpus.jsonl"), encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            corpus_ids.append(str(doc["_id"]))
            corpus_texts.append(doc.get("title", "") + " " + doc.get("text", ""))
    qrels = metrics.load_qrels(os.path.join(data_dir, "qrels", f"{split}.tsv"))
    queries = {}
    with open(os.path.join(data_dir, "queries.jsonl"), encoding="utf-8") as f:
        for line in f:
            query = json.loads(line)
            if str(query["_id"]) in qrels:
                queries[str(query["_id"])] = query["text"]
    missing = set(qrels) - set(queries)
    if missing:
        raise ValueError(f"{len(missing)} judged queries have no text, e.g. {sorted(missing)[:3]}")
    return corpus_ids, corpus_texts, queries, qrels


def tokenize(texts: list[str]) -> list[list[str]]:
    import bm25s
    import Stemmer

    return bm25s.tokenize(
        texts,
        lower=True,
        token_pattern=TOKEN_PATTERN,
        stopwords=STOPWORDS,
        stemmer=Stemmer.Stemmer(STEMMER_LANGUAGE),
        return_ids=False,
        show_progress=False,
    )


def run_bm25s(corpus_tokens, query_tokens, k1, b, top_k):
    import bm25s

    start = time.perf_counter()
    model = bm25s.BM25(method="lucene", k1=k1, b=b)
    model.index(corpus_tokens, show_progress=False)
    indexed = time.perf_counter()
    docs, scores = model.retrieve(query_tokens, k=top_k, show_progress=False, n_threads=1)
    retrieved = time.perf_counter()
    hits = [list(zip(doc_row.tolist(), score_row.tolist())) for doc_row, score_row in zip(docs, scores)]
    return hits, indexed - start, retrieved - indexed, {"method": "lucene"}


def run_rank_bm25(corpus_tokens, query_tokens, k1, b, top_k):
    from rank_bm25 import BM25Okapi

    start = time.perf_counter()
    model = BM25Okapi(corpus_tokens, k1=k1, b=b)
    indexed = time.perf_counter()
    hits = []
    for tokens in query_tokens:
        scores = model.get_scores(tokens)
        # stable sort: equal scores keep corpus order
        best = np.argsort(-scores, kind="stable")[:top_k]
        hits.append([(int(i), float(scores[i])) for i in best])
    retrieved = time.perf_counter()
    return hits, indexed - start, retrieved - indexed, {"method": "okapi", "epsilon": model.epsilon}


SYSTEMS = {"bm25s": run_bm25s, "rank_bm25": run_rank_bm25}
PACKAGES = {"bm25s": "bm25s", "rank_bm25": "rank-bm25"}


def write_trec(path: str, run: dict[str, list[tuple[str, float]]], tag: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for qid, scored in run.items():
            for rank, (docid, score) in enumerate(scored, start=1):
                f.write(f"{qid} Q0 {docid} {rank} {score:.6f} {tag}\n")


def pytrec_check(run: dict[str, list[tuple[str, float]]], qrels: metrics.Qrels) -> dict | None:
    try:
        import pytrec_eval
    except ImportError:
        return None
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10", "recall_100"})
    per_query = evaluator.evaluate({qid: {d: float(s) for d, s in scored} for qid, scored in run.items()})
    n = len(per_query)
    # pytrec_eval breaks score ties by doc id; compare on the same order to isolate formula differences
    ours = metrics.evaluate({qid: metrics.trec_eval_order(scored) for qid, scored in run.items()}, qrels)
    result = {
        "package": f"pytrec_eval-terrier {importlib.metadata.version('pytrec-eval-terrier')}",
        "ndcg@10": sum(q["ndcg_cut_10"] for q in per_query.values()) / n,
        "recall@100": sum(q["recall_100"] for q in per_query.values()) / n,
        "queries": n,
        "ours_on_trec_order_ndcg@10": ours["ndcg@10"],
        "ours_on_trec_order_recall@100": ours["recall@100"],
    }
    result["max_abs_diff"] = max(
        abs(result["ndcg@10"] - ours["ndcg@10"]), abs(result["recall@100"] - ours["recall@100"])
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir")
    parser.add_argument("--split", default="test")
    parser.add_argument("--k1", type=float, default=1.2)
    parser.add_argument("--b", type=float, default=0.75)
    parser.add_argument("--top-k", type=int, default=100)
    parser.add_argument("--out-dir")
    parser.add_argument("--systems", default="bm25s,rank_bm25")
    parser.add_argument("--pytrec-check", action="store_true", help="cross-check metrics with pytrec_eval")
    args = parser.parse_args()

    out_dir = args.out_dir or os.path.join(args.data_dir, "runs")
    os.makedirs(out_dir, exist_ok=True)
    dataset = os.path.basename(os.path.normpath(args.data_dir))

    start = time.perf_counter()
    corpus_ids, corpus_texts, queries, qrels = load_beir(args.data_dir, args.split)
    qids = list(queries)
    corpus_tokens = tokenize(corpus_texts)
    query_tokens = tokenize([queries[q] for q in qids])
    tokenize_seconds = time.perf_counter() - start

    for system in args.systems.split(","):
        hits, index_seconds, retrieve_seconds, extra = SYSTEMS[system](
            corpus_tokens, query_tokens, args.k1, args.b, args.top_k
        )
        run = {qid: [(corpus_ids[i], score) for i, score in row] for qid, row in zip(qids, hits)}
        scores = metrics.evaluate({qid: [d for d, _ in scored] for qid, scored in run.items()}, qrels)
        report = {
            "system": system,
            "version": importlib.metadata.version(PACKAGES[system]),
            "dataset": dataset,
            "split": args.split,
            "ndcg@10": round(scores["ndcg@10"], 6),
            "recall@100": round(scores["recall@100"], 6),
            "queries": scores["queries"],
            "documents": len(corpus_ids),
            "k1": args.k1,
            "b": args.b,
            **extra,
            "top_k": args.top_k,
            "text": 'title + " " + text',
            "tokenizer": {
                "lower": True,
                "token_pattern": TOKEN_PATTERN,
                "stopwords": "bm25s " + STOPWORDS,
                "stemmer": f"PyStemmer {importlib.metadata.version('PyStemmer')} {STEMMER_LANGUAGE}",
            },
            "seconds": {
                "load_and_tokenize": round(tokenize_seconds, 3),
                "index": round(index_seconds, 3),
                "retrieve": round(retrieve_seconds, 3),
            },
        }
        if args.pytrec_check:
            report["pytrec_eval"] = pytrec_check(run, qrels)
        write_trec(os.path.join(out_dir, f"{system}.trec"), run, system)
        with open(os.path.join(out_dir, f"{system}.json"), "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
        print(json.dumps(report))


if __name__ == "__main__":
    main()
