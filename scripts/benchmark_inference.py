#!/usr/bin/env python3
"""Benchmark an OpenAI-compatible LLM server, as the guide runs it:

    python scripts/benchmark_inference.py --backend vllm --runs 10
    python scripts/benchmark_inference.py --backend openai --runs 10
    python scripts/benchmark_inference.py compare A/results.json B/results.json

A thin entry to `ragchat bench run` (see `--help`, and docs/benchmarking.md). Works from a checkout without
installing ragchat, as long as its light dependencies (httpx, numpy, rich, typer, pydantic-settings,
matplotlib) are importable.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    source = Path(__file__).resolve().parent.parent / "src"
    if source.is_dir() and str(source) not in sys.path:
        sys.path.insert(0, str(source))

    from ragchat.cli.bench import run_script

    run_script(sys.argv[1:])
