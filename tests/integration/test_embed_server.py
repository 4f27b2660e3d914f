"""`ragchat embed-server`, started as a real process and driven with the official `openai` client; and
the app using it (EMBEDDING_BACKEND=openai) while it is stopped and started again."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx
import numpy as np
import numpy.typing as npt
import openai
import pytest
from openai.types import CreateEmbeddingResponse
from prometheus_client.parser import text_string_to_metric_families

from ragchat.config import Settings
from ragchat.embed_server.app import ServedModel, create_embed_app, prepare_models
from ragchat.infra.embeddings import InputType
from ragchat.infra.embeddings.batching import Encoded, MicroBatcher
from ragchat.infra.embeddings.local import SentenceTransformerEmbedder
from ragchat.infra.embeddings.openai import OpenAIEmbedder
from tests.support.live_app import live_app
from tests.support.processes import wait_until_healthy
from tests.support.vllm import VllmServer, free_port

TEXTS = [
    "Prefix caching reuses the KV cache of a shared prompt prefix.",
    "How do I rotate the API keys?",
    "Chunked prefill interleaves long prompts with decoding.",
    "",
    "ünïcödé and emoji 🚀 survive the round trip",
]
TOLERANCE = 1e-5  # float32 rounding between ONNX Runtime and torch


@pytest.fixture(scope="module")
def reference() -> SentenceTransformerEmbedder:
    """The in-process model the app uses with EMBEDDING_BACKEND=local (sentence-transformers)."""
    return SentenceTransformerEmbedder("all-MiniLM-L6-v2")


@contextmanager
def running_embed_server(data_dir: Path, *args: str, port: int | None = None) -> Iterator[str]:
    """`ragchat embed-server ARGS` on `port` (default: a free one), as a real process; yields its base URL
    ".../v1"."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "embed-server.log"
    port = port or free_port()
    env = {**os.environ, "RAGCHAT_DATA_DIR": str(data_dir)}
    command = [str(Path(sys.executable).parent / "ragchat"), "embed-server", "--port", str(port), *args]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}/health", process, log_path, 300)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def embed_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`ragchat embed-server` with its defaults (sentence-transformers), shared by this module."""
    with running_embed_server(tmp_path_factory.mktemp("embed-data")) as url:
        yield url


@pytest.fixture
def client(embed_server_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=embed_server_url, api_key="unused", max_retries=0)


def as_matrix(response: CreateEmbeddingResponse) -> npt.NDArray[np.float32]:
    """Rows in index order; an explicit `encoding_format="base64"` leaves decoding to the caller."""
    rows = []
    for item in sorted(response.data, key=lambda item: item.index):
        embedding: object = item.embedding
        if isinstance(embedding, str):
            rows.append(np.frombuffer(base64.b64decode(embedding), dtype="<f4"))
        else:
            rows.append(np.asarray(embedding, dtype=np.float32))
    return np.stack(rows).astype(np.float32)


@pytest.mark.parametrize("encoding_format", ["float", "base64"])
def test_vectors_equal_the_in_process_model(
    client: openai.OpenAI, reference: SentenceTransformerEmbedder, encoding_format: str
) -> None:
    response = client.embeddings.create(
        model="all-MiniLM-L6-v2",
        input=TEXTS,
        encoding_format=encoding_format,  # type: ignore[arg-type]
    )
    expected = reference.embed(TEXTS, input_type="document")

    assert response.model == "all-MiniLM-L6-v2"
    assert [item.index for item in response.data] == list(range(len(TEXTS)))
    np.testing.assert_allclose(as_matrix(response), expected, atol=TOLERANCE)
    assert response.usage.prompt_tokens == response.usage.total_tokens > len(TEXTS)


def test_onnx_runtime_serves_the_same_vectors(tmp_path: Path, reference: SentenceTransformerEmbedder) -> None:
    with running_embed_server(tmp_path, "--runtime", "onnx") as url:
        onnx_client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
        response = onnx_client.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS)
    np.testing.assert_allclose(
        as_matrix(response), reference.embed(TEXTS, input_type="document"), atol=TOLERANCE
    )


