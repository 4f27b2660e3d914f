"""vLLM's real router (`vllm-router`) for tests, started through scripts/start_router.sh (so the launcher
itself is exercised; it installs the router into <repo>/router-env on first use, as scripts/setup.sh does)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.vllm import REPO_ROOT, free_port

LAUNCHER = REPO_ROOT / "scripts" / "start_router.sh"
START_TIMEOUT_S = 180.0  # a first start installs the router (~20 s)


@dataclass(frozen=True)
class RouterServer:
    """A running router: `base_url` for OpenAI clients and VLLM_BASE_URL; `metrics_url`, its Prometheus."""

    root_url: str
    metrics_url: str

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def worker_series(self, name: str) -> dict[str, float]:
        """One of the router's per-worker series (e.g. `vllm_router_processed_requests`), by worker URL."""
        found: dict[str, float] = {}
        for family in text_string_to_metric_families(httpx.get(self.metrics_url, timeout=10).text):
            for sample in family.samples:
                if sample.name == name and "worker" in sample.labels:
                    found[sample.labels["worker"]] = float(sample.value)
        return found


@contextmanager
def running_router(
    worker_urls: Sequence[str], log_path: Path, *, policy: str = "cache_aware", extra: Sequence[str] = ()
) -> Iterator[RouterServer]:
    """Start the router in front of `worker_urls` on free ports; stop it (its process group) on exit."""
    port, metrics_port = free_port(), free_port()
    command = [
        "bash",
        str(LAUNCHER),
        "--workers",
        *worker_urls,
        "--policy",
        policy,
        "--port",
        str(port),
        "--metrics-port",
        str(metrics_port),
        *extra,
    ]
    router = RouterServer(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics")
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(router.root_url):
            if process.poll() is not None:
                raise RuntimeError(
                    f"the router exited ({process.returncode}):\n{log_path.read_text()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"the router gave no /health:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield router
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


def _healthy(root_url: str) -> bool:
    try:
        return httpx.get(f"{root_url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
