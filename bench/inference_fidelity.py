"""Fidelity check: `ragchat bench` against vLLM's own `vllm bench serve`, same server, same prompts.

Both tools send the same JSONL prompts (RAG-shaped, one user message each) as streamed chat completions with
a fixed output length (`--ignore-eos`), temperature 0, the same number of requests and the same number in
flight. `--mode sequential` alternates the tools (vLLM's, ours, vLLM's, ours, ...), each alone on the server;
`--mode paired` runs both at once against the same server, so on a noisy shared machine both see the same
conditions and any difference left is the tools' own. Use a server with prefix caching off, or one tool would
find the other's prompts cached:

    scripts/start_vllm.sh --preset cpu --port 8010 --detach -- --no-enable-prefix-caching
    .venv/bin/python bench/inference_fidelity.py --base-url http://127.0.0.1:8010/v1
    scripts/start_vllm.sh --preset cpu --port 8010 --stop

(`--start-server` does the first and last steps itself.) Writes fidelity.md and fidelity.json under
--output, plus each run's raw files; prints the Markdown table. Target: TTFT and TPOT medians within 5%.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "src"))

from ragchat.inference_bench.workloads import PromptFactory  # noqa: E402

VLLM_PYTHON = REPO_ROOT / "vllm-env" / "bin" / "python"
LAUNCHER = REPO_ROOT / "scripts" / "start_vllm.sh"
METRICS = (("TTFT", "ttft"), ("TPOT", "tpot"), ("ITL", "itl"), ("E2E", "e2el"))


def write_prompts(path: Path, count: int, passages: int, passage_tokens: int, seed: int) -> None:
    """RAG-shaped prompts (system text, passages and question folded into one user message)."""
    factory = PromptFactory(
        seed=seed, run_tag="fidelity", rag_passages=passages, passage_tokens=passage_tokens
    )
    rag = factory.rag()
    with path.open("w", encoding="utf-8") as out:
        for index in range(count):
            messages = asyncio.run(rag.build(index))
            prompt = "\n\n".join(message["content"] for message in messages)
            out.write(json.dumps({"prompt": prompt}) + "\n")


def vllm_tool_command(args: argparse.Namespace, prompts: Path, concurrency: int, out_dir: Path) -> list[str]:
    """`vllm bench serve` (through bench/vllm_bench_serve.py) on the prompts, saving per-request detail."""
    root = args.base_url.rstrip("/").removesuffix("/v1")
    return [
        args.vllm_python, str(REPO_ROOT / "bench" / "vllm_bench_serve.py"),
        "--backend", "openai-chat", "--base-url", root, "--endpoint", "/v1/chat/completions",
        "--model", args.model, "--tokenizer", args.tokenizer,
        "--dataset-name", "custom", "--dataset-path", str(prompts),
        "--skip-chat-template", "--disable-shuffle",
        "--custom-output-len", str(args.output_len), "--ignore-eos", "--temperature", "0",
        "--num-prompts", str(args.num_prompts), "--max-concurrency", str(concurrency),
        "--num-warmups", str(args.warmup), "--percentile-metrics", "ttft,tpot,itl,e2el",
        "--metric-percentiles", "50,95,99", "--save-result", "--save-detailed",
        "--result-dir", str(out_dir), "--result-filename", "vllm.json", "--disable-tqdm",
    ]  # fmt: skip


def read_vllm_tool(out_dir: Path) -> dict[str, Any]:
    """vLLM's result JSON: its medians, and per-request TTFT and TPOT (ms) recomputed from its detail."""
    result: dict[str, Any] = json.loads((out_dir / "vllm.json").read_text())
    if "latencies" not in result:  # vLLM <= 0.26 saves per-token gaps instead of end-to-end latencies
        result["latencies"] = [
            ttft + sum(itl) for ttft, itl in zip(result["ttfts"], result["itls"], strict=True)
        ]
    ttfts = [t for t, tokens in zip(result["ttfts"], result["output_lens"], strict=True) if tokens]
    tpots = [
        (latency - ttft) / (tokens - 1)
        for latency, ttft, tokens in zip(
            result["latencies"], result["ttfts"], result["output_lens"], strict=True
        )
        if tokens > 1
    ]
    return {
        "samples": {"ttft": [t * 1000 for t in ttfts], "tpot": [t * 1000 for t in tpots]},
        **{f"{key}_p50": result[f"median_{key}_ms"] for _, key in METRICS},
        **{f"{key}_p95": result.get(f"p95_{key}_ms") for _, key in METRICS},
        "output_throughput": result["output_throughput"],
        "completed": result["completed"],
        "output_tokens": result["total_output_tokens"],
    }


