"""How hybrid search's fusion was chosen: replay fusion functions on the same candidate lists, both sets.

    .venv/bin/python bench/fusion_replay.py --data-dir /tmp/rq/full/torch --collection bench

For every question of both sets (`questions/python_docs.jsonl`, on which the fusion was chosen, and
`questions/python_docs_heldout.jsonl`, written afterwards and used to choose nothing), the real store's
top-40 keyword list and top-40 vector list (the configured embedding
runtime) are taken once; then each fusion is scored on them, hit@5 / MRR@5 per set:
- vector only and keyword only;
- reciprocal rank fusion (the first version of ragchat) at k 5, 10, 20, 60 with the keyword list weighted
  1.0, 0.7, 0.5, 0.3;
- convex combinations of min-max-normalised scores (ragchat's fusion until 2026-11-26) with vector weight
  0.5 to 0.9;
- ragchat's convex combination of standardised scores (`ragchat.core.retrieve.convex_fusion`), vector
  weight 0.5 to 0.9.
The database must already hold the corpus (see `bench/retrieval_quality.py`, which can ingest it).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ragchat.cli.corpus import EvalQuestion, read_questions
from ragchat.config import Settings
from ragchat.core.retrieve import convex_fusion
from ragchat.infra.embeddings.factory import create_embedder
from ragchat.infra.store.sqlite import SqliteChunkStore

QUESTION_SETS = [
    Path(__file__).parent / "questions" / "python_docs.jsonl",
    Path(__file__).parent / "questions" / "python_docs_heldout.jsonl",
]
CANDIDATES = 40
Hits = list[tuple[str, float]]


@dataclass
class Lists:
    question: EvalQuestion
    keyword: Hits
    vector: Hits


def reciprocal_rank_fusion(keyword: Hits, vector: Hits, *, k: int, keyword_weight: float) -> list[str]:
    scores: dict[str, float] = {}
    for weight, hits in ((keyword_weight, keyword), (1.0, vector)):
        for rank, (chunk_id, _) in enumerate(hits, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (k + rank)
    return sorted(scores, key=lambda chunk_id: (-scores[chunk_id], chunk_id))


def min_max_fusion(keyword: Hits, vector: Hits, *, vector_weight: float) -> list[str]:
    """ragchat's fusion until 2026-11-26: each list min-max normalised to [0, 1] over its candidates (a
    list whose scores are all equal counts 1), a side that did not find a chunk adding 0."""
    fused: dict[str, float] = {}
    for hits, weight in ((keyword, 1 - vector_weight), (vector, vector_weight)):
        if not hits:
            continue
        low = min(value for _, value in hits)
        spread = max(value for _, value in hits) - low
        for chunk_id, value in hits:
            normalised = (value - low) / spread if spread > 0 else 1.0
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight * normalised
    return sorted(fused, key=lambda chunk_id: (-fused[chunk_id], chunk_id))


def score(rankings: list[list[str]], lists: list[Lists], names: dict[str, str]) -> str:
    hits, reciprocal = 0, 0.0
    for ranking, item in zip(rankings, lists, strict=True):
        first = next(
            (
                rank
                for rank, chunk_id in enumerate(ranking[:5], 1)
                if names[chunk_id] in item.question.expected
            ),
            None,
        )
        if first:
            hits, reciprocal = hits + 1, reciprocal + 1 / first
    return f"{hits / len(lists):.3f} / {reciprocal / len(lists):.3f}"


def fusions() -> list[tuple[str, Callable[[Lists], list[str]]]]:
    """Every fusion replayed: (label, candidate lists -> chunk ids, best first)."""
    replayed: list[tuple[str, Callable[[Lists], list[str]]]] = [
        ("vector only", lambda item: [c for c, _ in item.vector]),
        ("keyword only", lambda item: [c for c, _ in item.keyword]),
    ]
    for k in (5, 10, 20, 60):
        for weight in (1.0, 0.7, 0.5, 0.3):
            replayed.append(
                (
                    f"RRF k={k}, keyword weight {weight}",
                    lambda item, k=k, w=weight: reciprocal_rank_fusion(  # type: ignore[misc]
                        item.keyword, item.vector, k=k, keyword_weight=w
                    ),
                )
            )
    for weight in (0.5, 0.6, 0.7, 0.8, 0.9):
        replayed.append(
            (
                f"min-max, vector weight {weight}",
                lambda item, w=weight: min_max_fusion(item.keyword, item.vector, vector_weight=w),  # type: ignore[misc]
            )
        )
    for weight in (0.5, 0.6, 0.7, 0.8, 0.9):
        replayed.append(
            (
                f"z-score (ragchat), vector weight {weight}",
                lambda item, w=weight: [  # type: ignore[misc]
                    c
                    for c, *_ in convex_fusion(
                        item.keyword, item.vector, vector_weight=w, candidates=CANDIDATES
                    )
                ],
            )
        )
    return replayed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, required=True, help="RAGCHAT_DATA_DIR holding the corpus")
    parser.add_argument("--collection", default="pydocs")
    parser.add_argument("--runtime", default="onnx", choices=["torch", "onnx", "onnx-int8"])
    args = parser.parse_args()

    settings = Settings(_env_file=None, data_dir=args.data_dir, local_embedding_runtime=args.runtime)  # type: ignore[call-arg]
    embedder = create_embedder(settings)
    sets = {path.name: read_questions(path) for path in QUESTION_SETS}
    names: dict[str, str] = {}
    store = SqliteChunkStore(settings.database_path)
    per_set: dict[str, list[Lists]] = {}
    for name, questions in sets.items():
        vectors = embedder.embed([q.query for q in questions], input_type="query")
        per_set[name] = [
            Lists(
                q,
                store.keyword_search(args.collection, q.query, CANDIDATES),
                store.vector_search(args.collection, vector, CANDIDATES),
            )
            for q, vector in zip(questions, vectors, strict=True)
        ]
        unknown = {c for item in per_set[name] for c, _ in item.keyword + item.vector} - names.keys()
        names.update((p.chunk_id, Path(p.document_path).name) for p in store.get_passages(sorted(unknown)))
    store.close()

    print(f"| fusion | {' | '.join(f'{name} hit@5 / MRR@5' for name in sets)} |")
    print(f"|---|{'---:|' * len(sets)}")
    for label, fuse in fusions():
        cells = [score([fuse(item) for item in lists], lists, names) for lists in per_set.values()]
        print(f"| {label} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
