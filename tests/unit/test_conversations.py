"""Saved conversations on a real SQLite file and a real PostgreSQL database: ownership, paging, share links,
feedback, retention, and what deleting a user takes with it. (Through the real app, vLLM and the `openai`
client: tests/integration/test_conversations.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, update

from ragchat.cli.feedback import export_line
from ragchat.core.access import AccessService, InvalidInput, Principal
from ragchat.core.conversations import (
    ConversationMismatch,
    ConversationNotFound,
    ConversationService,
    NewTurn,
    TurnNotFound,
    new_id,
    timestamp,
    title_from,
)
from ragchat.infra.conversations import ConversationStore
from ragchat.infra.db import open_database, sqlite_url
from ragchat.infra.db.schema import conversations, metadata
from ragchat.infra.identity import IdentityStore
from tests.support.stores import ENGINES

SOURCE = {"index": 1, "chunk_id": "c1", "document": "docs/billing.md", "heading": "Refunds", "cited": True}


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database of each engine in turn, at the newest schema."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = sqlite_url(tmp_path / "ragchat.sqlite3")
    engine = open_database(url)
    yield engine
    engine.dispose()


class World:
    def __init__(self, engine: Engine, retention_days: int | None = None) -> None:
        self.identity = IdentityStore(engine)
        self.access = AccessService(
            self.identity, session_hours=1, login_attempts=5, login_attempts_per_address=5, login_window_s=60
        )
        self.service = ConversationService(
            ConversationStore(engine), self.access, retention_days=retention_days
        )
        self.identity.add_collection("team", owner_id=None)
        self.identity.add_collection("secret", owner_id=None)

    def user(self, name: str, *, reads: str | None = None) -> Principal:
        record = self.identity.add_user(name, role="member", password_hash=None, created_at=timestamp())
        assert record is not None
        if reads is not None:
            self.identity.put_grant(reads, "user", record.id, "read")
        return Principal(name=name, role="member", auth="key", user_id=record.id)

    def ask(self, principal: Principal, question: str, *, conversation_id: str | None = None) -> NewTurn:
        turn = NewTurn(
            conversation_id=conversation_id or new_id(),
            turn_id=new_id(),
            question=question,
            answer=f"About {question} [1]",
            model="smollm2",
            sources=[SOURCE],
            prompt_chunks=["c1"],
        )
        self.service.record_turn(principal, turn, collection="team")
        return turn


def test_the_migrations_make_exactly_the_conversation_tables_of_the_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    # Table comments live in schema.py only (no migration writes them, on any table).
    assert [d for d in differences if d[0] != "add_table_comment"] == []


def test_a_conversation_is_its_owners_alone(engine: Engine) -> None:
    world = World(engine)
    alice, bob = world.user("alice", reads="team"), world.user("bob", reads="team")
    first = world.ask(alice, "How do refunds work?")
    world.ask(alice, "And for annual plans?", conversation_id=first.conversation_id)
    mine = world.service.get(alice, first.conversation_id)
    assert [t.question for t in mine.turns] == ["How do refunds work?", "And for annual plans?"]
    assert [t.position for t in mine.turns] == [0, 1] and mine.turns[0].sources == [SOURCE]
    assert mine.record.title == "How do refunds work?" and mine.record.turn_count == 2
    for attempt in (
        lambda: world.service.get(bob, first.conversation_id),
        lambda: world.service.rename(bob, first.conversation_id, "mine now"),
        lambda: world.service.delete(bob, first.conversation_id),
        lambda: world.service.share(bob, first.conversation_id),
        lambda: world.service.rate(bob, first.conversation_id, first.turn_id, "down", None),
        lambda: world.service.continued(bob, first.conversation_id, None),
        lambda: world.service.get(alice, "no-such-id"),
    ):
        with pytest.raises(ConversationNotFound) as refused:
            attempt()
        assert refused.value.message == "no such conversation (it was deleted, or it is not yours)"
    assert world.service.page(bob).conversations == []
    with pytest.raises(ConversationMismatch):
        world.service.continued(alice, first.conversation_id, "secret")


def test_pages_are_newest_first_and_complete(engine: Engine) -> None:
    world = World(engine)
    alice = world.user("alice")
    asked = [world.ask(alice, f"Question {n}?").conversation_id for n in range(7)]
    world.ask(alice, "Back to the first", conversation_id=asked[0])  # continuing moves it to the top
    seen: list[str] = []
    cursor = None
    while True:
        page = world.service.page(alice, limit=3, before=cursor)
        seen += [c.id for c in page.conversations]
        if page.next is None:
            break
        cursor = page.next
    assert seen == [asked[0], *reversed(asked[1:])]
    with pytest.raises(InvalidInput):
        world.service.page(alice, before="not a cursor")


def test_titles_rename_and_delete(engine: Engine) -> None:
    world = World(engine)
    alice = world.user("alice")
    assert title_from("  How   do I\nrotate a key? ") == "How do I rotate a key?"
    long = title_from("word " * 40)
    assert len(long) <= 80 and long.endswith("word…")
    turn = world.ask(alice, "Short?")
    assert (
        world.service.rename(alice, turn.conversation_id, "  Keys \n and refunds ").title
        == "Keys and refunds"
    )
    with pytest.raises(InvalidInput):
        world.service.rename(alice, turn.conversation_id, "   ")
    world.service.delete(alice, turn.conversation_id)
    with pytest.raises(ConversationNotFound):
        world.service.get(alice, turn.conversation_id)


def test_a_share_link_shows_the_conversation_to_readers_of_its_collection_only(engine: Engine) -> None:
    world = World(engine)
    alice, bob, carol = (
        world.user("alice", reads="team"),
        world.user("bob", reads="team"),
        world.user("carol"),
    )
    turn = world.ask(alice, "How do refunds work?")
    token = world.service.share(alice, turn.conversation_id)
    assert len(token) == 32 and world.service.share(alice, turn.conversation_id) == token
    assert world.service.shared(bob, token).record.id == turn.conversation_id
    for who, link in ((carol, token), (bob, "x" * 32), (bob, "")):
        with pytest.raises(ConversationNotFound):
            world.service.shared(who, link)
    world.service.unshare(alice, turn.conversation_id)
    with pytest.raises(ConversationNotFound):
        world.service.shared(bob, token)
    assert world.service.share(alice, turn.conversation_id) != token  # a new link, not the revoked one


def test_feedback_is_stored_with_the_turn_and_exported_as_an_eval_line(engine: Engine) -> None:
    world = World(engine)
    alice = world.user("alice")
    good, bad = world.ask(alice, "Refunds?"), world.ask(alice, "Invoices?")
    with pytest.raises(InvalidInput):
        world.service.rate(alice, good.conversation_id, good.turn_id, "meh", None)
    with pytest.raises(InvalidInput):
        world.service.rate(alice, good.conversation_id, good.turn_id, "up", "x" * 2001)
    with pytest.raises(TurnNotFound):
        world.service.rate(alice, good.conversation_id, bad.turn_id, "up", None)  # a turn of another one
    rated = world.service.rate(alice, good.conversation_id, good.turn_id, "up", None)
    assert (rated.rating, rated.comment) == ("up", None)
    world.service.rate(alice, bad.conversation_id, bad.turn_id, "down", "  Wrong document  ")
    exported = [export_line(record) for record in world.service.feedback()]
    assert [(line["question"], line["rating"], line["comment"]) for line in exported] == [
        ("Refunds?", "up", None),
        ("Invoices?", "down", "Wrong document"),
    ]
    assert exported[0]["expected"] == ["billing.md"] and exported[1]["expected"] == []
    assert exported[1]["passages"] == [SOURCE] and exported[1]["collection"] == "team"
    assert exported[1]["model"] == "smollm2" and exported[1]["answer"] == "About Invoices? [1]"
    assert [r.turn.question for r in world.service.feedback(ratings=("down",))] == ["Invoices?"]
    tomorrow = timestamp(datetime.now(UTC) + timedelta(days=1))
    assert world.service.feedback(since=tomorrow) == []


def test_retention_deletes_conversations_not_continued_for_that_long(engine: Engine) -> None:
    world = World(engine, retention_days=30)
    alice = world.user("alice")
    old, recent = world.ask(alice, "Old?"), world.ask(alice, "Recent?")
    long_ago = timestamp(datetime.now(UTC) - timedelta(days=31))
    with engine.begin() as conn:
        conn.execute(
            update(conversations).where(conversations.c.id == old.conversation_id).values(updated_at=long_ago)
        )
    assert [c.id for c in world.service.page(alice).conversations] == [recent.conversation_id]
    assert world.service.remove_expired() == 0  # nothing left to delete


def test_retention_off_keeps_everything(engine: Engine) -> None:
    world = World(engine)
    alice = world.user("alice")
    old = world.ask(alice, "Old?")
    with engine.begin() as conn:
        conn.execute(update(conversations).values(updated_at="2001-01-01T00:00:00.000000+00:00"))
    assert world.service.remove_expired() == 0
    assert world.service.get(alice, old.conversation_id).record.turn_count == 1


def test_deleting_a_user_deletes_their_conversations_and_turns(engine: Engine) -> None:
    world = World(engine)
    alice, bob = world.user("alice"), world.user("bob")
    gone = world.ask(alice, "Mine?")
    world.ask(alice, "Still mine?", conversation_id=gone.conversation_id)
    kept = world.ask(bob, "Bob's?")
    assert alice.user_id is not None
    world.access.identity.delete_user(alice.user_id)
    store = world.service.store
    assert store.conversation(gone.conversation_id) is None and store.turns(gone.conversation_id) == []
    assert store.conversation(kept.conversation_id) is not None