def our_tool_command(args: argparse.Namespace, prompts: Path, concurrency: int, out_dir: Path) -> list[str]:
    """`scripts/benchmark_inference.py` on the same prompts, same settings."""
    command = [
        sys.executable, str(REPO_ROOT / "scripts" / "benchmark_inference.py"),
        "--backend", "vllm", "--base-url", args.base_url, "--model", args.model,
        "--dataset", str(prompts), "--workloads", "", "--no-prefix-experiment",
        "--concurrency", str(concurrency), "--runs", str(args.num_prompts),
        "--max-tokens", str(args.output_len),
        "--ignore-eos", "--temperature", "0", "--warmup", str(args.warmup), "--output", str(out_dir),
        "--no-plots",
    ]  # fmt: skip
    if args.metrics_interval is not None:
        command += ["--metrics-interval", str(args.metrics_interval)]
    return command


def read_our_tool(out_dir: Path) -> dict[str, Any]:
    """Our results.json: the step's medians and per-request TTFT and TPOT (ms)."""
    record = json.loads((out_dir / "results.json").read_text())
    [step] = record["steps"]
    summary = step["summary"]
    names = {"ttft": "ttft_ms", "tpot": "tpot_ms", "itl": "itl_ms", "e2el": "e2e_ms"}
    done = [s for s in step["samples"] if s["success"]]
    return {
        "samples": {
            "ttft": [s["ttft_s"] * 1000 for s in done],
            "tpot": [s["tpot_s"] * 1000 for s in done if s["tpot_s"] is not None],
        },
        **{f"{key}_p50": summary[names[key]]["p50"] for _, key in METRICS},
        **{f"{key}_p95": summary[names[key]]["p95"] for _, key in METRICS},
        "output_throughput": summary["output_throughput"],
        "completed": summary["completed"],
        "output_tokens": sum(s["output_tokens"] or 0 for s in step["samples"]),
        "mean_prompt_tokens": summary["mean_prompt_tokens"],
    }


