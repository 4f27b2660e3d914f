"""Search latency of `POST /api/search` (query embedding included) at python-docs size and at 100k chunks.

    .venv/bin/python bench/search_latency.py                       # build what is missing, measure, print
    .venv/bin/python bench/search_latency.py --write-docs          # ... and update docs/benchmarks.md

Databases (kept in --work, default bench/results/tmp/search-latency/, and reused by later runs):
- `docs/`: the 530 HTML pages of Debian's python3.11-doc ingested by ragchat's own `IngestService`
  (loader, chunker, embedding model, SQLite), all in the default collection. `--build-runtime onnx-int8`
  (the default here) embeds ~3.6x faster than torch; the vectors only serve as search targets, the
  served queries are embedded by each runtime of --runtimes (default: onnx, the app's default, and
  torch). `--source-db` copies a database that another run made instead (e.g. one kept by
  `bench/ingest_speed.py --keep`).
- `100k/`: the python-docs database plus "editions" of every page until the collection holds
  --target-chunks chunks. Edition e of a chunk is the same text with its sentences rotated by e places
  (same words, so BM25 posting lists grow as in a real corpus of related documents) and its vector is the
  real vector plus Gaussian noise (sigma 0.02 per dimension, renormalised; cosine ~0.9 to the original),
  written through `SqliteChunkStore.replace_document` like any ingest. Embedding 100k chunks with the real
  model would take hours on 2 cores; exact search costs the same whatever the vectors hold.

Measurement: a real uvicorn server (`uvicorn app.main:app`) per database; the client sends the question
set's queries one at a time (20 warm-up requests, then --requests measured) and times each full HTTP
round trip. Components (query embedding, vector search, keyword search) are also timed in-process on the
same database, to show where the time goes. `--vector-indexes exact,hnsw` serves the large corpus once per
RAGCHAT_VECTOR_INDEX (each by its own server) and adds the approximate index's recall@10 against the exact
scan on the same queries.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import multiprocessing
import os
import platform
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from ragchat.config import Settings
from ragchat.container import build_services, open_store
from ragchat.core.ingest import discover_files
from ragchat.infra.embeddings.factory import create_embedder
from ragchat.infra.store.sqlite import SqliteChunkStore

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path("/usr/share/doc/python3.11/html")
QUESTIONS = ROOT / "bench" / "questions" / "python_docs.jsonl"
EXTRA_QUERIES = [
    "how do I read a file line by line",
    "format a datetime as ISO 8601",
    "difference between list and tuple",
    "parse command line arguments",
    "regular expression named groups",
    "sort a dictionary by value",
    "run a coroutine from synchronous code",
    "what is a context manager",
    "json.dumps indent",
    "os.path.join",
    "TypeError: unhashable type",
    "?!",
]
COLLECTION = "default"
SECTION_START = "<!-- search-latency:start -->"
SECTION_END = "<!-- search-latency:end -->"
MACHINE = "2-core x86_64 CPU, 24 GB, no GPU"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def settings_for(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"auth": "off", "host": "127.0.0.1", **overrides}
    return Settings(_env_file=None, data_dir=data_dir, **values)  # type: ignore[call-arg]


def chunk_count(database: Path) -> int:
    if not database.exists():
        return 0
    with closing(sqlite3.connect(database)) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM chunks").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


# --- building the databases -----------------------------------------------------------------------


def build_docs_database(data_dir: Path, runtime: str, sample: int | None) -> None:
    pages = [
        path
        for path in discover_files([CORPUS])[0]
        if path.suffix == ".html"
        and not any(folder.startswith("_") for folder in path.relative_to(CORPUS).parts[:-1])
    ]
    if sample:
        pages = pages[:: max(1, len(pages) // sample)][:sample]
    log(f"ingesting {len(pages)} python-docs pages with LOCAL_EMBEDDING_RUNTIME={runtime} into {data_dir}")

    async def run() -> None:
        services = await build_services(settings_for(data_dir, local_embedding_runtime=runtime))
        try:
            started = time.perf_counter()
            report = await asyncio.to_thread(services.ingest.ingest_paths, pages, collection=COLLECTION)
            log(
                f"ingested {len(report.added) + len(report.replaced)} pages, {report.chunk_count} chunks "
                f"in {time.perf_counter() - started:.0f} s; skipped {len(report.skipped)}"
            )
        finally:
            await services.aclose()

    asyncio.run(run())


def rotate_sentences(text: str, places: int) -> str:
    sentences = re.split(r"(?<=[.!?])\s+", text)
    if len(sentences) < 2:
        words = text.split(" ")
        shift = places % max(1, len(words))
        return " ".join(words[shift:] + words[:shift])
    shift = places % len(sentences)
    return " ".join(sentences[shift:] + sentences[:shift])


def build_editions(source: Path, data_dir: Path, target_chunks: int) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    database = data_dir / "ragchat.sqlite3"
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(database)) as dst:
        src.backup(dst)
    store = SqliteChunkStore(database)
    rng = np.random.default_rng(2026)
    try:
        with closing(sqlite3.connect(source)) as conn:
            documents = conn.execute(
                "SELECT id, path, title, content_hash, char_count FROM documents ORDER BY path"
            ).fetchall()
            from ragchat.domain import ChunkDraft

            edition, total = 1, chunk_count(database)
            log(f"adding editions to {total} chunks until {target_chunks}")
            while total < target_chunks:
                for document_id, path, title, content_hash, char_count in documents:
                    rows = conn.execute(
                        'SELECT text, heading_path, start, "end", token_count, embedding FROM chunks'
                        " WHERE document_id = ? ORDER BY ordinal",
                        (document_id,),
                    ).fetchall()
                    chunks = [
                        ChunkDraft(
                            rotate_sentences(text, edition), tuple(json.loads(heading)), start, end, tokens
                        )
                        for text, heading, start, end, tokens, _ in rows
                    ]
                    vectors = np.stack([np.frombuffer(row[5], dtype=np.float32) for row in rows])
                    vectors = vectors + rng.normal(0, 0.02, vectors.shape).astype(np.float32)
                    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                    store.replace_document(
                        collection=COLLECTION,
                        path=f"{path}#edition-{edition}",
                        content_hash=f"{content_hash}-{edition}",
                        title=title,
                        char_count=char_count,
                        chunks=chunks,
                        vectors=vectors,
                    )
                    total += len(chunks)
                    if total >= target_chunks:
                        break
                log(f"edition {edition} done: {total} chunks")
                edition += 1
    finally:
        store.close()


# --- measuring ------------------------------------------------------------------------------------


def queries() -> list[str]:
    asked = [json.loads(line)["q"] for line in QUESTIONS.read_text().splitlines() if line.strip()]
    return asked + EXTRA_QUERIES


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], share: float) -> float:
    return float(np.percentile(np.array(values), share * 100))


class SearchServer:
    """A real `uvicorn app.main:app` serving one data folder, started and stopped by the bench."""

    def __init__(self, data_dir: Path, runtime: str, vector_index: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        env = {
            **os.environ,
            "RAGCHAT_DATA_DIR": str(data_dir),
            "RAGCHAT_VECTOR_INDEX": vector_index,
            "LOCAL_EMBEDDING_RUNTIME": runtime,
            "HF_HUB_OFFLINE": "1",
            "RAGCHAT_AUTH": "off",  # search cost alone; bench/auth_cost.py measures authentication's
            "RAGCHAT_HOST": "127.0.0.1",
        }
        self.log = (data_dir.parent / f"server-{data_dir.name}-{runtime}-{vector_index}.log").open("w")
        uvicorn = str(Path(sys.executable).with_name("uvicorn"))
        self.process = subprocess.Popen(
            [
                uvicorn,
                "app.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=120)

    def wait_ready(self, timeout_s: float = 600) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited; see {self.log.name}")
            try:
                if self.client.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start in {timeout_s:.0f} s")
            time.sleep(0.5)

    def search(self, query: str, mode: str) -> tuple[float, float]:
        """(wall ms of the HTTP round trip, server CPU ms while it ran)."""
        cpu = process_cpu_seconds(self.process.pid)
        started = time.perf_counter()
        response = self.client.post("/api/search", json={"query": query, "k": 5, "mode": mode})
        wall = (time.perf_counter() - started) * 1000
        response.raise_for_status()
        return wall, (process_cpu_seconds(self.process.pid) - cpu) * 1000

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


Series = tuple[str, str]  # (corpus name, query-embedding runtime)
Corpus = tuple[Path, str]  # (data folder, RAGCHAT_VECTOR_INDEX)


def measure_http(
    corpora: dict[str, Corpus], runtimes: list[str], requests: int, modes: list[str]
) -> dict[Series, dict[str, dict[str, float]]]:
    """p50/p95/mean wall ms and mean server CPU ms per request, per corpus, runtime and mode. For each
    runtime in turn, one server per corpus runs (the other runtime's threads would otherwise compete);
    requests go one at a time, round-robin over every (corpus, mode), so that load from other processes
    falls on all alike."""
    results: dict[Series, dict[str, dict[str, float]]] = {}
    asked = queries()
    for runtime in runtimes:
        servers = {
            (name, runtime): SearchServer(data_dir, runtime, vector_index)
            for name, (data_dir, vector_index) in corpora.items()
        }
        try:
            for server in servers.values():
                server.wait_ready()
            series = [(key, mode) for key in servers for mode in modes]
            for i in range(20):  # warm-up: the first search loads the vectors, caches fill
                for key, mode in series:
                    servers[key].search(asked[i % len(asked)], mode)
            walls: dict[tuple[Series, str], list[float]] = {pair: [] for pair in series}
            cpus: dict[tuple[Series, str], list[float]] = {pair: [] for pair in series}
            for i in range(requests):
                for key, mode in series:
                    wall, cpu = servers[key].search(asked[i % len(asked)], mode)
                    walls[key, mode].append(wall)
                    cpus[key, mode].append(cpu)
                if (i + 1) % 50 == 0:
                    log(f"{runtime}: {i + 1}/{requests} rounds")
            for key, mode in series:
                figures = results.setdefault(key, {})[mode] = {
                    "p50": statistics.median(walls[key, mode]),
                    "p95": percentile(walls[key, mode], 0.95),
                    "mean": statistics.fmean(walls[key, mode]),
                    "server_cpu": statistics.fmean(cpus[key, mode]),
                }
                log(f"{key} {mode}: p50 {figures['p50']:.1f} ms, p95 {figures['p95']:.1f} ms")
        finally:
            for server in servers.values():
                server.stop()
    return results


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def resident_mb() -> float:
    """This process's resident memory (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def measure_components(
    data_dir: Path, runtimes: list[str], repeats: int, vector_index: str
) -> dict[str, tuple[float, float]]:
    """(median wall ms, median CPU ms of the whole process) of each step of a search, in-process on the same
    database. CPU time shows the cost without the waiting that other load on the machine adds. With an
    approximate vector index, its recall@10 against the exact scan on the same queries (the exact index is
    built first, its top 10s kept, and dropped before the other is built)."""
    asked = queries()

    def timed(step: Callable[[str], object], times: int = repeats) -> tuple[float, float]:
        wall, cpu = [], []
        for i in range(times):
            started, started_cpu = time.perf_counter(), time.process_time()
            step(asked[i % len(asked)])
            wall.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - started_cpu) * 1000)
        return statistics.median(wall), statistics.median(cpu)

    steps: dict[str, tuple[float, float]] = {}
    vectors = {}
    for runtime in runtimes:
        embedder = create_embedder(settings_for(data_dir, local_embedding_runtime=runtime))
        embedder.embed(["warm-up"], input_type="query")
        steps[f"embed query ({runtime})"] = timed(
            lambda q, model=embedder: model.embed([q], input_type="query")  # type: ignore[misc]
        )
        vectors = {q: embedder.embed([q], input_type="query")[0] for q in asked}
    exact_top: dict[str, set[str]] = {}
    if vector_index != "exact":
        exact = open_store(settings_for(data_dir, vector_index="exact"))
        try:
            exact_top = {
                q: {chunk for chunk, _ in exact.vector_search(COLLECTION, vectors[q], 10)} for q in asked
            }
        finally:
            exact.close()
        gc.collect()
    # As the server opens it: RAGCHAT_HNSW_* from the environment apply.
    store = open_store(settings_for(data_dir, vector_index=vector_index))
    try:
        before = resident_mb()
        index_build = timed(lambda q: store.vector_search(COLLECTION, vectors[q], 1), times=1)  # first search
        index_memory = resident_mb() - before
        steps["vector search"] = timed(lambda q: store.vector_search(COLLECTION, vectors[q], 40))
        if exact_top:
            found = [
                len(exact_top[q] & {chunk for chunk, _ in store.vector_search(COLLECTION, vectors[q], 10)})
                / max(1, len(exact_top[q]))
                for q in asked
            ]
            steps["recall@10 vs exact"] = (statistics.fmean(found), float("nan"))
        else:
            steps["recall@10 vs exact"] = (1.0, float("nan"))
        steps["keyword search (tantivy BM25)"] = timed(lambda q: store.keyword_search(COLLECTION, q, 40))
        steps["first search: build both indexes"] = index_build
        steps["memory of both indexes (MB)"] = (index_memory, float("nan"))
    finally:
        store.close()
    return steps


