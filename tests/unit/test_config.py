"""The unit tests' isolation from the developer's environment (tests/unit/conftest.py)."""

from __future__ import annotations

import os

from ragchat.config import Settings
from tests.unit.conftest import KEPT, settings_variables


def test_unit_tests_see_no_settings_from_the_environment() -> None:
    assert len(settings_variables()) >= len(Settings.model_fields)  # each field has its variable's name
    assert not (settings_variables() - KEPT) & set(os.environ)
