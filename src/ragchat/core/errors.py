"""Why a use case refuses a request: domain errors, mapped onto HTTP by `ragchat.api.errors` alone.

    RequestRefused                 base class; `str(error)` says what to change
     ├── InvalidConversation       there is no question to answer (the last turn is not a user message)
     ├── QuestionTooLong           the question is over RAGCHAT_MAX_QUESTION_CHARS, or does not fit the
     │                             model's context even with no passages, no history and the smallest answer
     ├── HistoryTooLong            the conversation has more messages than RAGCHAT_MAX_HISTORY_MESSAGES or
     │                             more characters than RAGCHAT_MAX_HISTORY_CHARS
     ├── CollectionNotFound        the collection named does not exist
     └── UnknownModel              the model name is not `ragchat`, `ragchat/<collection>` or an alias

Failures of the parts a use case relies on are not refusals and have their own hierarchies:
`ragchat.infra.llm.LLMError` and `ragchat.infra.embeddings.EmbeddingError`.
"""

from __future__ import annotations


class RequestRefused(ValueError):
    """A request that cannot be answered as asked; the message says what to change."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidConversation(RequestRefused):
    """The conversation holds no question to answer."""


class QuestionTooLong(RequestRefused):
    """The question is over the character limit, or too long for the model's context."""


class HistoryTooLong(RequestRefused):
    """The conversation is over the message-count or character limit."""


class CollectionNotFound(RequestRefused):
    """The collection named does not exist."""


class UnknownModel(RequestRefused):
    """The model name asks for nothing this server serves."""
