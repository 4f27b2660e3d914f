"""CLI commands for the corpus: `ingest`, `search`, `documents list|delete` and `eval`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from ragchat.cli.access import CLI_ADMIN, with_access
from ragchat.cli.common import console, err_console, fail, print_table, settings_or_exit
from ragchat.config import Settings
from ragchat.container import Services, build_services, open_store
from ragchat.core.access import AccessService
from ragchat.core.ingest import FileOutcome, InvalidCollectionName, check_collection_name
from ragchat.core.retrieve import SEARCH_MODES
from ragchat.domain import DocumentRecord, IngestReport, Passage
from ragchat.infra.embeddings import EmbeddingError
from ragchat.infra.store import ChunkStore, StoreError

T = TypeVar("T")

_SKIPPED_SHOWN = 25
_EVAL_MODES = (*SEARCH_MODES, "all")

documents_app = typer.Typer(
    name="documents",
    help="List or delete stored documents (no embedding model needed).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command(name="ingest")(ingest)
    app.command(name="search")(search)
    app.command(name="eval")(evaluate)
    app.add_typer(documents_app)


# --- running with services ---------------------------------------------------------------------------------


def _with_services(settings: Settings, work: Callable[[Services], Awaitable[T]]) -> T:
    """Build the services (loading the embedding model), run `work`, close them; errors become one line."""

    async def main() -> T:
        with err_console.status("Loading the embedding model…"):
            services = await build_services(settings)
        try:
            return await work(services)
        finally:
            await services.aclose()

    try:
        return asyncio.run(main())
    except (StoreError, EmbeddingError, OSError) as exc:
        raise fail(str(exc)) from None


def _with_store(settings: Settings, work: Callable[[ChunkStore], T]) -> T:
    try:
        store = open_store(settings)
    except (StoreError, OSError) as exc:
        raise fail(str(exc)) from None
    try:
        return work(store)
    finally:
        store.close()


def _collection(name: str | None, settings: Settings) -> str:
    try:
        return check_collection_name(name or settings.default_collection)
    except InvalidCollectionName as exc:
        raise fail(str(exc), 2) from None


# --- ingest ------------------------------------------------------------------------------------------------


class _ProgressBar:
    """Draws `IngestService` progress with rich."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task = progress.add_task("Ingesting", total=None, current="")

    def start(self, total_files: int) -> None:
        self._progress.update(self._task, total=total_files)

    def advance(self, outcome: FileOutcome) -> None:
        self._progress.update(self._task, advance=1, current=Path(outcome.path).name)


def ingest(
    paths: list[Path] = typer.Argument(
        ..., help="Files and folders to ingest (folders are walked recursively)."
    ),
    collection: str | None = typer.Option(
        None,
        "--collection",
        "-c",
        help="Collection to add the documents to (default: RAGCHAT_DEFAULT_COLLECTION).",
    ),
) -> None:
    """Ingest .md, .txt, .html, .pdf and .docx files into a collection.

    Unchanged files are skipped (content hash); changed files replace their earlier version atomically.
    Unreadable files are skipped with the reason shown in the summary. Safe to interrupt and re-run.

    Example: ragchat ingest ~/notes ./handbook.pdf --collection team
    """
    settings = settings_or_exit()
    name = _collection(collection, settings)

    async def work(services: Services) -> tuple[Any, float]:
        progress = Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.fields[current]}"),
            console=err_console,
        )
        started = time.perf_counter()
        with progress:
            bar = _ProgressBar(progress)
            report = await asyncio.to_thread(
                services.ingest.ingest_paths, paths, collection=name, progress=bar
            )
        await asyncio.to_thread(_audit_ingest, services.access, name, report)
        return report, time.perf_counter() - started

    report, seconds = _with_services(settings, work)
    files = len(report.added) + len(report.replaced) + len(report.unchanged) + len(report.skipped)
    console.print(f"[bold]Ingested into collection '{name}'[/bold]", highlight=False)
    summary = Table(show_header=False)
    summary.add_column(style="bold")
    summary.add_column(justify="right")
    for label, value in (
        ("files", files),
        ("added", len(report.added)),
        ("replaced", len(report.replaced)),
        ("unchanged", len(report.unchanged)),
        ("skipped", len(report.skipped)),
        ("chunks stored", report.chunk_count),
        ("time", f"{seconds:.1f} s"),
    ):
        summary.add_row(label, str(value))
    print_table(summary)
    if report.skipped:
        console.print(f"[bold yellow]Skipped {len(report.skipped)} file(s):[/bold yellow]")
        for path, reason in report.skipped[:_SKIPPED_SHOWN]:
            console.print(Text.assemble("  ", (path, "cyan"), ": ", reason), soft_wrap=True)
        if len(report.skipped) > _SKIPPED_SHOWN:
            console.print(f"  … and {len(report.skipped) - _SKIPPED_SHOWN} more")
    if files and len(report.skipped) == files:
        raise fail("no file could be ingested (see the reasons above)")


