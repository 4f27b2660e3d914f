"""`ragchat bench run` and `ragchat bench compare`: the inference benchmark (also the script
`scripts/benchmark_inference.py`).

Imports only the benchmark package and settings: no torch, no embedding model, so the script runs on a
machine that has nothing but the benchmark's light dependencies.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from ragchat.cli.common import console, err_console, print_table, settings_or_exit, stdout_is_terminal
from ragchat.inference_bench.client import ServerProblem
from ragchat.inference_bench.compare import compare_table, summary_lines
from ragchat.inference_bench.config import (
    OPENAI_BASE_URL,
    Backend,
    BenchConfig,
    BenchConfigError,
    Slo,
    WorkloadShape,
    default_base_url,
    parse_float_list,
    parse_int_list,
)
from ragchat.inference_bench.report import (
    console_tables,
    headline_lines,
    load_record,
    with_slo,
    workers_table,
    workload_names,
    write_outputs,
)
from ragchat.inference_bench.runner import BenchRunner, StepResult

METRICS_HELP = (
    "Metrics are defined as vLLM's `vllm bench serve` defines them: TTFT = time to the first streamed chunk "
    "that carries content; ITL = gaps between content chunks; TPOT = (E2E - TTFT) / (output tokens - 1); "
    "output tokens come from the stream's `usage` (requested with stream_options.include_usage), never from "
    "counting chunks."
)

bench_app = typer.Typer(
    name="bench",
    help="Inference benchmark for any OpenAI-compatible server (vLLM, OpenAI, or ragchat itself).\n\n"
    + METRICS_HELP,
    no_args_is_help=True,
    rich_markup_mode="rich",
)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one unwrapped error line (pipes and logs keep it whole) and return an Exit to raise."""
    err_console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


class BackendChoice(StrEnum):
    """Which server to measure."""

    vllm = "vllm"
    openai = "openai"
    app = "app"


class _ConsoleProgress:
    """The runner's progress shown as a rich progress bar plus one line per finished step."""

    def __init__(self, progress: Progress, out: Console) -> None:
        self._progress = progress
        self._out = out
        self._task: TaskID | None = None

    def step_started(self, label: str, total: int) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(label, total=total)

    def request_finished(self, ok: bool) -> None:
        if self._task is not None:
            self._progress.advance(self._task)

    def step_finished(self, step: StepResult) -> None:
        s = step.summary
        unit = "req/s" if step.mode == "rate" else "users"
        tpot = s.tpot_ms.p50
        self._out.print(
            f"{step.workload} @ {step.level:g} {unit}: TTFT p50 {s.ttft_ms.p50 or 0:,.0f} ms "
            f"p95 {s.ttft_ms.p95 or 0:,.0f} ms, TPOT p50 {'-' if tpot is None else f'{tpot:.1f}'} ms, "
            f"{s.output_throughput:,.1f} out tok/s, {s.failed} failed of {s.requests}",
            soft_wrap=True,
        )

    def note(self, text: str) -> None:
        self._out.print(f"[yellow]note:[/yellow] {text}")


