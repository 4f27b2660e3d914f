"""Reading vLLM's router: its per-worker series, workers combined as one status, the launcher's command."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ragchat.infra.llm.vllm_metrics import combine, parse_metrics, parse_router_metrics, summarize

REPO_ROOT = Path(__file__).resolve().parents[2]

# As vllm-router 0.1.17 serves it on its --prometheus-port (TYPE lines, no HELP, blank lines between).
ROUTER_METRICS = """# TYPE vllm_router_processed_requests_total counter
vllm_router_processed_requests_total{worker="http://127.0.0.1:8101"} 11

vllm_router_processed_requests_total{worker="http://127.0.0.1:8102"} 6

# TYPE vllm_router_cb_state gauge
vllm_router_cb_state{worker="http://127.0.0.1:8101"} 1

# TYPE vllm_router_active_workers gauge
vllm_router_active_workers 2
"""


def worker_metrics(running: int, kv: float, hits: int, queries: int, tokens: int) -> str:
    labels = '{engine="0",model_name="smollm2"}'
    return "\n".join(
        (
            f"vllm:num_requests_running{labels} {running}",
            f"vllm:num_requests_waiting{labels} 0",
            f"vllm:kv_cache_usage_perc{labels} {kv}",
            f"vllm:prefix_cache_hits_total{labels} {hits}",
            f"vllm:prefix_cache_queries_total{labels} {queries}",
            f"vllm:generation_tokens_total{labels} {tokens}",
        )
    )


def test_router_series_are_keyed_by_worker() -> None:
    series = parse_router_metrics(ROUTER_METRICS)
    assert series == {
        "http://127.0.0.1:8101": {"processed_requests": 11.0, "cb_state": 1.0},
        "http://127.0.0.1:8102": {"processed_requests": 6.0},
    }


def test_workers_combine_into_one_server() -> None:
    first = [
        parse_metrics(worker_metrics(1, 0.2, 10, 100, 50), taken_at=0.0),
        parse_metrics(worker_metrics(2, 0.4, 30, 100, 150), taken_at=0.0),
    ]
    second = [
        parse_metrics(worker_metrics(0, 0.1, 60, 200, 150), taken_at=2.0),
        parse_metrics(worker_metrics(1, 0.3, 30, 100, 250), taken_at=2.0),
    ]
    status = summarize(combine(first), combine(second))
    assert status.requests_running == 1  # summed
    assert status.kv_cache_usage is not None and abs(status.kv_cache_usage - 0.2) < 1e-9  # averaged
    assert status.prefix_cache_hit_rate == 90 / 300  # pooled over the workers, not a mean of rates
    assert status.prefix_cache_hit_rate_window == 50 / 100
    assert status.generation_tokens_per_s == 100.0  # 200 tokens over 2 s
    assert status.models == ("smollm2",)


def test_start_router_dry_run_names_the_workers_and_the_failover_defaults() -> None:
    command = ["bash", str(REPO_ROOT / "scripts" / "start_router.sh"), "--workers", "http://a:8000/v1"]
    command += ["http://b:8000", "--policy", "round_robin", "--dry-run"]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    words = done.stdout.split()
    assert words[words.index("--worker-urls") + 1 : words.index("--worker-urls") + 3] == [
        "http://a:8000",
        "http://b:8000",
    ]
    assert words[words.index("--policy") + 1] == "round_robin"
    assert words[words.index("--cb-failure-threshold") + 1] == "2"


def test_start_router_refuses_a_bad_worker_url() -> None:
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "start_router.sh"), "--workers", "ftp://x", "--dry-run"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1 and "not a server URL" in done.stderr
