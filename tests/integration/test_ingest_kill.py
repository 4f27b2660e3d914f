"""SIGKILL a real `ragchat ingest` process mid-run, on each store (SQLite, PostgreSQL): no partial document
survives, and re-running the ingest completes the rest with zero duplicates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy.exc
from sqlalchemy import create_engine

from ragchat.infra.db import engine_url
from tests.support.sample_files import write
from tests.support.stores import StoreBackend

FILES = 24
SUBJECTS = ("harbour", "glacier", "orchard", "comet", "violin", "desert", "lantern", "meadow", "canyon")


def make_corpus(folder: Path) -> None:
    for i in range(FILES):
        subject = SUBJECTS[i % len(SUBJECTS)]
        paragraphs = [
            f"Report {i} about the {subject}. Section {j} notes that the {subject} changed in season {j}; "
            f"observers counted {i * 7 + j} events and wrote long descriptions of each one, with dates, "
            f"weather, and the names of the people who saw the {subject} that day."
            for j in range(4)
        ]
        write(folder / f"report-{i:02d}.md", f"# Report {i}\n\n" + "\n\n".join(paragraphs))


def ragchat_command(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("ragchat")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "from ragchat.cli.main import main; main()", *args]


def committed_documents(backend: StoreBackend) -> int:
    if backend.engine == "sqlite":
        database = backend.data_dir / "ragchat.sqlite3"
        if not database.exists():
            return 0
        url = f"sqlite:///file:{database}?mode=ro&uri=true"
    else:
        url = backend.url
    engine = create_engine(engine_url(url))
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM documents").scalar_one())
    except sqlalchemy.exc.DBAPIError:  # schema not created yet
        return 0
    finally:
        engine.dispose()


def consistency(backend: StoreBackend) -> dict[str, int]:
    """Checks that every stored document is whole; returns counts."""
    engine = create_engine(engine_url(backend.url))
    try:
        conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        if backend.engine == "sqlite":
            assert conn.exec_driver_sql("PRAGMA integrity_check").fetchone() == ("ok",)
        partial = conn.exec_driver_sql(
            "SELECT d.path, d.chunk_count, count(c.id)"
            " FROM documents d LEFT JOIN chunks c ON c.document_id = d.id"
            " GROUP BY d.id HAVING count(c.id) != d.chunk_count OR d.chunk_count = 0"
        ).fetchall()
        assert partial == [], f"documents with missing chunks: {partial}"
        orphans = conn.exec_driver_sql(
            "SELECT count(*) FROM chunks WHERE document_id NOT IN (SELECT id FROM documents)"
        ).fetchone()[0]
        assert orphans == 0
        duplicates = conn.exec_driver_sql(
            "SELECT path, count(*) FROM documents GROUP BY collection, path HAVING count(*) > 1"
        ).fetchall()
        assert duplicates == []
        chunks = conn.exec_driver_sql("SELECT count(*) FROM chunks").scalar_one()
        store = backend.open()  # the keyword index a restarted app builds
        try:
            # Every chunk mentions "Report" in its text or heading.
            assert len(store.keyword_search("default", "report", chunks + 10)) == chunks
        finally:
            store.close()
        counts = {
            "documents": conn.exec_driver_sql("SELECT count(*) FROM documents").scalar_one(),
            "chunks": chunks,
            "max_revision": conn.exec_driver_sql(
                "SELECT coalesce(max(revision), 0) FROM documents"
            ).scalar_one(),
        }
        conn.close()
        return counts
    finally:
        engine.dispose()


def test_sigkill_mid_ingest_leaves_whole_documents_and_rerun_has_no_duplicates(
    tmp_path: Path, store_backend: StoreBackend
) -> None:
    corpus = tmp_path / "corpus"
    make_corpus(corpus)
    env = {
        **os.environ,
        **store_backend.environment(),
        "EMBEDDING_BATCH_SIZE": "4",  # small batches: documents commit a few at a time
        "HF_HUB_OFFLINE": "1",
    }
    log = (tmp_path / "first-run.log").open("w")
    process = subprocess.Popen(
        ragchat_command("ingest", str(corpus)),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while committed_documents(store_backend) == 0:
            assert process.poll() is None, (
                f"ingest ended before it could be killed:\n{(tmp_path / 'first-run.log').read_text()}"
            )
            assert time.monotonic() < deadline, "no document was committed within 300 s"
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()

    after_kill = consistency(store_backend)
    assert 0 < after_kill["documents"] < FILES, "the kill should land mid-ingest"
    store = store_backend.open()  # what a restarted app sees
    try:
        survivors = {record.path: record for record in store.list_documents()}
        assert len(survivors) == after_kill["documents"]
    finally:
        store.close()

    rerun = subprocess.run(
        ragchat_command("ingest", str(corpus)), env=env, capture_output=True, text=True, timeout=900
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    final = consistency(store_backend)
    assert final["documents"] == FILES
    assert final["max_revision"] == 1, "documents committed before the kill were re-written"
    store = store_backend.open()
    try:
        records = {record.path: record for record in store.list_documents()}
        assert sorted(Path(path).name for path in records) == [f"report-{i:02d}.md" for i in range(FILES)]
        for path, before in survivors.items():
            assert records[path] == before  # untouched by the re-run: same id, hash, chunks
        assert sum(record.chunk_count for record in records.values()) == final["chunks"]
    finally:
        store.close()
