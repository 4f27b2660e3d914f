"""`scripts/start_vllm.sh --preset cpu` really starts vLLM's CPU build, which answers the official client."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.vllm import LAUNCHER, REPO_ROOT, VllmServer, VllmServerFactory, free_port

pytestmark = pytest.mark.llm


def launched_server(vllm_server: VllmServer, vllm_server_factory: VllmServerFactory) -> VllmServer:
    """The shared server when this session launched it; else (reused dev server) one launched here."""
    return vllm_server if vllm_server.owned else vllm_server_factory()


def wait_for_text(path: Path, text: str, timeout_s: float = 30.0) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        content = path.read_text(errors="replace")
        if text in content or time.monotonic() > deadline:
            return content
        time.sleep(0.2)


def test_cpu_preset_answers_and_prints_the_apps_environment(
    vllm_server: VllmServer, vllm_server_factory: VllmServerFactory
) -> None:
    server = launched_server(vllm_server, vllm_server_factory)
    assert server.log_path is not None

    log = wait_for_text(server.log_path, "export VLLM_MODEL=")
    assert "export LLM_BACKEND=vllm" in log
    assert f"export VLLM_BASE_URL={server.base_url}" in log
    assert "export VLLM_MODEL=smollm2" in log

    client = openai.OpenAI(base_url=server.base_url, api_key="unused")
    [model] = client.models.list().data
    assert model.id == "smollm2"
    assert model.model_extra is not None and model.model_extra["max_model_len"] == server.max_model_len
    completion = client.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=8,
        temperature=0,
    )
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.completion_tokens > 0


@pytest.mark.slow
def test_detach_returns_once_healthy_and_stop_ends_the_whole_server(tmp_path: Path) -> None:
    port = free_port()
    log_file, pid_file = tmp_path / "vllm.log", tmp_path / "vllm.pid"
    common = ["bash", str(LAUNCHER), "--preset", "cpu", "--port", str(port), "--pid-file", str(pid_file)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGCHAT_VLLM_")}
    try:
        started = subprocess.run(
            [*common, "--detach", "--log-file", str(log_file), "--max-model-len", "1024"],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO_ROOT,
            timeout=600,
            check=False,
        )
        assert started.returncode == 0, started.stderr + log_file.read_text(errors="replace")[-3000:]
        # stdout is exactly the env lines, so `eval "$(scripts/start_vllm.sh --detach)"` configures the app.
        exported = dict(
            line.removeprefix("export ").split("=", 1) for line in started.stdout.strip().splitlines()
        )
        assert exported == {
            "LLM_BACKEND": "vllm",
            "VLLM_BASE_URL": f"http://127.0.0.1:{port}/v1",
            "VLLM_MODEL": "smollm2",
        }
        pid = int(pid_file.read_text())
        models = httpx.get(f"{exported['VLLM_BASE_URL']}/models", timeout=10).json()
        assert models["data"][0]["max_model_len"] == 1024

        again = subprocess.run(
            [*common, "--detach"], capture_output=True, text=True, env=env, timeout=60, check=False
        )
        assert again.returncode != 0
        assert f"a server already answers on port {port}" in again.stderr
    finally:
        stopped = subprocess.run([*common, "--stop"], capture_output=True, text=True, env=env, timeout=90)
    assert stopped.returncode == 0, stopped.stderr
    assert not pid_file.exists()
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # nothing of the server's process group is left
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)


def test_port_in_use_is_refused_before_starting_anything() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            ["bash", str(LAUNCHER), "--preset", "cpu", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 1
    assert f"port {port} is already in use" in result.stderr
    assert "HINT" in result.stderr and "--port" in result.stderr


@pytest.mark.slow
def test_out_of_memory_at_start_prints_the_fix() -> None:
    """A KV cache too small for the context: real vLLM fails at start; the launcher says what to change."""
    result = subprocess.run(
        [
            "bash",
            str(LAUNCHER),
            "--preset",
            "cpu",
            "--port",
            str(free_port()),
            "--",
            "--kv-cache-memory-bytes",
            "1000000",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 1
    assert "No available memory for the cache blocks" in result.stdout  # vLLM's own words
    assert "HINT out of memory for the KV cache" in result.stderr
    assert "--max-model-len" in result.stderr
    assert "vLLM exited (status 1) before answering /health" in result.stderr
