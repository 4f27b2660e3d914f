"""JobStore on a real database (SQLite and PostgreSQL): claims are exclusive (two claimers, no job taken
twice), stale claims are taken over, and a job's files carry their outcomes."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, update

from ragchat.infra.db import open_database, sqlite_url
from ragchat.infra.db.schema import ingest_jobs
from ragchat.infra.jobs import JobStore, NewFile

ENGINES = ["sqlite", "postgresql"]


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each engine in turn (PostgreSQL: the session's server, a new database)."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return sqlite_url(tmp_path / "data" / "ragchat.sqlite3")


@pytest.fixture
def engines(database_url: str) -> Iterator[list[Engine]]:
    """Engines on the database (each one as a separate app process would open it); disposed at the end."""
    opened: list[Engine] = []
    yield opened
    for engine in opened:
        engine.dispose()


def job_store(database_url: str, engines: list[Engine]) -> JobStore:
    engine = open_database(database_url)
    engines.append(engine)
    return JobStore(engine)


def queue(store: JobStore, count: int) -> list[str]:
    ids = []
    for number in range(count):
        job_id = store.create(
            collection="default",
            owner_id=None,
            owner_name="local",
            address=None,
            files=[NewFile(f"note-{number}.md", io.BytesIO(b"# Note\n\ntext"))],
            max_unfinished=count,
        )
        assert job_id is not None
        ids.append(job_id)
    return ids


def test_two_claimers_never_take_the_same_job(database_url: str, engines: list[Engine]) -> None:
    queued = set(queue(job_store(database_url, engines), 60))
    claimers = {name: job_store(database_url, engines) for name in ("a", "b")}
    taken: dict[str, list[str]] = {name: [] for name in claimers}
    start = threading.Barrier(len(claimers))

    def claim_all(name: str) -> None:
        start.wait()
        while (job_id := claimers[name].claim(f"worker-{name}", lease_s=3600)) is not None:
            taken[name].append(job_id)

    threads = [threading.Thread(target=claim_all, args=(name,)) for name in claimers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(taken["a"]).isdisjoint(taken["b"])
    assert sorted(taken["a"] + taken["b"]) == sorted(queued)
    for name, store in claimers.items():
        for job_id in taken[name]:
            job = store.get(job_id)
            assert job is not None and job.status == "running"


def test_a_full_queue_stores_nothing(database_url: str, engines: list[Engine]) -> None:
    store = job_store(database_url, engines)
    queue(store, 2)
    refused = store.create(
        collection="default",
        owner_id=None,
        owner_name="local",
        address=None,
        files=[NewFile("late.md", io.BytesIO(b"# Late"))],
        max_unfinished=2,
    )
    assert refused is None
    assert store.unfinished_count() == 2
    assert [
        file.filename for job in store.list_jobs(owner_id=None, everyone=True, limit=10) for file in job.files
    ] == [
        "note-1.md",
        "note-0.md",
    ]


def test_a_stale_claim_is_taken_over_and_the_old_worker_stops(
    database_url: str, engines: list[Engine]
) -> None:
    store = job_store(database_url, engines)
    (job_id,) = queue(store, 1)
    assert store.claim("killed", lease_s=60) == job_id
    first = store.next_file(job_id, "killed")
    assert first is not None and first[0].status == "processing" and first[1] == b"# Note\n\ntext"

    assert store.claim("restarted", lease_s=60) is None  # the claim is fresh: nothing to take over
    with store.engine.begin() as conn:  # the killed worker's last heartbeat was 61 s ago
        past = (datetime.now(UTC) - timedelta(seconds=61)).isoformat(timespec="milliseconds")
        conn.execute(update(ingest_jobs).where(ingest_jobs.c.id == job_id).values(heartbeat_at=past))
    assert store.claim("restarted", lease_s=60) == job_id
    assert store.next_file(job_id, "killed") is None  # the old worker no longer holds the job
    again = store.next_file(job_id, "restarted")
    assert again is not None and again[0].position == 0  # the file in flight is done again
    store.settle_file(job_id, 0, status="added", reason=None, document_id="doc-1", chunks=3)
    assert store.next_file(job_id, "restarted") is None
    assert not store.finish(job_id, "killed")
    assert store.finish(job_id, "restarted")
    job = store.get(job_id)
    assert job is not None and job.status == "done" and job.finished_at is not None
    (file,) = job.files
    assert (file.status, file.document_id, file.chunks) == ("added", "doc-1", 3)


def test_a_stopping_process_puts_its_jobs_back(database_url: str, engines: list[Engine]) -> None:
    store = job_store(database_url, engines)
    (job_id,) = queue(store, 1)
    assert store.claim("stopping", lease_s=3600) == job_id
    store.release("stopping")
    assert store.claim("next", lease_s=3600) == job_id
