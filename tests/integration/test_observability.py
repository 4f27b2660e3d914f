"""Monitoring end to end: the app's /metrics after real traffic (ingest, search, chat through the real vLLM
CPU server), `GET /api/status` and `ragchat status` reading vLLM's live /metrics, and the Grafana dashboard's
PromQL checked against what the real servers export."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from prometheus_client.parser import text_string_to_metric_families

from ragchat.api.app import create_app
from ragchat.config import Settings
from ragchat.embed_server.app import create_embed_app, prepare_models
from tests.support.app import app_client
from tests.support.sample_files import TOPICS
from tests.support.vllm import REPO_ROOT, VllmServer, free_port

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.llm]

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "ragchat-dashboard.json"
STAGES = ("query_embedding", "retrieval", "prompt_assembly", "ttft", "total")


@dataclass
class Exported:
    """Sample names and, per sample name, the label names seen in one server's /metrics."""

    labels: dict[str, set[str]]

    @classmethod
    def parse(cls, text: str) -> Exported:
        labels: dict[str, set[str]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels.setdefault(sample.name, set()).update(sample.labels)
        return cls(labels)

    def value(self, text: str, name: str, **wanted: str) -> float:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in wanted.items()):
                    return float(sample.value)
        raise AssertionError(f"{name}{wanted} not exported")


@dataclass
class Traffic:
    client: httpx.AsyncClient
    metrics_text: str


@pytest.fixture(scope="module")
async def traffic(
    vllm_server: VllmServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Traffic]:
    """The real app (real model, SQLite, vLLM) after ingest, search, chat and a few failures."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path_factory.mktemp("observability") / "data",
        VLLM_BASE_URL=vllm_server.base_url,
        VLLM_MODEL=vllm_server.model,
        LLM_MAX_TOKENS=24,
        auth="off",
        host="127.0.0.1",
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://localhost", timeout=120
        ) as client,
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), timeout=120) as openai_http,
    ):
        files = [("files", (name, text.encode())) for name, text in list(TOPICS.items())[:3]]
        files.append(("files", ("broken.pdf", b"%PDF-1.4 this is not really a pdf")))
        uploaded = await client.post("/api/documents?wait=true", files=files)
        assert uploaded.status_code == 200, uploaded.text

        found = await client.post("/api/search", json={"query": next(iter(TOPICS)), "k": 3})
        assert found.status_code == 200 and found.json()["results"], found.text

        llm = openai.AsyncOpenAI(base_url="http://localhost/v1", api_key="unused", http_client=openai_http)
        question: list[ChatCompletionMessageParam] = [
            {"role": "user", "content": f"What does the text say about {next(iter(TOPICS))}?"}
        ]
        answer = await llm.chat.completions.create(model="ragchat", messages=question)
        assert answer.choices[0].message.content
        stream = await llm.chat.completions.create(model="ragchat", messages=question, stream=True)
        assert [chunk async for chunk in stream]
        with pytest.raises(openai.NotFoundError):
            await llm.chat.completions.create(
                model="ragchat", messages=question, extra_body={"collection": "no-such-collection"}
            )

        scraped = await client.get("/metrics")
        assert scraped.status_code == 200
        assert scraped.headers["content-type"].startswith("text/plain")
        yield Traffic(client=client, metrics_text=scraped.text)


async def test_every_stage_histogram_has_observations(traffic: Traffic) -> None:
    exported = Exported.parse(traffic.metrics_text)
    for stage in STAGES:
        count = exported.value(traffic.metrics_text, "ragchat_stage_duration_seconds_count", stage=stage)
        assert count > 0, f"stage {stage} was never observed"
    assert (
        exported.value(
            traffic.metrics_text, "ragchat_http_request_duration_seconds_count", route="/v1/chat/completions"
        )
        >= 3
    )


async def test_tokens_requests_errors_and_ingestion_are_counted(traffic: Traffic) -> None:
    text = traffic.metrics_text
    exported = Exported.parse(text)
    assert exported.value(text, "ragchat_prompt_tokens_total") > 0
    assert exported.value(text, "ragchat_completion_tokens_total") > 0
    assert (
        exported.value(text, "ragchat_http_requests_total", route="/api/search", method="POST", status="200")
        == 1
    )
    assert (
        exported.value(text, "ragchat_http_requests_total", route="/v1/chat/completions", status="404") == 1
    )
    assert exported.value(text, "ragchat_errors_total", kind="not_found") >= 1
    assert exported.value(text, "ragchat_ingested_files_total") == 3
    assert exported.value(text, "ragchat_ingested_chunks_total") >= 3
    assert exported.value(text, "ragchat_ingest_failures_total") == 1
    assert exported.value(text, "ragchat_build_info", llm_backend="vllm") == 1


async def test_labels_stay_bounded(traffic: Traffic) -> None:
    """Raw paths never become label values: unknown URLs count under one route value, a path that matches a
    route (here with a method it does not take) under the route's template."""

    async def counts() -> dict[tuple[str, str], float]:
        text = (await traffic.client.get("/metrics")).text
        return {
            (sample.labels["route"], sample.labels["status"]): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "ragchat_http_requests_total" and sample.labels["method"] == "GET"
        }

    before = await counts()
    for path in ("/no/such/page/1", "/no/such/page/2", "/api/documents/does-not-exist"):
        await traffic.client.get(path)
    after = await counts()
    assert not any("no/such" in route or "does-not-exist" in route for route, _ in after)
    grown = {key: value - before.get(key, 0.0) for key, value in after.items() if value != before.get(key)}
    grown.pop(("/metrics", "200"), None)
    assert grown == {("unmatched", "404"): 2, ("/api/documents/{document_id}", "405"): 1}


