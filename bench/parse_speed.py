"""Parsing speed: the loaders in this process against the same loaders in `ParserPool` worker processes.

    .venv/bin/python bench/parse_speed.py                # all pages of python3.11-doc's HTML
    .venv/bin/python bench/parse_speed.py --pages 100    # an evenly spread sample

Variants, on the same pages (read into memory first), in rotating order over --rounds rounds:
- `in-process`: `load_document(name, data)` in the calling thread (what ingestion did before the pool).
- `pool-1-thread`: `ParserPool.parse` from one thread (what `ragchat ingest` does: one prefetch thread),
  the pool's workers already started.
- `pool-2-threads`: two threads feeding a pool of two workers.
Reports pages/s and MB/s of source HTML per variant (median over rounds) and the workers' start-up time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ragchat.infra.loaders import ParseLimits, load_document
from ragchat.infra.parsing import ParserPool

CORPUS = Path("/usr/share/doc/python3.11/html")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--pages", type=int, help="evenly spread sample of this many pages (default all)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    files = sorted(args.corpus.rglob("*.html"))
    if args.pages:
        files = files[:: max(len(files) // args.pages, 1)][: args.pages]
    pages = [(path.name, path.read_bytes()) for path in files]
    megabytes = sum(len(data) for _, data in pages) / 1e6
    print(f"{len(pages)} pages, {megabytes:.1f} MB")

    pool = ParserPool(ParseLimits(), workers=2, timeout_s=120, memory_mb=1024)
    started = time.perf_counter()
    with ThreadPoolExecutor(2) as threads:  # start both workers
        list(threads.map(lambda page: pool.parse(*page), pages[:2]))
    print(f"two workers started and parsed a page each in {time.perf_counter() - started:.2f} s")

    def pooled(workers: int) -> None:
        with ThreadPoolExecutor(workers) as threads:
            list(threads.map(lambda page: pool.parse(*page), pages))

    variants = {
        "in-process": lambda: [load_document(name, data) for name, data in pages],
        "pool-1-thread": lambda: pooled(1),
        "pool-2-threads": lambda: pooled(2),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for round_number in range(args.rounds):
        for name in names[round_number % len(names) :] + names[: round_number % len(names)]:
            started = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - started)
    pool.close()
    print("| variant | pages/s | MB/s | runs (s) |\n|---|---:|---:|---|")
    for name, runs in times.items():
        median = statistics.median(runs)
        shown = ", ".join(f"{run:.1f}" for run in runs)
        print(f"| {name} | {len(pages) / median:.1f} | {megabytes / median:.2f} | {shown} |")


if __name__ == "__main__":
    main()