@bench_app.command(
    "run",
    help="Measure a server: a concurrency sweep per workload, capacity at an SLO, "
    "and the prefix-cache effect.\n\n" + METRICS_HELP,
)
def run_command(
    backend: BackendChoice = typer.Option(
        BackendChoice.vllm,
        "--backend",
        help="vllm: VLLM_BASE_URL (default http://localhost:8000/v1); at vLLM's router, every worker's "
        "/metrics is read and reported per worker. openai: api.openai.com with "
        "OPENAI_API_KEY. app: ragchat's own /v1/chat/completions (http://localhost:RAGCHAT_PORT/v1), "
        "to measure what the RAG app adds.",
    ),
    runs: int = typer.Option(
        10, "--runs", help="Measured requests per step (raised to the concurrency level)."
    ),
    base_url: str | None = typer.Option(
        None, "--base-url", help="OpenAI-compatible base URL, ending in /v1."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        help="Model name to request (default: VLLM_MODEL / OPENAI_MODEL, else the first listed).",
    ),
    metrics_url: str | None = typer.Option(
        None,
        "--metrics-url",
        help="Server whose /metrics to read (default: the measured server). With --backend app, point it at "
        "vLLM (e.g. http://localhost:8000) to see the engine behind the app; at vLLM's router, its "
        "workers' are read.",
    ),
    api_key: str | None = typer.Option(
        None, "--api-key", help="Bearer key (default: OPENAI_API_KEY for openai, RAGCHAT_API_KEY for app)."
    ),
    concurrency: str = typer.Option(
        "1,2,4,8,16,32", "--concurrency", help="Sweep: requests kept in flight at each level (closed loop)."
    ),
    request_rate: str | None = typer.Option(
        None,
        "--request-rate",
        help="Open loop instead: Poisson arrivals at each rate (req/s), e.g. 0.5,1,2; seeded by --seed.",
    ),
    max_concurrency: int | None = typer.Option(
        None, "--max-concurrency", help="With --request-rate: cap on requests in flight (default: none)."
    ),
    max_tokens: int = typer.Option(128, "--max-tokens", help="Output tokens per request (an upper bound)."),
    ignore_eos: bool = typer.Option(
        False, "--ignore-eos", help="vLLM only: generate exactly --max-tokens tokens (fixed output length)."
    ),
    warmup: int = typer.Option(2, "--warmup", help="Unmeasured requests before each workload."),
    seed: int = typer.Option(0, "--seed", help="Seed for prompts and Poisson arrivals."),
    slo: str = typer.Option(
        "ttft_p95=2000,tpot_p95=100",
        "--slo",
        help="Objective for capacity and goodput, in ms. Default: answers start within 2 s and stream at "
        "10 tok/s or faster (faster than people read) for 95% of requests.",
    ),
    workloads: str | None = typer.Option(
        None,
        "--workloads",
        help="chat: short question. rag: fixed system prompt + K passages + question. long: one prompt near "
        "the server's max_model_len (one user at a time). Default chat,rag,long; with --backend app only "
        "chat (the app turns each question into its own RAG prompt). '' with --dataset: the dataset only.",
    ),
    rag_passages: int = typer.Option(4, "--rag-passages", help="K: passages per RAG prompt."),
    passage_tokens: int = typer.Option(300, "--passage-tokens", help="Length of each passage, in tokens."),
    long_prompt_tokens: int | None = typer.Option(
        None, "--long-prompt-tokens", help="Long workload size (default: max_model_len - max_tokens - 64)."
    ),
    dataset: Path | None = typer.Option(
        None, "--dataset", help='Also run your prompts: JSONL lines {"prompt": ...} or {"messages": [...]}.'
    ),
    prefix_experiment: bool = typer.Option(
        True, "--prefix-experiment/--no-prefix-experiment", help="Run RAG with a shared vs a unique prefix."
    ),
    prefix_runs: int | None = typer.Option(
        None, "--prefix-runs", help="Requests per prefix step (default --runs)."
    ),
    prefix_concurrency: int = typer.Option(
        1, "--prefix-concurrency", help="Users during the prefix experiment."
    ),
    metrics_interval: float = typer.Option(
        1.0,
        "--metrics-interval",
        help="Seconds between /metrics polls during a step, for peak KV-cache use and queue length "
        "(0: only before and after each step).",
    ),
    temperature: float = typer.Option(
        0.0, "--temperature", help="Sampling temperature sent with each request."
    ),
    timeout: float = typer.Option(600.0, "--timeout", help="Longest wait for a response's next bytes (s)."),
    output: Path | None = typer.Option(
        None,
        "--output",
        help="Folder for results.json (every request), summary.md and PNG plots "
        "(default: bench/results/tmp/inference-BACKEND-TIME).",
    ),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Draw PNG plots (matplotlib)."),
) -> None:
    settings = settings_or_exit()
    chosen: Backend = backend.value
    app_key = settings.api_key.get_secret_value() if settings.api_key else None
    key = api_key or (settings.openai_api_key if chosen == "openai" else app_key if chosen == "app" else None)
    url = base_url or default_base_url(
        chosen,
        vllm_base_url=settings.vllm_base_url,
        openai_base_url=settings.openai_base_url,
        app_port=settings.port,
    )
    if chosen == "openai" and not key and url.rstrip("/") == OPENAI_BASE_URL:
        raise fail("--backend openai needs an API key: set OPENAI_API_KEY or pass --api-key", 2)
    if chosen == "openai" and ignore_eos:
        raise fail("--ignore-eos is a vLLM extension; OpenAI does not accept it", 2)
    chosen_workloads = (
        workloads if workloads is not None else ("chat" if chosen == "app" else "chat,rag,long")
    )
    default_model = {"vllm": settings.vllm_model, "openai": settings.openai_model, "app": None}[chosen]
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        config = BenchConfig(
            backend=chosen,
            base_url=url,
            api_key=key,
            model=model or default_model,
            metrics_url=metrics_url,
            output_dir=output or Path("bench/results/tmp") / f"inference-{chosen}-{stamp}",
            concurrency=parse_int_list(concurrency, "--concurrency"),
            request_rates=parse_float_list(request_rate, "--request-rate") if request_rate else (),
            max_concurrency=max_concurrency,
            runs=runs,
            max_tokens=max_tokens,
            warmup=warmup,
            seed=seed,
            slo=Slo.parse(slo),
            workloads=tuple(name.strip() for name in chosen_workloads.split(",") if name.strip()),
            shape=WorkloadShape(
                rag_passages=rag_passages,
                passage_tokens=passage_tokens,
                long_prompt_tokens=long_prompt_tokens,
            ),
            dataset=dataset,
            prefix_experiment=prefix_experiment,
            prefix_runs=prefix_runs,
            prefix_concurrency=prefix_concurrency,
            ignore_eos=ignore_eos,
            temperature=temperature,
            metrics_interval_s=metrics_interval,
            request_timeout_s=timeout,
            plots=plots,
        )
    except BenchConfigError as exc:
        raise fail(str(exc), 2) from None
    _run(config)


