"""Retrieval quality on the python docs: hit@5 and MRR@5 for hybrid, vector-only and keyword-only search.

    .venv/bin/python bench/retrieval_quality.py --data-dir /tmp/rq-onnx
    .venv/bin/python bench/retrieval_quality.py --runtime onnx-int8 --data-dir /tmp/rq-int8 \
        --vector-weight 0.5,0.6,0.7

Two question sets (both by default): `questions/python_docs.jsonl` (46 questions; the hybrid fusion's vector
weight was chosen on it) and `questions/python_docs_heldout.jsonl` (40 questions,
written afterwards from the pages alone, never used to choose anything): a setting that only fits the
first set shows up as a drop on the second.

Drives the real app: `build_services(settings)`, `IngestService.ingest_paths` (only when the data dir holds
no documents yet; the whole corpus takes 20-30 minutes on an idle 2-core CPU) and `HybridRetriever.search`
in each mode, exactly what `ragchat eval FILE --mode all` does. A hit is a passage among the top k whose
source file name is in the question's `expected` list; MRR@k averages 1/rank of the first hit. Databases
left by `bench/ingest_speed.py --keep DIR` hold collection "bench", not "pydocs": pass
`--collection bench --data-dir DIR/<runtime>`.
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
QUESTION_SETS = [
    Path(__file__).parent / "questions" / "python_docs.jsonl",
    Path(__file__).parent / "questions" / "python_docs_heldout.jsonl",
]
COLLECTION = "pydocs"


async def measure(
    settings: Settings, question_files: list[Path], corpus: Path, collection: str, k: int
) -> list[dict[str, object]]:
    """One row per question set and search mode."""
    services = await build_services(settings)
    try:
        if not services.store.list_documents(collection):
            print(f"ingesting {corpus} into {settings.data_dir} ...", flush=True)
            report = await asyncio.to_thread(services.ingest.ingest_paths, [corpus], collection=collection)
            print(f"  {len(report.added)} documents, {report.chunk_count} chunks", flush=True)
        rows: list[dict[str, object]] = []
        for question_file in question_files:
            questions = read_questions(question_file)
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
                        "questions_file": question_file.name,
                        "runtime": settings.local_embedding_runtime,
                        "vector_weight": settings.hybrid_vector_weight if mode == "hybrid" else None,
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
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runtime", default="onnx", choices=["torch", "onnx", "onnx-int8"])
    parser.add_argument("--data-dir", type=Path, required=True, help="RAGCHAT_DATA_DIR to use (or fill)")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument(
        "--questions", type=Path, action="append", help="question file (repeatable; default: both sets)"
    )
    parser.add_argument("--collection", default=COLLECTION)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument(
        "--vector-weight",
        default="0.6",
        help="comma-separated RAGCHAT_HYBRID_VECTOR_WEIGHT values to compare",
    )
    args = parser.parse_args()

    rows: list[dict[str, object]] = []
    for weight in (float(value) for value in args.vector_weight.split(",")):
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            data_dir=args.data_dir,
            local_embedding_runtime=args.runtime,
            hybrid_vector_weight=weight,
        )
        measured = asyncio.run(
            measure(settings, args.questions or QUESTION_SETS, args.corpus, args.collection, args.k)
        )
        for row in measured:
            print(json.dumps(row), flush=True)
        first_weight = not rows  # vector-only and keyword-only do not depend on the weight: show them once
        rows += [row for row in measured if first_weight or row["mode"] == "hybrid"]
    print(f"\n| questions | runtime | mode | hit@{args.k} | MRR@{args.k} |\n|---|---|---|---:|---:|")
    for row in sorted(rows, key=lambda r: (str(r["questions_file"]), SEARCH_MODES.index(str(r["mode"])))):
        mode = f"hybrid, vector weight {row['vector_weight']}" if row["mode"] == "hybrid" else row["mode"]
        print(
            f"| {row['questions_file']} ({row['questions']}) | {row['runtime']} | {mode} "
            f"| {row[f'hit_at_{args.k}']:.3f} | {row[f'mrr_at_{args.k}']:.3f} |"
        )


if __name__ == "__main__":
    main()
