"""What a chat request may hold (`ChatLimits`), which model names it may use, and the one table that turns
each refusal or failure into an HTTP status and code (`ragchat.api.errors.ERRORS`)."""

from __future__ import annotations

import pytest

from ragchat.api.chat_protocol import ChatCompletionRequest
from ragchat.api.errors import api_error
from ragchat.core.chat import ChatLimits
from ragchat.core.errors import (
    CollectionNotFound,
    HistoryTooLong,
    InvalidConversation,
    QuestionTooLong,
    RequestRefused,
    UnknownModel,
)
from ragchat.infra.embeddings import EmbeddingError, ModelNotAvailable
from ragchat.infra.llm import (
    ChatMessage,
    LLMError,
    LLMModelNotFound,
    LLMRequestRejected,
    LLMStreamBroken,
    LLMTimeout,
    LLMUnavailable,
)

LIMITS = ChatLimits(max_question_chars=100, max_history_messages=4, max_history_chars=50)


def turns(*contents: str) -> list[ChatMessage]:
    """Alternating user / assistant messages, the last one the question."""
    roles = ["user", "assistant"] * len(contents)
    return [ChatMessage(role, text) for role, text in zip(roles, contents, strict=False)]  # type: ignore[arg-type]


def test_conversations_within_the_limits_pass() -> None:
    LIMITS.check(turns("q" * 100))
    LIMITS.check(turns("a" * 10, "b" * 10, "c" * 10, "d" * 20, "q"))


@pytest.mark.parametrize(
    ("conversation", "error", "message"),
    [
        ([], InvalidConversation, "non-empty user message"),
        (turns("q", "an answer"), InvalidConversation, "non-empty user message"),
        (turns("  "), InvalidConversation, "non-empty user message"),
        (turns("q" * 101), QuestionTooLong, "101 characters long, more than the 100"),
        (turns("a", "b", "c", "d", "e", "f", "q"), HistoryTooLong, "6 messages before the question"),
        (turns("a" * 30, "b" * 21, "q"), HistoryTooLong, "hold 51 characters, more than the 50"),
    ],
)
def test_conversations_over_a_limit_are_refused_with_what_to_change(
    conversation: list[ChatMessage], error: type[RequestRefused], message: str
) -> None:
    with pytest.raises(error, match=message):
        LIMITS.check(conversation)


def test_a_ten_megabyte_question_is_refused_by_its_length_alone() -> None:
    with pytest.raises(QuestionTooLong, match="RAGCHAT_MAX_QUESTION_CHARS"):
        LIMITS.check(turns("x" * 10_000_000))


@pytest.mark.parametrize(
    ("body", "collection"),
    [
        ({"model": "ragchat"}, None),
        ({"model": "ragchat/garden"}, "garden"),
        ({"model": "anything", "collection": "garden"}, "garden"),  # the explicit field wins
        ({"model": "gpt-4o-mini"}, "handbook"),  # an alias
    ],
)
def test_model_names_that_pick_a_collection(body: dict[str, str], collection: str | None) -> None:
    request = ChatCompletionRequest.model_validate({**body, "messages": [{"role": "user", "content": "q"}]})
    assert request.requested_collection({"gpt-4o-mini": "handbook"}) == collection


@pytest.mark.parametrize("model", ["gpt-4o", "ragchat/", "Ragchat", "smollm2"])
def test_any_other_model_name_is_unknown(model: str) -> None:
    request = ChatCompletionRequest.model_validate(
        {"model": model, "messages": [{"role": "user", "content": "q"}]}
    )
    with pytest.raises(UnknownModel, match="GET /v1/models lists them"):
        request.requested_collection({})


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InvalidConversation("m"), 400, "invalid_request"),
        (QuestionTooLong("m"), 400, "question_too_long"),
        (HistoryTooLong("m"), 400, "history_too_long"),
        (CollectionNotFound("m"), 404, "collection_not_found"),
        (UnknownModel("m"), 404, "model_not_found"),
        (EmbeddingError("m"), 503, "embedding_unavailable"),
        (ModelNotAvailable("m"), 503, "embedding_unavailable"),
        (LLMUnavailable("m"), 503, "llm_unavailable"),
        (LLMTimeout("m"), 504, "llm_timeout"),
        (LLMModelNotFound("m"), 503, "llm_model_not_found"),
        (LLMStreamBroken("m"), 502, "llm_stream_broken"),
        (LLMRequestRejected("m"), 400, "llm_request_rejected"),
        (LLMError("m"), 500, "llm_error"),
    ],
)
def test_one_table_gives_each_error_its_status_and_code(
    error: RequestRefused | LLMError | EmbeddingError, status: int, code: str
) -> None:
    mapped = api_error(error)
    assert (mapped.status_code, mapped.code, mapped.message) == (status, code, "m")
    if isinstance(error, LLMError):
        assert mapped.code == error.code
