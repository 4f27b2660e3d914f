"""CLI commands for feedback on answers: `feedback export`.

The JSON lines it writes double as a question set for `ragchat eval` (`question` and `expected`): an
up-rated answer's line lists the documents it cited; a down-rated one's `expected` is left empty for an
admin to fill in with the file name of the document that does answer it (docs/evaluation.md).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

import typer
from rich.table import Table

from ragchat.cli.access import with_access
from ragchat.cli.common import fail, print_table, settings_or_exit
from ragchat.container import open_conversations
from ragchat.core.conversations import timestamp
from ragchat.infra.conversations import FeedbackRecord

feedback_app = typer.Typer(name="feedback", help="Thumbs up and down on answers.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.add_typer(feedback_app)


def _since(value: str | None) -> str | None:
    """An ISO date or time as the stored timestamps' text (UTC); a date means its midnight, UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise fail(
            f"--since {value!r}: give a date (2026-12-01) or an ISO time (2026-12-01T09:00+01:00)", 2
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return timestamp(moment.astimezone(UTC))


def export_line(record: FeedbackRecord) -> dict[str, Any]:
    """One exported answer: what was asked and answered, the passages shown with it (as the chat endpoint
    returned them: `cited` says which the answer cites; none cited, they are every passage the model was
    given), the rating, and `expected`: the files of those passages (the cited ones if any) when rated up;
    empty, for an admin to fill in, when rated down."""
    turn = record.turn
    cited = [source for source in turn.sources if source.get("cited")] or turn.sources
    expected: list[str] = []
    if turn.rating == "up":
        for source in cited:
            name = PurePath(str(source.get("document", ""))).name
            if name and name not in expected:
                expected.append(name)
    return {
        "question": turn.question,
        "answer": turn.answer,
        "passages": turn.sources,
        "rating": turn.rating,
        "comment": turn.comment,
        "model": turn.model,
        "collection": record.collection,
        "rated_at": turn.rated_at,
        "conversation_id": turn.conversation_id,
        "turn_id": turn.id,
        "expected": expected,
    }


@feedback_app.command("export")
def export(
    since: str | None = typer.Option(
        None, "--since", help="Only answers rated on or after this date or time."
    ),
    rating: str | None = typer.Option(None, "--rating", help="Only `up` or only `down`."),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="JSON lines (question, answer, passages, rating, comment, model, collection, expected...), "
        "usable as a `ragchat eval` question set once `expected` is filled in.",
    ),
) -> None:
    """Export the answers users rated, oldest rating first.

    Example: ragchat feedback export --rating down --json > to-check.jsonl
    """
    if rating not in (None, "up", "down"):
        raise fail("--rating must be up or down", 2)
    ratings = ("up", "down") if rating is None else (rating,)
    settings = settings_or_exit()
    records = with_access(
        lambda access: open_conversations(settings, access).feedback(since=_since(since), ratings=ratings)
    )
    if as_json:
        for record in records:
            typer.echo(json.dumps(export_line(record), ensure_ascii=False))
        return
    table = Table(title=f"Rated answers ({len(records)})")
    for column in ("rated", "rating", "collection", "question", "comment"):
        table.add_column(column)
    for record in records:
        turn = record.turn
        table.add_row(
            turn.rated_at or "", turn.rating or "", record.collection, turn.question, turn.comment or ""
        )
    print_table(table)
