"""`scripts/benchmark_inference.py` against a real vLLM CPU server: consistent numbers, the server's own
counters agree with ours, capacity follows the SLO rule, the prefix cache is seen, failures are one line.

Runs are kept small (a few requests of 8 tokens); timings are never asserted, only their consistency.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.processes import wait_until_healthy
from tests.support.vllm import REPO_ROOT, VllmServer, free_port

pytestmark = pytest.mark.llm

SCRIPT = REPO_ROOT / "scripts" / "benchmark_inference.py"
MAX_TOKENS = 8


def run_script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
        env=env,
    )


def successful(step: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in step["samples"] if s["success"]]


@pytest.fixture(scope="module")
def sweep(vllm_server: VllmServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One small run of all three workloads at 1 and 2 users, 8 tokens each (exactly: --ignore-eos)."""
    out = tmp_path_factory.mktemp("bench") / "sweep"
    done = run_script(
        "--backend", "vllm", "--base-url", vllm_server.base_url, "--runs", "2", "--concurrency", "1,2",
        "--max-tokens", str(MAX_TOKENS), "--ignore-eos", "--warmup", "1", "--rag-passages", "2",
        "--passage-tokens", "48", "--no-prefix-experiment", "--output", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    record = json.loads((out / "results.json").read_text())
    yield {"record": record, "stdout": done.stdout, "out": out}


def test_every_request_is_consistent_with_vllms_definitions(sweep: dict[str, Any]) -> None:
    record = sweep["record"]
    assert [(s["workload"], s["level"]) for s in record["steps"]] == [
        ("chat", 1),
        ("chat", 2),
        ("rag", 1),
        ("rag", 2),
        ("long", 1),
    ]
    for step in record["steps"]:
        assert step["summary"]["failed"] == 0
        for sample in step["samples"]:
            times = sample["content_times_s"]
            assert sample["ttft_s"] == times[0] <= sample["e2e_s"]
            assert times == sorted(times) and times[-1] <= sample["e2e_s"]
            # --ignore-eos: exactly max_tokens, as usage counts them; a chunk carries one token or more.
            assert sample["output_tokens"] == MAX_TOKENS
            assert len(times) <= sample["output_tokens"]
            expected_tpot = (sample["e2e_s"] - sample["ttft_s"]) / (MAX_TOKENS - 1)
            assert sample["tpot_s"] == pytest.approx(expected_tpot, abs=2e-6)


def test_summaries_are_the_percentiles_of_the_samples(sweep: dict[str, Any]) -> None:
    for step in sweep["record"]["steps"]:
        samples, summary = successful(step), step["summary"]
        ttfts = [s["ttft_s"] * 1000 for s in samples]
        itls = [
            b - a
            for s in samples
            for a, b in zip(s["content_times_s"], s["content_times_s"][1:], strict=False)
        ]
        assert summary["ttft_ms"]["p50"] == pytest.approx(np.percentile(ttfts, 50), abs=1e-3)
        assert summary["ttft_ms"]["p95"] == pytest.approx(np.percentile(ttfts, 95), abs=1e-3)
        assert summary["itl_ms"]["count"] == len(itls)
        assert summary["ttft_ms"]["p50"] <= summary["e2e_ms"]["p50"]
        assert summary["output_throughput"] == pytest.approx(MAX_TOKENS * len(samples) / step["duration_s"])


def test_our_token_counts_agree_with_the_servers_counters(
    sweep: dict[str, Any], vllm_server: VllmServer
) -> None:
    for step in sweep["record"]["steps"]:
        server = step["server"]
        assert server["available"]
        ours_out = sum(s["output_tokens"] for s in step["samples"])
        ours_in = sum(s["prompt_tokens"] for s in step["samples"])
        if vllm_server.owned:  # nobody else sends requests to this server during the step
            assert server["generation_tokens"] == ours_out
            assert server["prompt_tokens"] == ours_in
        else:  # a shared dev server may serve other traffic at the same time
            assert server["generation_tokens"] >= ours_out
            assert server["prompt_tokens"] >= ours_in


def test_capacity_is_the_highest_level_that_meets_the_slo(sweep: dict[str, Any]) -> None:
    """Whatever the timings, the reported capacity follows the rule from the recorded p95s."""
    record = sweep["record"]
    slo = record["settings"]["slo"]
    for cap in record["capacity"]:
        steps = sorted(
            (s for s in record["steps"] if s["workload"] == cap["workload"]), key=lambda s: s["level"]
        )
        met = [
            s["summary"]["failed"] == 0
            and s["summary"]["ttft_ms"]["p95"] <= slo["ttft_p95_ms"]
            and s["summary"]["tpot_ms"]["p95"] <= slo["tpot_p95_ms"]
            for s in steps
        ]
        assert cap["met"] == met
        passing = [step["level"] for step, ok in zip(steps, met, strict=True) if ok]
        assert cap["value"] == (max(passing) if passing else None)
        assert cap["line"] in sweep["stdout"].splitlines()
    assert {cap["workload"] for cap in record["capacity"]} == {"chat", "rag"}


def test_long_prompt_fills_the_context_window(sweep: dict[str, Any], vllm_server: VllmServer) -> None:
    record = sweep["record"]
    assert record["server"]["max_model_len"] == vllm_server.max_model_len
    target = vllm_server.max_model_len - MAX_TOKENS - 64
    [long_step] = [s for s in record["steps"] if s["workload"] == "long"]
    for sample in long_step["samples"]:
        assert 0.97 * target <= sample["prompt_tokens"] <= target
    assert long_step["server"]["peak_kv_cache_usage"] > 0


def test_server_view_and_outputs_are_recorded(sweep: dict[str, Any]) -> None:
    record, out = sweep["record"], sweep["out"]
    assert record["server"]["model"] == "smollm2"
    assert record["server"]["vllm_version"]
    assert record["server"]["cache_config"]["enable_prefix_caching"] == "True"
    for step in record["steps"]:
        for key in ("peak_requests_waiting", "preemptions", "prefix_cache_queries"):
            assert step["server"][key] is not None
    summary = (out / "summary.md").read_text()
    assert "max concurrent users at SLO" in summary
    assert "![latency_vs_load](latency_vs_load.png)" in summary
    for png in ("latency_vs_load.png", "throughput_vs_load.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_prints_two_runs_side_by_side(sweep: dict[str, Any]) -> None:
    results = str(sweep["out"] / "results.json")
    done = run_script("compare", results, str(sweep["out"]))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("A: vllm smollm2 @ ")
    assert "B: vllm smollm2 @ " in done.stdout
    assert "TTFT p50 ms" in done.stdout and "+0.0%" in done.stdout


def test_prefix_cache_hit_rate_is_higher_with_a_shared_prefix(
    vllm_server: VllmServer, tmp_path: Path
) -> None:
    out = tmp_path / "prefix"
    done = run_script(
        "--base-url", vllm_server.base_url, "--workloads", "", "--prefix-runs", "4", "--max-tokens", "4",
        "--rag-passages", "3", "--passage-tokens", "150", "--warmup", "1", "--output", str(out), "--no-plots",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    prefix = json.loads((out / "results.json").read_text())["prefix_cache"]
    assert prefix["hit_rate_shared"] > prefix["hit_rate_unique"]
    if vllm_server.owned:
        assert prefix["hit_rate_unique"] == 0  # the request's own tag comes first: no block can match
    assert "prefix cache: TTFT p50 unique" in done.stdout


def test_poisson_arrivals_respect_the_in_flight_cap(vllm_server: VllmServer, tmp_path: Path) -> None:
    out = tmp_path / "rate"
    done = run_script(
        "--base-url", vllm_server.base_url, "--workloads", "chat", "--request-rate", "20",
        "--max-concurrency", "2", "--runs", "6", "--max-tokens", "4", "--no-prefix-experiment",
        "--output", str(out), "--no-plots",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    record = json.loads((out / "results.json").read_text())
    [step] = record["steps"]
    assert (step["mode"], step["request_rate"], step["concurrency"]) == ("rate", 20.0, 2)
    spans = [(s["start_s"], s["start_s"] + s["e2e_s"]) for s in step["samples"]]
    for start, _ in spans:
        assert sum(1 for a, b in spans if a <= start < b) <= 2
    assert record["capacity"][0]["unit"] == "req/s"


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_wrong_model_is_one_line(vllm_server: VllmServer, tmp_path: Path) -> None:
    line = one_error_line(run_script("--base-url", vllm_server.base_url, "--model", "llama-70b"))
    assert "model 'llama-70b' is not served" in line and "smollm2" in line


def test_unreachable_server_is_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    line = one_error_line(run_script("--base-url", url))
    assert f"cannot reach {url}" in line


def test_missing_openai_key_is_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    line = one_error_line(run_script("--backend", "openai", env=env))
    assert "OPENAI_API_KEY" in line


@pytest.fixture
def ragchat_app(vllm_server: VllmServer, tmp_path: Path) -> Iterator[str]:
    """The ragchat app started as the guide starts it (`uvicorn app.main:app`), talking to `vllm_server`."""
    port = free_port()
    env = {
        **os.environ,
        "RAGCHAT_DATA_DIR": str(tmp_path / "data"),
        "VLLM_BASE_URL": vllm_server.base_url,
        "RAGCHAT_AUTH": "off",
        "RAGCHAT_HOST": "127.0.0.1",
    }
    env.pop("VLLM_MODEL", None)
    log = (tmp_path / "app.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}/health", process, tmp_path / "app.log", 120)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_app_backend_measures_through_ragchat(
    ragchat_app: str, vllm_server: VllmServer, tmp_path: Path
) -> None:
    out = tmp_path / "app"
    done = run_script(
        "--backend", "app", "--base-url", ragchat_app, "--metrics-url", vllm_server.root_url, "--runs", "2",
        "--concurrency", "1", "--max-tokens", "8", "--warmup", "1", "--output", str(out), "--no-plots",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    record = json.loads((out / "results.json").read_text())
    assert record["server"]["model"].startswith("ragchat")
    [step] = record["steps"]  # --backend app runs the chat workload only: the app builds the RAG prompt
    assert step["workload"] == "chat"
    for sample in step["samples"]:
        # The app's role chunk and its `sources` chunk (choices: []) carry no content and no token.
        assert sample["success"] and 1 <= sample["output_tokens"] <= 8
        assert sample["ttft_s"] == sample["content_times_s"][0] <= sample["e2e_s"]
    assert step["server"]["available"]  # vLLM's /metrics, read behind the app through --metrics-url
    assert step["server"]["generation_tokens"] >= sum(s["output_tokens"] for s in step["samples"])
    assert any("prefix-cache experiment skipped" in note for note in record["notes"])


def test_report_recomputes_capacity_at_another_slo_without_requests(
    sweep: dict[str, Any], tmp_path: Path
) -> None:
    saved = (sweep["out"] / "results.json").read_text()
    impossible = run_script(
        "report", str(sweep["out"]), "--slo", "ttft_p95=0.001", "--output", str(tmp_path / "a")
    )
    loose = run_script("report", str(sweep["out"]), "--slo", "ttft_p95=1e9,tpot_p95=1e9", "--no-plots")
    assert impossible.returncode == 0 and loose.returncode == 0, impossible.stderr + loose.stderr
    assert (
        "[rag] max concurrent users at SLO (ttft_p95<=0.001 ms, tpot_p95<=100 ms): none of 1, 2 meets it"
        in (impossible.stdout.splitlines())
    )
    assert any(line.startswith("[rag] max concurrent users at SLO (ttft_p95<=1e+09 ms") and ": 2 (" in line
               for line in loose.stdout.splitlines())  # fmt: skip
    assert (sweep["out"] / "results.json").read_text() == saved  # the measurement itself is never rewritten
    copied = json.loads((tmp_path / "a" / "results.json").read_text())
    assert copied["settings"]["slo"]["ttft_p95_ms"] == 0.001
    assert all(step["summary"]["good_requests"] == 0 for step in copied["steps"])