async def test_api_status_reads_vllms_live_metrics(traffic: Traffic, vllm_server: VllmServer) -> None:
    response = await traffic.client.get("/api/status", params={"window": 0.5})
    assert response.status_code == 200
    body = response.json()
    assert body["reachable"] is True and body["error"] is None
    figures = body["vllm"]
    assert figures["models"] == [vllm_server.model]
    assert figures["requests_running"] >= 0 and figures["requests_waiting"] >= 0
    assert 0 <= figures["kv_cache_usage"] <= 1
    assert 0 < figures["prefix_cache_hit_rate"] <= 1  # the chat above repeated its prompt prefix
    assert figures["generation_tokens_per_s"] >= 0
    assert figures["preemptions"] >= 0
    renamed = {item["guide_name"]: item["metric"] for item in body["indicators"] if item["guide_name"]}
    assert renamed == {
        "vllm:gpu_cache_usage_perc": "vllm:kv_cache_usage_perc",
        "vllm:avg_generation_throughput_toks_per_s": "rate(vllm:generation_tokens_total)",
    }


async def test_api_status_reports_vllm_down_as_a_status(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(VLLM_BASE_URL=f"http://127.0.0.1:{free_port()}/v1")
    async with app_client(settings) as client:
        response = await client.get("/api/status", params={"window": 0})
    assert response.status_code == 200
    body = response.json()
    assert body["reachable"] is False and body["vllm"] is None
    assert "cannot reach" in body["error"]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "ragchat"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env, "COLUMNS": "120"},
        timeout=120,
        check=False,
    )


async def test_cli_status_shows_the_figures_under_current_and_old_names(vllm_server: VllmServer) -> None:
    shown = run_cli("status", "--window", "0.5", env={"VLLM_BASE_URL": vllm_server.base_url})
    assert shown.returncode == 0, shown.stderr
    for words in ("requests running", "requests waiting", "KV-cache usage", "prefix-cache hit rate",
                  "generation tokens/s", "preemptions", "vllm:kv_cache_usage_perc",
                  "vllm:gpu_cache_usage_perc", "vllm:avg_generation_throughput_toks_per_s"):  # fmt: skip
        assert words in shown.stdout

    as_json = run_cli("status", "--json", "--window", "0", env={"VLLM_BASE_URL": vllm_server.base_url})
    assert json.loads(as_json.stdout)["vllm"]["models"] == [vllm_server.model]

    down = run_cli("status", env={"VLLM_BASE_URL": f"http://127.0.0.1:{free_port()}/v1"})
    assert down.returncode == 1
    assert "cannot reach" in down.stderr and "start_vllm.sh" in down.stderr


