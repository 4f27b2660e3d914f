"""Turns a run's record (the JSON content) into files and tables: results.json, summary.md, console tables.

Everything here reads the record dict, not live objects, so a saved run renders the same as a fresh one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.table import Table

from ragchat.inference_bench.client import RequestResult
from ragchat.inference_bench.config import Slo
from ragchat.inference_bench.metrics import StepSummary, capacities, summarize

Record = dict[str, Any]

RESULTS_FILE = "results.json"
SUMMARY_FILE = "summary.md"


def _fmt(value: float | None, digits: int = 0, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}{unit}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _level_header(step: Record) -> str:
    return "req/s" if step["mode"] == "rate" else "users"


def _cells(step: Record) -> dict[str, str]:
    s, server = step["summary"], step["server"]
    return {
        "level": f"{step['level']:g}",
        "ok/sent": f"{s['completed']}/{s['requests']}",
        "TTFT p50 ms": _fmt(s["ttft_ms"]["p50"]),
        "TTFT p95 ms": _fmt(s["ttft_ms"]["p95"]),
        "TPOT p50 ms": _fmt(s["tpot_ms"]["p50"], 1),
        "TPOT p95 ms": _fmt(s["tpot_ms"]["p95"], 1),
        "ITL p50 ms": _fmt(s["itl_ms"]["p50"], 1),
        "E2E p50 ms": _fmt(s["e2e_ms"]["p50"]),
        "req/s": _fmt(s["request_throughput"], 2),
        "out tok/s": _fmt(s["output_throughput"], 1),
        "tok/s/user": _fmt(s["decode_tok_s_per_user"], 1),
        "goodput req/s": _fmt(s["goodput"], 2),
        "KV peak": _pct(server.get("peak_kv_cache_usage")),
        "waiting peak": _fmt(server.get("peak_requests_waiting")),
        "preempt": _fmt(server.get("preemptions")),
    }


STEP_COLUMNS = [
    "level",
    "ok/sent",
    "TTFT p50 ms",
    "TTFT p95 ms",
    "TPOT p50 ms",
    "TPOT p95 ms",
    "ITL p50 ms",
    "E2E p50 ms",
    "req/s",
    "out tok/s",
    "tok/s/user",
    "goodput req/s",
    "KV peak",
    "waiting peak",
    "preempt",
]
CONSOLE_COLUMNS = [
    "level",
    "ok/sent",
    "TTFT p50 ms",
    "TTFT p95 ms",
    "TPOT p50 ms",
    "TPOT p95 ms",
    "out tok/s",
    "tok/s/user",
    "KV peak",
    "waiting peak",
]


def step_rows(
    steps: Iterable[Record], columns: list[str], slo_check: Callable[[Record], bool] | None = None
) -> list[list[str]]:
    """One row per step with the named columns, plus `yes`/`no` for the SLO when a check is given."""
    rows = []
    for step in steps:
        cells = _cells(step)
        row = [cells[column] for column in columns]
        if slo_check is not None:
            row.append("yes" if slo_check(step) else "no")
        rows.append(row)
    return rows


def _meets(record: Record) -> Callable[[Record], bool]:
    slo = Slo(**record["settings"]["slo"])

    def check(step: Record) -> bool:
        return StepSummary.from_record(step["summary"]).meets(slo)

    return check


def workload_names(record: Record) -> list[str]:
    """Workloads in the order they ran."""
    return list(dict.fromkeys(step["workload"] for step in record["steps"]))


def console_tables(record: Record) -> list[Table]:
    """A rich table per workload."""
    tables = []
    check = _meets(record)
    for name in workload_names(record):
        steps = [step for step in record["steps"] if step["workload"] == name]
        table = Table(title=f"workload: {name}", title_justify="left", header_style="bold")
        for column in [_level_header(steps[0]), *CONSOLE_COLUMNS[1:], "SLO"]:
            table.add_column(column.replace(" ms", "\nms"), justify="right")
        for row in step_rows(steps, CONSOLE_COLUMNS, check):
            table.add_row(*row)
        tables.append(table)
    return tables


WORKER_COLUMNS = [
    "workload",
    "level",
    "worker",
    "requests",
    "gen tokens",
    "prefix hit",
    "waiting peak",
    "KV peak",
]


WORKER_COUNTERS = ("requests_finished", "generation_tokens", "prefix_cache_hits", "prefix_cache_queries")


def _all_steps(record: Record) -> list[Record]:
    """The sweep's steps, then the prefix-cache experiment's."""
    prefix = record.get("prefix_cache") or {}
    return [*record["steps"], *prefix.get("steps", [])]


def worker_rows(record: Record) -> list[list[str]]:
    """Behind vLLM's router: one row per step and worker (`WORKER_COLUMNS`); none for one server."""
    rows = []
    for step in _all_steps(record):
        for url, worker in (step["server"].get("workers") or {}).items():
            cells = [step["workload"], f"{step['level']:g}", url]
            if not worker["available"]:
                rows.append([*cells, "/metrics did not answer", "-", "-", "-", "-"])
                continue
            rows.append(
                [
                    *cells,
                    _fmt(worker["requests_finished"]),
                    _fmt(worker["generation_tokens"]),
                    _pct(worker["prefix_cache_hit_rate"]),
                    _fmt(worker["peak_requests_waiting"]),
                    _pct(worker["peak_kv_cache_usage"]),
                ]
            )
    return rows


