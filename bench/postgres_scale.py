"""The PostgreSQL store at 100k (or 1M) chunks against the SQLite store on the same data, in one run.

    .venv/bin/python bench/postgres_scale.py --source DATA_DIR/ragchat.sqlite3 \
        --database-url postgresql://... --work /tmp/pg-scale --target-chunks 100000

--source: a python-docs database made by `bench/retrieval_quality.py` (collection "pydocs", real vectors).
--database-url: an empty PostgreSQL database with pgvector.

1. Writes: every source document, then sentence-rotated "editions" of it with perturbed real vectors (as
   `bench/search_latency.py` builds its 100k corpus), stored through `replace_document` into BOTH stores,
   document by document in turn, until each holds --target-chunks; the time each store spends is summed
   (the PostgreSQL store maintains its HNSW index as rows arrive, as it does under a real ingest).
2. Vector search: the question set's queries embedded once; exact top-10 from the SQLite store's scan, and
   pgvector HNSW top-10 per ef_search: recall@10 and in-process latency.
3. `POST /api/search` (hybrid, k=5, query embedding included) p50/p95 from one real `ragchat serve` per
   store, requests one at a time, alternating; each server's time to its first answer and its memory.

Stores that hold chunks already are reused as they are (steps 2 and 3 only). The 1M-chunk run reuses the
database `bench/search_latency.py --target-chunks 1000000` builds (collection "default"):

    cp SEARCH_LATENCY_WORK/ragchat.sqlite3 WORK/sqlite/ragchat.sqlite3
    RAGCHAT_DATA_DIR=WORK/sqlite ragchat migrate --to postgresql://...   # rows copied, then the HNSW index
    .venv/bin/python bench/postgres_scale.py --database-url postgresql://... --work WORK --collection default

--index-after-load (for 1M chunks, where maintaining the HNSW index row by row would take hours here): the
PostgreSQL rows are written without the HNSW index, which is then built once over all of them (timed, with
--maintenance-work-mem: pgvector builds fast only while the graph fits in it), as `ragchat migrate` does.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import create_engine, select

from ragchat.config import Settings
from ragchat.domain import ChunkDraft
from ragchat.infra.db import sqlite_url
from ragchat.infra.db.schema import chunks, documents
from ragchat.infra.embeddings.factory import create_embedder
from ragchat.infra.store.postgres import VECTOR_INDEX, PostgresChunkStore
from ragchat.infra.store.rows import ChunkRows
from ragchat.infra.store.sqlite import SqliteChunkStore
from ragchat.infra.store.vector_index import HnswParameters

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    ROOT / "bench" / "questions" / "python_docs.jsonl",
    ROOT / "bench" / "questions" / "python_docs_heldout.jsonl",
]
SOURCE_COLLECTION = "pydocs"  # bench/retrieval_quality.py's


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def rotate(text: str, places: int) -> str:
    sentences = re.split(r"(?<=[.!?])\s+", text)
    shift = places % len(sentences)
    return " ".join(sentences[shift:] + sentences[:shift])


def build(
    source: Path, sqlite_store: SqliteChunkStore, pg_store: PostgresChunkStore, target: int, collection: str
) -> dict[str, float]:
    """Write the corpus into both stores; seconds spent in each and chunks written."""
    engine = create_engine(sqlite_url(source))
    rng = np.random.default_rng(2026)
    spent = {"sqlite": 0.0, "postgresql": 0.0}
    written = 0
    with engine.connect() as conn:
        docs = conn.execute(
            select(
                documents.c.id,
                documents.c.path,
                documents.c.title,
                documents.c.content_hash,
                documents.c.char_count,
            )
            .where(documents.c.collection == SOURCE_COLLECTION)
            .order_by(documents.c.path)
        ).all()
        edition = 0
        while written < target:
            for document_id, path, title, content_hash, char_count in docs:
                rows = conn.execute(
                    select(
                        chunks.c.text,
                        chunks.c.heading_path,
                        chunks.c.start,
                        chunks.c.end,
                        chunks.c.token_count,
                        chunks.c.embedding,
                    )
                    .where(chunks.c.document_id == document_id)
                    .order_by(chunks.c.ordinal)
                ).all()
                if not rows:
                    continue
                drafts = [
                    ChunkDraft(
                        rotate(text, edition) if edition else text,
                        tuple(json.loads(heading)),
                        start,
                        end,
                        tokens,
                    )
                    for text, heading, start, end, tokens, _ in rows
                ]
                vectors = np.stack([row[5] for row in rows])
                if edition:
                    vectors = vectors + rng.normal(0, 0.02, vectors.shape).astype(np.float32)
                    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                for name, store in (("sqlite", sqlite_store), ("postgresql", pg_store)):
                    started = time.perf_counter()
                    store.replace_document(
                        collection=collection,
                        path=f"{path}#edition-{edition}",
                        content_hash=f"{content_hash}-{edition}",
                        title=title,
                        char_count=char_count,
                        chunks=drafts,
                        vectors=vectors,
                    )
                    spent[name] += time.perf_counter() - started
                written += len(drafts)
                if written >= target:
                    break
            log(
                f"edition {edition}: {written} chunks; "
                f"sqlite {spent['sqlite']:.0f} s, postgresql {spent['postgresql']:.0f} s"
            )
            edition += 1
    engine.dispose()
    return {**spent, "chunks": written}


def build_vector_index(pg_store: PostgresChunkStore, dimension: int, maintenance_work_mem: str) -> float:
    """Build the HNSW index over the rows already there, as `ensure_vector_index` does but with
    `maintenance_work_mem` and the parallel workers of a one-off build; seconds it took."""
    started = time.perf_counter()
    with pg_store.writing() as tx:
        tx.exec_driver_sql(f"SET LOCAL maintenance_work_mem = '{maintenance_work_mem}'")
        tx.exec_driver_sql(f"SET LOCAL max_parallel_maintenance_workers = {os.cpu_count() or 1}")
        tx.exec_driver_sql(
            f"CREATE INDEX {VECTOR_INDEX} ON chunks USING hnsw (embedding vector_cosine_ops)"
            f" WITH (m = {int(pg_store.hnsw.m)}, ef_construction = {int(pg_store.hnsw.ef_construction)})"
        )
    pg_store.ensure_vector_index(dimension)  # finds it there
    return time.perf_counter() - started


def queries() -> list[str]:
    return [
        json.loads(line)["q"] for path in QUESTIONS for line in path.read_text().splitlines() if line.strip()
    ]


def recall(
    sqlite_store: SqliteChunkStore,
    pg_store: PostgresChunkStore,
    data_dir: Path,
    collection: str,
    ef_searches: list[int],
) -> list[dict[str, float]]:
    """recall@10 of pgvector HNSW against the SQLite store's exact scan, per ef_search, and latencies. The
    stores gave each document its own id: chunks are compared by (document path, ordinal)."""
    embedder = create_embedder(Settings(_env_file=None, data_dir=data_dir))  # type: ignore[call-arg]
    asked = queries()
    vectors = embedder.embed(asked, input_type="query")

    def keys(
        store: SqliteChunkStore | PostgresChunkStore, hits: list[tuple[str, float]]
    ) -> set[tuple[str, str]]:
        return {
            (passage.document_path, passage.chunk_id.rsplit("-", 1)[1])
            for passage in store.get_passages([chunk_id for chunk_id, _ in hits])
        }

    exact = [keys(sqlite_store, sqlite_store.vector_search(collection, vector, 10)) for vector in vectors]
    rows = []
    for ef in ef_searches:
        pg_store.hnsw = HnswParameters(pg_store.hnsw.m, pg_store.hnsw.ef_construction, ef)
        for vector in vectors[:10]:  # warm caches
            pg_store.vector_search(collection, vector, 10)
        times, found = [], []
        for vector, truth in zip(vectors, exact, strict=True):
            started = time.perf_counter()
            hits = pg_store.vector_search(collection, vector, 10)
            times.append((time.perf_counter() - started) * 1000)
            found.append(len(truth & keys(pg_store, hits)) / len(truth))
        rows.append(
            {
                "ef_search": ef,
                "recall@10": statistics.fmean(found),
                "p50_ms": statistics.median(times),
                "p95_ms": float(np.percentile(times, 95)),
            }
        )
        log(str(rows[-1]))
    times = []
    for vector in vectors:
        started = time.perf_counter()
        sqlite_store.vector_search(collection, vector, 10)
        times.append((time.perf_counter() - started) * 1000)
    rows.append(
        {
            "ef_search": 0,
            "recall@10": 1.0,
            "p50_ms": statistics.median(times),
            "p95_ms": float(np.percentile(times, 95)),
        }
    )
    return rows


def serve(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen[bytes], str, float]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("ragchat")),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env={
                **os.environ,
                "HF_HUB_OFFLINE": "1",
                "RAGCHAT_AUTH": "off",
                "RAGCHAT_HOST": "127.0.0.1",
                **env,
            },
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    return process, f"http://127.0.0.1:{port}", time.monotonic()


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def http(
    servers: dict[str, tuple[subprocess.Popen[bytes], str, float]], requests: int, collection: str
) -> dict[str, dict[str, float]]:
    asked = queries()
    ready: dict[str, float] = {}
    for name, (process, base, started) in servers.items():
        while True:
            assert process.poll() is None, f"{name} server exited"
            try:
                response = httpx.post(
                    f"{base}/api/search", json={"query": "warm up", "collection": collection}, timeout=300
                )
                if response.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        ready[name] = time.monotonic() - started
        log(f"{name}: first answer {ready[name]:.1f} s after start")
    walls: dict[str, list[float]] = {name: [] for name in servers}
    for i in range(20 + requests):
        for name, (_, base, _) in servers.items():
            started = time.perf_counter()
            response = httpx.post(
                f"{base}/api/search",
                json={"query": asked[i % len(asked)], "collection": collection, "k": 5},
                timeout=60,
            )
            response.raise_for_status()
            if i >= 20:
                walls[name].append((time.perf_counter() - started) * 1000)
    return {
        name: {
            "p50_ms": statistics.median(walls[name]),
            "p95_ms": float(np.percentile(walls[name], 95)),
            "ready_s": ready[name],
            "rss_mb": resident_mb(servers[name][0].pid),
        }
        for name in servers
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--source", type=Path, help="the python-docs database (needed when the stores are empty)"
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--target-chunks", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--index-after-load", action="store_true", help="build the HNSW index after the rows")
    parser.add_argument("--maintenance-work-mem", default="1GB", help="for --index-after-load")
    parser.add_argument(
        "--collection",
        default=SOURCE_COLLECTION,
        help="the collection searched (and built, into empty stores)",
    )
    parser.add_argument(
        "--ef-search",
        type=lambda text: [int(value) for value in text.split(",")],
        default=[40, 100, 200],
        help="pgvector hnsw.ef_search values to measure recall at, comma-separated (at most 1000)",
    )
    parser.add_argument(
        "--serve-ef-search",
        type=int,
        help="RAGCHAT_HNSW_EF_SEARCH of the PostgreSQL server (default: its own)",
    )
    args = parser.parse_args()
    data_dir = args.work / "sqlite"
    sqlite_store = SqliteChunkStore(data_dir / "ragchat.sqlite3")
    pg_store = PostgresChunkStore(args.database_url)
    results: dict[str, object] = {}
    try:
        if sqlite_store.count_documents() == 0:
            if args.source is None:
                parser.error(
                    "the stores are empty: give --source, the python-docs database to build them from"
                )
            sqlite_store.check_embedding_model("all-MiniLM-L6-v2", 384)
            if args.index_after_load:
                ChunkRows.check_embedding_model(pg_store, "all-MiniLM-L6-v2", 384)
                with pg_store.writing() as tx:
                    tx.exec_driver_sql("ALTER TABLE chunks ALTER COLUMN embedding TYPE vector(384)")
            else:
                pg_store.check_embedding_model("all-MiniLM-L6-v2", 384)  # the HNSW index before the rows
            writes = build(args.source, sqlite_store, pg_store, args.target_chunks, args.collection)
            results["writes"] = writes
            log(f"writes: {writes}")
        with pg_store.reading() as conn:
            indexed = conn.exec_driver_sql(
                f"SELECT 1 FROM pg_indexes WHERE indexname = '{VECTOR_INDEX}'"
            ).first()
        if args.index_after_load and not indexed:
            log(f"building the HNSW index (maintenance_work_mem {args.maintenance_work_mem})")
            results["hnsw_build_s"] = build_vector_index(pg_store, 384, args.maintenance_work_mem)
            log(f"HNSW index built in {results['hnsw_build_s']:.0f} s")
        results["vector"] = recall(sqlite_store, pg_store, data_dir, args.collection, args.ef_search)
    finally:
        sqlite_store.close()
        pg_store.close()
    servers = {
        "sqlite": serve({"RAGCHAT_DATA_DIR": str(data_dir)}, args.work / "serve-sqlite.log"),
        "postgresql": serve(
            {
                "RAGCHAT_DATA_DIR": str(args.work / "pg-data"),
                "RAGCHAT_DATABASE_URL": args.database_url,
                **({"RAGCHAT_HNSW_EF_SEARCH": str(args.serve_ef_search)} if args.serve_ef_search else {}),
            },
            args.work / "serve-pg.log",
        ),
    }
    try:
        results["http"] = http(servers, args.requests, args.collection)
    finally:
        for process, _, _ in servers.values():
            process.terminate()
            process.wait(timeout=60)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
