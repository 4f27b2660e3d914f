"""Chat under pressure, against a dedicated real vLLM CPU server with `--max-model-len 1024`:

- a large collection, long passages and a long history never produce a length error (the prompt budget);
- a client that goes away cancels the request in vLLM (streaming and not);
- the LLM down: 503 / SSE error event; vLLM killed (SIGKILL) mid-stream: an error event, the app stays
  up, and the next request succeeds once vLLM is back.

The server is this module's own (it is killed and restarted), started through `vllm_server_factory`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from ragchat.config import Settings
from tests.support.live_app import live_app, vllm_metric
from tests.support.vllm import VllmServer, VllmServerFactory, free_port

pytestmark = [pytest.mark.llm, pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

CONTEXT = 1024
PYTHON_DOCS = Path("/usr/share/doc/python3.11/html/library")
LARGE_COLLECTION = ("threading", "asyncio-task", "queue", "sched", "secrets", "tempfile")
LONG_ANSWER = "Write a very long story about a lighthouse keeper, with many chapters."


@pytest.fixture(scope="module")
def small_vllm(vllm_server_factory: VllmServerFactory) -> VllmServer:
    return vllm_server_factory(max_model_len=CONTEXT)


def app_settings(data_dir: Path, vllm: VllmServer | None, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "chunk_tokens": 300,  # long passages
        "retrieval_k": 10,
        "vllm_base_url": vllm.base_url if vllm else f"http://127.0.0.1:{free_port()}/v1",
        "llm_temperature": 0.0,
        "auth": "off",
        "host": "127.0.0.1",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory, small_vllm: VllmServer) -> Iterator[str]:
    with live_app(app_settings(tmp_path_factory.mktemp("tiny") / "data", small_vllm)) as url:
        files = [PYTHON_DOCS / f"{name}.html" for name in LARGE_COLLECTION]
        response = httpx.post(
            f"{url}/api/documents?wait=true",
            files=[("files", (f.name, f.read_bytes())) for f in files],
            timeout=600,
        )
        assert response.status_code == 200, response.text
        assert sum(r["chunks"] for r in response.json()["results"]) > 100
        yield url


@pytest.fixture
async def client(app_url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=f"{app_url}/v1", api_key="unused", max_retries=0) as client:
        yield client


def long_history(turns: int = 30) -> list[dict[str, str]]:
    history = []
    for i in range(turns // 2):
        history.append(
            {"role": "user", "content": f"Question {i}: how do threads, locks and queues interact? " * 4}
        )
        history.append(
            {"role": "assistant", "content": f"Answer {i}: use a lock around shared state [1]. " * 6}
        )
    return history


# --- the prompt budget ------------------------------------------------------------------------------


async def test_large_collection_and_long_history_fit_a_1024_token_model(
    client: openai.AsyncOpenAI, app_url: str, small_vllm: VllmServer
) -> None:
    messages = [*long_history(), {"role": "user", "content": "How do I wait for a thread to finish?"}]

    # Control: the same material sent to vLLM as is fails for length, so the budget is what saves it.
    async with httpx.AsyncClient(timeout=120) as http:
        found = await http.post(
            f"{app_url}/api/search", json={"query": "wait for a thread to finish", "k": 10}
        )
    passages = "\n\n".join(r["text"] for r in found.json()["results"])
    async with openai.AsyncOpenAI(base_url=small_vllm.base_url, api_key="unused", max_retries=0) as direct:
        with pytest.raises(openai.BadRequestError, match=r"context length|maximum"):
            await direct.chat.completions.create(
                model=small_vllm.model,
                messages=[{"role": "system", "content": passages}, *messages],  # type: ignore[list-item]
                max_tokens=512,
            )

    completion = await client.chat.completions.create(model="ragchat", messages=messages)  # type: ignore[arg-type]
    assert completion.usage is not None
    assert completion.usage.prompt_tokens + completion.usage.completion_tokens <= CONTEXT
    sources = (completion.model_extra or {})["sources"]
    assert 1 <= len(sources) < 10  # low-ranked passages were dropped, the best ones kept

    stream = await client.chat.completions.create(
        model="ragchat",
        messages=messages,  # type: ignore[arg-type]
        max_tokens=5000,  # more than the whole context: the reserve is capped, not refused
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens <= CONTEXT


async def test_a_question_longer_than_the_context_is_a_clear_400(client: openai.AsyncOpenAI) -> None:
    question = "Why? " + "Explain threads and locks in detail please. " * 300
    with pytest.raises(openai.BadRequestError) as raised:
        await client.chat.completions.create(
            model="ragchat", messages=[{"role": "user", "content": question}]
        )
    assert raised.value.body["code"] == "question_too_long"  # type: ignore[index]
    assert "1024" in raised.value.message


# --- client disconnects -------------------------------------------------------------------------------


def finished_requests(vllm: VllmServer) -> float:
    """Requests vLLM completed normally (an aborted request is not counted as stop or length)."""
    text = httpx.get(f"{vllm.root_url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("vllm:request_success_total")
        and ('finished_reason="stop"' in line or 'finished_reason="length"' in line)
    )


async def wait_until_idle(vllm: VllmServer, limit_s: float = 15.0) -> float:
    started = time.monotonic()
    while vllm_metric(vllm.root_url, "vllm:num_requests_running") > 0:
        assert time.monotonic() - started < limit_s, "vLLM is still generating for a client that left"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_closing_a_stream_cancels_the_request_in_vllm(app_url: str, small_vllm: VllmServer) -> None:
    await wait_until_idle(small_vllm)
    finished = finished_requests(small_vllm)
    body = {"messages": [{"role": "user", "content": LONG_ANSWER}], "stream": True, "max_tokens": 500}
    async with (
        httpx.AsyncClient(timeout=120) as http,
        http.stream("POST", f"{app_url}/v1/chat/completions", json=body) as response,
    ):
        deltas = 0
        async for line in response.aiter_lines():
            deltas += '"content":"' in line and '"content":""' not in line
            if deltas == 3:
                break
        assert vllm_metric(small_vllm.root_url, "vllm:num_requests_running") == 1
    # The connection is closed here, three tokens into a 500-token answer.
    await wait_until_idle(small_vllm)
    assert finished_requests(small_vllm) == finished  # aborted, not run to its end


async def test_a_client_giving_up_on_a_non_streamed_answer_cancels_it_too(
    app_url: str, small_vllm: VllmServer
) -> None:
    await wait_until_idle(small_vllm)
    finished = finished_requests(small_vllm)
    body = {"messages": [{"role": "user", "content": LONG_ANSWER}], "max_tokens": 500}
    async with httpx.AsyncClient(timeout=httpx.Timeout(120, read=3.0)) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post(f"{app_url}/v1/chat/completions", json=body)
    await wait_until_idle(small_vllm)
    assert finished_requests(small_vllm) == finished


# --- the LLM down, then killed mid-stream -------------------------------------------------------------


async def test_llm_down_is_a_503_or_an_sse_error_event(tmp_path: Path) -> None:
    with live_app(app_settings(tmp_path / "data", None)) as url:
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as client:
            question = [{"role": "user", "content": "Hello?"}]
            with pytest.raises(openai.InternalServerError) as down:
                await client.chat.completions.create(model="ragchat", messages=question)  # type: ignore[arg-type]
            assert down.value.status_code == 503
            assert down.value.body["code"] == "llm_unavailable"  # type: ignore[index]
            assert "cannot reach the LLM server" in down.value.message

            stream = await client.chat.completions.create(model="ragchat", messages=question, stream=True)  # type: ignore[arg-type]
            with pytest.raises(openai.APIError, match="cannot reach the LLM server"):
                async for _ in stream:
                    pass
        async with httpx.AsyncClient(timeout=30) as http:
            raw = await http.post(f"{url}/v1/chat/completions", json={"messages": question, "stream": True})
            events = [line[6:] for line in raw.text.splitlines() if line.startswith("data: ")]
            assert events[-1] == "[DONE]"
            assert json.loads(events[-2])["error"]["code"] == "llm_unavailable"
            health = await http.get(f"{url}/api/health")
            assert health.status_code == 200 and health.json()["llm"]["reachable"] is False


async def test_vllm_killed_mid_stream_gives_an_error_event_then_recovers(
    client: openai.AsyncOpenAI, app_url: str, small_vllm: VllmServer
) -> None:
    stream = await client.chat.completions.create(
        model="ragchat",
        messages=[{"role": "user", "content": LONG_ANSWER}],
        max_tokens=500,
        stream=True,
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as broken:
        async for chunk in stream:
            received += [c.delta.content for c in chunk.choices if c.delta.content]
            if len(received) == 3:
                await asyncio.to_thread(small_vllm.kill)  # SIGKILL to vLLM's whole process group
    # The connection dropped (not a read timeout, which would say llm_timeout after 120 s).
    assert broken.value.body["code"] == "llm_stream_broken", broken.value.body  # type: ignore[index]

    async with httpx.AsyncClient(timeout=60) as http:
        health = await http.get(f"{app_url}/api/health")
        assert health.status_code == 200 and health.json()["llm"]["reachable"] is False
    with pytest.raises(openai.InternalServerError) as down:
        await client.chat.completions.create(model="ragchat", messages=[{"role": "user", "content": "Hi"}])
    assert down.value.status_code == 503

    await asyncio.to_thread(small_vllm.start)
    completion = await client.chat.completions.create(
        model="ragchat", messages=[{"role": "user", "content": "How do I start a thread?"}], max_tokens=16
    )
    assert completion.choices[0].message.content
    async with httpx.AsyncClient(timeout=60) as http:
        assert (await http.get(f"{app_url}/api/health")).json()["llm"]["reachable"] is True