def workers_table(record: Record) -> Table | None:
    """The per-worker table for the console, or None when the server was not vLLM's router."""
    rows = worker_rows(record)
    if not rows:
        return None
    table = Table(title="workers behind the router", title_justify="left", header_style="bold")
    for column in WORKER_COLUMNS:
        table.add_column(column, justify="left" if column in ("workload", "worker") else "right")
    for row in rows:
        table.add_row(*row)
    return table


def worker_lines(record: Record) -> list[str]:
    """Each router worker over the whole run: requests finished, generated tokens, prefix-cache hit rate."""
    totals: dict[str, dict[str, float]] = {}
    for step in _all_steps(record):
        for url, worker in (step["server"].get("workers") or {}).items():
            sums = totals.setdefault(url, {})
            for key in WORKER_COUNTERS:
                if worker.get(key) is not None:
                    sums[key] = sums.get(key, 0.0) + worker[key]
    lines = []
    for url, sums in totals.items():
        queries = sums.get("prefix_cache_queries")
        rate = sums.get("prefix_cache_hits", 0.0) / queries if queries else None
        lines.append(
            f"worker {url}: {_fmt(sums.get('requests_finished'))} requests, "
            f"{_fmt(sums.get('generation_tokens'))} generated tokens, prefix-cache hit rate {_pct(rate)}"
        )
    return lines


def headline_lines(record: Record) -> list[str]:
    """The lines worth reading first: capacity per workload, the prefix-cache effect, each router worker's
    share, errors."""
    lines = [cap["line"] for cap in record["capacity"]]
    prefix = record.get("prefix_cache")
    if prefix:
        lines.append(prefix_line(prefix))
    lines += worker_lines(record)
    failed = sum(step["summary"]["failed"] for step in record["steps"])
    total = sum(step["summary"]["requests"] for step in record["steps"])
    if failed:
        errors: dict[str, int] = {}
        for step in record["steps"]:
            for message, count in step["summary"]["errors"].items():
                errors[message] = errors.get(message, 0) + count
        worst = max(errors.items(), key=lambda item: item[1])
        lines.append(f"failed requests: {failed} of {total} (most common: {worst[0]} x{worst[1]})")
    missing = sum(step["summary"]["missing_usage"] for step in record["steps"])
    if missing:
        lines.append(f"{missing} responses had no usage chunk: their TPOT and token counts are left out")
    return lines


