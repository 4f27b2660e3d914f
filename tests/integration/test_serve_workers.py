"""`ragchat serve --workers 2`: real uvicorn worker processes on one port, and one /metrics that sums them.

Each scrape is answered by whichever worker accepts the connection; every scrape must report the requests
that all workers served.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import wait_until_healthy
from tests.support.vllm import REPO_ROOT, free_port

RAGCHAT = Path(sys.executable).parent / "ragchat"


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    raise AssertionError(f"{name}{labels} not exported")


def health_requests(text: str) -> float:
    return sample(text, "ragchat_http_requests_total", route="/health", method="GET", status="200")


def test_two_workers_serve_one_port_and_metrics_sum_over_both(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "serve.log"
    env = {
        **os.environ,
        "RAGCHAT_DATA_DIR": str(tmp_path / "data"),
        "VLLM_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",  # no LLM needed here
        "HF_HUB_OFFLINE": "1",
        "RAGCHAT_AUTH": "off",
        "RAGCHAT_HOST": "127.0.0.1",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(RAGCHAT), "serve", "--workers", "2", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(f"{base}/health", process, log_path, timeout_s=240)
        before = health_requests(httpx.get(f"{base}/metrics", timeout=10).text)
        for _ in range(30):
            assert httpx.get(f"{base}/health", timeout=10).status_code == 200  # a new connection each
        for _ in range(6):
            text = httpx.get(f"{base}/metrics", timeout=10).text
            assert health_requests(text) == before + 30
            assert sample(text, "ragchat_build_info") == 1
            assert sample(text, "ragchat_http_requests_in_progress") == 1  # this scrape, in one worker
        folder = Path(re.search(r"summed through (\S+)", log_path.read_text())[1])  # type: ignore[index]
        writers = {path.stem.rsplit("_", 1)[1] for path in folder.glob("*.db")}  # <kind>_<pid>.db
        assert len(writers) >= 2, f"metrics files of one process only: {sorted(folder.iterdir())}"
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
    assert not folder.exists(), "the metrics folder made for the run outlives it"
