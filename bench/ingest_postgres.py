"""Ingestion throughput, the whole path (load, chunk, embed, store), into the PostgreSQL store vs the SQLite
store in the same run: the same python-docs pages, page by page in turn into each, one embedding model.

    .venv/bin/python bench/ingest_postgres.py --database-url postgresql://... --work /tmp/ingest-pg --pages 40

--database-url: an empty PostgreSQL database with pgvector (its HNSW index is built at the first page, as
in a fresh deployment, and maintained as rows arrive).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ragchat.config import Settings
from ragchat.core.chunking import Chunker
from ragchat.core.ingest import IngestService, discover_files
from ragchat.infra.embeddings.factory import create_embedder, create_token_counter
from ragchat.infra.loaders import load_document
from ragchat.infra.store import ChunkStore
from ragchat.infra.store.postgres import PostgresChunkStore
from ragchat.infra.store.sqlite import SqliteChunkStore

CORPUS = Path("/usr/share/doc/python3.11/html/library")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--pages", type=int, default=40)
    args = parser.parse_args()
    settings = Settings(_env_file=None, data_dir=args.work)  # type: ignore[call-arg]
    embedder = create_embedder(settings)
    embedder.embed(["warm-up"], input_type="query")
    chunker = Chunker(create_token_counter(settings), settings.chunk_tokens, settings.chunk_overlap_tokens)
    stores: dict[str, ChunkStore] = {
        "sqlite": SqliteChunkStore(args.work / "ragchat.sqlite3"),
        "postgresql": PostgresChunkStore(args.database_url),
    }
    pages = sorted(path for path in discover_files([CORPUS])[0] if path.suffix == ".html")
    pages = pages[:: max(1, len(pages) // args.pages)][: args.pages]
    spent = dict.fromkeys(stores, 0.0)
    chunks = dict.fromkeys(stores, 0)
    try:
        for store in stores.values():
            store.check_embedding_model(embedder.model_name, embedder.dimension)
        services = {
            name: IngestService(
                store, embedder, chunker, load_document, max_file_bytes=settings.max_file_bytes
            )
            for name, store in stores.items()
        }
        for page in pages:
            for name, service in services.items():
                started = time.perf_counter()
                report = service.ingest_paths([page], collection="bench")
                spent[name] += time.perf_counter() - started
                chunks[name] += report.chunk_count
    finally:
        for store in stores.values():
            store.close()
    rates = {name: chunks[name] / spent[name] for name in stores}
    print(
        json.dumps(
            {
                "pages": len(pages),
                "chunks": chunks,
                "seconds": spent,
                "chunks_per_s": rates,
                "postgresql_vs_sqlite": rates["postgresql"] / rates["sqlite"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
