"""Saved conversations: list, open, rename, delete, share read-only, and rate answers.

Every route is level `user` and acts on the caller's own conversations only: another user's conversation
answers 404 exactly like a missing one. A share link (`GET /api/shared/{token}`) shows a conversation to a
caller who may read its collection, and is a 404 to anyone else. Conversations are created and continued
by `POST /v1/chat/completions` (`store: true`, `conversation_id`; see routes/chat.py). The contract the
web UI builds on: docs/architecture.md, "HTTP API".
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from ragchat.api.auth import UserPrincipal, blocking
from ragchat.api.deps import ServicesDep
from ragchat.core.conversations import MAX_COMMENT_CHARS, MAX_PAGE, MAX_TITLE_CHARS, Conversation
from ragchat.infra.conversations import ConversationRecord, TurnRecord

router = APIRouter(tags=["conversations"])


class Summary(BaseModel):
    id: str
    title: str
    collection: str
    created_at: str
    updated_at: str
    turn_count: int

    @classmethod
    def of(cls, record: ConversationRecord) -> Summary:
        return cls(
            id=record.id,
            title=record.title,
            collection=record.collection,
            created_at=record.created_at,
            updated_at=record.updated_at,
            turn_count=record.turn_count,
        )


class Feedback(BaseModel):
    rating: Literal["up", "down"]
    comment: str | None = None


class Turn(BaseModel):
    id: str
    position: int
    question: str
    answer: str
    model: str
    created_at: str
    sources: list[dict[str, Any]]
    """The source objects exactly as the chat endpoint returned them with the answer."""
    feedback: Feedback | None

    @classmethod
    def of(cls, turn: TurnRecord) -> Turn:
        feedback = (
            Feedback(rating=turn.rating, comment=turn.comment)  # type: ignore[arg-type]
            if turn.rating in ("up", "down")
            else None
        )
        return cls(
            id=turn.id,
            position=turn.position,
            question=turn.question,
            answer=turn.answer,
            model=turn.model,
            created_at=turn.created_at,
            sources=turn.sources,
            feedback=feedback,
        )


class ConversationOut(Summary):
    shared: bool
    turns: list[Turn]

    @classmethod
    def full(cls, conversation: Conversation) -> ConversationOut:
        record = conversation.record
        return cls(
            **Summary.of(record).model_dump(),
            shared=record.share_token is not None,
            turns=[Turn.of(turn) for turn in conversation.turns],
        )


class ConversationList(BaseModel):
    conversations: list[Summary]
    next: str | None


class Rename(BaseModel):
    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)


class FeedbackIn(BaseModel):
    rating: Literal["up", "down"]
    comment: str | None = Field(None, max_length=MAX_COMMENT_CHARS)


class ShareLink(BaseModel):
    token: str
    url: str


@router.get("/api/conversations")
async def list_conversations(
    services: ServicesDep,
    principal: UserPrincipal,
    limit: int = Query(50, ge=1, le=MAX_PAGE),
    before: str | None = Query(None, max_length=200, description="`next` of the previous page."),
) -> ConversationList:
    """The caller's conversations, most recently continued first; `next` pages on (null: the last page)."""
    page = await blocking(lambda: services.conversations.page(principal, limit=limit, before=before))
    return ConversationList(conversations=[Summary.of(r) for r in page.conversations], next=page.next)


@router.get("/api/conversations/{conversation_id}")
async def get_conversation(
    conversation_id: str, services: ServicesDep, principal: UserPrincipal
) -> ConversationOut:
    """One of the caller's conversations with its turns, their sources and feedback."""
    conversation = await blocking(services.conversations.get, principal, conversation_id)
    return ConversationOut.full(conversation)


@router.patch("/api/conversations/{conversation_id}")
async def rename_conversation(
    conversation_id: str, body: Rename, services: ServicesDep, principal: UserPrincipal
) -> Summary:
    """Rename one of the caller's conversations."""
    record = await blocking(services.conversations.rename, principal, conversation_id, body.title)
    return Summary.of(record)


@router.delete("/api/conversations/{conversation_id}", status_code=204)
async def delete_conversation(
    conversation_id: str, services: ServicesDep, principal: UserPrincipal
) -> Response:
    """Delete one of the caller's conversations (its share link stops working)."""
    await blocking(services.conversations.delete, principal, conversation_id)
    return Response(status_code=204)


@router.post("/api/conversations/{conversation_id}/share")
async def share_conversation(
    conversation_id: str, services: ServicesDep, principal: UserPrincipal
) -> ShareLink:
    """A read-only link to the conversation for readers of its collection (the same link every time)."""
    token = await blocking(services.conversations.share, principal, conversation_id)
    return ShareLink(token=token, url=f"/shared/{token}")


@router.delete("/api/conversations/{conversation_id}/share", status_code=204)
async def unshare_conversation(
    conversation_id: str, services: ServicesDep, principal: UserPrincipal
) -> Response:
    """Revoke the conversation's share link."""
    await blocking(services.conversations.unshare, principal, conversation_id)
    return Response(status_code=204)


@router.get("/api/shared/{token}")
async def shared_conversation(token: str, services: ServicesDep, principal: UserPrincipal) -> ConversationOut:
    """The conversation behind a share link, read-only, if the caller may read its collection."""
    conversation = await blocking(services.conversations.shared, principal, token)
    return ConversationOut.full(conversation).model_copy(update={"shared": True})


@router.put("/api/conversations/{conversation_id}/turns/{turn_id}/feedback")
async def rate_turn(
    conversation_id: str, turn_id: str, body: FeedbackIn, services: ServicesDep, principal: UserPrincipal
) -> Turn:
    """Thumbs up or down, with an optional comment, on one answer of the caller's conversation."""
    turn = await blocking(
        services.conversations.rate, principal, conversation_id, turn_id, body.rating, body.comment
    )
    return Turn.of(turn)
