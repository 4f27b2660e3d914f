"""Fixtures shared by every test. Area-specific fixtures live in the conftest.py of their folder.

Real parts only: the real embedding model, a real SQLite store under tmp_path, a real PostgreSQL server
(`postgres_server`/`postgres_url`, tests/support/postgres.py), a real vLLM CPU server (`vllm_server`,
started once per session; set RAGCHAT_TEST_VLLM_URL to reuse a running one).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ragchat.config import Settings
from ragchat.infra.embeddings import Embedder

pytest_plugins = [
    "tests.support.vllm",
    "tests.support.oidc_provider",
    "tests.support.postgres",
    "tests.support.stores",
]


def pytest_configure(config: pytest.Config) -> None:
    """Convert the embedding model to ONNX once per machine, not once per test's data dir (the
    default runtime exports on first use into RAGCHAT_MODEL_CACHE_DIR; subprocesses inherit it)."""
    os.environ.setdefault("RAGCHAT_MODEL_CACHE_DIR", str(Path(tempfile.gettempdir()) / "ragchat-test-models"))


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings isolated in tmp_path, ignoring the developer's environment and .env file."""

    def factory(**overrides: Any) -> Settings:
        # Tests of other features run without authentication, which needs a loopback address.
        values: dict[str, Any] = {"data_dir": tmp_path / "data", "auth": "off", "host": "127.0.0.1"}
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return factory


@pytest.fixture(scope="session")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    """The real local embedding model (all-MiniLM-L6-v2, offline), loaded once per test session."""
    from ragchat.infra.embeddings.factory import create_embedder

    settings = Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("embedder"))  # type: ignore[call-arg]
    model = create_embedder(settings)
    model.embed(["load the weights now"], input_type="query")
    return model
