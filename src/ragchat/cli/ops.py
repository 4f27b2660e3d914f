"""Operations commands: `ragchat status` (vLLM's health at a glance) and `ragchat embed-server`."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Annotated, cast

import typer
from rich.table import Table

from ragchat.cli.common import console, err_console, fail, print_table, settings_or_exit
from ragchat.config import EMBEDDING_RUNTIMES, EmbeddingRuntime
from ragchat.container import create_vllm_monitor
from ragchat.infra.embeddings import ModelNotAvailable
from ragchat.infra.llm.vllm_metrics import INDICATORS, ClusterStatus, VllmStatus


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command(name="status")(status)
    app.command(name="embed-server")(embed_server)


def status(
    window: Annotated[
        float,
        typer.Option(min=0, max=60, help="Seconds between the two scrapes used for rates (0: one scrape)."),
    ] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show vLLM's health at a glance, read from its Prometheus /metrics (VLLM_BASE_URL's server).

    Requests running and waiting, KV-cache usage, prefix-cache hit rate, generation throughput (the rate
    of vllm:generation_tokens_total over --window seconds) and preemptions, under current vLLM's metric
    names, with the guide's older names where vLLM renamed or removed them. When VLLM_BASE_URL is vLLM's
    router (scripts/start_router.sh), every worker behind it is shown too, up or down.
    """
    settings = settings_or_exit()
    if settings.llm_backend != "vllm":
        raise fail(f"LLM_BACKEND is {settings.llm_backend}: `ragchat status` reads a vLLM server's /metrics")

    async def read() -> tuple[str, ClusterStatus]:
        monitor = create_vllm_monitor(settings)
        try:
            return monitor.metrics_url, await monitor.read(window)
        finally:
            await monitor.aclose()

    url, result = asyncio.run(read())
    if as_json:
        data: dict[str, object] = {
            "metrics_url": url,
            "vllm": result.total.as_dict() if result.total else None,
            "error": result.error,
        }
        if result.routed:
            data |= {
                "router_metrics_url": result.router_metrics_url,
                "router_error": result.router_error,
                "workers": [w.as_dict() for w in result.workers],
            }
        console.print_json(json.dumps(data))
    if result.total is None and not result.routed:
        hint = f"VLLM_BASE_URL={settings.vllm_base_url}; start vLLM with scripts/start_vllm.sh"
        raise fail(f"{result.error} ({hint})")
    if not as_json:
        if result.total is not None:
            title = f"vLLM at {url} — {', '.join(result.total.models) or 'no model'}"
            if result.routed:
                title = (
                    f"vLLM's router at {url.removesuffix('/metrics')}: {len(result.workers)} workers combined"
                )
            print_table(_status_table(title, result.total))
        if result.routed:
            print_table(_workers_table(result))
    if result.routed and not any(w.state == "up" for w in result.workers):
        raise fail(result.error or "no worker behind the router is up")


def _status_table(title: str, result: VllmStatus) -> Table:
    values = result.as_dict()
    table = Table(title=title, title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("from vLLM's metric (the guide's name)", overflow="fold")
    for indicator in INDICATORS:
        source = indicator.metric
        if indicator.guide_name:
            source += f"\n(the guide's {indicator.guide_name}, {indicator.change})"
        table.add_row(indicator.label, _format(indicator.key, values.get(indicator.key)), source)
    table.caption = f"rates over {result.window_s:.1f} s" if result.window_s else "one scrape: no rates"
    return table


def _workers_table(result: ClusterStatus) -> Table:
    table = Table(title="workers behind the router", title_justify="left")
    table.add_column("worker", overflow="fold")
    table.add_column("state", overflow="fold")
    for column in ("running", "waiting", "KV cache", "prefix hits", "gen tok/s", "routed"):
        table.add_column(column, justify="right", overflow="fold")
    for worker in result.workers:
        figures = worker.vllm.as_dict() if worker.vllm else {}
        table.add_row(
            worker.url,
            worker.state
            if worker.router.circuit in (None, "closed")
            else f"{worker.state} ({worker.router.circuit})",
            *(
                _format(key, figures.get(key))
                for key in (
                    "requests_running",
                    "requests_waiting",
                    "kv_cache_usage",
                    "prefix_cache_hit_rate",
                    "generation_tokens_per_s",
                )
            ),
            _format("routed", worker.router.routed_requests),
        )
    notes = [f"{w.url}: {w.error}" for w in result.workers if w.error]
    if result.router_error:
        notes.append(result.router_error)
    table.caption = "\n".join(notes) or None
    return table


def _format(key: str, value: object) -> str:
    if value is None:
        return "n/a"
    assert isinstance(value, float | int)
    if key.startswith(("kv_cache", "prefix_cache")):
        return f"{value:.1%}"
    if key == "generation_tokens_per_s":
        return f"{value:.1f}"
    return f"{value:.0f}"


def embed_server(
    host: Annotated[str, typer.Option(help="Bind address (0.0.0.0 to serve other hosts).")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=1, max=65535, help="Port (8081: the guide's 8080 is the app's).")
    ] = 8081,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help="Model to serve (repeatable): a name, folder, or cached hub id. Default: "
            "LOCAL_EMBEDDING_MODEL, plus BAAI/bge-small-en-v1.5 when its weights are on this machine.",
        ),
    ] = None,
    runtime: Annotated[
        str,
        typer.Option(
            help="torch (sentence-transformers; default: fastest with batches, see docs/benchmarks.md), onnx "
            "(ONNX Runtime, same vectors; faster for single texts) or onnx-int8 (faster still, vectors "
            "differ slightly; docs/benchmarks.md)."
        ),
    ] = "torch",
    max_batch: Annotated[int, typer.Option(min=1, help="Most texts encoded in one model call.")] = 256,
    max_wait_ms: Annotated[
        float, typer.Option(min=0, help="How long the first request waits for others to join its batch.")
    ] = 2.0,
) -> None:
    """Serve embeddings over an OpenAI-compatible API: POST /v1/embeddings, GET /v1/models, /health, /metrics.

    Point ragchat at it with EMBEDDING_BACKEND=openai, EMBEDDING_BASE_URL=http://HOST:PORT/v1 and
    EMBEDDING_MODEL=<a served model>. Requests arriving together are encoded in one model call.
    """
    import uvicorn

    from ragchat.embed_server.app import create_embed_app, default_model_names, prepare_models
    from ragchat.infra.embeddings.local import wait_passively_in_openmp

    wait_passively_in_openmp()
    if runtime not in EMBEDDING_RUNTIMES:
        raise fail(f"--runtime must be one of {', '.join(EMBEDDING_RUNTIMES)} (got {runtime!r})", code=2)
    settings = settings_or_exit()
    names = model or default_model_names(settings)
    if _port_taken(host, port):
        raise fail(f"port {port} on {host} is already in use; choose another with --port")
    try:
        models = prepare_models(settings, names, cast(EmbeddingRuntime, runtime))
    except ModelNotAvailable as exc:
        raise fail(str(exc)) from None
    app = create_embed_app(models, max_batch_texts=max_batch, max_wait_s=max_wait_ms / 1000)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    err_console.print(
        f"embedding server for {', '.join(names)} ({runtime}) on http://{shown_host}:{port}/v1\n"
        f"  configure ragchat with: EMBEDDING_BACKEND=openai "
        f"EMBEDDING_BASE_URL=http://{shown_host}:{port}/v1 EMBEDDING_MODEL={names[0]}"
    )
    uvicorn.run(app, host=host, port=port, log_level="info")


def _port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False
