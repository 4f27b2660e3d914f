"""Ingestion speed: ragchat's real ingestion path against LlamaIndex's pipeline, same pages, same run.

    .venv/bin/python bench/ingest_speed.py                      # all 530 pages of python3.11-doc
    .venv/bin/python bench/ingest_speed.py --pages 60           # a quick, evenly spread sample

Variants (each timed on the same pages, interleaved block by block so that load from other processes on
the machine falls on all of them alike):
- `ragchat-<runtime>`: `build_services(settings)` then `IngestService.ingest_paths` (load HTML, chunk,
  embed, commit to SQLite), for each LOCAL_EMBEDDING_RUNTIME given (default torch and onnx-int8).
- `llamaindex-default`: `IngestionPipeline([SentenceSplitter(), HuggingFaceEmbedding(model folder)])`,
  LlamaIndex's defaults (1024-token chunks by its tiktoken tokenizer, 200 overlap, batches of 10). The
  model reads at most 256 tokens of each chunk, so most of every chunk is never embedded.
- `llamaindex-matched`: the same pipeline with chunks measured by the model's own tokenizer at ragchat's
  size and overlap (RAGCHAT_CHUNK_TOKENS / RAGCHAT_CHUNK_OVERLAP_TOKENS): the like-for-like baseline.
LlamaIndex gets the text that ragchat's HTML loader extracted (it has no HTML reader of its own installed),
prepared before its clock starts, which favours it.

Reported per variant: pages/s, chunks/s, seconds inside the model's encode and the share outside it,
tokens embedded, and the process CPU seconds each variant used (steadier than wall time when other
programs share the cores); ratios against each baseline by both. Model loading and the one-time ONNX
export happen before timing and are reported apart. With --keep DIR the ragchat databases stay in
DIR/<runtime> for bench/retrieval_quality.py; LlamaIndex's vectors are scored vector-only on the question
set.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ragchat.config import Settings
from ragchat.container import Services, build_services
from ragchat.infra.embeddings.model_files import ModelTokenizer, resolve_model_dir
from ragchat.infra.loaders import load_document

CORPUS = Path("/usr/share/doc/python3.11/html")
QUESTIONS = Path(__file__).parent / "questions" / "python_docs.jsonl"
COLLECTION = "bench"


@dataclass
class Timing:
    """Accumulated figures of one variant over all blocks."""

    name: str
    pages: int = 0
    chunks: int = 0
    tokens_embedded: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    encode_s: float = 0.0
    setup_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {
            "variant": self.name,
            "pages": self.pages,
            "chunks": self.chunks,
            "tokens_embedded": self.tokens_embedded,
            "wall_s": round(self.wall_s, 1),
            "cpu_s": round(self.cpu_s, 1),
            "encode_s": round(self.encode_s, 1),
            "pages_per_s": round(self.pages / self.wall_s, 3) if self.wall_s else None,
            "chunks_per_s": round(self.chunks / self.wall_s, 2) if self.wall_s else None,
            "pages_per_cpu_s": round(self.pages / self.cpu_s, 3) if self.cpu_s else None,
            "outside_encode_share": round(1 - self.encode_s / self.wall_s, 4) if self.wall_s else None,
            "setup_s": round(self.setup_s, 1),
            **self.extra,
        }


class EncodeClock:
    """Wraps a bound `encode`/`embed` method and adds the time spent inside it to a `Timing`."""

    def __init__(self, timing: Timing, method: Callable[..., Any]) -> None:
        self._timing = timing
        self._method = method

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return self._method(*args, **kwargs)
        finally:
            self._timing.encode_s += time.perf_counter() - started


class RagchatVariant:
    """ragchat's container and IngestService for one LOCAL_EMBEDDING_RUNTIME."""

    def __init__(self, runtime: Any, data_dir: Path, chunk_tokens: int, overlap: int) -> None:
        self.timing = Timing(f"ragchat-{runtime}")
        self._settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            data_dir=data_dir,
            local_embedding_runtime=runtime,
            chunk_tokens=chunk_tokens,
            chunk_overlap_tokens=overlap,
        )
        self._loop = asyncio.new_event_loop()
        self._services: Services | None = None
        self._tokens = ModelTokenizer.for_model(self._settings.local_embedding_model)

    def setup(self) -> None:
        started = time.perf_counter()
        shutil.rmtree(self._settings.data_dir, ignore_errors=True)
        services = self._loop.run_until_complete(build_services(self._settings))  # loads the model
        embedder: Any = services.embedder
        embedder.embed = EncodeClock(self.timing, embedder.embed)  # the real embedder, timed
        self._services = services
        self.timing.setup_s = time.perf_counter() - started

    def ingest(self, files: Sequence[Path], extracted: dict[Path, Any]) -> None:
        assert self._services is not None
        started, cpu_started = time.perf_counter(), time.process_time()
        report = self._services.ingest.ingest_paths(files, collection=COLLECTION)
        self.timing.wall_s += time.perf_counter() - started
        self.timing.cpu_s += time.process_time() - cpu_started
        if report.skipped:
            raise RuntimeError(f"ragchat skipped files: {report.skipped[:3]}")
        self.timing.pages += len(files)
        self.timing.chunks += report.chunk_count

    def close(self, *, whole_corpus: bool) -> None:
        if self._services is not None:
            self._loop.run_until_complete(self._services.aclose())
            with closing(sqlite3.connect(self._settings.database_path)) as db:  # chunk tokens, no headings
                row = db.execute("SELECT COALESCE(SUM(token_count), 0) FROM chunks").fetchone()
            self.timing.tokens_embedded = int(row[0])
        self._loop.close()


