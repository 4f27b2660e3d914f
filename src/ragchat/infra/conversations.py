"""Saved conversations and their turns in the database (SQLAlchemy Core, SQLite or PostgreSQL).

Plain rows in and out; who may see or change a conversation is decided in `ragchat.core.conversations`.
A conversation belongs to one user (`user_id`; None is the implicit local user of RAGCHAT_AUTH=off) and
goes with them (ON DELETE CASCADE); its turns go with it. Every method blocks: call them from a worker
thread.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, delete, func, insert, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from ragchat.infra.db import write_transaction
from ragchat.infra.db.schema import conversation_turns, conversations


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    id: str
    user_id: int | None
    collection: str
    title: str
    created_at: str
    updated_at: str
    share_token: str | None
    turn_count: int


@dataclass(frozen=True, slots=True)
class TurnRecord:
    id: str
    conversation_id: str
    position: int
    question: str
    answer: str
    model: str
    sources: list[dict[str, Any]]
    """The source objects exactly as the chat endpoint returned them."""
    prompt_chunks: list[str]
    """The chunk ids this turn added to the prompt, in prompt order."""
    created_at: str
    rating: str | None = None
    comment: str | None = None
    rated_at: str | None = None


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """A rated turn with the conversation it belongs to (for `ragchat feedback export`)."""

    turn: TurnRecord
    collection: str


_TURN_COUNT = (
    select(func.count())
    .where(conversation_turns.c.conversation_id == conversations.c.id)
    .scalar_subquery()
    .label("turn_count")
)
_CONVERSATION_QUERY = select(
    conversations.c.id,
    conversations.c.user_id,
    conversations.c.collection,
    conversations.c.title,
    conversations.c.created_at,
    conversations.c.updated_at,
    conversations.c.share_token,
    _TURN_COUNT,
)


def _conversation(row: Any) -> ConversationRecord:
    return ConversationRecord(
        id=str(row.id),
        user_id=None if row.user_id is None else int(row.user_id),
        collection=str(row.collection),
        title=str(row.title),
        created_at=str(row.created_at),
        updated_at=str(row.updated_at),
        share_token=row.share_token,
        turn_count=int(row.turn_count),
    )


def _turn(row: Any) -> TurnRecord:
    return TurnRecord(
        id=str(row.id),
        conversation_id=str(row.conversation_id),
        position=int(row.position),
        question=str(row.question),
        answer=str(row.answer),
        model=str(row.model),
        sources=json.loads(row.sources),
        prompt_chunks=json.loads(row.prompt_chunks),
        created_at=str(row.created_at),
        rating=row.rating,
        comment=row.comment,
        rated_at=row.rated_at,
    )


def _owned_by(user_id: int | None) -> ColumnElement[bool]:
    return conversations.c.user_id.is_(None) if user_id is None else conversations.c.user_id == user_id


class ConversationStore:
    """The conversation tables of one database (the engine is shared with whoever opened it)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add_turn(self, turn: TurnRecord, *, user_id: int | None, collection: str, title: str) -> int:
        """Append `turn` to its conversation, creating the conversation (with `title`) if it does not exist
        yet; `turn.position` is ignored: the turn goes last. Returns the position it got."""
        with write_transaction(self.engine) as conn:
            exists = conn.execute(  # locked: two answers finishing at once take positions in turn
                select(conversations.c.id).where(conversations.c.id == turn.conversation_id).with_for_update()
            ).first()
            if exists is None:
                conn.execute(
                    insert(conversations).values(
                        id=turn.conversation_id,
                        user_id=user_id,
                        collection=collection,
                        title=title,
                        created_at=turn.created_at,
                        updated_at=turn.created_at,
                    )
                )
            else:
                conn.execute(
                    update(conversations)
                    .where(conversations.c.id == turn.conversation_id)
                    .values(updated_at=turn.created_at)
                )
            position = int(
                conn.execute(
                    select(func.count()).where(conversation_turns.c.conversation_id == turn.conversation_id)
                ).scalar_one()
            )
            conn.execute(
                insert(conversation_turns).values(
                    id=turn.id,
                    conversation_id=turn.conversation_id,
                    position=position,
                    question=turn.question,
                    answer=turn.answer,
                    model=turn.model,
                    sources=json.dumps(turn.sources, ensure_ascii=False),
                    prompt_chunks=json.dumps(turn.prompt_chunks),
                    created_at=turn.created_at,
                )
            )
        return position

    def conversation(self, conversation_id: str) -> ConversationRecord | None:
        with self.engine.begin() as conn:
            row = conn.execute(_CONVERSATION_QUERY.where(conversations.c.id == conversation_id)).first()
        return None if row is None else _conversation(row)

    def by_share_token(self, token: str) -> ConversationRecord | None:
        with self.engine.begin() as conn:
            row = conn.execute(_CONVERSATION_QUERY.where(conversations.c.share_token == token)).first()
        return None if row is None else _conversation(row)

    def turns(self, conversation_id: str) -> list[TurnRecord]:
        """The conversation's turns in the order they were asked."""
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(conversation_turns)
                .where(conversation_turns.c.conversation_id == conversation_id)
                .order_by(conversation_turns.c.position)
            ).all()
        return [_turn(row) for row in rows]

    def list_for_user(
        self, user_id: int | None, *, limit: int, before: tuple[str, str] | None = None
    ) -> list[ConversationRecord]:
        """The user's conversations, most recently updated first (ties: greater id first); with `before`
        = (updated_at, id) of the last one seen, those that come after it in that order."""
        query = _CONVERSATION_QUERY.where(_owned_by(user_id))
        if before is not None:
            updated_at, last_id = before
            query = query.where(
                or_(
                    conversations.c.updated_at < updated_at,
                    and_(conversations.c.updated_at == updated_at, conversations.c.id < last_id),
                )
            )
        query = query.order_by(conversations.c.updated_at.desc(), conversations.c.id.desc()).limit(limit)
        with self.engine.begin() as conn:
            return [_conversation(row) for row in conn.execute(query).all()]

    def rename(self, conversation_id: str, title: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(conversations).where(conversations.c.id == conversation_id).values(title=title)
            )

    def delete(self, conversation_id: str) -> None:
        """Delete the conversation and its turns."""
        with self.engine.begin() as conn:
            conn.execute(
                delete(conversation_turns).where(conversation_turns.c.conversation_id == conversation_id)
            )
            conn.execute(delete(conversations).where(conversations.c.id == conversation_id))

    def set_share_token(self, conversation_id: str, token: str | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(conversations).where(conversations.c.id == conversation_id).values(share_token=token)
            )

    def set_feedback(
        self, conversation_id: str, turn_id: str, *, rating: str, comment: str | None, at: str
    ) -> TurnRecord | None:
        """Rate one turn of the conversation; None if the conversation has no such turn."""
        where = and_(
            conversation_turns.c.id == turn_id, conversation_turns.c.conversation_id == conversation_id
        )
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(conversation_turns).where(where).values(rating=rating, comment=comment, rated_at=at)
            ).rowcount
            row = conn.execute(select(conversation_turns).where(where)).first() if changed else None
        return None if row is None else _turn(row)

    def feedback(
        self, *, since: str | None = None, ratings: Sequence[str] = ("up", "down")
    ) -> list[FeedbackRecord]:
        """Every rated turn (rated at or after `since`), oldest rating first, with its collection."""
        query = (
            select(conversation_turns, conversations.c.collection)
            .join(conversations, conversations.c.id == conversation_turns.c.conversation_id)
            .where(conversation_turns.c.rating.in_(list(ratings)))
            .order_by(conversation_turns.c.rated_at, conversation_turns.c.id)
        )
        if since is not None:
            query = query.where(conversation_turns.c.rated_at >= since)
        with self.engine.begin() as conn:
            rows = conn.execute(query).all()
        return [FeedbackRecord(_turn(row), str(row.collection)) for row in rows]

    def delete_updated_before(self, cutoff: str) -> int:
        """Delete every conversation last updated before `cutoff`; how many went."""
        stale = select(conversations.c.id).where(conversations.c.updated_at < cutoff)
        with self.engine.begin() as conn:
            conn.execute(delete(conversation_turns).where(conversation_turns.c.conversation_id.in_(stale)))
            return int(
                conn.execute(delete(conversations).where(conversations.c.updated_at < cutoff)).rowcount
            )
