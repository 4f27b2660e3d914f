"""Waiting for a server started as a subprocess."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout_s: float) -> None:
    """Return once `url` answers 200; fail with the log's tail if the process exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert process.poll() is None, f"{url}: the process exited:\n{log_path.read_text()[-3000:]}"
        assert time.monotonic() < deadline, (
            f"{url}: no answer in {timeout_s:.0f} s:\n{log_path.read_text()[-3000:]}"
        )
        time.sleep(0.3)