def measure_keyword_search(data_dir: Path) -> dict[str, float]:
    """Keyword-only search: median CPU ms per query, and hit@5 / MRR@5 on the question set (a hit: a passage
    from an expected page, whichever edition)."""
    questions = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    asked = queries()
    store = SqliteChunkStore(data_dir / "ragchat.sqlite3")
    try:
        for query in asked:  # build the index, warm the caches
            store.keyword_search(COLLECTION, query, 40)
        cpu = []
        for query in asked:
            started = time.process_time()
            store.keyword_search(COLLECTION, query, 40)
            cpu.append((time.process_time() - started) * 1000)
        hits, reciprocal = 0, 0.0
        for question in questions:
            found = store.get_passages(
                [chunk for chunk, _ in store.keyword_search(COLLECTION, question["q"], 5)]
            )
            names = [Path(passage.document_path.split("#")[0]).name for passage in found]
            rank = next((i for i, name in enumerate(names, start=1) if name in question["expected"]), None)
            if rank:
                hits, reciprocal = hits + 1, reciprocal + 1 / rank
        return {
            "cpu": statistics.median(cpu),
            "hit": hits / len(questions),
            "mrr": reciprocal / len(questions),
        }
    finally:
        store.close()


# --- report ---------------------------------------------------------------------------------------


