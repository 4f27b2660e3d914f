"""The benchmark against a scripted OpenAI-compatible server, for what a real vLLM will not do on demand:
an HTTP 500, an error event mid-stream, a connection that dies mid-stream, a stream without `[DONE]`, a
role-only first chunk well before the first token, and ragchat's extra `sources` chunk (`choices: []`).

The server is real (uvicorn on a free port) and the tool runs as the guide runs it
(`scripts/benchmark_inference.py` in a subprocess): failed requests are counted, the run never crashes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.vllm import REPO_ROOT, free_port

SCRIPT = REPO_ROOT / "scripts" / "benchmark_inference.py"
ROLE_TO_CONTENT_DELAY_S = 0.2


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    body = {"id": "x", "object": "chat.completion.chunk", "model": "scripted", "choices": choices, **extra}
    return f"data: {json.dumps(body)}\n\n".encode()


async def scripted_stream(behaviour: str) -> AsyncIterator[bytes]:
    yield chunk({"role": "assistant", "content": ""})
    await asyncio.sleep(ROLE_TO_CONTENT_DELAY_S)
    yield chunk({"content": "Hello"})
    if behaviour == "error-event":
        yield b'data: {"error": {"message": "engine overloaded", "type": "server_error"}}\n\n'
        yield b"data: [DONE]\n\n"
        return
    if behaviour == "die":
        raise RuntimeError("scripted crash mid-stream")
    yield chunk({"content": " big world"})  # two tokens in one chunk
    yield chunk({}, finish="length")
    if behaviour == "no-done":
        return
    yield chunk(None, usage={"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10})
    yield chunk(None, sources=[{"index": 1, "document": "a.md"}])
    yield b"data: [DONE]\n\n"


async def models(_: Request) -> Response:
    return JSONResponse({"object": "list", "data": [{"id": "scripted", "object": "model"}]})


async def chat(request: Request) -> Response:
    body = await request.json()
    behaviour = body["messages"][-1]["content"]
    if behaviour == "http500":
        return JSONResponse(
            {"error": {"message": "scripted failure", "type": "server_error"}}, status_code=500
        )
    return StreamingResponse(scripted_stream(behaviour), media_type="text/event-stream")


@pytest.fixture(scope="module")
def scripted_server() -> Iterator[str]:
    app = Starlette(
        routes=[Route("/v1/models", models), Route("/v1/chat/completions", chat, methods=["POST"])]
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=10)


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT
    )


def test_failed_requests_are_counted_and_the_run_finishes(scripted_server: str, tmp_path: Path) -> None:
    behaviours = ["ok", "http500", "error-event", "die", "no-done", "ok"]
    dataset = tmp_path / "prompts.jsonl"
    dataset.write_text("".join(json.dumps({"prompt": b}) + "\n" for b in behaviours))
    out = tmp_path / "out"

    done = run_script(
        "--base-url", scripted_server, "--dataset", str(dataset), "--workloads", "", "--no-prefix-experiment",
        "--concurrency", "1", "--runs", str(len(behaviours)), "--warmup", "0", "--output", str(out),
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    record = json.loads((out / "results.json").read_text())
    [step] = record["steps"]
    samples = step["samples"]
    outcome = {behaviours[s["index"] % len(behaviours)]: s for s in samples}
    assert step["summary"]["requests"] == 6
    assert step["summary"]["completed"] == 2
    assert step["summary"]["failed"] == 4
    assert outcome["http500"]["error"] == "HTTP 500: scripted failure"
    assert outcome["error-event"]["error"] == "error event in stream: engine overloaded"
    assert outcome["die"]["error"].startswith("RemoteProtocolError")
    assert outcome["no-done"]["error"] == "the stream ended before [DONE]"
    assert "failed requests: 4 of 6" in done.stdout
    assert "none of 1 meets it" in done.stdout  # a step with failures never meets the SLO
    assert any("no vllm:* series" in note for note in record["notes"])


def test_ttft_waits_for_content_and_tokens_come_from_usage(scripted_server: str, tmp_path: Path) -> None:
    dataset = tmp_path / "ok.jsonl"
    dataset.write_text(json.dumps({"prompt": "ok"}) + "\n")
    out = tmp_path / "out"

    done = run_script(
        "--base-url", scripted_server, "--dataset", str(dataset), "--workloads", "", "--no-prefix-experiment",
        "--concurrency", "1,2", "--runs", "2", "--warmup", "0", "--output", str(out), "--no-plots",
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    record = json.loads((out / "results.json").read_text())
    for step in record["steps"]:
        for sample in step["samples"]:
            assert sample["success"]
            # The role-only chunk came at once; TTFT is the first chunk with content, 0.2 s later.
            assert sample["ttft_s"] >= ROLE_TO_CONTENT_DELAY_S
            # Two content chunks but three tokens: the count is usage's, not the chunks'.
            assert len(sample["content_times_s"]) == 2
            assert sample["output_tokens"] == 3
            assert sample["prompt_tokens"] == 7
            assert sample["tpot_s"] == pytest.approx((sample["e2e_s"] - sample["ttft_s"]) / 2, abs=2e-6)
    assert (out / "summary.md").exists()
    assert not list(out.glob("*.png"))
