"""Two `ragchat serve` processes (two app replicas, two ports, authentication on) on one PostgreSQL database
share every change at once, keys included; a database restart under a serving app gives clear 503s, then the
app recovers without a restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from ragchat.config import Settings
from ragchat.infra.db import engine_url
from ragchat.infra.db.schema import chunks, documents
from tests.support.live_app import live_app
from tests.support.postgres import PostgresServer
from tests.support.processes import wait_until_healthy
from tests.support.vllm import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
RAGCHAT = Path(sys.executable).parent / "ragchat"
DOCUMENT = (
    "# Lighthouse keeping\n\nThe keeper of the Skerryvore lighthouse trims the wick at dusk and winds the "
    "clockwork that turns the lens. Paraffin is carried up one hundred and fifty steps.\n\n"
    + "\n\n".join(f"Log entry {i}: the lamp burned through a gale from the west." for i in range(40))
)


def replica_env(database_url: str, data_dir: Path) -> dict[str, str]:
    """The environment of a replica (and of a `ragchat` command run against the same database)."""
    return {
        **os.environ,
        "RAGCHAT_DATA_DIR": str(data_dir),  # this replica's caches only
        "RAGCHAT_DATABASE_URL": database_url,
        "RAGCHAT_AUTH": "on",
        "RAGCHAT_ADMIN_PASSWORD": "replica-admin-password",
        "VLLM_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",  # no LLM needed here
        "HF_HUB_OFFLINE": "1",
    }


def serve(database_url: str, folder: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    """Start one replica; (process, root URL, log path)."""
    port = free_port()
    log_path = folder / f"serve-{port}.log"
    env = replica_env(database_url, folder / f"data-{port}")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(RAGCHAT), "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, f"http://127.0.0.1:{port}", log_path


def create_key(database_url: str, folder: Path) -> tuple[str, str]:
    """(key id, secret) of a new write key of the admin, made by the CLI on the shared database."""
    made = subprocess.run(
        [str(RAGCHAT), "keys", "create", "--user", "admin", "--scope", "write", "--json"],
        env=replica_env(database_url, folder / "cli"),
        capture_output=True,
        text=True,
        check=True,
    )
    key = json.loads(made.stdout)
    return key["id"], key["key"]


@pytest.fixture(scope="module")
def replicas(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, str]]:
    """(database URL, replica A's root URL, replica B's root URL); requests carry the admin's write key
    (module global `HEADERS`)."""
    database_url = postgres_server.create_database()
    folder = tmp_path_factory.mktemp("replicas")
    started = [serve(database_url, folder) for _ in range(2)]
    try:
        for process, url, log_path in started:
            wait_until_healthy(f"{url}/health", process, log_path, timeout_s=240)
        HEADERS["Authorization"] = f"Bearer {create_key(database_url, folder)[1]}"
        yield database_url, started[0][1], started[1][1]
    finally:
        for process, _, _ in started:
            os.killpg(process.pid, signal.SIGINT)
        for process, _, _ in started:
            process.wait(timeout=60)


HEADERS: dict[str, str] = {}
"""The admin key's Authorization header, set by the `replicas` fixture."""