def render(figures: dict[str, dict[str, Any]], requests: int, build_runtime: str) -> str:
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    lines = [
        SECTION_START,
        "## Search latency (`POST /api/search`, query embedding included)",
        "",
        f"Machine: {MACHINE} ({platform.python_implementation()} {platform.python_version()}), shared with "
        f"other work (load average at the end: {load}). Date: {date}. Command: "
        f"`.venv/bin/python bench/search_latency.py {' '.join(sys.argv[1:])}`.",
        "Real uvicorn servers (for each query-embedding runtime in turn, one per corpus), one request at a "
        f"time, round-robin over every corpus and mode, {requests} measured requests per row (questions of "
        "`bench/questions/python_docs.jsonl` plus a few others, k=5). How the corpora "
        f"were made is in the script's docstring (page vectors embedded with {build_runtime}; the 100k "
        "corpus adds sentence-rotated editions of every page with perturbed real vectors). "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')} (see the script); HNSW settings "
        + ", ".join(
            f"{name}={os.environ.get(name, 'default')}"
            for name in ("RAGCHAT_HNSW_M", "RAGCHAT_HNSW_EF_CONSTRUCTION", "RAGCHAT_VECTOR_INDEX_EF_SEARCH")
        )
        + ". `server CPU` is the "
        "uvicorn process's CPU time per request (all threads), which other load on the machine inflates far "
        "less than wall-clock time.",
        "",
        "| corpus | chunks | query embedding | mode | p50 ms | p95 ms | mean ms | server CPU ms/request |",
        "|---|---:|---|---|---:|---:|---:|---:|",
    ]
    for name, data in figures.items():
        for runtime, by_mode in data["http"].items():
            for mode, values in by_mode.items():
                lines.append(
                    f"| {name} | {data['chunks']:,} | {runtime} | {mode} | {values['p50']:.1f} "
                    f"| {values['p95']:.1f} | {values['mean']:.1f} | {values['server_cpu']:.1f} |"
                )
    lines += [
        "",
        "Where the time goes: median wall ms / CPU ms of each step, in-process on the same databases (the "
        "server runs the keyword search in one thread while the query is embedded and searched by vector "
        "in another; vector search: k=40, with the RAGCHAT_VECTOR_INDEX the corpus name gives); the first "
        "search builds both indexes from the file, and the process's resident memory grows by what they "
        "hold; recall@10: the share of the exact scan's top 10 that the vector index returns, same queries:",
        "",
    ]
    steps = list(next(iter(figures.values()))["components"])
    lines.append("| corpus | " + " | ".join(steps) + " |")
    lines.append("|---|" + "---:|" * len(steps))
    for name, data in figures.items():
        cells = " | ".join(
            f"{wall:.3f}"
            if wall <= 1 and math.isnan(cpu)
            else f"{wall:.1f}"
            if math.isnan(cpu)
            else f"{wall:.1f} / {cpu:.1f}"
            for wall, cpu in (data["components"][step] for step in steps)
        )
        lines.append(f"| {name} | {cells} |")
    lines += [
        "",
        "Keyword search alone at each size: median CPU ms per query, and hit@5 / MRR@5 on the question set "
        "(at 100k a passage of any edition of an expected page counts):",
        "",
        "| corpus | CPU ms | hit@5 | MRR@5 |",
        "|---|---:|---:|---:|",
    ]
    for name, data in figures.items():
        if "keyword" not in data:  # the same corpus under another vector index
            continue
        values = data["keyword"]
        lines.append(f"| {name} | {values['cpu']:.1f} | {values['hit']:.3f} | {values['mrr']:.3f} |")
    lines.append(SECTION_END)
    return "\n".join(lines)


