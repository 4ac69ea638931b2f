#!/usr/bin/env python3
"""Convert a CSV export of the original SciFact release into BEIR's layout.

Only needed where the BEIR zip itself cannot be downloaded (see README.md):
some mirrors carry SciFact as `scifact.zip` with `corpus_train.csv`
(doc_id,title,abstract,structured; `abstract` is a numpy array repr of the
sentence list) and `claims_{train,validation,test}.csv`
(id,claim,evidence_doc_id,evidence_label,evidence_sentences,cited_doc_ids;
one row per evidence entry).

BEIR's SciFact is derived from the same release:
  corpus   _id = doc_id, title = title.strip(),
           text = " ".join(sentence.strip() for sentence in abstract)
  queries  _id = claim id, text = claim (train + validation claims)
  qrels    test = validation claims x cited_doc_ids, train = train claims
           x cited_doc_ids, all with score 1
so the output matches BEIR's files row for row (verified on this machine
against copies of BEIR's qrels/queries; see /work/eval-data/scifact/SOURCE.md).

Usage: scifact_csv_to_beir.py SCIFACT_ZIP OUT_DIR
"""

import ast
import csv
import io
import json
import os
import sys
import tokenize
import zipfile

csv.field_size_limit(1 << 30)


def parse_numpy_string_array(literal: str) -> list[str]:
    """Parse numpy's repr of a 1-d str array: `['a' "b's" ...]`.

    numpy writes each element with Python's repr, separated by whitespace
    instead of commas, so Python's own tokenizer finds every element.
    """
    literal = literal.strip()
    if not (literal.startswith("[") and literal.endswith("]")):
        raise ValueError(f"not an array literal: {literal[:60]!r}")
    # Anything but string literals (e.g. numpy's "..." elision of huge
    # arrays) would silently lose text, so it is an error below.
    tokens = tokenize.generate_tokens(io.StringIO(literal[1:-1]).readline)
    parts = []
    for tok in tokens:
        if tok.type == tokenize.STRING:
            parts.append(ast.literal_eval(tok.string))
        elif tok.type in (tokenize.NL, tokenize.NEWLINE, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT):
            continue
        else:
            raise ValueError(f"unexpected token {tok.string!r} in array literal")
    return parts


def parse_id_list(literal: str) -> list[str]:
    """Parse numpy's repr of an int array: `[ 5152028 11705328]`.

    Duplicates are dropped keeping first-seen order: claim 1245 cites the
    same document twice, and BEIR's qrels (a dict) hold it once.
    """
    inner = literal.strip().removeprefix("[").removesuffix("]")
    return list(dict.fromkeys(inner.split()))


def read_csv(archive: zipfile.ZipFile, name: str) -> list[dict]:
    with archive.open(name) as raw:
        return list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline="")))


def claims(rows: list[dict]) -> dict[str, tuple[str, list[str]]]:
    """One entry per claim id (rows repeat per evidence entry)."""
    out: dict[str, tuple[str, list[str]]] = {}
    for row in rows:
        entry = (row["claim"], parse_id_list(row["cited_doc_ids"]))
        previous = out.setdefault(row["id"], entry)
        if previous != entry:
            raise ValueError(f"claim {row['id']} has conflicting rows")
    return out


def write_qrels(path: str, claim_map: dict[str, tuple[str, list[str]]]) -> int:
    rows = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid, (_, doc_ids) in claim_map.items():
            for doc_id in doc_ids:
                f.write(f"{qid}\t{doc_id}\t1\n")
                rows += 1
    return rows


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    zip_path, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(os.path.join(out_dir, "qrels"), exist_ok=True)
    with zipfile.ZipFile(zip_path) as archive:
        corpus_rows = read_csv(archive, "corpus_train.csv")
        train = claims(read_csv(archive, "claims_train.csv"))
        test = claims(read_csv(archive, "claims_validation.csv"))

    with open(os.path.join(out_dir, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for row in corpus_rows:
            # BEIR strips each sentence (some end in "   \n") and the title;
            # with that the output has exactly BEIR's corpus.jsonl length.
            text = " ".join(s.strip() for s in parse_numpy_string_array(row["abstract"]))
            doc = {"_id": row["doc_id"], "title": row["title"].strip(), "text": text}
            f.write(json.dumps(doc, ensure_ascii=False) + "\n")

    # BEIR lists queries sorted by numeric id across both splits.
    all_claims = {**train, **test}
    with open(os.path.join(out_dir, "queries.jsonl"), "w", encoding="utf-8") as f:
        for qid in sorted(all_claims, key=int):
            f.write(json.dumps({"_id": qid, "text": all_claims[qid][0]}, ensure_ascii=False) + "\n")

    n_test = write_qrels(os.path.join(out_dir, "qrels", "test.tsv"), test)
    n_train = write_qrels(os.path.join(out_dir, "qrels", "train.tsv"), train)
    print(
        f"corpus={len(corpus_rows)} queries={len(all_claims)} "
        f"test_queries={len(test)} test_qrels={n_test} train_queries={len(train)} train_qrels={n_train}"
    )


if __name__ == "__main__":
    main()
