"""nDCG@k and Recall@k as trec_eval / pytrec_eval define them (see metrics.md).

A run is, per query, a ranked list of document ids (best first). Metrics
read that list in the order given; `trec_eval_order` re-sorts scored hits the
way trec_eval does (score descending, ties by document id descending) for
runs that should be compared with pytrec_eval number for number.

Usage as a script:  python metrics.py QRELS_TSV RUN_FILE
  QRELS_TSV  BEIR qrels (header `query-id<TAB>corpus-id<TAB>score`)
  RUN_FILE   TREC run (`qid Q0 docid rank score tag`), ranked by its rank column
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence

Qrels = dict[str, dict[str, int]]
Run = dict[str, list[str]]


def load_qrels(path: str) -> Qrels:
    """Read BEIR qrels; a later line for the same (query, doc) pair wins, as in BEIR's loader."""
    qrels: Qrels = {}
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if header[:3] != ["query-id", "corpus-id", "score"]:
            raise ValueError(f"{path}: expected BEIR qrels header, got {header!r}")
        for line_no, line in enumerate(f, start=2):
            if not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 3:
                raise ValueError(f"{path}:{line_no}: expected 3 tab-separated fields")
            qid, docid, grade = fields
            qrels.setdefault(qid, {})[docid] = int(grade)
    return qrels


def load_trec_run(path: str) -> Run:
    """Read a TREC run file, ordering each query's hits by the rank column."""
    hits: dict[str, list[tuple[int, str]]] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 6:
                raise ValueError(f"{path}:{line_no}: expected `qid Q0 docid rank score tag`")
            qid, _, docid, rank, _, _ = fields
            hits.setdefault(qid, []).append((int(rank), docid))
    return {qid: [docid for _, docid in sorted(ranked)] for qid, ranked in hits.items()}


def trec_eval_order(scored: Sequence[tuple[str, float]]) -> list[str]:
    """Order hits as trec_eval does: score descending, then document id descending (string order)."""
    return [docid for docid, _ in sorted(scored, key=lambda hit: (hit[1], hit[0]), reverse=True)]


def relevant_count(judgements: Mapping[str, int]) -> int:
    return sum(1 for grade in judgements.values() if grade > 0)


def ndcg_at_k(ranking: Sequence[str], judgements: Mapping[str, int], k: int = 10) -> float:
    """Graded nDCG@k: gain = grade (<= 0 counts as 0), discount log2(rank + 1), rank from 1.

    The ideal DCG ranks every judged document with grade > 0, retrieved or not.
    A document listed twice counts once, at its first rank (pytrec_eval's dict input
    cannot hold duplicates at all).
    """
    ideal = sorted((g for g in judgements.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal, start=1))
    if idcg == 0.0:
        return 0.0
    dcg = 0.0
    for rank, docid in enumerate(dedup(ranking)[:k], start=1):
        grade = judgements.get(docid, 0)
        if grade > 0:
            dcg += grade / math.log2(rank + 1)
    return dcg / idcg


def recall_at_k(ranking: Sequence[str], judgements: Mapping[str, int], k: int = 100) -> float:
    """Relevant (grade > 0) documents in the top k divided by all relevant documents."""
    total = relevant_count(judgements)
    if total == 0:
        return 0.0
    found = sum(1 for docid in dedup(ranking)[:k] if judgements.get(docid, 0) > 0)
    return found / total


def dedup(ranking: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ranking))


def evaluate(run: Mapping[str, Sequence[str]], qrels: Qrels) -> dict:
    """Mean nDCG@10 and Recall@100 over queries with at least one relevant judgement.

    A judged query missing from the run scores 0 on both (pytrec_eval would skip it;
    with a run that answers every query the two agree).
    """
    evaluated = [qid for qid, judgements in qrels.items() if relevant_count(judgements) > 0]
    if not evaluated:
        raise ValueError("qrels hold no query with a relevant document")
    per_query = {
        qid: {
            "ndcg@10": ndcg_at_k(run.get(qid, []), qrels[qid], 10),
            "recall@100": recall_at_k(run.get(qid, []), qrels[qid], 100),
        }
        for qid in evaluated
    }
    n = len(per_query)
    return {
        "ndcg@10": sum(m["ndcg@10"] for m in per_query.values()) / n,
        "recall@100": sum(m["recall@100"] for m in per_query.values()) / n,
        "queries": n,
        "queries_missing_from_run": sum(1 for qid in evaluated if qid not in run),
        "per_query": per_query,
    }


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    result = evaluate(load_trec_run(sys.argv[2]), load_qrels(sys.argv[1]))
    result.pop("per_query")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
