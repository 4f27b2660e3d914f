"""What authentication adds to `POST /api/search`: one data folder served twice at once, by
`uvicorn app.main:app` with RAGCHAT_AUTH=on (each request carries a read key, checked against the
database) and with RAGCHAT_AUTH=off; requests alternate between the two, one at a time, so both see the
same machine load.

    .venv/bin/python bench/auth_cost.py --requests 400

Prints p50/p95 of each and the differences as JSON (figures go to docs/benchmarks.md by hand).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "chat_corpus"
QUERIES = ("rotate an API key", "on-call escalation", "deploy a release", "billing invoice", "who to page")


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ragchat(env: dict[str, str], *args: str) -> str:
    command = [str(Path(sys.executable).with_name("ragchat")), *args]
    done = subprocess.run(
        command, env=env, check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    return done.stdout


def start(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert process.poll() is None, "the app exited"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.terminate()
    raise RuntimeError("the app did not start")


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="measured requests per server")
    parser.add_argument("--warmup", type=int, default=40)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="ragchat-auth-cost-")) / "data"
    base = {
        **os.environ,
        "RAGCHAT_DATA_DIR": str(data_dir),
        "HF_HUB_OFFLINE": "1",
        "RAGCHAT_HOST": "127.0.0.1",
    }
    ragchat(base, "ingest", str(CORPUS))
    ragchat(base, "users", "add", "reader")
    ragchat(base, "collections", "grant", "default", "--user", "reader", "--read")
    key = json.loads(ragchat(base, "keys", "create", "--user", "reader", "--json"))["key"]
    ports = {"on": free_port(), "off": free_port()}
    servers = [start({**base, "RAGCHAT_AUTH": mode}, port) for mode, port in ports.items()]
    timings: dict[str, list[float]] = {"on": [], "off": []}
    try:
        clients = {
            "on": httpx.Client(
                base_url=f"http://127.0.0.1:{ports['on']}", headers={"Authorization": f"Bearer {key}"}
            ),
            "off": httpx.Client(base_url=f"http://127.0.0.1:{ports['off']}"),
        }
        for i in range(args.warmup + args.requests):
            query = {"query": QUERIES[i % len(QUERIES)], "k": 5}
            for mode in ("on", "off") if i % 2 else ("off", "on"):
                started = time.perf_counter()
                response = clients[mode].post("/api/search", json=query)
                elapsed = time.perf_counter() - started
                assert response.status_code == 200, response.text
                if i >= args.warmup:
                    timings[mode].append(elapsed * 1000)
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
    result: dict[str, Any] = {
        "date": datetime.now(UTC).date().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "requests_per_mode": args.requests,
    }
    for mode, values in timings.items():
        result[f"auth_{mode}_p50_ms"] = round(percentile(values, 50), 2)
        result[f"auth_{mode}_p95_ms"] = round(percentile(values, 95), 2)
    result["added_p50_ms"] = round(result["auth_on_p50_ms"] - result["auth_off_p50_ms"], 2)
    result["added_p95_ms"] = round(result["auth_on_p95_ms"] - result["auth_off_p95_ms"], 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