def prefix_line(prefix: Record) -> str:
    """`prefix cache: TTFT p50 unique 1,234 ms vs shared 210 ms (5.9x); hit rate unique 2% vs shared 85%`."""
    ratio = prefix["ttft_ratio_unique_over_shared"]
    hit_shared, hit_unique = prefix["hit_rate_shared"], prefix["hit_rate_unique"]
    if hit_shared is None and prefix.get("cached_token_share_shared") is not None:
        hit_shared, hit_unique = prefix["cached_token_share_shared"], prefix["cached_token_share_unique"]
    rate = (
        f"hit rate unique {_pct(hit_unique)} vs shared {_pct(hit_shared)}"
        if hit_shared is not None
        else "hit rate not exposed by the server"
    )
    return (
        f"prefix cache: TTFT p50 unique {_fmt(prefix['ttft_p50_ms_unique'])} ms vs shared "
        f"{_fmt(prefix['ttft_p50_ms_shared'])} ms ({_fmt(ratio, 1)}x); {rate}"
    )


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(record: Record, plot_files: list[str]) -> str:
    """The run's summary as Markdown: settings, server, capacity, per-workload tables, prefix cache, plots."""
    settings, server = record["settings"], record["server"]
    slo = settings["slo"]
    out = [
        f"# Inference benchmark: {settings['backend']} at {server['base_url']}",
        "",
        f"- Date: {record['started_at']} to {record['finished_at']}; tool: {record['tool']}",
        f"- Model: `{server['model']}`; max_model_len: {server['max_model_len'] or 'not reported'}; "
        f"vLLM version: {server['vllm_version'] or 'not exposed'}",
        f"- Machine (client): {record['machine']['platform']}, {record['machine'].get('cpu_count')} CPUs, "
        f"load average (1/5/15 min) {record['machine'].get('load_average', {})}",
        f"- Requests per step: max(--runs={settings['runs']}, concurrency); "
        f"max_tokens {settings['max_tokens']}; ignore_eos {settings['ignore_eos']}; "
        f"temperature {settings['temperature']}; seed {settings['seed']}; warm-up {settings['warmup']}",
        f"- SLO: ttft_p95<={slo['ttft_p95_ms']:g} ms, tpot_p95<={slo['tpot_p95_ms']:g} ms",
        f"- Metrics as `vllm bench serve` defines them: {record['metric_definitions']}",
        "",
        "## Headline",
        "",
        *[f"- {line}" for line in headline_lines(record)],
        "",
    ]
    check = _meets(record)
    for name in workload_names(record):
        steps = [step for step in record["steps"] if step["workload"] == name]
        header = [_level_header(steps[0]), *STEP_COLUMNS[1:], "SLO met"]
        prompt = steps[0]["summary"]["mean_prompt_tokens"]
        out += [
            f"## Workload `{name}` (mean prompt {_fmt(prompt)} tokens)",
            "",
            _md_table(header, step_rows(steps, STEP_COLUMNS, check)),
            "",
        ]
    prefix = record.get("prefix_cache")
    if prefix:
        steps = prefix["steps"]
        out += [
            "## Prefix cache: unique vs shared prefix",
            "",
            _md_table(
                ["workload", *STEP_COLUMNS[1:8], "hit rate"],
                [
                    [step["workload"], *row[1:8], _pct(step["server"].get("prefix_cache_hit_rate"))]
                    for step, row in zip(steps, step_rows(steps, STEP_COLUMNS), strict=True)
                ],
            ),
            "",
            prefix_line(prefix),
            "",
        ]
    rows = worker_rows(record)
    if rows:
        out += [
            "## Workers behind the router",
            "",
            "Each worker's own `/metrics` over each step: requests finished (`vllm:request_success_total`), "
            "generated tokens, prefix-cache hit rate, peak queue and KV-cache use.",
            "",
            _md_table(WORKER_COLUMNS, rows),
            "",
        ]
    if plot_files:
        out += ["## Plots", "", *[f"![{Path(name).stem}]({name})" for name in plot_files], ""]
    if record["notes"]:
        out += ["## Notes", "", *[f"- {note}" for note in record["notes"]], ""]
    return "\n".join(out)


def write_outputs(record: Record, output_dir: Path, *, plots: bool, results: bool = True) -> list[Path]:
    """Write results.json (unless `results` is False), the plots (unless disabled) and summary.md."""
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if results:
        written.append(output_dir / RESULTS_FILE)
        written[0].write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    plot_paths: list[Path] = []
    if plots and record["steps"]:
        from ragchat.inference_bench.plots import plot_run  # matplotlib loads only when plots are wanted

        plot_paths = plot_run(record, output_dir)
    summary = output_dir / SUMMARY_FILE
    summary.write_text(render_markdown(record, [path.name for path in plot_paths]), encoding="utf-8")
    return [*written, *plot_paths, summary]


def with_slo(record: Record, slo: Slo) -> Record:
    """The record re-summarised from its raw samples at another SLO (only goodput and capacity change).

    This is what `ragchat bench report --slo` shows, without sending a request."""
    steps = []
    for step in record["steps"]:
        results = [RequestResult.from_record(sample) for sample in step["samples"]]
        steps.append({**step, "summary": summarize(results, step["duration_s"], slo).to_record()})
    unit = "req/s" if record["settings"].get("request_rates") else "users"
    triples = [(s["workload"], s["level"], StepSummary.from_record(s["summary"])) for s in steps]
    return {
        **record,
        "settings": {**record["settings"], "slo": asdict(slo)},
        "steps": steps,
        "capacity": [verdict.to_record() for verdict in capacities(triples, slo, unit)],
    }


def load_record(path: Path) -> Record:
    """Read a results.json (or the folder holding one); raises ValueError with a readable message."""
    file = path / RESULTS_FILE if path.is_dir() else path
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read {file}: {exc.strerror or exc}") from None
    except ValueError:
        raise ValueError(f"{file} is not JSON") from None
    if not isinstance(record, dict) or not str(record.get("schema", "")).startswith(
        "ragchat.bench.inference/"
    ):
        raise ValueError(f"{file} is not a `ragchat bench run` result (no ragchat.bench.inference schema)")
    return record
