"""Parsing in worker processes with a memory limit and a time limit per file.

A document is untrusted input handed to C libraries (lxml, zlib) and pure-Python parsers (pypdf,
python-docx): a small file can ask for gigabytes or minutes. `ParserPool.parse(name, data)` runs
`load_document` in a separate process whose address space is capped with `RLIMIT_AS`
(RAGCHAT_PARSE_MEMORY_MB) and waits at most RAGCHAT_PARSE_TIMEOUT_S for the answer. A worker that runs out
of memory, overstays or dies is killed and replaced on the next file; the file gets a reason (an
`OverLimit` or `BadFile`), never an exception of another kind, so callers report it and go on.

Workers start on first use (the spawn start method: safe with the server's threads; start-up is ~0.5 s,
so workers are kept for the next file), up to RAGCHAT_PARSE_WORKERS at a time; `parse` blocks while all
are busy. `parse` is blocking and thread-safe: call it from worker threads.
"""

from __future__ import annotations

import logging
import multiprocessing
import resource
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from ragchat.config import Settings
from ragchat.domain import ExtractedDocument
from ragchat.infra.loaders import BadFile, LoadError, OverLimit, ParseLimits, UnsupportedFile, load_document

logger = logging.getLogger(__name__)

_MB = 1024 * 1024
_START_TIMEOUT_S = 120.0  # importing the parser libraries; slow only on a very busy machine
_ERRORS: dict[str, type[LoadError]] = {
    "UnsupportedFile": UnsupportedFile,
    "BadFile": BadFile,
    "OverLimit": OverLimit,
}


@dataclass
class _Worker:
    process: BaseProcess
    connection: Connection

    def stop(self) -> None:
        """Kill the process (it may be stuck in C code) and reap it."""
        self.connection.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join()


