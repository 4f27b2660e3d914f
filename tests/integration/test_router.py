"""Two real vLLM CPU workers behind vLLM's real router (`vllm-router`, scripts/start_router.sh), and the real
app in front (VLLM_BASE_URL = the router):

- answers flow with sources, the model and its context length are discovered through the router, and
  tokens are counted through its /tokenize;
- one worker killed (SIGKILL) mid-stream: that stream ends with an SSE error event and `[DONE]`, new
  requests keep succeeding on the other worker, `/api/status` and `ragchat status` show the dead worker
  down; restarted, it receives traffic again.

The workers are this module's own (one is killed and restarted), started through `vllm_server_factory`.
The router runs `--policy round_robin` here, so that the restarted worker's turn comes within a few
requests; what `cache_aware` does with RAG prompts is bench/router_policies.py's subject (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ragchat.config import Settings
from tests.integration.test_observability import ROUTER_PREFIX, dashboard_queries, metric_references
from tests.support.live_app import live_app, vllm_metric
from tests.support.router import RouterServer, running_router
from tests.support.vllm import REPO_ROOT, VllmServer, VllmServerFactory

pytestmark = [pytest.mark.llm, pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

CONTEXT = 2048
PYTHON_DOCS = Path("/usr/share/doc/python3.11/html/library")
RAGCHAT = Path(sys.executable).parent / "ragchat"
LONG_ANSWER = "Write a very long story about a lighthouse keeper, with many chapters."


@dataclass(frozen=True)
class Cluster:
    workers: tuple[VllmServer, VllmServer]
    router: RouterServer
    app_url: str
    settings: Settings


@pytest.fixture(scope="module")
def cluster(
    vllm_server_factory: VllmServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    with ThreadPoolExecutor(2) as pool:  # both start at once: ~1 min instead of ~2
        started = list(pool.map(lambda _: vllm_server_factory(max_model_len=CONTEXT), range(2)))
    workers = (started[0], started[1])
    log_dir = tmp_path_factory.mktemp("router")
    # Short health and retry intervals keep the test quick; failover itself is the launcher's default.
    extra = ["--health-check-interval", "1", "--retry-worker-after", "2"]
    with running_router(
        [w.root_url for w in workers], log_dir / "router.log", policy="round_robin", extra=extra
    ) as router:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            data_dir=log_dir / "data",
            vllm_base_url=router.base_url,
            vllm_router_metrics_url=router.metrics_url,
            llm_temperature=0.0,
            auth="off",  # on loopback: this test is about the router
            host="127.0.0.1",
        )
        with live_app(settings) as url:
            files = [PYTHON_DOCS / f"{name}.html" for name in ("threading", "queue")]
            response = httpx.post(
                f"{url}/api/documents",
                files=[("files", (f.name, f.read_bytes())) for f in files],
                timeout=600,
            )
            assert response.status_code == 200, response.text
            yield Cluster(workers, router, url, settings)


@pytest.fixture
async def client(cluster: Cluster) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=f"{cluster.app_url}/v1", api_key="unused", max_retries=0
    ) as client:
        yield client


async def ask(client: openai.AsyncOpenAI, question: str) -> list[dict[str, object]]:
    """One non-streamed answer through the app; returns its sources (fails on any error)."""
    completion = await client.chat.completions.create(
        model="ragchat", messages=[{"role": "user", "content": question}], max_tokens=16
    )
    assert completion.choices[0].message.content
    sources: list[dict[str, object]] = (completion.model_extra or {})["sources"]
    return sources


def status_cli(cluster: Cluster) -> dict[str, object]:
    env = {
        **os.environ,
        "RAGCHAT_DATA_DIR": str(cluster.settings.data_dir),
        "VLLM_BASE_URL": cluster.router.base_url,
        "VLLM_ROUTER_METRICS_URL": cluster.router.metrics_url,
    }
    done = subprocess.run(
        [str(RAGCHAT), "status", "--json", "--window", "0"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def states(workers: object) -> dict[str, str]:
    assert isinstance(workers, list)
    return {w["url"]: w["state"] for w in workers}


async def test_answers_flow_with_sources_through_the_router(
    client: openai.AsyncOpenAI, cluster: Cluster
) -> None:
    sources = await ask(client, "How do I start a thread?")
    assert sources and all(s["document"] for s in sources)

    stream = await client.chat.completions.create(
        model="ragchat",
        messages=[{"role": "user", "content": "What does a queue do?"}],
        max_tokens=24,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.delta.content or "" for chunk in chunks for c in chunk.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens <= CONTEXT

    async with httpx.AsyncClient(timeout=60) as http:
        health = (await http.get(f"{cluster.app_url}/health")).json()
        status = (await http.get(f"{cluster.app_url}/api/status", params={"window": 0})).json()
    assert health["llm"]["reachable"] is True
    assert states(status["workers"]) == {w.root_url: "up" for w in cluster.workers}
    assert status["reachable"] is True and status["router_error"] is None
    assert status["vllm"]["models"] == ["smollm2"]

    # The context length came through the router's /v1/models, the count through its /tokenize.
    question = "Why? " + "Explain threads and locks in detail please. " * 500
    with pytest.raises(openai.BadRequestError) as raised:
        await client.chat.completions.create(
            model="ragchat", messages=[{"role": "user", "content": question}]
        )
    assert raised.value.body["code"] == "question_too_long"  # type: ignore[index]
    assert str(CONTEXT) in raised.value.message


async def test_a_killed_worker_ends_its_stream_cleanly_and_the_others_carry_on(
    client: openai.AsyncOpenAI, cluster: Cluster
) -> None:
    body = {"messages": [{"role": "user", "content": LONG_ANSWER}], "stream": True, "max_tokens": 400}
    events: list[str] = []
    victim: VllmServer | None = None
    async with (
        httpx.AsyncClient(timeout=120) as http,
        http.stream("POST", f"{cluster.app_url}/v1/chat/completions", json=body) as response,
    ):
        deltas = 0
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            events.append(line[6:])
            deltas += '"content":"' in line and '"content":""' not in line
            if deltas == 3 and victim is None:
                busy = [
                    w for w in cluster.workers if vllm_metric(w.root_url, "vllm:num_requests_running") > 0
                ]
                assert len(busy) == 1, "the stream should run on exactly one worker"
                victim = busy[0]
                await asyncio.to_thread(victim.kill)  # SIGKILL to that worker's whole process group
    assert victim is not None
    survivor = next(w for w in cluster.workers if w is not victim)
    # The stream on the dead worker ended (no hang) with an error event, then [DONE].
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["error"]["code"] == "llm_stream_broken", events[-3:]

    # New requests keep succeeding: the router fails over to the survivor.
    for question in ("How do I start a thread?", "What is a lock?", "How does a queue block?"):
        assert await ask(client, question)

    async with httpx.AsyncClient(timeout=60) as http:
        status = (await http.get(f"{cluster.app_url}/api/status", params={"window": 0})).json()
    assert states(status["workers"]) == {victim.root_url: "down", survivor.root_url: "up"}
    assert status["reachable"] is True  # the survivor's figures
    cli = await asyncio.to_thread(status_cli, cluster)
    assert states(cli["workers"]) == {victim.root_url: "down", survivor.root_url: "up"}

    # Restarted (its counters start at zero), the worker gets traffic again.
    await asyncio.to_thread(victim.start)
    for i, topic in enumerate(TOPICS):
        assert await ask(client, f"Question {i}: what does {topic} do?")
        if vllm_metric(victim.root_url, "vllm:prompt_tokens_total") > 0:
            break
        await asyncio.sleep(0.5)
    else:
        routed = cluster.router.worker_series("vllm_router_processed_requests_total")
        pytest.fail(f"the restarted worker {victim.root_url} got none of {len(TOPICS)} requests: {routed}")
    async with httpx.AsyncClient(timeout=60) as http:
        status = (await http.get(f"{cluster.app_url}/api/status", params={"window": 0})).json()
    assert states(status["workers"]) == {w.root_url: "up" for w in cluster.workers}


async def test_the_dashboards_router_queries_name_the_routers_real_metrics(cluster: Cluster) -> None:
    exported: dict[str, set[str]] = {}
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(cluster.router.metrics_url)).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            exported.setdefault(sample.name, set()).update(sample.labels)
    checked = 0
    for query in dashboard_queries():
        references, grouped = metric_references(query)
        for name, filtered in references:
            if name.startswith(ROUTER_PREFIX):
                assert name in exported, f"{name} (in {query!r}) is not among the router's metrics"
                assert filtered | grouped <= exported[name], (
                    f"{name}: labels {filtered | grouped} ({query!r})"
                )
                checked += 1
    assert checked >= 3  # health, circuit and routed requests per worker


TOPICS = (
    "Thread.join",
    "Lock.acquire",
    "Queue.get",
    "Event.wait",
    "Condition.notify",
    "Semaphore",
    "Timer",
    "Barrier",
    "local",
    "excepthook",
    "LifoQueue",
    "PriorityQueue",
    "SimpleQueue",
    "task_done",
    "RLock",
)