class LlamaIndexVariant:
    """LlamaIndex's IngestionPipeline with SentenceSplitter and HuggingFaceEmbedding."""

    def __init__(self, name: str, model_dir: Path, chunk_tokens: int | None, overlap: int | None) -> None:
        self.timing = Timing(f"llamaindex-{name}")
        self._model_dir = model_dir
        self._chunk_tokens = chunk_tokens
        self._overlap = overlap
        self._pipeline: Any = None
        self._embed_model: Any = None
        self.vectors: list[np.ndarray] = []
        self.sources: list[str] = []
        self._model_tokens = ModelTokenizer(model_dir, 256)
        self._truncated = 0

    def setup(self) -> None:
        from llama_index.core.ingestion import IngestionPipeline
        from llama_index.core.node_parser import SentenceSplitter
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding

        started = time.perf_counter()
        if self._chunk_tokens is None:
            splitter = SentenceSplitter()
        else:
            splitter = SentenceSplitter(
                chunk_size=self._chunk_tokens,
                chunk_overlap=self._overlap or 0,
                tokenizer=lambda text: self._model_tokens.token_offsets(text),
            )
        self._embed_model = HuggingFaceEmbedding(model_name=str(self._model_dir), device="cpu")
        model = self._embed_model._model
        model.encode = EncodeClock(self.timing, model.encode)
        self._pipeline = IngestionPipeline(transformations=[splitter, self._embed_model])
        self._embed_model.get_text_embedding("warm-up")
        self.timing.encode_s = 0.0
        self.timing.setup_s = time.perf_counter() - started

    def ingest(self, files: Sequence[Path], extracted: dict[Path, Any]) -> None:
        from llama_index.core import Document

        documents = [Document(text=extracted[path].text, metadata={"file_path": str(path)}) for path in files]
        started, cpu_started = time.perf_counter(), time.process_time()
        nodes = self._pipeline.run(documents=documents)
        self.timing.wall_s += time.perf_counter() - started
        self.timing.cpu_s += time.process_time() - cpu_started
        self.timing.pages += len(files)
        self.timing.chunks += len(nodes)
        for node in nodes:
            from llama_index.core.schema import MetadataMode

            tokens = self._model_tokens.count(node.get_content(metadata_mode=MetadataMode.EMBED))
            self.timing.tokens_embedded += min(tokens, 254)
            self._truncated += max(0, tokens - 254)
            self.vectors.append(np.asarray(node.embedding, dtype=np.float32))
            self.sources.append(Path(node.metadata["file_path"]).name)

    def close(self, *, whole_corpus: bool) -> None:
        total = self.timing.tokens_embedded + self._truncated
        self.timing.extra["share_of_text_never_embedded"] = round(self._truncated / total, 3) if total else 0
        if whole_corpus:  # on a sample most expected pages are missing: the score would mean nothing
            encode_s = self.timing.encode_s
            self.timing.extra["vector_only_quality"] = self.vector_quality()
            self.timing.encode_s = encode_s  # query embeddings are not ingestion

    def vector_quality(self) -> dict[str, float]:
        """hit@5 and MRR@5 of plain cosine search over this pipeline's vectors, on the question set."""
        if not self.vectors or not QUESTIONS.is_file():
            return {}
        questions = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
        matrix = np.stack(self.vectors)
        queries = np.asarray(
            self._embed_model.get_text_embedding_batch([q["q"] for q in questions]), dtype=np.float32
        )
        hits, reciprocal = 0, 0.0
        for question, query in zip(questions, queries, strict=True):
            top = np.argsort(-(matrix @ query))[:5]
            ranks = [rank for rank, i in enumerate(top, 1) if self.sources[i] in question["expected"]]
            if ranks:
                hits += 1
                reciprocal += 1 / ranks[0]
        return {
            "hit_at_5": round(hits / len(questions), 3),
            "mrr_at_5": round(reciprocal / len(questions), 3),
        }


