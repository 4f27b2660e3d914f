"""PNG plots of a run: latency percentiles and throughput against concurrency (or request rate).

matplotlib is imported inside `plot_run` with the Agg backend, so importing this module costs nothing and no
display is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

Record = dict[str, Any]

LATENCY_PNG = "latency_vs_load.png"
THROUGHPUT_PNG = "throughput_vs_load.png"
_PERCENTILE_STYLES = {"p50": "-", "p95": (0, (6, 3)), "p99": (0, (1, 2))}


def _series(steps: list[Record], metric: str, stat: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for step in steps:
        value = step["summary"][metric][stat] if stat else step["summary"][metric]
        if value is not None:
            xs.append(step["level"])
            ys.append(value)
    return xs, ys


def _level_axis(axis: Any, levels: list[float], label: str) -> None:
    """A log-2 x axis labelled with the levels actually measured (1, 2, 4, ... rather than 2^0, 2^1)."""
    axis.set_xscale("log", base=2)
    axis.set_xticks(levels, [f"{level:g}" for level in levels])
    axis.minorticks_off()
    axis.set_xlabel(label)


def plot_run(record: Record, output_dir: Path) -> list[Path]:
    """Draw both figures for every swept workload (two levels or more); return the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_workload: dict[str, list[Record]] = {}
    for step in record["steps"]:
        by_workload.setdefault(step["workload"], []).append(step)
    swept = {
        name: sorted(steps, key=lambda s: s["level"]) for name, steps in by_workload.items() if len(steps) > 1
    }
    if not swept:
        return []
    mode = next(iter(swept.values()))[0]["mode"]
    x_label = "request rate (req/s)" if mode == "rate" else "concurrent users"
    slo = record["settings"]["slo"]
    title = f"{record['server']['model']} via {record['settings']['backend']}"
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    levels = sorted({step["level"] for steps in swept.values() for step in steps})

    latency, axes = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
    for axis, metric, name, limit in (
        (axes[0], "ttft_ms", "TTFT (ms)", slo["ttft_p95_ms"]),
        (axes[1], "tpot_ms", "TPOT (ms)", slo["tpot_p95_ms"]),
    ):
        for color, (workload, steps) in zip(colors, swept.items(), strict=False):
            for stat, style in _PERCENTILE_STYLES.items():
                xs, ys = _series(steps, metric, stat)
                axis.plot(
                    xs, ys, linestyle=style, marker="o", markersize=3, color=color, label=f"{workload} {stat}"
                )
        axis.axhline(limit, color="grey", linewidth=1, linestyle="-.", label=f"SLO p95 {limit:g} ms")
        _level_axis(axis, levels, x_label)
        axis.set_yscale("log")  # latencies span orders of magnitude between workloads and loads
        axis.set_ylabel(f"{name}, log scale")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)
    latency.suptitle(f"Latency percentiles vs load: {title}")
    latency_path = output_dir / LATENCY_PNG
    latency.savefig(latency_path, dpi=110)
    plt.close(latency)

    throughput, axes = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
    for color, (workload, steps) in zip(colors, swept.items(), strict=False):
        xs, ys = _series(steps, "output_throughput", "")
        axes[0].plot(xs, ys, "-", marker="o", color=color, label=f"{workload} output tok/s")
        xs, ys = _series(steps, "decode_tok_s_per_user", "")
        axes[1].plot(xs, ys, "-", marker="o", color=color, label=f"{workload} tok/s per user (1/TPOT)")
    axes[0].set_ylabel("aggregate output tokens/s")
    axes[1].set_ylabel("decode tokens/s per user (median)")
    for axis in axes:
        _level_axis(axis, levels, x_label)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)
        axis.set_ylim(bottom=0)
    throughput.suptitle(f"Throughput vs load: {title}")
    throughput_path = output_dir / THROUGHPUT_PNG
    throughput.savefig(throughput_path, dpi=110)
    plt.close(throughput)
    return [latency_path, throughput_path]
