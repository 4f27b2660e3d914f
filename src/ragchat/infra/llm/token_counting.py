"""Counting prompt tokens the way the served model counts them.

Three counters, chosen by `OpenAICompatibleChatModel`:

- `VllmTokenizeCounter`: vLLM's `/tokenize` (at the server root, not under /v1). Messages are sent as
  `messages`, so vLLM applies the model's chat template itself: the count is the prompt_tokens the request
  will have. Exact, one round trip per count.
- `LocalTemplateCounter`: the served model's own `tokenizer.json`, read from the model folder that vLLM
  reports in `/v1/models` (`root`) when that folder is on this machine (the CPU default). Its chat-template
  cost per message is measured once against `/tokenize` and checked on a probe conversation; if any count
  disagrees, it is not used. Exact, and no round trip on the hot path. The tokenizer runs in a worker
  thread (never on the event loop), and only short texts are remembered (`CACHED_TEXT_CHARS`).
- `ByteBoundCounter`: for backends without a tokenizer endpoint (OpenAI). Every BPE or byte-fallback token
  covers at least one UTF-8 byte, so `bytes + per-message overhead` is an upper bound of the true count:
  budgets built on it never overflow. It over-counts English text (a token is several bytes), which matters
  little with the large contexts such backends serve.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import anyio
import httpx

from ragchat.infra.llm import ChatMessage
from ragchat.infra.llm.http_errors import post_json

CACHED_TEXT_CHARS = 2048
"""Longest text whose count is remembered; longer ones (a pasted document) are counted every time."""
_CACHE_ENTRIES = 4096  # with CACHED_TEXT_CHARS: at most 8 M characters held


class TokenCounter(Protocol):
    """Counts a text, or messages rendered with the chat template (generation prompt included)."""

    exact: bool

    async def count(self, prompt: str | Sequence[ChatMessage]) -> int: ...


class ByteBoundCounter:
    """An upper bound for any byte-level tokenizer: one token per UTF-8 byte plus template tokens."""

    exact = False
    per_message = 8
    per_prompt = 8

    async def count(self, prompt: str | Sequence[ChatMessage]) -> int:
        if isinstance(prompt, str):
            return len(prompt.encode("utf-8"))
        return self.per_prompt + sum(len(m.content.encode("utf-8")) + self.per_message for m in prompt)


class VllmTokenizeCounter:
    """Exact counts from vLLM's `/tokenize` endpoint."""

    exact = True

    def __init__(self, http: httpx.AsyncClient, *, root_url: str, model: str) -> None:
        self._http = http
        self._url = root_url.rstrip("/") + "/tokenize"
        self._model = model

    async def count(self, prompt: str | Sequence[ChatMessage]) -> int:
        body: dict[str, Any] = {"model": self._model}
        if isinstance(prompt, str):
            body.update(prompt=prompt, add_special_tokens=False)
        else:
            body.update(
                messages=[{"role": m.role, "content": m.content} for m in prompt], add_generation_prompt=True
            )
        data = await post_json(self._http, self._url, body)
        return int(data["count"])


class LocalTemplateCounter:
    """The served model's tokenizer run here, plus the chat template's measured cost per message.

    Assumes prompts start with a system message (ragchat's always do); others are counted remotely.
    """

    exact = True

    def __init__(
        self, tokenizer: Any, *, base: int, per_role: dict[str, int], fallback: VllmTokenizeCounter
    ) -> None:
        self._tokenizer = tokenizer
        self._base = base
        self._per_role = per_role
        self._fallback = fallback
        self._cache: dict[str, int] = {}

    async def count(self, prompt: str | Sequence[ChatMessage]) -> int:
        if isinstance(prompt, str):
            [count] = await self._count_texts([prompt])
            return count
        if not prompt or prompt[0].role != "system":
            return await self._fallback.count(prompt)
        counts = await self._count_texts([m.content for m in prompt])
        return self._base + sum(self._per_role[m.role] + n for m, n in zip(prompt, counts, strict=True))

    async def _count_texts(self, texts: list[str]) -> list[int]:
        """Tokens of each text: remembered ones from the cache, the others counted in a worker thread."""
        known = {text: self._cache[text] for text in texts if text in self._cache}
        missing = [text for text in dict.fromkeys(texts) if text not in known]
        if missing:
            counted = await anyio.to_thread.run_sync(self._encoded_lengths, missing)
            for text, count in zip(missing, counted, strict=True):
                known[text] = count
                if len(text) <= CACHED_TEXT_CHARS:
                    if len(self._cache) >= _CACHE_ENTRIES:
                        self._cache.clear()
                    self._cache[text] = count
        return [known[text] for text in texts]

    def _encoded_lengths(self, texts: list[str]) -> list[int]:
        return [len(self._tokenizer.encode(text, add_special_tokens=False).ids) for text in texts]


_PROBE_A = ("You answer from passages.", "What is a branch?", "A movable pointer [1].", "And tags?")
_PROBE_B = (
    "Passages:\n\n[1] guide.md — Install > Linux\nRun `pip install ragchat`; naïve café ✓ 100%.",
    "How do I install it on Ubuntu 24.04?\nStep by step, please.",
    "Use pip [1]. Then run `ragchat serve`.",
    "Et sur Windows ? 日本語も。",
)


def _conversation(texts: tuple[str, str, str, str], upto: int) -> list[ChatMessage]:
    roles = ("system", "user", "assistant", "user")
    return [ChatMessage(role, text) for role, text in zip(roles[:upto], texts[:upto], strict=True)]  # type: ignore[arg-type]


async def calibrate_local_counter(
    model_root: str | None, remote: VllmTokenizeCounter
) -> LocalTemplateCounter | None:
    """A local counter for the model folder `model_root`, or None when it is not readable here or its
    counts do not match vLLM's on a probe conversation."""
    if not model_root:
        return None
    tokenizer_file = Path(model_root) / "tokenizer.json"
    if not tokenizer_file.is_file():
        return None
    from tokenizers import Tokenizer

    try:
        tokenizer = await anyio.to_thread.run_sync(Tokenizer.from_file, str(tokenizer_file))
    except Exception:
        return None

    def text_tokens(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    one, two, four, probe = [
        await remote.count(messages)
        for messages in (
            _conversation(_PROBE_A, 1),
            _conversation(_PROBE_A, 2),
            _conversation(_PROBE_A, 4),
            _conversation(_PROBE_B, 4),
        )
    ]
    system, user, assistant, user2 = (text_tokens(t) for t in _PROBE_A)
    per_user = two - one - user
    per_assistant = four - two - assistant - user2 - per_user
    base = one - system  # includes the system message's own template tokens
    counter = LocalTemplateCounter(
        tokenizer,
        base=base,
        per_role={"system": 0, "user": per_user, "assistant": per_assistant},
        fallback=remote,
    )
    if await counter.count(_conversation(_PROBE_B, 4)) != probe:
        return None
    return counter