def upload(
    base: str, name: str, data: str, collection: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    """Upload one file and wait for its job (either replica may work it); `headers` default to the admin
    key's (`HEADERS`)."""
    files = {"files": (name, data.encode(), "text/markdown")}
    return httpx.post(
        f"{base}/api/documents?wait=true",
        files=files,
        data={"collection": collection},
        headers=HEADERS if headers is None else headers,
        timeout=120,
    )


def search(
    base: str, query: str, collection: str, headers: dict[str, str] | None = None
) -> list[dict[str, object]]:
    response = httpx.post(
        f"{base}/api/search",
        json={"query": query, "collection": collection, "k": 3},
        headers=HEADERS if headers is None else headers,
        timeout=60,
    )
    assert response.status_code == 200, response.text
    results: list[dict[str, object]] = response.json()["results"]
    return results


def test_an_upload_through_one_replica_is_found_through_the_other_and_a_deletion_leaves_both(
    replicas: tuple[str, str, str],
) -> None:
    _, a, b = replicas
    added = upload(a, "lighthouse.md", DOCUMENT, "shared")
    assert added.status_code == 200, added.text
    document_id = added.json()["results"][0]["document"]["id"]
    for mode_query in ("Skerryvore paraffin steps", "who trims the wick of the lamp at dusk"):
        assert search(b, mode_query, "shared")[0]["document_id"] == document_id
    listed = httpx.get(
        f"{b}/api/documents", params={"collection": "shared"}, headers=HEADERS, timeout=30
    ).json()
    assert [doc["id"] for doc in listed["documents"]] == [document_id]

    assert httpx.delete(f"{b}/api/documents/{document_id}", headers=HEADERS, timeout=30).status_code == 204
    for base in (a, b):
        assert all(hit["document_id"] != document_id for hit in search_or_empty(base, "Skerryvore", "shared"))
        listed = httpx.get(
            f"{base}/api/documents", params={"collection": "shared"}, headers=HEADERS, timeout=30
        )
        assert listed.json() == {"documents": []}


def search_or_empty(base: str, query: str, collection: str) -> list[dict[str, object]]:
    """Search results, or none when the collection no longer has documents (404 collection_not_found)."""
    response = httpx.post(
        f"{base}/api/search", json={"query": query, "collection": collection}, headers=HEADERS, timeout=60
    )
    if response.status_code == 404:
        return []
    assert response.status_code == 200, response.text
    results: list[dict[str, object]] = response.json()["results"]
    return results


def test_two_replicas_ingesting_one_file_at_once_end_with_one_document(
    replicas: tuple[str, str, str],
) -> None:
    database_url, a, b = replicas
    responses: dict[str, httpx.Response] = {}
    barrier = threading.Barrier(2)

    def send(base: str) -> None:
        barrier.wait()
        responses[base] = upload(base, "race.md", DOCUMENT, "race")

    threads = [threading.Thread(target=send, args=(base,)) for base in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [responses[base].status_code for base in (a, b)] == [200, 200]
    engine = create_engine(engine_url(database_url))
    try:
        with engine.connect() as conn:
            docs = conn.execute(
                select(documents.c.id, documents.c.chunk_count).where(documents.c.collection == "race")
            ).all()
            assert len(docs) == 1
            document_id, chunk_count = docs[0]
            stored = conn.execute(
                select(chunks.c.ordinal, func.count())
                .where(chunks.c.document_id == document_id)
                .group_by(chunks.c.ordinal)
            ).all()
            assert sorted(ordinal for ordinal, _ in stored) == list(range(chunk_count))
            assert {count for _, count in stored} == {1}, "a chunk is stored twice"
            assert (
                conn.execute(
                    select(func.count()).select_from(chunks).where(chunks.c.collection == "race")
                ).scalar_one()
                == chunk_count
            )
    finally:
        engine.dispose()
    for base in (a, b):
        assert [hit["document_id"] for hit in search(base, "Skerryvore lighthouse", "race")][:1] == [
            document_id
        ]


def test_a_key_revoked_through_one_replica_is_refused_by_the_other(
    replicas: tuple[str, str, str], tmp_path: Path
) -> None:
    database_url, a, b = replicas
    key_id, secret = create_key(database_url, tmp_path)
    bearer = {"Authorization": f"Bearer {secret}"}
    for base in (a, b):
        assert httpx.get(f"{base}/api/documents", headers=bearer, timeout=30).status_code == 200
    revoked = httpx.delete(f"{a}/api/keys/{key_id}", headers=HEADERS, timeout=30)
    assert revoked.status_code == 204, revoked.text
    for base in (b, a):
        refused = httpx.get(f"{base}/api/documents", headers=bearer, timeout=30)
        assert refused.status_code == 401, refused.text
        assert secret not in refused.text


def test_a_database_restart_gives_503_then_the_app_recovers(
    postgres_server_factory: Callable[[], PostgresServer], make_settings: Callable[..., Settings]
) -> None:
    server = postgres_server_factory()
    settings = make_settings(
        database_url=server.create_database(),
        vllm_base_url=f"http://127.0.0.1:{free_port()}/v1",
    )  # authentication off (the fixture's default on loopback): this test is about the database
    with live_app(settings) as base:
        assert upload(base, "lighthouse.md", DOCUMENT, "default", headers={}).status_code == 200
        server.stop()
        for response in (
            httpx.post(f"{base}/api/search", json={"query": "Skerryvore"}, timeout=60),
            httpx.get(f"{base}/api/documents", timeout=60),
            httpx.get(f"{base}/api/health", timeout=60),
        ):
            assert response.status_code == 503, response.text
            error = response.json()["error"]
            assert error["code"] == "database_unavailable"
            assert "password" not in error["message"] and "/" not in error["message"]  # no socket path
        assert httpx.get(f"{base}/health", timeout=60).status_code == 200  # liveness: the process is fine
        server.start()
        assert search(base, "Skerryvore paraffin", "default", headers={})[0]["text"]
        assert len(httpx.get(f"{base}/api/documents", timeout=60).json()["documents"]) == 1
