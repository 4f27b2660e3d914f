"""Micro-batching: requests that arrive together are encoded by one model call.

A worker task per model waits for the first request, lets `max_wait_s` pass so that concurrent requests
can join, then encodes up to `max_batch_texts` texts in one call on the model's own thread. While that call
runs, new requests queue up and form the next batch, so batches grow with load and cost ~nothing when idle.

Every call of one model runs on the same dedicated thread, one at a time: the model's thread pools (torch's
OpenMP team, ONNX Runtime's) stay bound to one caller instead of one per worker thread. Used by the
embedding server for its requests and by `HybridRetriever` for the queries of concurrent users.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ragchat.infra.embeddings import InputType, Vectors


@dataclass(frozen=True)
class Encoded:
    """One request's result: its vectors (in input order) and the token count of each input (empty when the
    encoder does not count tokens)."""

    vectors: Vectors
    token_counts: list[int] = field(default_factory=list)


EncodeFn = Callable[[list[str], InputType], Encoded]
"""Blocking encoder run on a worker thread: texts of one batch → their vectors and token counts."""
BatchObserver = Callable[[int, float], None]
"""Called after each model call with (texts in the batch, seconds it took)."""


@dataclass
class _Job:
    texts: list[str]
    input_type: InputType
    future: asyncio.Future[Encoded] = field(repr=False)


class MicroBatcher:
    """Collects concurrent `submit` calls for one model and encodes them together."""

    def __init__(
        self,
        encode: EncodeFn,
        *,
        max_batch_texts: int = 256,
        max_wait_s: float = 0.002,
        on_batch: BatchObserver | None = None,
    ) -> None:
        if max_batch_texts < 1:
            raise ValueError("max_batch_texts must be at least 1")
        if max_wait_s < 0:
            raise ValueError("max_wait_s must not be negative")
        self._encode = encode
        self._max_batch_texts = max_batch_texts
        self._max_wait_s = max_wait_s
        self._on_batch = on_batch
        self._pending: deque[_Job] = deque()
        self._has_jobs = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed-model")

    def start(self) -> None:
        """Start the worker task on the running event loop."""
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="embed-batcher")

    async def aclose(self) -> None:
        """Stop the worker; requests still waiting fail with `RuntimeError`."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        while self._pending:
            job = self._pending.popleft()
            if not job.future.done():
                job.future.set_exception(RuntimeError("the embedding model is shutting down"))
        self._thread.shutdown(wait=False, cancel_futures=True)

    async def submit(self, texts: Sequence[str], input_type: InputType) -> Encoded:
        """Encode `texts` together with whatever other requests arrive at the same time."""
        if self._worker is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        future: asyncio.Future[Encoded] = asyncio.get_running_loop().create_future()
        self._pending.append(_Job(list(texts), input_type, future))
        self._has_jobs.set()
        return await future

    async def _run(self) -> None:
        while True:
            if not self._pending:
                self._has_jobs.clear()
                await self._has_jobs.wait()
                if self._max_wait_s > 0:
                    await asyncio.sleep(self._max_wait_s)  # let requests sent at the same moment join
            batch = self._take_batch()
            if batch:
                await self._encode_batch(batch)

    def _take_batch(self) -> list[_Job]:
        """The oldest jobs of one input type, up to max_batch_texts (a larger single job goes alone)."""
        batch: list[_Job] = []
        count = 0
        input_type = self._pending[0].input_type
        kept: deque[_Job] = deque()
        while self._pending:
            job = self._pending.popleft()
            if job.future.done():  # the client went away
                continue
            if job.input_type != input_type:
                kept.append(job)
                continue
            if batch and count + len(job.texts) > self._max_batch_texts:
                kept.append(job)
                break
            batch.append(job)
            count += len(job.texts)
        kept.extend(self._pending)
        self._pending = kept
        return batch

    async def _encode_batch(self, batch: list[_Job]) -> None:
        texts = [text for job in batch for text in job.texts]
        started = time.perf_counter()
        try:
            loop = asyncio.get_running_loop()
            encoded = await loop.run_in_executor(self._thread, self._encode, texts, batch[0].input_type)
        except Exception as exc:
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        if self._on_batch is not None:
            self._on_batch(len(texts), time.perf_counter() - started)
        offset = 0
        for job in batch:
            size = len(job.texts)
            if not job.future.done():
                job.future.set_result(
                    Encoded(
                        vectors=np.ascontiguousarray(encoded.vectors[offset : offset + size]),
                        token_counts=encoded.token_counts[offset : offset + size],
                    )
                )
            offset += size