def run_round(
    args: argparse.Namespace, prompts: Path, concurrency: int, step_dir: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One round of both tools: one after the other (`sequential`), or both at once (`paired`)."""
    commands = {
        "vllm": vllm_tool_command(args, prompts, concurrency, step_dir / "vllm"),
        "ours": our_tool_command(args, prompts, concurrency, step_dir / "ours"),
    }
    for tool in commands:
        (step_dir / tool).mkdir(parents=True, exist_ok=True)
    logs = {tool: (step_dir / tool / f"{tool}.log").open("w") for tool in commands}
    try:
        running = []
        for tool, command in commands.items():
            process = subprocess.Popen(command, stdout=logs[tool], stderr=subprocess.STDOUT, cwd=REPO_ROOT)
            if args.mode == "sequential":
                process.wait()
            running.append((tool, process))
        for tool, process in running:
            if process.wait() != 0:
                raise SystemExit(f"{tool} failed (exit {process.returncode}); see {logs[tool].name}")
    finally:
        for handle in logs.values():
            handle.close()
    return read_vllm_tool(step_dir / "vllm"), read_our_tool(step_dir / "ours")


def pooled(rows: list[dict[str, Any]]) -> str:
    """Per level: medians of every request of every round, per tool (robust to one noisy round)."""
    lines = [
        "| users | requests per tool | TTFT p50 vLLM / ours (diff) | TPOT p50 vLLM / ours (diff) |",
        "|---:|---:|---:|---:|",
    ]
    for level in sorted({row["concurrency"] for row in rows}):
        chosen = [row for row in rows if row["concurrency"] == level]
        cells = [str(level), str(sum(len(row["ours"]["samples"]["ttft"]) for row in chosen))]
        for key in ("ttft", "tpot"):
            theirs = statistics.median(v for row in chosen for v in row["vllm"]["samples"][key])
            ours = statistics.median(v for row in chosen for v in row["ours"]["samples"][key])
            cells.append(f"{theirs:.1f} / {ours:.1f} ({(ours - theirs) / theirs * 100:+.1f}%)")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(rows: list[dict[str, Any]]) -> str:
    header = [
        "users",
        "run",
        *[f"{name} p50 vLLM / ours (diff)" for name, _ in METRICS],
        "out tok/s vLLM / ours",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for row in rows:
        theirs, ours = row["vllm"], row["ours"]
        cells = [str(row["concurrency"]), str(row["repeat"])]
        for _, key in METRICS:
            a, b = theirs[f"{key}_p50"], ours[f"{key}_p50"]
            cells.append(f"{a:.1f} / {b:.1f} ({(b - a) / a * 100:+.1f}%)")
        cells.append(f"{theirs['output_throughput']:.1f} / {ours['output_throughput']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-url", default="http://127.0.0.1:8010/v1")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--tokenizer", default=str(REPO_ROOT / ".models" / "SmolLM2-135M-Instruct"))
    parser.add_argument(
        "--vllm-python", default=str(VLLM_PYTHON), help="Python that has vLLM (default: the repo's vllm-env)"
    )
    parser.add_argument("--concurrency", default="1,4", help="levels, e.g. 1,4")
    parser.add_argument("--num-prompts", type=int, default=32)
    parser.add_argument("--output-len", type=int, default=32)
    parser.add_argument("--passages", type=int, default=3)
    parser.add_argument("--passage-tokens", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="alternating rounds per level")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--mode",
        choices=("sequential", "paired"),
        default="sequential",
        help="sequential: vLLM's tool, then ours, each alone on the server. paired: both at once on the same "
        "server (each with --concurrency users), so both see the same machine noise; a difference is then "
        "the tools' own.",
    )
    parser.add_argument(
        "--metrics-interval",
        type=float,
        default=None,
        help="ours: /metrics poll interval (default: the tool's)",
    )
    parser.add_argument("--start-server", action="store_true", help="start (and stop) a vLLM CPU server here")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "bench" / "results" / "tmp" / "fidelity")
    args = parser.parse_args()

    args.output.mkdir(parents=True, exist_ok=True)
    prompts = args.output / "prompts.jsonl"
    write_prompts(prompts, args.num_prompts, args.passages, args.passage_tokens, args.seed)
    port = args.base_url.rstrip("/").removesuffix("/v1").rsplit(":", 1)[1]
    launcher = ["bash", str(LAUNCHER), "--preset", "cpu", "--port", port, "--no-install"]
    if args.start_server:
        subprocess.run([*launcher, "--detach", "--", "--no-enable-prefix-caching"], check=True)
    rows: list[dict[str, Any]] = []
    try:
        for concurrency in (int(level) for level in args.concurrency.split(",")):
            for repeat in range(1, args.repeats + 1):
                step_dir = args.output / f"c{concurrency}-r{repeat}"
                theirs, ours = run_round(args, prompts, concurrency, step_dir)
                rows.append({"concurrency": concurrency, "repeat": repeat, "vllm": theirs, "ours": ours})
                print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    finally:
        if args.start_server:
            subprocess.run([*launcher, "--stop"], check=False)
    table = markdown(rows) + "\n\nAll rounds pooled:\n\n" + pooled(rows)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    settings = (
        f"{args.num_prompts} prompts (mean {rows[0]['ours']['mean_prompt_tokens']:.0f} prompt tokens), "
        f"{args.output_len} output tokens (--ignore-eos), temperature 0, warm-up {args.warmup}, "
        f"mode {args.mode}, "
        f"{args.base_url}"
    )
    (args.output / "fidelity.md").write_text(f"{stamp}: {settings}\n\n{table}\n")
    (args.output / "fidelity.json").write_text(
        json.dumps(
            {
                "date": stamp,
                "settings": vars(args) | {"output": str(args.output), "tokenizer": args.tokenizer},
                "rows": rows,
            },
            indent=1,
            default=str,
        )
    )
    print(f"\n{stamp}: {settings}\n\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
