"""CLI commands: `ragchat serve` (the HTTP app) and `ragchat ask` (a question, through the running app).

`ask` talks to the app's OpenAI-compatible API with the official `openai` client, exactly as any other
client would, so it exercises what users run (and needs `ragchat serve` running, locally or elsewhere).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePath
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from ragchat.cli.common import err_console, fail, print_table, settings_or_exit
from ragchat.config import is_loopback


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command(name="serve")(serve)
    app.command(name="ask")(ask)


def serve(
    host: str | None = typer.Option(None, help="Interface to listen on (default: RAGCHAT_HOST or 0.0.0.0)."),
    port: int | None = typer.Option(None, help="Port (default: RAGCHAT_PORT or 8080)."),
    workers: int = typer.Option(
        1,
        min=1,
        help="App processes sharing the port. One suits a small host; with cores to spare, 2-4 keep "
        'answers fast for 16 users at once (docs/benchmarks.md, "GPU validation"). Each loads the '
        "embedding model.",
    ),
    log_level: str = typer.Option("info", help="uvicorn log level: debug, info, warning, error."),
) -> None:
    """Run the ragchat app: web UI at /, OpenAI-compatible API at /v1, document API at /api.

    The same app as `uvicorn app.main:app --host 0.0.0.0 --port 8080` run from the repository root.
    The LLM server (VLLM_BASE_URL) may start before or after it. With --workers N, /metrics reports the
    sum over all workers (through PROMETHEUS_MULTIPROC_DIR, a fresh folder made for this run unless set).
    """
    import uvicorn

    from ragchat.api.app import create_app

    settings = settings_or_exit()
    bind = host or settings.host
    if settings.auth == "off" and not is_loopback(bind):
        raise fail(
            f"RAGCHAT_AUTH=off with --host {bind}: anyone who can reach the port could "
            "read, replace and delete every document; bind a loopback address or keep RAGCHAT_AUTH=on",
            2,
        )
    options: dict[str, Any] = {
        "host": bind,
        "port": port or settings.port,
        "log_level": log_level,
        "timeout_graceful_shutdown": 5,
    }
    if settings.trusted_user_header:
        # The trusted-proxy check needs the TCP peer's address: uvicorn would otherwise replace it with
        # whatever X-Forwarded-For says when the peer is in --forwarded-allow-ips (127.0.0.1 by default).
        options["proxy_headers"] = False
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
        return
    with _metrics_folder() as folder:
        err_console.print(f"{workers} workers; their metrics are summed through {folder}")
        uvicorn.run("ragchat.api.app:app_from_environment", factory=True, workers=workers, **options)


@contextmanager
def _metrics_folder() -> Iterator[str]:
    """PROMETHEUS_MULTIPROC_DIR for the workers: the one set, or a new empty folder, removed afterwards."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield os.environ["PROMETHEUS_MULTIPROC_DIR"]
        return
    with tempfile.TemporaryDirectory(prefix="ragchat-metrics-") as folder:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        try:
            yield folder
        finally:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]


def ask(
    question: str = typer.Argument(..., help="The question, in quotes."),
    collection: str | None = typer.Option(
        None, "--collection", "-c", help="Collection to answer from (default: RAGCHAT_DEFAULT_COLLECTION)."
    ),
    url: str | None = typer.Option(
        None, help="The app's OpenAI-compatible base URL (default: http://127.0.0.1:RAGCHAT_PORT/v1)."
    ),
    max_tokens: int | None = typer.Option(
        None, min=1, help="Longest answer, in tokens (default: LLM_MAX_TOKENS)."
    ),
) -> None:
    """Ask a question: the answer streams in, then the passages it cites are listed.

    Needs the app running (`ragchat serve`). Example: `ragchat ask "How do I rotate the API key?" -c handbook`
    """
    settings = settings_or_exit()
    base_url = url or f"http://127.0.0.1:{settings.port}/v1"
    try:
        api_key = settings.api_key.get_secret_value() if settings.api_key else "not-needed"
        sources = asyncio.run(_stream_answer(base_url, api_key, question, collection, max_tokens))
    except _AskError as exc:
        raise fail(str(exc)) from None
    if sources:
        print_table(_sources_table(sources))


class _AskError(Exception):
    pass


async def _stream_answer(
    base_url: str, api_key: str, question: str, collection: str | None, max_tokens: int | None
) -> list[dict[str, Any]]:
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0)
    sources: list[dict[str, Any]] = []
    try:
        stream = await client.chat.completions.create(
            model="ragchat",
            messages=[{"role": "user", "content": question}],
            stream=True,
            max_tokens=max_tokens,
            extra_body={"collection": collection} if collection else None,
        )
        async for chunk in stream:
            for choice in chunk.choices:
                if choice.delta.content:
                    sys.stdout.write(choice.delta.content)
                    sys.stdout.flush()
            extra = chunk.model_extra or {}
            if extra.get("sources") is not None:
                sources = list(extra["sources"])
        sys.stdout.write("\n")
    except openai.APIConnectionError:
        raise _AskError(f"cannot reach ragchat at {base_url}: is `ragchat serve` running?") from None
    except openai.AuthenticationError:
        raise _AskError(
            f"{base_url} refused the request: set RAGCHAT_API_KEY to a key (`ragchat keys create`)"
        ) from None
    except openai.APIStatusError as exc:
        raise _AskError(_error_message(exc.body) or exc.message) from None
    except openai.APIError as exc:  # an error event in the stream (e.g. the LLM died midway)
        sys.stdout.write("\n")
        raise _AskError(exc.message) from None
    finally:
        await client.close()
    if not sources:
        err_console.print("[dim]no passages found for this question[/dim]")
    return sources


def _error_message(body: object) -> str | None:
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return None


def _sources_table(sources: list[dict[str, Any]]) -> Table:
    cited = any(s.get("cited") for s in sources)
    title = "Sources" if cited else "Passages given to the model (the answer cites none)"
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("document")
    table.add_column("section")
    table.add_column("score", justify="right")
    table.add_column("snippet", overflow="fold", max_width=60)
    for source in sources:
        table.add_row(
            Text(f"[{source.get('index')}]"),
            Text(PurePath(str(source.get("document", ""))).name),
            Text(str(source.get("heading", ""))),
            f"{float(source.get('score', 0.0)):.3f}",
            Text(str(source.get("snippet", ""))),
        )
    return table
