"""Which in-process ANN library for the SQLite store's vector index: usearch, hnswlib or faiss (HNSW each).

    .venv/bin/python bench/ann_choice.py --source DATA_DIR/ragchat.sqlite3 --chunks 200000 --library hnswlib

--source: a python-docs database made by `bench/retrieval_quality.py` (real all-MiniLM-L6-v2 vectors). The
corpus is its vectors plus perturbed "editions" of them (Gaussian noise, sigma 0.02 per dimension,
renormalised) up to --chunks, as `bench/search_latency.py` builds its large corpus; the queries are the
question sets' questions embedded by the app's model. One library per process (run it once per library),
so that resident memory is the index's own: per configuration, build time with every core (wall and
CPU), the growth of resident memory, p50/p95 (and p50 CPU) of one k=10 query on one thread, and
recall@10 against the exact scan.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import numpy as np

from ragchat.config import Settings
from ragchat.infra.embeddings.factory import create_embedder

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    ROOT / "bench" / "questions" / "python_docs.jsonl",
    ROOT / "bench" / "questions" / "python_docs_heldout.jsonl",
]
CORES = os.cpu_count() or 1
EF_CONSTRUCTION = 128  # --ef-construction


def resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def corpus(source: Path, size: int) -> np.ndarray:
    with closing(sqlite3.connect(source)) as conn:
        base = np.stack(
            [
                np.frombuffer(blob, dtype=np.float32)
                for (blob,) in conn.execute("SELECT embedding FROM chunks")
            ]
        )
    rng = np.random.default_rng(2026)
    parts, total = [base], len(base)
    while total < size:
        edition = base + rng.normal(0, 0.02, base.shape).astype(np.float32)
        edition /= np.linalg.norm(edition, axis=1, keepdims=True)
        parts.append(edition)
        total += len(edition)
    return np.ascontiguousarray(np.concatenate(parts)[:size])


def query_vectors(data_dir: Path) -> np.ndarray:
    asked = [json.loads(line)["q"] for path in QUESTIONS for line in path.read_text().splitlines() if line]
    embedder = create_embedder(Settings(_env_file=None, data_dir=data_dir))  # type: ignore[call-arg]
    return np.asarray(embedder.embed(asked, input_type="query"), dtype=np.float32)


Search = Callable[[np.ndarray, int], np.ndarray]
Built = tuple[float, float]  # (wall s, CPU s of the process, every thread)


def timed_build(build: Callable[[], object]) -> Built:
    started, started_cpu = time.perf_counter(), time.process_time()
    build()
    return time.perf_counter() - started, time.process_time() - started_cpu


def usearch_configs(vectors: np.ndarray, dtype: str) -> list[tuple[str, Built, Callable[[int], Search]]]:
    from usearch.index import Index

    index = Index(
        ndim=vectors.shape[1], metric="cos", dtype=dtype, connectivity=16, expansion_add=EF_CONSTRUCTION
    )
    built = timed_build(lambda: index.add(np.arange(len(vectors), dtype=np.uint64), vectors, threads=CORES))

    def with_ef(ef: int) -> Search:
        index.expansion_search = ef
        return lambda query, k: np.asarray(index.search(query, k, threads=1).keys)

    return [(f"usearch {dtype} M=16 ef_construction={EF_CONSTRUCTION}", built, with_ef)]


def hnswlib_configs(vectors: np.ndarray) -> list[tuple[str, Built, Callable[[int], Search]]]:
    import hnswlib

    index = hnswlib.Index(space="ip", dim=vectors.shape[1])
    index.init_index(max_elements=len(vectors), M=16, ef_construction=EF_CONSTRUCTION)
    index.set_num_threads(CORES)
    built = timed_build(lambda: index.add_items(vectors, np.arange(len(vectors))))
    index.set_num_threads(1)

    def with_ef(ef: int) -> Search:
        index.set_ef(ef)
        return lambda query, k: index.knn_query(query, k)[0][0]

    return [(f"hnswlib f32 M=16 ef_construction={EF_CONSTRUCTION}", built, with_ef)]


def faiss_configs(vectors: np.ndarray) -> list[tuple[str, Built, Callable[[int], Search]]]:
    import faiss

    index = faiss.IndexHNSWFlat(vectors.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = EF_CONSTRUCTION
    faiss.omp_set_num_threads(CORES)
    built = timed_build(lambda: index.add(vectors))
    faiss.omp_set_num_threads(1)

    def with_ef(ef: int) -> Search:
        index.hnsw.efSearch = ef
        return lambda query, k: index.search(query.reshape(1, -1), k)[1][0]

    return [(f"faiss IndexHNSWFlat f32 M=16 ef_construction={EF_CONSTRUCTION}", built, with_ef)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--chunks", type=int, default=200_000)
    parser.add_argument(
        "--library", choices=["usearch-f32", "usearch-f16", "usearch-i8", "hnswlib", "faiss"], required=True
    )
    parser.add_argument("--ef", default="32,64,128")
    parser.add_argument("--ef-construction", type=int, default=128)
    args = parser.parse_args()
    global EF_CONSTRUCTION
    EF_CONSTRUCTION = args.ef_construction
    queries = query_vectors(args.source.parent)
    vectors = corpus(args.source, args.chunks)
    truth = [set(np.argsort(-(vectors @ query), kind="stable")[:10].tolist()) for query in queries]
    before = resident_mb()
    if args.library.startswith("usearch-"):
        configs = usearch_configs(vectors, args.library.split("-")[1])
    else:
        configs = {"hnswlib": hnswlib_configs, "faiss": faiss_configs}[args.library](vectors)
    grown = resident_mb() - before
    for name, built, with_ef in configs:
        for ef in (int(value) for value in args.ef.split(",")):
            search = with_ef(ef)
            for query in queries[:10]:
                search(query, 10)
            times, cpu, recalls = [], [], []
            for query, exact in zip(queries, truth, strict=True):
                started, started_cpu = time.perf_counter(), time.process_time()
                found = search(query, 10)
                times.append((time.perf_counter() - started) * 1000)
                cpu.append((time.process_time() - started_cpu) * 1000)
                recalls.append(len(exact & {int(key) for key in found}) / 10)
            print(
                json.dumps(
                    {
                        "index": name,
                        "chunks": len(vectors),
                        "build_s": round(built[0], 1),
                        "build_cpu_s": round(built[1], 1),
                        "memory_mb": round(grown),
                        "ef_search": ef,
                        "recall@10": round(statistics.fmean(recalls), 3),
                        "p50_ms": round(statistics.median(times), 3),
                        "p95_ms": round(float(np.percentile(times, 95)), 3),
                        "p50_cpu_ms": round(statistics.median(cpu), 3),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