def _run(config: BenchConfig) -> None:
    console.print(f"Benchmarking [bold]{config.backend}[/bold] at {config.base_url}")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        runner = BenchRunner(config, _ConsoleProgress(progress, console))
        try:
            run = asyncio.run(runner.run())
        except ServerProblem as exc:
            raise fail(str(exc)) from None
        except ValueError as exc:  # an unreadable --dataset
            raise fail(str(exc), 2) from None
        except KeyboardInterrupt:
            raise fail("interrupted; nothing written", 130) from None
    record = run.to_record()
    _show(record)
    written = write_outputs(record, config.output_dir, plots=config.plots)
    console.print(f"wrote {', '.join(str(path) for path in written)}")


def _show(record: dict[str, Any]) -> None:
    """The run's tables and headline lines; tables get room even when stdout is a pipe or a log file."""
    server = record["server"]
    console.print(
        f"model {server['model']}, max_model_len {server['max_model_len'] or '?'}, "
        f"vLLM {server['vllm_version'] or 'version not exposed'}",
        markup=False,
    )
    for workload, table in zip(workload_names(record), console_tables(record), strict=True):
        print_table(table, prefix={"workload": workload})
    workers = workers_table(record)
    if workers is not None:
        print_table(workers)
    for line in headline_lines(record):
        console.print(line, style="bold", markup=False, soft_wrap=True)


@bench_app.command(
    "report", help="Print and rewrite a saved run's summary, optionally at another SLO (no requests sent)."
)
def report_command(
    results: Path = typer.Argument(..., help="results.json of a run (or its folder)."),
    slo: str | None = typer.Option(
        None, "--slo", help="Recompute goodput and capacity at this SLO (default: the run's own)."
    ),
    output: Path | None = typer.Option(
        None, "--output", help="Where to write summary.md and plots (default: next to results.json)."
    ),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Draw PNG plots (matplotlib)."),
) -> None:
    try:
        record = load_record(results)
        record = with_slo(record, Slo.parse(slo) if slo is not None else Slo(**record["settings"]["slo"]))
    except (ValueError, BenchConfigError) as exc:
        raise fail(str(exc), 2) from None
    _show(record)
    source = results if results.is_dir() else results.parent
    target = output or source
    # The saved results.json stays as measured; a copy goes along only to another folder.
    written = write_outputs(record, target, plots=plots, results=target.resolve() != source.resolve())
    console.print(f"wrote {', '.join(str(path) for path in written)}", soft_wrap=True)


@bench_app.command("compare", help="Show two runs side by side (e.g. vllm vs openai, or app vs vllm).")
def compare_command(
    first: Path = typer.Argument(..., help="results.json of run A (or its folder)."),
    second: Path = typer.Argument(..., help="results.json of run B (or its folder)."),
) -> None:
    try:
        a, b = load_record(first), load_record(second)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    for line in summary_lines(a, b):
        console.print(line, markup=False, soft_wrap=True)
    print_table(compare_table(a, b, every_row=not stdout_is_terminal()))


def register(app: typer.Typer) -> None:
    """Add `ragchat bench` to the main app."""
    app.add_typer(bench_app, name="bench")


def run_script(argv: list[str]) -> None:
    """`scripts/benchmark_inference.py [run | report R | compare A B] ARGS`; no command means `run`."""
    if not argv or argv[0] not in ("run", "compare", "report"):
        argv = ["run", *argv]
    bench_app(args=argv, prog_name="benchmark_inference.py")
