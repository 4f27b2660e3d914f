"""Real vLLM CPU servers for tests (SmolLM2-135M-Instruct, served as `smollm2`).

Fixtures (registered through `pytest_plugins` in tests/conftest.py):

- `vllm_server` (session): the shared server. With RAGCHAT_TEST_VLLM_URL set (e.g.
  `http://127.0.0.1:8000/v1`) that running server is reused and never stopped; otherwise one is started
  once per session through `scripts/start_vllm.sh --preset cpu` (so the launcher itself is exercised)
  and its process group is killed at the end of the session.
- `vllm_server_factory` (module): `factory(max_model_len=1024, extra_args=[...])` starts an extra
  server with other flags (~35 s, ~4 GB RAM: only when a test needs them). Every server it made is
  stopped at the end of the test module that asked for it (so no two modules' extra servers share the
  machine's memory); a test may `stop()`, `kill()` and `start()` it in between, which is
  how "backend down / killed mid-stream / back again" is shown. Never stop or kill `vllm_server`.

Each server is a `VllmServer`: `base_url` (".../v1" for OpenAI clients), `root_url` (for /health,
/metrics, /tokenize), `model`, `max_model_len`, `process` (None when reused), `log_path`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = REPO_ROOT / "scripts" / "start_vllm.sh"
REUSE_URL_ENV = "RAGCHAT_TEST_VLLM_URL"
SERVED_MODEL_NAME = "smollm2"
DEFAULT_MAX_MODEL_LEN = 4096
# Startup takes ~35 s on an idle 2-core machine; allow for a busy one (and a first-time model conversion).
START_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 30.0


class VllmStartError(RuntimeError):
    """The server exited or never answered /health; the message carries the end of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def launcher_command(port: int, max_model_len: int, extra_args: Sequence[str] = ()) -> list[str]:
    """The `start_vllm.sh` invocation the fixtures use (the cpu preset, foreground)."""
    command = [
        "bash",
        str(LAUNCHER),
        "--preset",
        "cpu",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-model-len",
        str(max_model_len),
        "--served-model-name",
        SERVED_MODEL_NAME,
        # The model's own sampling, not the cpu preset's repetition penalty: the tests' questions (which ask
        # SmolLM2 to cite "[1]") were written for it, and the penalty discourages repeating "[1]".
        "--generation-config",
        "",
        "--health-timeout",
        str(int(START_TIMEOUT_S)),
    ]
    if extra_args:
        command += ["--", *extra_args]
    return command


@dataclass
class VllmServer:
    """A vLLM server the tests talk to: either started here (restartable) or reused (`process` is None)."""

    root_url: str
    model: str
    max_model_len: int
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    command: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (what VLLM_BASE_URL holds)."""
        return f"{self.root_url}/v1"

    @property
    def port(self) -> int:
        return int(self.root_url.rsplit(":", 1)[1])

    @property
    def owned(self) -> bool:
        """True when this session started the server (so it may stop, kill and restart it)."""
        return bool(self.command)

    def is_healthy(self) -> bool:
        """True when GET /health answers 200 right now."""
        try:
            return httpx.get(f"{self.root_url}/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Launch the server (again, on the same port) and wait until /health answers."""
        self._require_owned("start")
        if self.process is not None and self.process.poll() is None:
            return
        assert self.log_path is not None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n=== {' '.join(self.command)}\n".encode())
            log.flush()
            # Its own session: the launcher, vLLM's API server and its engine core die together.
            self.process = subprocess.Popen(
                self.command,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_healthy(timeout_s)

    def stop(self) -> None:
        """Shut the server down cleanly (SIGTERM to its process group, SIGKILL after 30 s)."""
        self._signal_group(signal.SIGTERM, wait_s=STOP_TIMEOUT_S)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would: open streams break mid-way."""
        self._signal_group(signal.SIGKILL, wait_s=STOP_TIMEOUT_S)

    def restart(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Stop, then start again on the same port."""
        self.stop()
        self.start(timeout_s)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's log (empty when reused)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _require_owned(self, action: str) -> None:
        if not self.owned:
            raise RuntimeError(f"cannot {action} a reused server ({self.root_url}); use vllm_server_factory")

    def _wait_healthy(self, timeout_s: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while not self.is_healthy():
            if self.process.poll() is not None:
                code = self.process.returncode
                self.kill()  # whatever of its process group is left
                raise VllmStartError(f"vLLM exited with status {code} before /health:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise VllmStartError(f"vLLM gave no /health within {timeout_s:.0f} s:\n{self.log_tail()}")
            time.sleep(0.5)

    def _signal_group(self, sig: signal.Signals, wait_s: float) -> None:
        self._require_owned("stop")
        process = self.process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=wait_s)
        # The launcher may go before vLLM's engine process: make sure nothing of the group is left.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        self.process = None
        self._wait_port_closed()

    def _wait_port_closed(self) -> None:
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.2)


def reuse_server(base_url: str) -> VllmServer:
    """Describe an already-running server from its /v1/models (model name and max_model_len)."""
    base_url = base_url.rstrip("/")
    root_url = base_url.removesuffix("/v1")
    try:
        listing = httpx.get(f"{base_url}/models", timeout=10.0).raise_for_status().json()
    except httpx.HTTPError as exc:
        raise pytest.UsageError(f"{REUSE_URL_ENV}={base_url} does not answer /v1/models: {exc}") from exc
    first = listing["data"][0]
    return VllmServer(root_url=root_url, model=first["id"], max_model_len=int(first["max_model_len"]))


def launch_server(
    log_dir: Path, max_model_len: int = DEFAULT_MAX_MODEL_LEN, extra_args: Sequence[str] = ()
) -> VllmServer:
    """Start a vLLM CPU server through scripts/start_vllm.sh on a free port; return once /health answers."""
    port = free_port()
    server = VllmServer(
        root_url=f"http://127.0.0.1:{port}",
        model=SERVED_MODEL_NAME,
        max_model_len=max_model_len,
        log_path=log_dir / f"vllm-{port}.log",
        command=launcher_command(port, max_model_len, extra_args),
    )
    server.start()
    return server


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    """The session's shared vLLM server (reused from RAGCHAT_TEST_VLLM_URL, else started once)."""
    reuse_url = os.environ.get(REUSE_URL_ENV)
    if reuse_url:
        yield reuse_server(reuse_url)
        return
    server = launch_server(tmp_path_factory.mktemp("vllm"))
    try:
        yield server
    finally:
        server.stop()


VllmServerFactory = Callable[..., VllmServer]


@pytest.fixture(scope="module")
def vllm_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServerFactory]:
    """Start extra servers: `factory(max_model_len=1024, extra_args=["--max-num-seqs", "4"])`."""
    started: list[VllmServer] = []
    log_dir = tmp_path_factory.mktemp("vllm-extra")

    def factory(max_model_len: int = DEFAULT_MAX_MODEL_LEN, extra_args: Sequence[str] = ()) -> VllmServer:
        server = launch_server(log_dir, max_model_len, extra_args)
        started.append(server)
        return server

    try:
        yield factory
    finally:
        for server in started:
            server.stop()
