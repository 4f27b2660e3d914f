"""The `ragchat` command line: one typer app; each command group lives in its own module."""

from __future__ import annotations

import typer

from ragchat.cli import access, bench, chat, corpus, database, ops

app = typer.Typer(
    name="ragchat",
    help=(
        "Self-hosted RAG chatbot: ingest your documents, search them, and get cited answers from your own "
        "LLM served by vLLM.\n\nConfiguration comes from environment variables (see "
        "`docs/configuration.md`), e.g. RAGCHAT_DATA_DIR, EMBEDDING_BACKEND, LLM_BACKEND, VLLM_BASE_URL."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

for module in (corpus, chat, bench, ops, access, database):
    module.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
