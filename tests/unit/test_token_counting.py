"""`LocalTemplateCounter` with the served model's real tokenizer (SmolLM2-135M-Instruct's own files): counts
run in a worker thread, never on the event loop, and only short texts are remembered."""

from __future__ import annotations

import threading
from typing import Any

import httpx

from ragchat.infra.llm import ChatMessage
from ragchat.infra.llm.token_counting import CACHED_TEXT_CHARS, LocalTemplateCounter, VllmTokenizeCounter
from tests.unit.test_prompt import served_tokenizer


class RecordingTokenizer:
    """The real tokenizer, noting which thread encoded which text."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self.calls: list[tuple[str, int]] = []

    def encode(self, text: str, add_special_tokens: bool) -> Any:
        self.calls.append((text, threading.get_ident()))
        return self._tokenizer.encode(text, add_special_tokens=add_special_tokens)


async def test_texts_are_tokenized_off_the_event_loop_and_only_short_ones_are_cached() -> None:
    real = served_tokenizer()
    tokenizer = RecordingTokenizer(real)
    async with (
        httpx.AsyncClient() as http
    ):  # the fallback is never asked: every prompt starts with a system turn
        fallback = VllmTokenizeCounter(http, root_url="http://127.0.0.1:9", model="unused")
        counter = LocalTemplateCounter(
            tokenizer, base=3, per_role={"system": 0, "user": 5, "assistant": 5}, fallback=fallback
        )
        short = "How do I rotate an API key?"
        long = "word " * CACHED_TEXT_CHARS
        messages = [ChatMessage("system", "Answer from passages."), ChatMessage("user", short)]
        expected = 3 + 5 + sum(len(real.encode(m.content, add_special_tokens=False).ids) for m in messages)

        assert await counter.count(messages) == expected
        assert await counter.count(long) == len(real.encode(long, add_special_tokens=False).ids)
        assert await counter.count(messages) == expected  # from the cache
        assert await counter.count(long) > CACHED_TEXT_CHARS // 2  # counted again

    loop_thread = threading.get_ident()
    assert all(thread != loop_thread for _, thread in tokenizer.calls)
    assert [text for text, _ in tokenizer.calls].count(short) == 1
    assert [text for text, _ in tokenizer.calls].count(long) == 2
