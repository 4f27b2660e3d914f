"""Saved conversations: who may see and change them, titles, share links, feedback and retention.

Rules (docs/security.md tells them to users):
- A conversation is its owner's alone: anyone else's request for it (by id) is answered exactly as one for
  a conversation that does not exist (`ConversationNotFound`).
- A share link (`share_token`) shows the conversation read-only to a signed-in caller who may read the
  collection it was asked in; to anyone else, and once the link is revoked, it does not exist.
- With RAGCHAT_CONVERSATION_RETENTION_DAYS set, a conversation not continued for that many days is deleted
  (at start, then at most once a minute when conversations are listed or opened).

Every method blocks (database): call them from a worker thread. Errors are `AccessError`s, which the HTTP
layer already maps (`ConversationNotFound` is a `NotFound`: 404; a bad value is an `InvalidInput`: 400).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ragchat.core.access import AccessService, InvalidInput, NotFound, Permission, Principal
from ragchat.infra.conversations import ConversationRecord, ConversationStore, FeedbackRecord, TurnRecord

TITLE_CHARS = 80
MAX_TITLE_CHARS = 200
MAX_COMMENT_CHARS = 2000
MAX_PAGE = 100
_EXPIRY_INTERVAL_S = 60.0

Rating = Literal["up", "down"]


class ConversationNotFound(NotFound):
    code = "conversation_not_found"

    def __init__(self) -> None:
        super().__init__("no such conversation (it was deleted, or it is not yours)")


class TurnNotFound(NotFound):
    code = "turn_not_found"

    def __init__(self) -> None:
        super().__init__("this conversation has no such turn")


class ConversationMismatch(InvalidInput):
    """A request that continues a conversation names another collection than the conversation's."""


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation with its turns, in the order they were asked."""

    record: ConversationRecord
    turns: tuple[TurnRecord, ...]


@dataclass(frozen=True, slots=True)
class ConversationPage:
    conversations: list[ConversationRecord]
    next: str | None
    """The cursor for the next page (`before`), None on the last one."""


@dataclass(frozen=True, slots=True)
class NewTurn:
    """An answered question to save: a new conversation's first turn, or the next of an existing one."""

    conversation_id: str
    turn_id: str
    question: str
    answer: str
    model: str
    sources: Sequence[dict[str, Any]]
    prompt_chunks: Sequence[str]


def timestamp(moment: datetime | None = None) -> str:
    """ISO-8601 UTC with microseconds: conversations updated in the same second still sort."""
    return (moment or datetime.now(UTC)).isoformat(timespec="microseconds")


def new_id() -> str:
    """A random url-safe id of 22 characters (128 bits)."""
    return secrets.token_urlsafe(16)


def title_from(question: str) -> str:
    """The question on one line, cut at a word boundary to at most `TITLE_CHARS` characters."""
    text = " ".join(question.split())
    if len(text) <= TITLE_CHARS:
        return text
    cut = text[: TITLE_CHARS - 1]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut + "…"


