"""`Services.aclose` closes every part even when some fail, then raises what failed."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from ragchat.config import Settings
from ragchat.container import Services


class Part:
    """Stands in for one long-lived part; a real one cannot be made to fail on close."""

    def __init__(self, name: str, closed: list[str], *, fails: bool = False) -> None:
        self.name, self._closed, self._fails = name, closed, fails

    def close(self) -> None:
        self._closed.append(self.name)
        if self._fails:
            raise RuntimeError(f"{self.name} failed to close")

    async def aclose(self) -> None:
        self.close()

    def dispose(self) -> None:  # a database engine's close
        self.close()

    async def stop(self) -> None:  # the ingestion queue's close
        self.close()


ALL_PARTS = ["jobs", "metrics", "sso", "access", "parsers", "llm", "retriever", "store", "embedder"]
"""Every part `Services.aclose` closes, in its order."""


def services(make_settings: Callable[..., Settings], closed: list[str], *failing: str) -> Services:
    parts: dict[str, Any] = {
        name: Part(name, closed, fails=name in failing)
        for name in ("jobs", "metrics", "sso", "parsers", "llm", "retriever", "store", "embedder")
    }
    access = SimpleNamespace(
        identity=SimpleNamespace(engine=Part("access", closed, fails="access" in failing))
    )
    return Services(
        settings=make_settings(),
        ingest=None,
        chat=None,
        conversations=None,
        access=access,
        rates=None,
        **parts,  # type: ignore[arg-type]
    )


async def test_one_failing_close_does_not_stop_the_others(make_settings: Callable[..., Settings]) -> None:
    closed: list[str] = []
    with pytest.raises(RuntimeError, match="llm failed to close"):
        await services(make_settings, closed, "llm").aclose()
    assert closed == ALL_PARTS


async def test_several_failing_closes_are_all_raised(make_settings: Callable[..., Settings]) -> None:
    closed: list[str] = []
    with pytest.raises(ExceptionGroup) as raised:
        await services(make_settings, closed, "metrics", "store").aclose()
    assert [str(error) for error in raised.value.exceptions] == [
        "metrics failed to close",
        "store failed to close",
    ]
    assert closed == ALL_PARTS
