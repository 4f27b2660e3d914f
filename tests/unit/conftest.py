"""Unit tests see none of the developer's settings: every variable `Settings` reads is removed for the
session (RAGCHAT_MODEL_CACHE_DIR excepted: it only says where the converted model is cached), so a
`RAGCHAT_*` or guide variable in the shell cannot change what a test checks."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from pydantic import AliasChoices

from ragchat.config import Settings

KEPT = {"RAGCHAT_MODEL_CACHE_DIR"}


def settings_variables() -> set[str]:
    """The environment variable names `Settings` reads."""
    names: set[str] = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias)
        elif isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
    return names


@pytest.fixture(scope="session", autouse=True)
def _no_settings_from_the_environment() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name in sorted(settings_variables() - KEPT):
            if name in os.environ:
                patch.delenv(name)
        yield