def sample_pages(corpus: Path, pages: int | None) -> list[Path]:
    files = sorted(corpus.rglob("*.html"))
    if not files:
        sys.exit(f"no HTML pages under {corpus}: apt-get install -y python3.11-doc")
    if pages is None or pages >= len(files):
        return files
    step = len(files) / pages
    return [files[int(i * step)] for i in range(pages)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--pages", type=int, help="evenly spread sample of this many pages (default all)")
    parser.add_argument("--runtimes", default="torch,onnx-int8", help="ragchat LOCAL_EMBEDDING_RUNTIMEs")
    parser.add_argument("--baselines", default="matched,default", help="llamaindex variants (or none)")
    parser.add_argument("--blocks", type=int, default=4, help="interleaving blocks")
    parser.add_argument("--chunk-tokens", type=int, default=200)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--keep", type=Path, help="keep ragchat databases in KEEP/<runtime>")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args()

    files = sample_pages(args.corpus, args.pages)
    work_dir = args.keep or Path(tempfile.mkdtemp(prefix="ragchat-bench-"))
    model_dir = resolve_model_dir("all-MiniLM-L6-v2")
    variants: list[Any] = [
        RagchatVariant(runtime, work_dir / runtime, args.chunk_tokens, args.overlap)
        for runtime in args.runtimes.split(",")
        if runtime
    ]
    for name in args.baselines.split(","):
        if name == "matched":
            variants.append(LlamaIndexVariant("matched", model_dir, args.chunk_tokens, args.overlap))
        elif name == "default":
            variants.append(LlamaIndexVariant("default", model_dir, None, None))

    print(f"{len(files)} pages, {len(variants)} variants, {args.blocks} interleaved blocks", flush=True)
    for variant in variants:
        variant.setup()
        print(f"  ready: {variant.timing.name} (setup {variant.timing.setup_s:.1f} s)", flush=True)
    extracted = {
        path: load_document(path.name, path.read_bytes()) for path in files
    }  # for LlamaIndex only; ragchat loads its own

    blocks = [files[i :: args.blocks] for i in range(args.blocks)]
    for number, block in enumerate(blocks):
        order = variants[number % len(variants) :] + variants[: number % len(variants)]
        for variant in order:
            before = variant.timing.wall_s
            variant.ingest(block, extracted)
            print(
                f"  block {number + 1}/{len(blocks)} {variant.timing.name}: {len(block)} pages in "
                f"{variant.timing.wall_s - before:.1f} s",
                flush=True,
            )
    whole_corpus = args.pages is None
    for variant in variants:
        variant.close(whole_corpus=whole_corpus)

    rows = [variant.timing.row() for variant in variants]
    baselines = [row for row in rows if row["variant"].startswith("llamaindex")]
    for row in rows:
        for baseline in baselines:
            if row is not baseline and row["wall_s"] and baseline["pages_per_s"]:
                row[f"speedup_vs_{baseline['variant']}"] = round(
                    row["pages_per_s"] / baseline["pages_per_s"], 2
                )
                row[f"cpu_speedup_vs_{baseline['variant']}"] = round(baseline["cpu_s"] / row["cpu_s"], 2)
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "pages": len(files),
        "command": " ".join(sys.argv),
        "median_page_chars": statistics.median(len(doc.text) for doc in extracted.values()),
        "load_average_at_end": os.getloadavg(),
        "variants": rows,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.keep is None:
        shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
