"""bm25s on a BEIR dataset directory, scored as connector-bench scores the connector.

Usage: python bm25s_baseline.py DATASET_DIR  ->  prints {"ndcg_at_10": ..., "recall_at_100": ...}

bm25s with its defaults (Lucene variant, k1 1.5, b 0.75), English stop words and the
Snowball English stemmer (PyStemmer); a document is its title and text. As BEIR evaluates:
a retrieved document whose id is the query's own is dropped, nDCG@10 with linear gains.
"""

import json
import math
import sys
from pathlib import Path

import bm25s
import Stemmer


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    root = Path(sys.argv[1])
    corpus = read_jsonl(root / "corpus.jsonl")
    qrels = {}
    with open(root / "qrels" / "test.tsv", encoding="utf-8") as f:
        next(f)
        for line in f:
            fields = line.strip().split("\t")
            if len(fields) >= 3:
                qrels.setdefault(fields[0], {})[fields[1]] = int(fields[2])
    queries = [q for q in read_jsonl(root / "queries.jsonl") if q["_id"] in qrels]

    stemmer = Stemmer.Stemmer("english")
    ids = [d["_id"] for d in corpus]
    texts = [(d.get("title") or "") + " " + (d.get("text") or "") for d in corpus]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    tokens = bm25s.tokenize([q["text"] for q in queries], stopwords="en", stemmer=stemmer, show_progress=False)
    k = min(101, len(ids))
    results, _ = retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)

    ndcg = recall = 0.0
    for q, row in zip(queries, results):
        ranked = [ids[i] for i in row if ids[i] != q["_id"]]
        judged = qrels[q["_id"]]
        dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
        ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:10]
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
        ndcg += dcg / idcg if idcg else 0.0
        relevant = {d for d, g in judged.items() if g > 0}
        recall += len(relevant.intersection(ranked[:100])) / len(relevant) if relevant else 0.0
    n = len(queries)
    print(json.dumps({"ndcg_at_10": ndcg / n, "recall_at_100": recall / n, "queries": n,
                      "bm25s": bm25s.__version__}))


if __name__ == "__main__":
    main()