def _audit_ingest(access: AccessService, collection: str, report: IngestReport) -> None:
    """One audit event per document added or replaced (actor `cli`)."""
    for status, records in (("added", report.added), ("replaced", report.replaced)):
        for record in records:
            detail = {"document_id": record.id, "chunks": record.chunk_count}
            access.record(CLI_ADMIN, f"document_{status}", f"{collection}/{record.path}", detail, None)


# --- search ------------------------------------------------------------------------------------------------


def _check_mode(mode: str, allowed: tuple[str, ...]) -> str:
    if mode not in allowed:
        raise fail(f"unknown --mode {mode!r}; use one of {', '.join(allowed)}", 2)
    return mode


def search(
    query: str = typer.Argument(..., help="What to look for, in plain words."),
    k: int = typer.Option(5, "--k", "-k", min=1, max=50, help="How many passages to show."),
    collection: str | None = typer.Option(None, "--collection", "-c", help="Collection to search."),
    as_json: bool = typer.Option(
        False, "--json", help="One JSON object per line: rank, score, document, heading, chunk_id, text."
    ),
    mode: str = typer.Option(
        "hybrid", "--mode", "-m", help="hybrid (BM25 + vector, fused), vector or keyword."
    ),
) -> None:
    """Search the stored passages (hybrid BM25 + vector search by default).

    Example: ragchat search "how do I read a file line by line" --k 3
    """
    settings = settings_or_exit()
    name = _collection(collection, settings)
    _check_mode(mode, SEARCH_MODES)

    async def work(services: Services) -> list[Passage]:
        return await services.retriever.search(query, collection=name, k=k, mode=mode)

    passages = _with_services(settings, work)
    if as_json:
        for rank, passage in enumerate(passages, start=1):
            line = {
                "rank": rank,
                "score": passage.score,
                "document": passage.document_path,
                "heading": passage.heading,
                "chunk_id": passage.chunk_id,
                "text": passage.text,
            }
            typer.echo(json.dumps(line, ensure_ascii=False))
        return
    if not passages:
        console.print(f"No passages found in collection '{name}'.")
        return
    for rank, passage in enumerate(passages, start=1):
        title = Text.assemble((f"{rank}. ", "bold"), (passage.document_path, "cyan"))
        if passage.heading:
            title.append(f"  {passage.heading}", "dim")
        title.append(f"  (score {passage.score:.4f})", "dim")
        console.print(title)
        snippet = " ".join(passage.text.split())
        console.print(Text(f"   {snippet[:300]}{'…' if len(snippet) > 300 else ''}"))


# --- documents ---------------------------------------------------------------------------------------------


@documents_app.command(name="list")
def list_documents(
    collection: str | None = typer.Option(None, "--collection", "-c", help="Only this collection."),
    as_json: bool = typer.Option(
        False, "--json", help="One JSON object per line (id, path, collection, ...)."
    ),
) -> None:
    """List stored documents."""
    settings = settings_or_exit()
    records = _with_store(settings, lambda store: store.list_documents(collection))
    if as_json:
        for record in records:
            typer.echo(json.dumps(record.as_dict(), ensure_ascii=False))
        return
    if not records:
        console.print("No documents yet. Add some with: ragchat ingest PATH")
        return
    table = Table()
    table.add_column("id", no_wrap=True)
    table.add_column("collection")
    table.add_column("path", overflow="fold")
    table.add_column("chunks", justify="right")
    table.add_column("created (UTC)", no_wrap=True)
    for record in records:
        created = record.created_at[:16].replace("T", " ")
        table.add_row(record.id, record.collection, record.path, str(record.chunk_count), created)
    print_table(table)


