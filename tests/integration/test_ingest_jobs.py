"""Uploads as ingestion jobs on the real app (real SQLite, real embedding model, real parser processes):
202 and a job at once, each file's outcome in the job, a full queue refused, quotas per collection, request
rates per caller, and a job that survives the app being killed mid-job (on SQLite and on PostgreSQL)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
from sqlalchemy import create_engine, func, select

from ragchat.config import Settings
from ragchat.infra.db import engine_url, open_database
from ragchat.infra.db.schema import chunks, documents
from ragchat.infra.jobs import JobStore, NewFile
from tests.support.app import app_client
from tests.support.processes import wait_until_healthy
from tests.support.sample_files import TOPICS, corrupt_pdf_bytes
from tests.support.stores import StoreBackend
from tests.support.vllm import REPO_ROOT, free_port

RAGCHAT = Path(sys.executable).parent / "ragchat"


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code"} and error["code"] == code
    return str(error["message"])


async def settle(client: httpx.AsyncClient, accepted: httpx.Response) -> tuple[dict[str, Any], set[str]]:
    """The job of an accepted (202) upload once done, and every file status seen while polling it."""
    assert accepted.status_code == 202, accepted.text
    seen: set[str] = set()
    job: dict[str, Any] = accepted.json()
    while job["status"] != "done":
        seen.update(result["status"] for result in job["results"])
        await anyio.sleep(0.05)
        job = (await client.get(accepted.headers["location"])).json()
    return job, seen


async def test_a_batch_reports_each_files_outcome(make_settings: Callable[..., Settings]) -> None:
    async with app_client(make_settings()) as client:
        files = [
            ("files", ("volcanoes.md", TOPICS["volcanoes.md"].encode())),
            ("files", ("broken.pdf", corrupt_pdf_bytes())),
            ("files", ("chess.html", TOPICS["chess.html"].encode())),
        ]
        accepted = await client.post("/api/documents", files=files, data={"collection": "batch"})
        queued = accepted.json()
        assert queued["status"] in ("queued", "running") and queued["total_files"] == 3
        assert [r["filename"] for r in queued["results"]] == ["volcanoes.md", "broken.pdf", "chess.html"]
        assert all(r["size"] > 0 for r in queued["results"])

        job, seen = await settle(client, accepted)
        assert seen <= {"pending", "processing", "added", "skipped"}
        outcome = {r["filename"]: r for r in job["results"]}
        assert [r["status"] for r in job["results"]] == ["added", "skipped", "added"]
        assert outcome["broken.pdf"]["document"] is None and "PDF" in outcome["broken.pdf"]["reason"]
        for name in ("volcanoes.md", "chess.html"):
            assert outcome[name]["document"]["path"] == name and outcome[name]["chunks"] > 0
        assert job["settled_files"] == job["total_files"] == 3
        assert job["started_at"] and job["finished_at"] and job["owner"] == "local"

        listed = (await client.get("/api/jobs")).json()["jobs"]
        assert listed[0]["id"] == job["id"] and listed[0]["results"] == job["results"]
        stored = (await client.get("/api/documents", params={"collection": "batch"})).json()["documents"]
        assert sorted(d["path"] for d in stored) == ["chess.html", "volcanoes.md"]
        assert_error(await client.get("/api/jobs/no-such-job"), 404, "job_not_found")


async def test_a_full_queue_is_refused_with_retry_after_and_nothing_stored(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(max_queued_jobs=1, job_lease_s=3600)
    engine = open_database(settings.resolved_database_url)
    try:  # another app process holds the one job the queue takes, and is alive (its claim is fresh)
        jobs = JobStore(engine)
        busy = jobs.create(
            collection="default",
            owner_id=None,
            owner_name="local",
            address=None,
            files=[NewFile("busy.md", io.BytesIO(b"# Busy\n\nbusy"))],
            max_unfinished=1,
        )
        assert busy is not None and jobs.claim("another-process", lease_s=3600) == busy
    finally:
        engine.dispose()
    async with app_client(settings) as client:
        refused = await client.post("/api/documents", files=[("files", ("late.md", b"# Late\n\nlate"))])
        message = assert_error(refused, 503, "queue_full")
        assert "RAGCHAT_MAX_QUEUED_JOBS" in message and refused.headers["retry-after"] == "30"
        assert [job["id"] for job in (await client.get("/api/jobs")).json()["jobs"]] == [busy]
        assert (await client.get("/api/documents")).json()["documents"] == []


def note(words: int) -> bytes:
    return ("# Note\n\n" + " ".join(["tide"] * words)).encode()


async def test_collection_quotas_refuse_clearly_and_keep_what_is_stored(
    make_settings: Callable[..., Settings],
) -> None:
    limits = {"collection_max_documents": 2, "collection_max_text_mb": 0.0002}  # 200 characters
    async with app_client(make_settings(**limits)) as client:

        async def upload(name: str, body: bytes) -> httpx.Response:
            return await client.post(
                "/api/documents?wait=true", files=[("files", (name, body))], data={"collection": "q"}
            )

        async def stored() -> dict[str, str]:
            listed = (await client.get("/api/documents", params={"collection": "q"})).json()["documents"]
            return {d["path"]: d["content_hash"] for d in listed}

        assert (await upload("a.md", note(10))).json()["results"][0]["status"] == "added"  # 57 characters
        assert (await upload("b.md", note(10))).json()["results"][0]["status"] == "added"
        before = await stored()
        message = assert_error(await upload("c.md", note(3)), 409, "document_quota_exceeded")
        assert "RAGCHAT_COLLECTION_MAX_DOCUMENTS" in message and "2" in message
        assert await stored() == before

        replaced = (await upload("a.md", note(18))).json()["results"][0]  # 97 characters: 154 in all
        assert replaced["status"] == "replaced"
        before = await stored()
        (too_much,) = (await upload("a.md", note(40))).json()["results"]  # 207 characters alone
        assert too_much["status"] == "skipped" and "RAGCHAT_COLLECTION_MAX_TEXT_MB" in too_much["reason"]
        assert await stored() == before

    async with app_client(make_settings(collection_max_text_mb=0.0001)) as client:  # 154 > 100 held
        refused = await client.post(
            "/api/documents", files=[("files", ("a.md", note(1)))], data={"collection": "q"}
        )
        assert "RAGCHAT_COLLECTION_MAX_TEXT_MB" in assert_error(refused, 413, "text_quota_exceeded")
        listed = (await client.get("/api/documents", params={"collection": "q"})).json()["documents"]
        assert {d["path"]: d["content_hash"] for d in listed} == before


async def test_each_caller_has_a_request_rate(make_settings: Callable[..., Settings]) -> None:
    password = "rates-admin-password-0"
    settings = make_settings(auth="on", admin_password=password, requests_per_minute=3)
    async with app_client(settings) as client:
        login = await client.post("/api/auth/login", json={"username": "admin", "password": password})
        assert login.status_code == 200  # public: not counted
        for _ in range(3):
            assert (await client.get("/api/jobs")).status_code == 200
        limited = await client.get("/api/jobs")
        message = assert_error(limited, 429, "rate_limited")
        assert "RAGCHAT_REQUESTS_PER_MINUTE" in message
        assert limited.headers["retry-after"] == "20"  # 3 a minute: one more in 20 s
        assert (await client.get("/health")).status_code == 200  # public routes are not limited


def long_note(number: int) -> bytes:
    paragraphs = [
        f"Logbook {number}, entry {entry}: the lighthouse keeper recorded the wind, the swell and every "
        f"ship that passed the point, with its flag, its cargo and the hour it rounded the rocks "
        f"({number * entry})."
        for entry in range(160)
    ]
    return (f"# Logbook {number}\n\n" + "\n\n".join(paragraphs)).encode()


def start_app(backend: StoreBackend, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **backend.environment(),
        "VLLM_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",  # no LLM needed here
        "HF_HUB_OFFLINE": "1",
        "RAGCHAT_AUTH": "off",
        "RAGCHAT_HOST": "127.0.0.1",
        "RAGCHAT_PARSE_WORKERS": "1",
        "RAGCHAT_JOB_LEASE_S": "3",
    }
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(RAGCHAT), "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_until_healthy(f"http://127.0.0.1:{port}/health", process, log_path, timeout_s=240)
    return process


def test_a_job_survives_the_app_being_killed_mid_job(store_backend: StoreBackend, tmp_path: Path) -> None:
    port, log_path = free_port(), tmp_path / "app.log"
    names = [f"logbook-{number:02d}.md" for number in range(10)]
    base = f"http://127.0.0.1:{port}"
    process = start_app(store_backend, port, log_path)
    try:
        files = [("files", (name, long_note(number))) for number, name in enumerate(names)]
        accepted = httpx.post(f"{base}/api/documents", files=files, timeout=120)
        assert accepted.status_code == 202, accepted.text
        job_url = base + accepted.headers["location"]
        deadline = time.monotonic() + 240
        while (job := httpx.get(job_url, timeout=30).json())["settled_files"] < 2:
            assert job["status"] != "done", "the job ended before the app could be killed; use more files"
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        assert 2 <= job["settled_files"] < len(names), job

        process = start_app(store_backend, port, log_path)
        deadline = time.monotonic() + 300
        while (job := httpx.get(job_url, timeout=30).json())["status"] != "done":
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)

    statuses = [result["status"] for result in job["results"]]
    assert set(statuses) <= {"added", "unchanged"} and statuses.count("unchanged") <= 1, job["results"]
    assert all(result["document"] is not None for result in job["results"])
    engine = create_engine(engine_url(store_backend.url))
    try:
        with engine.connect() as conn:
            paths = conn.execute(select(documents.c.path).order_by(documents.c.path)).scalars().all()
            partial = conn.execute(
                select(documents.c.path)
                .select_from(documents.outerjoin(chunks, chunks.c.document_id == documents.c.id))
                .group_by(documents.c.id, documents.c.path, documents.c.chunk_count)
                .having(func.count(chunks.c.id) != documents.c.chunk_count)
            ).all()
    finally:
        engine.dispose()
    assert paths == names  # each file once: no duplicate, none lost
    assert partial == []


async def test_a_job_whose_collection_was_deleted_meanwhile_stores_nothing(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    engine = open_database(settings.resolved_database_url)
    try:  # queued for collection "gone", which was deleted before the job ran (it no longer exists)
        job_id = JobStore(engine).create(
            collection="gone",
            owner_id=None,
            owner_name="local",
            address=None,
            files=[NewFile("a.md", io.BytesIO(b"# A\n\nAardvarks."))],
            max_unfinished=10,
        )
    finally:
        engine.dispose()
    async with app_client(settings) as client:
        job = (await client.get(f"/api/jobs/{job_id}")).json()
        while job["status"] != "done":
            await anyio.sleep(0.05)
            job = (await client.get(f"/api/jobs/{job_id}")).json()
        (result,) = job["results"]
        assert result["status"] == "skipped" and "was deleted" in result["reason"]
        names = [c["name"] for c in (await client.get("/api/collections")).json()["collections"]]
        assert "gone" not in names
        assert (await client.get("/api/documents")).json()["documents"] == []
