"""Docs that cannot drift: every setting is documented in docs/configuration.md."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices

from ragchat.config import Settings

CONFIGURATION_DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_has_a_row_in_the_configuration_doc() -> None:
    documented = CONFIGURATION_DOC.read_text(encoding="utf-8")
    missing = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names = alias.choices if isinstance(alias, AliasChoices) else [alias or name]
        if not any(f"`{choice}`" in documented for choice in names):
            missing.append(str(names[0]))
    assert not missing, f"settings missing from docs/configuration.md: {', '.join(missing)}"