def test_one_text_and_the_client_default_encoding(
    client: openai.OpenAI, reference: SentenceTransformerEmbedder
) -> None:
    response = client.embeddings.create(model="sentence-transformers/all-MiniLM-L6-v2", input=TEXTS[0])
    assert len(response.data) == 1
    np.testing.assert_allclose(
        as_matrix(response)[0], reference.embed(TEXTS[:1], input_type="document")[0], atol=TOLERANCE
    )


def test_sixteen_concurrent_clients_each_get_their_own_vectors(
    embed_server_url: str, reference: SentenceTransformerEmbedder
) -> None:
    requests = [[f"question number {i}: {TEXTS[i % len(TEXTS)]}"] * (1 + i % 3) for i in range(16)]

    def call(texts: list[str]) -> npt.NDArray[np.float32]:
        with openai.OpenAI(base_url=embed_server_url, api_key="unused", max_retries=0) as one_client:
            return as_matrix(one_client.embeddings.create(model="all-MiniLM-L6-v2", input=texts))

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(call, requests))
    for texts, vectors in zip(requests, results, strict=True):
        np.testing.assert_allclose(vectors, reference.embed(texts, input_type="document"), atol=TOLERANCE)


def test_models_health_and_metrics(client: openai.OpenAI, embed_server_url: str) -> None:
    [model] = client.models.list().data
    assert model.id == "all-MiniLM-L6-v2"
    assert model.model_extra is not None and model.model_extra["dimension"] == 384
    root = embed_server_url.removesuffix("/v1")
    assert httpx.get(f"{root}/health").json()["models"] == ["all-MiniLM-L6-v2"]

    client.embeddings.create(model="all-MiniLM-L6-v2", input=["a", "b", "c"])
    families = {
        family.name: family for family in text_string_to_metric_families(httpx.get(f"{root}/metrics").text)
    }
    ok = [
        sample.value
        for sample in families["ragchat_embed_requests"].samples
        if sample.name.endswith("_total") and sample.labels == {"model": "all-MiniLM-L6-v2", "outcome": "ok"}
    ]
    assert ok and ok[0] >= 1
    batches = [s for s in families["ragchat_embed_batch_texts"].samples if s.name.endswith("_count")]
    assert batches and batches[0].value >= 1


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"model": "text-embedding-3-small", "input": "x"}, openai.NotFoundError, "not served here"),
        ({"model": "all-MiniLM-L6-v2", "input": [[1, 2, 3]]}, openai.BadRequestError, "token-id input"),
        ({"model": "all-MiniLM-L6-v2", "input": []}, openai.BadRequestError, "at least one text"),
        ({"model": "all-MiniLM-L6-v2", "input": "x", "dimensions": 256}, openai.BadRequestError, "384"),
        ({"model": "all-MiniLM-L6-v2", "input": ["x"] * 2049}, openai.BadRequestError, "at most 2048"),
    ],
)
def test_bad_requests_get_clear_openai_errors(
    client: openai.OpenAI, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        client.embeddings.create(**kwargs)  # type: ignore[arg-type]


def test_the_apps_openai_embedder_gets_the_local_models_vectors(
    embed_server_url: str, reference: SentenceTransformerEmbedder
) -> None:
    """EMBEDDING_BACKEND=openai pointed at the server embeds like EMBEDDING_BACKEND=local."""
    remote = OpenAIEmbedder(base_url=embed_server_url, model="all-MiniLM-L6-v2")
    try:
        np.testing.assert_allclose(
            remote.embed(TEXTS, input_type="query"),
            reference.embed(TEXTS, input_type="query"),
            atol=TOLERANCE,
        )
        assert remote.dimension == reference.dimension
    finally:
        remote.close()


def test_port_in_use_is_one_clear_error(embed_server_url: str) -> None:
    port = embed_server_url.rsplit(":", 1)[1].removesuffix("/v1")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ragchat"), "embed-server", "--port", port],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert f"port {port}" in result.stderr and "already in use" in result.stderr


async def test_requests_arriving_during_a_model_call_share_the_next_one(tmp_path: Path) -> None:
    """While one batch is being encoded, later requests queue up and are encoded together in one call."""
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    [model] = prepare_models(settings, ["all-MiniLM-L6-v2"], "torch")
    release = threading.Event()
    first_call_started = asyncio.Event()
    loop = asyncio.get_running_loop()
    calls: list[int] = []

    def encode_after_release(texts: list[str], input_type: InputType) -> Encoded:
        calls.append(len(texts))
        loop.call_soon_threadsafe(first_call_started.set)  # runs on the model's own thread
        release.wait(timeout=60)  # hold the call until the other requests have queued
        return model.encode(texts, input_type)

    batcher = MicroBatcher(encode_after_release, max_batch_texts=64, max_wait_s=0)
    batcher.start()
    try:
        results: dict[int, Encoded] = {}

        async def submit(index: int) -> None:
            results[index] = await batcher.submit([f"text {index}"], "document")

        async with anyio.create_task_group() as group:
            group.start_soon(submit, 0)
            await first_call_started.wait()
            for index in range(1, 6):
                group.start_soon(submit, index)
            await anyio.sleep(0.1)
            release.set()
        assert calls == [1, 5]
        for index, encoded in results.items():
            np.testing.assert_allclose(
                encoded.vectors, model.encode([f"text {index}"], "document").vectors, atol=TOLERANCE
            )
    finally:
        release.set()
        await batcher.aclose()


def test_an_app_without_models_is_refused() -> None:
    models: list[ServedModel] = []
    with pytest.raises(ValueError, match="at least one model"):
        create_embed_app(models)


def sse_events(response: httpx.Response) -> list[str]:
    return [line[len("data: ") :] for line in response.text.splitlines() if line.startswith("data: ")]


@pytest.mark.llm
def test_the_app_answers_503_while_its_embedding_server_is_down_and_recovers(
    tmp_path: Path, vllm_server: VllmServer
) -> None:
    """Search and chat (a question alone, and a follow-up whose two searches run side by side) answer 503
    `embedding_unavailable` in the shape of an LLM outage, then work again once the server is back."""
    port = free_port()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "app",
        embedding_backend="openai",
        embedding_base_url=f"http://127.0.0.1:{port}/v1",
        embedding_model="all-MiniLM-L6-v2",
        vllm_base_url=vllm_server.base_url,
        vllm_model=vllm_server.model,
        llm_max_tokens=4,
        auth="off",  # on loopback: this test is about the embedding server
        host="127.0.0.1",
    )
    question = {"role": "user", "content": "How do I rotate an API key?"}
    follow_up = [
        question,
        {"role": "assistant", "content": "Use orbitctl [1]."},
        {"role": "user", "content": "And revoke it?"},
    ]
    handbook = Path(__file__).resolve().parents[1] / "data" / "chat_corpus" / "api-keys.md"
    with live_app(settings) as app, httpx.Client(base_url=app, timeout=120) as http:
        with running_embed_server(tmp_path / "embed", port=port):
            stored = http.post("/api/documents", files=[("files", (handbook.name, handbook.read_bytes()))])
            assert stored.status_code == 200, stored.text
            assert http.post("/api/search", json={"query": "rotate a key"}).status_code == 200

        # The embedding server is stopped.
        for mode in ("hybrid", "vector"):
            down = http.post("/api/search", json={"query": "rotate a key", "mode": mode})
            assert down.status_code == 503, down.text
            assert down.json()["error"]["code"] == "embedding_unavailable"
            assert down.json()["error"]["type"] == "service_unavailable"  # as an LLM outage says it
            assert (
                f"cannot reach the embedding server at http://127.0.0.1:{port}/v1"
                in down.json()["error"]["message"]
            )
        for messages in ([question], follow_up):
            chat = http.post("/v1/chat/completions", json={"messages": messages})
            assert chat.status_code == 503, chat.text
            assert chat.json()["error"]["code"] == "embedding_unavailable"
        streamed = http.post("/v1/chat/completions", json={"messages": follow_up, "stream": True})
        events = sse_events(streamed)
        assert events[-1] == "[DONE]"
        assert json.loads(events[-2])["error"]["code"] == "embedding_unavailable"
        assert http.get("/health").status_code == 200

        with running_embed_server(tmp_path / "embed", port=port):
            found = http.post("/api/search", json={"query": "rotate a key"})
            assert found.status_code == 200 and found.json()["results"]
            answered = http.post("/v1/chat/completions", json={"messages": follow_up})
            assert answered.status_code == 200, answered.text
            assert answered.json()["sources"]
