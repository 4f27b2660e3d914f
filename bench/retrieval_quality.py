"""Retrieval quality on the python docs: hit@5 and MRR@5 for hybrid, vector-only and keyword-only search.

    .venv/bin/python bench/retrieval_quality.py --runtime torch --data-dir /tmp/rq-torch
    .venv/bin/python bench/retrieval_quality.py --runtime onnx-int8 --data-dir /tmp/rq-int8 --rrf-k 60,20,10

Drives the real app: `build_services(settings)`, `IngestService.ingest_paths` (only when the data dir holds
no documents yet; the whole corpus takes about an hour on an idle 2-core CPU with torch) and
`HybridRetriever.search` in each mode, exactly what `ragchat eval FILE --mode all` does. A hit is a passage
among the top k whose source file name is in the question's `expected` list; MRR@k averages 1/rank of the
first hit. Databases left by `bench/ingest_speed.py --keep DIR` hold collection "bench", not "pydocs":
ingest here instead, or pass `--collection bench --data-dir DIR/<runtime>`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from ragchat.cli.corpus import read_questions, score_ranking
from ragchat.config import Settings
from ragchat.container import build_services
from ragchat.core.retrieve import SEARCH_MODES

CORPUS = Path("/usr/share/doc/python3.11/html")
QUESTIONS = Path(__file__).parent / "questions" / "python_docs.jsonl"
COLLECTION = "pydocs"


async def measure(
    settings: Settings, questions_file: Path, corpus: Path, collection: str, k: int
) -> list[dict[str, object]]:
    questions = read_questions(questions_file)
    services = await build_services(settings)
    try:
        if not services.store.list_documents(collection):
            print(f"ingesting {corpus} into {settings.data_dir} ...", flush=True)
            report = await asyncio.to_thread(services.ingest.ingest_paths, [corpus], collection=collection)
            print(f"  {len(report.added)} documents, {report.chunk_count} chunks", flush=True)
        rows: list[dict[str, object]] = []
        for mode in SEARCH_MODES:
            retrieved = []
            for question in questions:
                passages = await services.retriever.search(
                    question.query, collection=collection, k=k, mode=mode
                )
                retrieved.append([Path(passage.document_path).name for passage in passages])
            score = score_ranking(retrieved, questions, mode, k)
            rows.append(
                {
                    "runtime": settings.local_embedding_runtime,
                    "rrf_k": settings.rrf_k,
                    "mode": mode,
                    "questions": score.questions,
                    f"hit_at_{k}": round(score.hit_at_k, 3),
                    f"mrr_at_{k}": round(score.mrr, 3),
                }
            )
        return rows
    finally:
        await services.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtime", default="torch", choices=["torch", "onnx", "onnx-int8"])
    parser.add_argument("--data-dir", type=Path, required=True, help="RAGCHAT_DATA_DIR to use (or fill)")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    parser.add_argument("--collection", default=COLLECTION)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--rrf-k", default="60", help="comma-separated RAGCHAT_RRF_K values to compare")
    args = parser.parse_args()

    for rrf_k in (int(value) for value in args.rrf_k.split(",")):
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, data_dir=args.data_dir, local_embedding_runtime=args.runtime, rrf_k=rrf_k
        )
        for row in asyncio.run(measure(settings, args.questions, args.corpus, args.collection, args.k)):
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
