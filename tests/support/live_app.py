"""The real ragchat app served by a real uvicorn on a free port (in a thread), for OpenAI clients and for
tests that need real sockets (client disconnects)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from ragchat.api.app import create_app
from ragchat.config import Settings
from tests.support.vllm import free_port

START_TIMEOUT_S = 180.0  # loads the embedding model; slow on a busy 2-core machine


@contextmanager
def live_app(settings: Settings, *, port: int | None = None, **uvicorn_options: Any) -> Iterator[str]:
    """Serve `create_app(settings)` on `port` (default: a free one); yield its root URL (the OpenAI base URL
    is that plus "/v1"). `uvicorn_options` go to `uvicorn.Config` (e.g. proxy_headers=False)."""
    port = port or free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", **uvicorn_options
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"ragchat-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the ragchat app failed to start (see the log above)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the ragchat app did not start within {START_TIMEOUT_S:.0f} s")
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def vllm_metric(root_url: str, name: str) -> float:
    """The value of an unlabelled-or-single-series metric from a vLLM server's /metrics (0 if absent)."""
    for line in httpx.get(f"{root_url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