def write_docs(section: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if SECTION_START in text:
        before, rest = text.split(SECTION_START, 1)
        after = rest.split(SECTION_END, 1)[1]
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "results" / "tmp" / "search-latency")
    parser.add_argument("--source-db", type=Path, help="an existing python-docs ragchat.sqlite3 to copy")
    parser.add_argument("--build-runtime", default="onnx-int8", choices=["torch", "onnx", "onnx-int8"])
    parser.add_argument("--pages", type=int, help="a quick run on this many evenly spread pages")
    parser.add_argument("--target-chunks", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--modes", default="hybrid,vector,keyword")
    parser.add_argument(
        "--vector-indexes",
        default="exact",
        help="RAGCHAT_VECTOR_INDEX values the large corpus is served with, each by its own server",
    )
    parser.add_argument(
        "--runtimes",
        default="onnx,torch",
        help="LOCAL_EMBEDDING_RUNTIME values the servers embed queries with",
    )
    parser.add_argument("--build-only", action="store_true", help="make the databases, measure nothing")
    parser.add_argument("--write-docs", action="store_true", help="update the section in docs/benchmarks.md")
    args = parser.parse_args()
    # libgomp's default busy-waiting makes torch's 2-thread encode of one query take ~0.5 s instead of
    # ~14 ms when the CPU is oversubscribed (measured here); servers and in-process steps inherit this.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    docs_dir, big_dir = args.work / "docs", args.work / "100k"
    docs_db, big_db = docs_dir / "ragchat.sqlite3", big_dir / "ragchat.sqlite3"
    if chunk_count(docs_db) == 0:
        if args.source_db:
            docs_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(args.source_db, docs_db)
        else:
            # In a child process, so that the ONNX Runtime threads of the build do not linger next to the
            # measurements below.
            builder = multiprocessing.get_context("spawn").Process(
                target=build_docs_database, args=(docs_dir, args.build_runtime, args.pages)
            )
            builder.start()
            builder.join()
            if builder.exitcode != 0:
                raise SystemExit(f"building the python-docs database failed (exit code {builder.exitcode})")
    if chunk_count(big_db) < args.target_chunks:
        shutil.rmtree(big_dir, ignore_errors=True)
        build_editions(docs_db, big_dir, args.target_chunks)

    if args.build_only:
        return
    with closing(sqlite3.connect(docs_db)) as conn:
        pages = int(conn.execute("SELECT count(*) FROM documents").fetchone()[0])
    corpora: dict[str, Corpus] = {f"python docs ({pages} pages)": (docs_dir, "exact")}
    for vector_index in args.vector_indexes.split(","):
        corpora[f"{args.target_chunks:,} chunks, {vector_index}"] = (big_dir, vector_index)
    runtimes = args.runtimes.split(",")
    http = measure_http(corpora, runtimes, args.requests, args.modes.split(","))
    figures: dict[str, dict[str, Any]] = {}
    measured_keywords: set[Path] = set()
    for name, (data_dir, vector_index) in corpora.items():
        figures[name] = {
            "chunks": chunk_count(data_dir / "ragchat.sqlite3"),
            "http": {runtime: http[name, runtime] for runtime in runtimes},
            "components": measure_components(data_dir, runtimes, args.requests, vector_index),
        }
        if data_dir not in measured_keywords:
            figures[name]["keyword"] = measure_keyword_search(data_dir)
            measured_keywords.add(data_dir)
    section = render(figures, args.requests, args.build_runtime)
    print(section)
    if args.write_docs:
        write_docs(section)


if __name__ == "__main__":
    main()