class ParserPool:
    """Runs `load_document` in up to `workers` reusable processes, each bounded in memory and time."""

    def __init__(self, limits: ParseLimits, *, workers: int, timeout_s: float, memory_mb: int) -> None:
        self._limits = limits
        self._max_workers = workers
        self._timeout_s = timeout_s
        self._memory_mb = memory_mb
        self._context = multiprocessing.get_context("spawn")
        self._idle: list[_Worker] = []
        self._running = 0  # workers started and not yet stopped, idle or busy
        self._closed = False
        self._ready = threading.Condition()

    @classmethod
    def from_settings(cls, settings: Settings) -> ParserPool:
        """A pool with the limits, worker count, timeout and memory limit of `settings` (RAGCHAT_PARSE_*)."""
        limits = ParseLimits(
            max_part_bytes=int(settings.max_part_mb * _MB),
            max_uncompressed_bytes=int(settings.max_uncompressed_mb * _MB),
            max_compression_ratio=settings.max_compression_ratio,
            max_pdf_pages=settings.max_pdf_pages,
            max_xml_elements=settings.max_xml_elements,
            max_xml_depth=settings.max_xml_depth,
        )
        return cls(
            limits,
            workers=settings.parse_workers,
            timeout_s=settings.parse_timeout_s,
            memory_mb=settings.parse_memory_mb,
        )

    def parse(self, name: str, data: bytes) -> ExtractedDocument:
        """The `ExtractedDocument` of `data` (the file named `name`), or a `LoadError` saying why not."""
        worker = self._acquire()
        healthy = False
        try:
            document = self._ask(worker, name, data)
            healthy = True
            return document
        except LoadError as exc:
            healthy = not isinstance(exc, _WorkerLost)
            raise
        finally:
            self._release(worker, healthy=healthy)

    def close(self) -> None:
        """Stop every idle worker now and every busy one when its file is done; `parse` fails after this."""
        with self._ready:
            self._closed = True
            idle, self._idle = self._idle, []
            self._running -= len(idle)
            self._ready.notify_all()
        for worker in idle:
            worker.stop()

    def _ask(self, worker: _Worker, name: str, data: bytes) -> ExtractedDocument:
        try:
            worker.connection.send((name, data))
            if not worker.connection.poll(self._timeout_s):
                raise _WorkerLost(
                    f"{name} took longer than {self._timeout_s:g} s to parse, over the limit "
                    "(RAGCHAT_PARSE_TIMEOUT_S); parsing was stopped"
                )
            reply = worker.connection.recv()
        except (EOFError, OSError):
            worker.process.join(timeout=1)
            logger.warning("a parser process died (exit code %s) on a file", worker.process.exitcode)
            raise _WorkerLost(
                f"{name} stopped the parser process (out of its {self._memory_mb} MB memory limit, "
                "RAGCHAT_PARSE_MEMORY_MB, or killed); it was not parsed"
            ) from None
        kind, value = reply
        if kind == "ok":
            assert isinstance(value, ExtractedDocument)
            return value
        if kind == "memory":
            raise _WorkerLost(
                f"{name} needs more than the {self._memory_mb} MB memory limit to parse "
                "(RAGCHAT_PARSE_MEMORY_MB)"
            )
        raise _ERRORS.get(kind, BadFile)(str(value))

    def _acquire(self) -> _Worker:
        with self._ready:
            while True:
                if self._closed:
                    raise RuntimeError("the parser pool is closed")
                if self._idle:
                    return self._idle.pop()
                if self._running < self._max_workers:
                    self._running += 1
                    break
                self._ready.wait()
        try:
            return self._start()
        except BaseException:
            with self._ready:
                self._running -= 1
                self._ready.notify()
            raise

    def _release(self, worker: _Worker, *, healthy: bool) -> None:
        with self._ready:
            keep = healthy and not self._closed
            if keep:
                self._idle.append(worker)
            else:
                self._running -= 1
            self._ready.notify()
        if not keep:
            worker.stop()

    def _start(self) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_serve,
            args=(child, self._limits, self._memory_mb * _MB),
            name="ragchat-parser",
            daemon=True,
        )
        process.start()
        child.close()
        worker = _Worker(process, parent)
        try:  # the time limit is for parsing, so wait here for the imports to finish
            if parent.poll(_START_TIMEOUT_S) and parent.recv() == ("ready", None):
                return worker
        except (EOFError, OSError):
            pass
        worker.stop()
        raise RuntimeError(f"a parser process did not start within {_START_TIMEOUT_S:g} s")


class _WorkerLost(OverLimit):
    """The worker overstayed, ran out of memory or died: the file is skipped and the worker replaced."""


def _serve(connection: Connection, limits: ParseLimits, memory_bytes: int) -> None:
    """A worker's loop: parse each `(name, data)` received, answer `(kind, value)`; exit on EOF."""
    _import_parsers()
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    connection.send(("ready", None))
    while True:
        try:
            name, data = connection.recv()
        except (EOFError, OSError):
            return
        reply: tuple[str, Any]
        try:
            reply = ("ok", load_document(name, data, limits))
        except LoadError as exc:
            reply = (type(exc).__name__, str(exc))
        except MemoryError:
            reply = ("memory", None)
        except RecursionError:
            reply = ("OverLimit", f"{name} nests its content too deeply to parse")
        except Exception:  # a parser bug on odd input: the user gets a reason, the log the details
            logger.exception("a parser failed")
            reply = ("BadFile", f"{name} could not be parsed: the parser failed on its content")
        try:
            connection.send(reply)
        except MemoryError:
            connection.send(("memory", None))
        if reply[0] == "memory":
            return  # the heap may be fragmented or half-updated: let a fresh process take over


def _import_parsers() -> None:
    """Import every parser library now, before the memory limit, so the first file pays no import."""
    import charset_normalizer  # noqa: F401
    import docx  # noqa: F401
    import lxml.html  # noqa: F401
    import markdown_it  # noqa: F401
    import pypdf  # noqa: F401
