"""`ragchat bench compare A.json B.json`: two runs side by side, matched by workload and level."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from ragchat.inference_bench.report import Record, prefix_line

_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("TTFT p50 ms", "ttft_ms", "p50"),
    ("TTFT p95 ms", "ttft_ms", "p95"),
    ("TPOT p50 ms", "tpot_ms", "p50"),
    ("TPOT p95 ms", "tpot_ms", "p95"),
    ("E2E p50 ms", "e2e_ms", "p50"),
    ("out tok/s", "output_throughput", ""),
    ("tok/s/user", "decode_tok_s_per_user", ""),
)


def run_label(record: Record) -> str:
    """`vllm smollm2 @ http://... (2026-11-02T10:00:00+00:00)`."""
    return (
        f"{record['settings']['backend']} {record['server']['model']} @ {record['server']['base_url']} "
        f"({record['started_at']})"
    )


def _value(step: Record, metric: str, stat: str) -> float | None:
    value: Any = step["summary"][metric]
    chosen = value[stat] if stat else value
    return None if chosen is None else float(chosen)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _change(a: float | None, b: float | None) -> str:
    if a is None or b is None or not a:
        return "-"
    return f"{(b - a) / a * 100:+.1f}%"


def compare_table(a: Record, b: Record, *, every_row: bool = False) -> Table:
    """One row per metric of each (workload, level) measured in both runs: A, B and B's change from A.
    The workload and level stand on the first row of each group, or on every row with `every_row`."""
    index_b = {(step["workload"], step["level"]): step for step in b["steps"]}
    table = Table(title="A vs B", title_justify="left", header_style="bold")
    for name, justify in (("workload", "left"), ("level", "right"), ("metric", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for name in ("A", "B", "B vs A"):
        table.add_column(name, justify="right")
    for step_a in a["steps"]:
        step_b = index_b.get((step_a["workload"], step_a["level"]))
        if step_b is None:
            continue
        for position, (name, metric, stat) in enumerate(_COLUMNS):
            value_a, value_b = _value(step_a, metric, stat), _value(step_b, metric, stat)
            table.add_row(
                step_a["workload"] if position == 0 or every_row else "",
                f"{step_a['level']:g}" if position == 0 or every_row else "",
                name,
                _number(value_a),
                _number(value_b),
                _change(value_a, value_b),
                end_section=position == len(_COLUMNS) - 1,
            )
    return table


def summary_lines(a: Record, b: Record) -> list[str]:
    """Labels, capacity and prefix-cache lines of both runs, and what only one of them measured."""
    lines = [f"A: {run_label(a)}", f"B: {run_label(b)}"]
    for tag, record in (("A", a), ("B", b)):
        lines += [f"{tag} {cap['line']}" for cap in record["capacity"]]
        if record.get("prefix_cache"):
            lines.append(f"{tag} {prefix_line(record['prefix_cache'])}")
    keys_a = {(s["workload"], s["level"]) for s in a["steps"]}
    keys_b = {(s["workload"], s["level"]) for s in b["steps"]}
    if keys_a ^ keys_b:
        only = ", ".join(f"{w}@{lvl:g}" for w, lvl in sorted(keys_a ^ keys_b))
        lines.append(f"steps measured in only one run (not shown): {only}")
    return lines