# --- the Grafana dashboard -------------------------------------------------------------------------------

PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "rate", "irate", "increase", "histogram_quantile", "by", "without",
    "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool",
}  # fmt: skip
PROMETHEUS_TARGET_LABELS = {"job", "instance"}
ROUTER_PREFIX = "vllm_router_"
LABEL_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            queries.append(variable["definition"])
    return [query.replace("$__rate_interval", "5m").replace("$model", ".*") for query in queries]


def metric_references(query: str) -> tuple[list[tuple[str, set[str]]], set[str]]:
    """(metric name, label names it is filtered on) for each metric, and the labels grouped `by`."""
    # Grafana's label_values(metric, label) reads `label` of `metric`, like a grouping.
    variable = re.fullmatch(r"label_values\(\s*([^,]+),\s*(\w+)\s*\)", query)
    if variable:
        query, clauses = variable.group(1), [variable.group(2)]
    else:
        clauses = re.findall(r"\bby\s*\(([^)]*)\)", query)
    grouped = {label.strip() for clause in clauses for label in clause.split(",") if label.strip()}
    without_groups = re.sub(r"\b(by|without)\s*\([^)]*\)|\[[^\]]*\]", " ", query)  # and no [5m] ranges
    references = []
    for match in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?", without_groups):
        name, selector = match.group(1), match.group(2) or ""
        if name in PROMQL_WORDS:
            continue
        references.append((name, set(LABEL_MATCHER.findall(selector))))
    return references, grouped


async def test_every_dashboard_query_names_exported_metrics_and_labels(
    traffic: Traffic, vllm_server: VllmServer, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        vllm_text = (await http.get(f"{vllm_server.root_url}/metrics")).text
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    embed_app = create_embed_app(prepare_models(settings, ["all-MiniLM-L6-v2"], "torch"))
    async with embed_app.router.lifespan_context(embed_app):
        transport = httpx.ASGITransport(app=embed_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://embed.test") as embed:
            embedded = await embed.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": ["x"]})
            assert embedded.status_code == 200
            await embed.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": []})
            embed_text = (await embed.get("/metrics")).text

    # Prometheus adds `up` and the target labels itself; vLLM's router's own series (vllm_router_*) are
    # checked against the real router in tests/integration/test_router.py.
    exported: dict[str, set[str]] = {"up": set()}
    for text in (vllm_text, traffic.metrics_text, embed_text):
        for name, labels in Exported.parse(text).labels.items():
            exported.setdefault(name, set()).update(labels)

    # The guide's names are gone from current vLLM: a dashboard using them would show nothing.
    assert "vllm:gpu_cache_usage_perc" not in exported
    assert "vllm:avg_generation_throughput_toks_per_s" not in exported

    queries = dashboard_queries()
    assert len(queries) >= 20
    for query in queries:
        references, grouped = metric_references(query)
        assert references, f"no metric in {query!r}"
        available: set[str] = set()
        if any(name.startswith(ROUTER_PREFIX) for name, _ in references):
            continue
        for name, filtered in references:
            filtered -= PROMETHEUS_TARGET_LABELS
            assert name in exported, (
                f"{name} (in {query!r}) is exported by neither vLLM, the app nor the embed server"
            )
            assert filtered <= exported[name], f"{name} has no label {filtered - exported[name]} ({query!r})"
            available |= exported[name]
        assert grouped - PROMETHEUS_TARGET_LABELS <= available, (
            f"grouping by {grouped - available} in {query!r}"
        )