@documents_app.command(name="delete")
def delete_document(
    document_id: str = typer.Argument(..., help="The document's id (see `documents list`)."),
) -> None:
    """Delete a document with every chunk, vector and index entry of it."""
    settings = settings_or_exit()

    def delete(store: ChunkStore) -> DocumentRecord | None:
        record = store.get_document(document_id)
        return record if record is not None and store.delete_document(document_id) else None

    record = _with_store(settings, delete)
    if record is None:
        raise fail(f"no document has the id {document_id!r} (see `ragchat documents list`)")
    target = f"{record.collection}/{record.path}"
    with_access(
        lambda access: access.record(
            CLI_ADMIN, "document_deleted", target, {"document_id": document_id}, None
        )
    )
    console.print(f"Deleted document {document_id}.")


# --- eval --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EvalQuestion:
    query: str
    expected: frozenset[str]


@dataclass(frozen=True, slots=True)
class EvalScore:
    mode: str
    k: int
    questions: int
    hit_at_k: float
    mrr: float


def read_questions(path: Path) -> list[EvalQuestion]:
    """Questions from a JSON-lines file of `{"q": "...", "expected": ["file name", ...]}` (`question` may
    stand for `q`, as in the lines of `ragchat feedback export --json`)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read {path}: {exc}") from None
    questions: list[EvalQuestion] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            query, expected = item["q"] if "q" in item else item["question"], item["expected"]
            if expected == []:
                raise fail(
                    f"{path}:{number}: `expected` is empty; fill in the file name of the document that "
                    "answers this question (docs/evaluation.md)"
                )
            if not isinstance(query, str) or not isinstance(expected, list):
                raise TypeError
        except (json.JSONDecodeError, KeyError, TypeError):
            raise fail(
                f'{path}:{number}: expected {{"q": "question", "expected": ["file name", ...]}}, '
                f"got {line[:80]!r}"
            ) from None
        questions.append(EvalQuestion(query, frozenset(str(name) for name in expected)))
    if not questions:
        raise fail(f"{path} holds no questions")
    return questions


def score_ranking(
    retrieved_names: list[list[str]], questions: list[EvalQuestion], mode: str, k: int
) -> EvalScore:
    """hit@k and MRR@k: a hit is a passage whose source file name is in the question's `expected`."""
    hits, reciprocal_ranks = 0, 0.0
    for names, question in zip(retrieved_names, questions, strict=True):
        first = next(
            (rank for rank, name in enumerate(names[:k], start=1) if name in question.expected), None
        )
        if first is not None:
            hits += 1
            reciprocal_ranks += 1.0 / first
    count = len(questions)
    return EvalScore(mode, k, count, hits / count, reciprocal_ranks / count)


def evaluate(
    file: Path = typer.Argument(..., help='JSON lines: {"q": "question", "expected": ["file name", ...]}.'),
    k: int = typer.Option(5, "--k", "-k", min=1, max=50, help="Passages retrieved per question."),
    collection: str | None = typer.Option(None, "--collection", "-c", help="Collection to search."),
    mode: str = typer.Option(
        "hybrid", "--mode", "-m", help="hybrid, vector, keyword, or all (one row each)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="One JSON object per mode: mode, k, questions, hit_at_k, mrr."
    ),
) -> None:
    """Measure retrieval quality: hit@k and MRR over a question set.

    A question counts as a hit when one of the top k passages comes from a file whose name is listed in
    its `expected`; MRR averages 1/rank of the first such passage (0 when none).

    Example: ragchat eval bench/questions.jsonl --k 5 --mode all
    """
    settings = settings_or_exit()
    name = _collection(collection, settings)
    modes = SEARCH_MODES if _check_mode(mode, _EVAL_MODES) == "all" else (mode,)
    questions = read_questions(file)

    async def work(services: Services) -> list[EvalScore]:
        scores = []
        for each in modes:
            retrieved = []
            for question in questions:
                passages = await services.retriever.search(question.query, collection=name, k=k, mode=each)
                retrieved.append([Path(passage.document_path).name for passage in passages])
            scores.append(score_ranking(retrieved, questions, each, k))
        return scores

    scores = _with_services(settings, work)
    if as_json:
        for score in scores:
            typer.echo(
                json.dumps(
                    {
                        "mode": score.mode,
                        "k": score.k,
                        "questions": score.questions,
                        "hit_at_k": score.hit_at_k,
                        "mrr": score.mrr,
                    }
                )
            )
        return
    table = Table(title=f"Retrieval quality on {file.name} ({len(questions)} questions, collection '{name}')")
    for column in ("mode", f"hit@{k}", f"MRR@{k}"):
        table.add_column(column, justify="right" if column != "mode" else "left")
    for score in scores:
        table.add_row(score.mode, f"{score.hit_at_k:.3f}", f"{score.mrr:.3f}")
    print_table(table)
