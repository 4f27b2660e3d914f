"""Hostile files over HTTP against the real app on a real uvicorn: each is skipped with a reason naming the
limit (200, never 500), the good files of the same request are stored, `/health` keeps answering while the
parser works, and the server's memory stays bounded."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from ragchat.config import Settings
from tests.support.app import app_client
from tests.support.live_app import live_app
from tests.support.sample_files import (
    TOPICS,
    docx_bomb,
    docx_of_empty_paragraphs,
    docx_with_entities,
    docx_with_malformed_xml,
    pdf_with_flate_stream,
)

MB = 1024 * 1024
SERVER_PATHS = ("/tmp", "/work", "/root", "/home", "ragchat-upload")
PARSE_TIMEOUT_S = 60.0
HEALTH_BOUND_S = 1.0  # what the issue asks of /health while a bad file is parsed
RSS_GROWTH_BOUND = 400 * MB  # the 1.1 GiB bomb alone would pass it; parsing in-process grew the app by GBs


class HealthWatch:
    """Polls /health in a thread; records the slowest answer and the server process's peak RSS."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.slowest_s = 0.0
        self.answers = 0
        self.failures: list[str] = []
        self._process = psutil.Process()  # live_app serves the app from this process
        self.baseline_rss = self._process.memory_info().rss
        self.peak_rss = self.baseline_rss

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    status = client.get(f"{self._url}/health").status_code
                    if status != 200:
                        self.failures.append(f"status {status}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                self.slowest_s = max(self.slowest_s, time.monotonic() - started)
                self.answers += 1
                self.peak_rss = max(self.peak_rss, self._process.memory_info().rss)
                self._stop.wait(0.1)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("parse-isolation") / "data"
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=data_dir, parse_timeout_s=PARSE_TIMEOUT_S, auth="off", host="127.0.0.1"
    )
    with live_app(settings) as url:
        yield url


def upload(url: str, files: list[tuple[str, bytes]]) -> httpx.Response:
    return httpx.post(
        f"{url}/api/documents", files=[("files", (name, data)) for name, data in files], timeout=300
    )


def test_hostile_files_are_skipped_with_their_limit_while_health_answers(app_url: str) -> None:
    hostile = {
        "bomb.docx": (docx_bomb(1100 * MB), "RAGCHAT_MAX_PART_MB"),
        "stream-bomb.pdf": (pdf_with_flate_stream(200 * MB), "RAGCHAT_MAX_PART_MB"),
        "laughs.docx": (docx_with_entities(), "not a readable file"),
        "cut.docx": (docx_with_malformed_xml(), "malformed XML"),
    }
    paragraphs = docx_of_empty_paragraphs(40_000, "Forty thousand empty paragraphs precede this line.")
    with HealthWatch(app_url) as watch:
        responses = [
            upload(
                app_url,
                [
                    ("a.md", TOPICS["volcanoes.md"].encode()),
                    (name, data),
                    ("b.txt", TOPICS["sourdough.txt"].encode()),
                ],
            )
            for name, (data, _) in hostile.items()
        ]
        many = upload(app_url, [("paragraphs.docx", paragraphs)])
    for (name, (_, expected)), response in zip(hostile.items(), responses, strict=True):
        assert response.status_code == 200, response.text
        results = {r["filename"]: r for r in response.json()["results"]}
        assert results[name]["status"] == "skipped" and results[name]["document"] is None
        reason = results[name]["reason"]
        assert name in reason and expected in reason, reason
        assert not any(server in reason for server in SERVER_PATHS), reason
        assert {results["a.md"]["status"], results["b.txt"]["status"]} <= {"added", "unchanged"}
    assert many.status_code == 200, many.text
    (outcome,) = many.json()["results"]
    if outcome["status"] == "skipped":  # too slow for the time limit on this machine: skipped by it
        assert "RAGCHAT_PARSE_TIMEOUT_S" in outcome["reason"]
    else:
        assert outcome["status"] == "added" and outcome["chunks"] == 1
    assert not watch.failures and watch.answers > 0
    assert watch.slowest_s < HEALTH_BOUND_S, f"/health took {watch.slowest_s:.2f} s"
    assert watch.peak_rss - watch.baseline_rss < RSS_GROWTH_BOUND, (watch.baseline_rss, watch.peak_rss)
    stored = httpx.get(f"{app_url}/api/documents", timeout=30).json()["documents"]
    assert {Path(d["path"]).name for d in stored} >= {"a.md", "b.txt"}


async def test_a_parser_that_runs_out_of_memory_costs_only_its_file(tmp_path: Path) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path / "data",
        parse_workers=1,
        parse_memory_mb=256,
        max_part_mb=10_000,  # container checks out of the way: the memory limit is what stops the bomb
        max_uncompressed_mb=10_000,
        max_compression_ratio=1e9,
        auth="off",
        host="127.0.0.1",
    )
    files = [
        ("first.md", TOPICS["volcanoes.md"].encode()),
        ("bomb.docx", docx_bomb(300 * MB)),
        ("last.html", TOPICS["chess.html"].encode()),
    ]
    async with app_client(settings) as client:
        response = await client.post("/api/documents", files=[("files", item) for item in files])
    assert response.status_code == 200, response.text
    results = {r["filename"]: r for r in response.json()["results"]}
    assert results["first.md"]["status"] == results["last.html"]["status"] == "added"
    assert results["bomb.docx"]["status"] == "skipped"
    assert "RAGCHAT_PARSE_MEMORY_MB" in results["bomb.docx"]["reason"]
