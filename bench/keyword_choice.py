"""Keyword search for the PostgreSQL store: PostgreSQL full-text search against the tantivy index built
from the database, on the same database, both question sets (keyword-only hit@5, MRR@5, latency).

    RAGCHAT_DATABASE_URL=... ragchat migrate --to postgresql://...   # the pydocs data dir, copied
    .venv/bin/python bench/keyword_choice.py --database-url postgresql://...pydocs

Full-text search as it would ship: one GIN index over `setweight(to_tsvector('english', heading), 'B') ||
setweight(to_tsvector('english', text), 'A')` (heading words count 0.4 of text words, like tantivy's 0.5
boost), the question's words OR-ed into a `tsquery`, ranked by `ts_rank_cd`. tantivy: the store's own
`keyword_search` (BM25, built from the database on first use; that build time is printed too).
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text

from ragchat.cli.corpus import read_questions, score_ranking
from ragchat.infra.store.postgres import PostgresChunkStore

QUESTION_SETS = [
    Path(__file__).parent / "questions" / "python_docs.jsonl",
    Path(__file__).parent / "questions" / "python_docs_heldout.jsonl",
]
_DOCUMENT = "setweight(to_tsvector('english', heading), 'B') || setweight(to_tsvector('english', text), 'A')"
_FTS = text(
    f"SELECT id FROM chunks WHERE collection = :collection AND ({_DOCUMENT}) @@ to_tsquery('english', :query)"
    f" ORDER BY ts_rank_cd({_DOCUMENT}, to_tsquery('english', :query)) DESC LIMIT :k"
)


def fulltext(store: PostgresChunkStore, collection: str) -> Callable[[str, int], list[str]]:
    with store.engine.begin() as conn:
        start = time.perf_counter()
        conn.execute(text(f"CREATE INDEX IF NOT EXISTS chunks_fts ON chunks USING gin (({_DOCUMENT}))"))
        print(f"GIN index: {time.perf_counter() - start:.1f} s")

    def search(query: str, k: int) -> list[str]:
        words = re.findall(r"\w+", query.lower())
        if not words:
            return []
        with store.engine.connect() as conn:
            rows = conn.execute(_FTS, {"collection": collection, "query": " | ".join(words), "k": k})
            return [str(row[0]) for row in rows]

    return search


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--collection", default="pydocs")
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()
    store = PostgresChunkStore(args.database_url)
    try:
        start = time.perf_counter()
        store.prepare_search(args.collection)
        print(f"tantivy index built from the database: {time.perf_counter() - start:.1f} s")
        engines: dict[str, Callable[[str, int], list[str]]] = {
            "tantivy (BM25)": lambda query, k: [
                cid for cid, _ in store.keyword_search(args.collection, query, k)
            ],
            "PostgreSQL FTS (ts_rank_cd)": fulltext(store, args.collection),
        }
        print(f"\n| engine | questions | hit@{args.k} | MRR@{args.k} | p50 ms | p95 ms |")
        print("|---|---|---:|---:|---:|---:|")
        for name, search in engines.items():
            for question_file in QUESTION_SETS:
                questions = read_questions(question_file)
                retrieved, latencies = [], []
                for question in questions:
                    begin = time.perf_counter()
                    ids = search(question.query, args.k)
                    latencies.append((time.perf_counter() - begin) * 1000)
                    retrieved.append([Path(p.document_path).name for p in store.get_passages(ids)])
                score = score_ranking(retrieved, questions, "keyword", args.k)
                p95 = statistics.quantiles(latencies, n=20)[18]
                print(
                    f"| {name} | {question_file.name} ({score.questions}) | {score.hit_at_k:.3f} "
                    f"| {score.mrr:.3f} | {statistics.median(latencies):.1f} | {p95:.1f} |"
                )
    finally:
        store.close()


if __name__ == "__main__":
    main()
