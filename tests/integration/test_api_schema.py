"""schemathesis over the authenticated API (an admin key), a bounded number of examples per operation:
no 5xx, and every response that the schema documents matches it. Uploads are included (multipart bodies
with generated files, names and fields; their jobs run in the app meanwhile).

`/v1/chat/completions` and `/api/status` are left out (each example would wait on the LLM or on two
metric scrapes); test_chat_api.py and test_observability.py cover them with the `openai` client.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from typer.testing import CliRunner

from ragchat.api.app import create_app
from ragchat.cli.main import app as cli_app
from ragchat.config import Settings
from tests.support.vllm import free_port

EXAMPLES_PER_OPERATION = 12


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, schemathesis.BaseSchema]]:
    data_dir: Path = tmp_path_factory.mktemp("schema") / "data"
    app_settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=data_dir, auth="on", host="127.0.0.1", admin_password="schema-admin-password"
    )
    app = create_app(app_settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 180
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the app did not start"
        time.sleep(0.1)
    try:
        made = CliRunner().invoke(
            cli_app,
            ["keys", "create", "--user", "admin", "--scope", "write"],
            env={"RAGCHAT_DATA_DIR": str(data_dir)},
        )
        assert made.exit_code == 0, made.output
        key = made.stdout.strip().splitlines()[0]
        schema = schemathesis.openapi.from_dict(app.openapi())
        schema = schema.exclude(path="/v1/chat/completions").exclude(path="/api/status")
        yield f"http://127.0.0.1:{server.config.port}", key, schema
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_no_server_error_and_documented_responses(
    served: tuple[str, str, schemathesis.BaseSchema],
) -> None:
    url, key, schema = served
    failures: list[str] = []
    calls: dict[str, int] = {}
    statuses: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            calls[case.operation.label] = calls.get(case.operation.label, 0) + 1
            response = case.call_and_validate(
                base_url=url,
                headers={"Authorization": f"Bearer {key}"},
                checks=[not_a_server_error, response_schema_conformance],
            )
            statuses.setdefault(case.operation.label, set()).add(response.status_code)

        try:
            check()
        except Exception as exc:  # every operation is tried; the failures are reported together
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:2000])
    assert not failures, "\n\n".join(failures)
    assert len(calls) >= 20, f"too few operations were exercised: {sorted(calls)}"
    # Uploads are in: multipart bodies with generated files and fields, each answered without a 5xx.
    assert calls.get("POST /api/documents", 0) >= EXAMPLES_PER_OPERATION, calls
    assert statuses["POST /api/documents"] <= {200, 202, 400, 404, 409, 413, 415, 422}, statuses