def _encode_cursor(record: ConversationRecord) -> str:
    return base64.urlsafe_b64encode(f"{record.updated_at}|{record.id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        updated_at, conversation_id = text.split("|")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput("`before` is not a cursor this server gave out (use `next` as it came)") from None
    return updated_at, conversation_id


class ConversationService:
    """Conversations of the callers of one app (or of the CLI)."""

    def __init__(
        self, store: ConversationStore, access: AccessService, *, retention_days: int | None
    ) -> None:
        self.store = store
        self._access = access
        self._retention_days = retention_days
        self._expired_at = float("-inf")
        self._expiry_lock = threading.Lock()

    # --- reading and changing one's own ----------------------------------------------------------------

    def page(self, principal: Principal, *, limit: int = 50, before: str | None = None) -> ConversationPage:
        """The caller's conversations, most recently updated first, `limit` (1-100) at a time."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be 1 to {MAX_PAGE}")
        self.expire_if_due()
        cursor = _decode_cursor(before) if before else None
        records = self.store.list_for_user(principal.user_id, limit=limit + 1, before=cursor)
        more = len(records) > limit
        records = records[:limit]
        return ConversationPage(records, _encode_cursor(records[-1]) if more else None)

    def owned(self, principal: Principal, conversation_id: str) -> ConversationRecord:
        """The caller's conversation of that id, else `ConversationNotFound`."""
        record = self.store.conversation(conversation_id)
        if record is None or record.user_id != principal.user_id:
            raise ConversationNotFound()
        return record

    def get(self, principal: Principal, conversation_id: str) -> Conversation:
        """The caller's conversation with its turns."""
        self.expire_if_due()
        record = self.owned(principal, conversation_id)
        return Conversation(record, tuple(self.store.turns(record.id)))

    def rename(self, principal: Principal, conversation_id: str, title: str) -> ConversationRecord:
        """Give the caller's conversation a new title (1-200 characters, on one line)."""
        title = " ".join(title.split())
        if not 1 <= len(title) <= MAX_TITLE_CHARS:
            raise InvalidInput(f"a title must be 1 to {MAX_TITLE_CHARS} characters long")
        record = self.owned(principal, conversation_id)
        self.store.rename(record.id, title)
        return self.owned(principal, conversation_id)

    def delete(self, principal: Principal, conversation_id: str) -> None:
        """Delete the caller's conversation, its turns and its share link."""
        self.store.delete(self.owned(principal, conversation_id).id)

    def rate(
        self, principal: Principal, conversation_id: str, turn_id: str, rating: str, comment: str | None
    ) -> TurnRecord:
        """Store the caller's thumbs up or down (and an optional comment) on one answer, replacing any."""
        if rating not in ("up", "down"):
            raise InvalidInput('rating must be "up" or "down"')
        comment = comment.strip() if comment else None
        if comment is not None and len(comment) > MAX_COMMENT_CHARS:
            raise InvalidInput(f"a comment may be at most {MAX_COMMENT_CHARS} characters long")
        record = self.owned(principal, conversation_id)
        turn = self.store.set_feedback(
            record.id, turn_id, rating=rating, comment=comment or None, at=timestamp()
        )
        if turn is None:
            raise TurnNotFound()
        return turn

    # --- share links -----------------------------------------------------------------------------------

    def share(self, principal: Principal, conversation_id: str) -> str:
        """The conversation's share token, made on first use (the same one until it is revoked)."""
        record = self.owned(principal, conversation_id)
        if record.share_token is not None:
            return record.share_token
        token = secrets.token_urlsafe(24)  # 32 characters
        self.store.set_share_token(record.id, token)
        return token

    def unshare(self, principal: Principal, conversation_id: str) -> None:
        """Revoke the share link (a no-op when there is none)."""
        self.store.set_share_token(self.owned(principal, conversation_id).id, None)

    def shared(self, principal: Principal, token: str) -> Conversation:
        """The conversation behind a share link, if the caller may read its collection."""
        self.expire_if_due()
        record = self.store.by_share_token(token) if token else None
        if record is None or self._access.permission(principal, record.collection) < Permission.READ:
            raise ConversationNotFound()
        return Conversation(record, tuple(self.store.turns(record.id)))

    # --- chat ------------------------------------------------------------------------------------------

    def continued(self, principal: Principal, conversation_id: str, collection: str | None) -> Conversation:
        """The caller's conversation that a chat request continues; `collection` (None: not named) must be
        the conversation's own."""
        conversation = self.get(principal, conversation_id)
        if collection is not None and collection != conversation.record.collection:
            raise ConversationMismatch(
                f"this conversation was asked in collection {conversation.record.collection!r}; continue it "
                "there (leave out `collection` and use model 'ragchat') or start a new one"
            )
        return conversation

    def record_turn(self, principal: Principal, turn: NewTurn, *, collection: str) -> TurnRecord:
        """Save an answered question: the next turn of the caller's conversation, which is created (titled
        after the question) if it does not exist yet."""
        record = TurnRecord(
            id=turn.turn_id,
            conversation_id=turn.conversation_id,
            position=0,
            question=turn.question,
            answer=turn.answer,
            model=turn.model,
            sources=list(turn.sources),
            prompt_chunks=list(turn.prompt_chunks),
            created_at=timestamp(),
        )
        position = self.store.add_turn(
            record, user_id=principal.user_id, collection=collection, title=title_from(turn.question)
        )
        return dataclasses.replace(record, position=position)

    # --- retention and export --------------------------------------------------------------------------

    def remove_expired(self) -> int:
        """Delete the conversations older than the retention period (none when it is off); how many."""
        if self._retention_days is None:
            return 0
        cutoff = datetime.now(UTC) - timedelta(days=self._retention_days)
        return self.store.delete_updated_before(timestamp(cutoff))

    def expire_if_due(self) -> None:
        """`remove_expired`, at most once a minute per process."""
        if self._retention_days is None:
            return
        with self._expiry_lock:
            if time.monotonic() - self._expired_at < _EXPIRY_INTERVAL_S:
                return
            self._expired_at = time.monotonic()
        self.remove_expired()

    def feedback(
        self, *, since: str | None = None, ratings: Sequence[str] = ("up", "down")
    ) -> list[FeedbackRecord]:
        """Every rated answer (rated on or after `since`, an ISO date or time), oldest rating first."""
        return self.store.feedback(since=since, ratings=ratings)
