"""Bad input gets a clear error and loses nothing: over HTTP uploads and in folder ingests from the CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from typer.testing import CliRunner

from ragchat.cli.main import app as cli_app
from ragchat.config import Settings
from tests.support.app import app_client
from tests.support.sample_files import (
    TOPICS,
    binary_bytes,
    corrupt_pdf_bytes,
    encrypted_pdf_bytes,
    pdf_bytes,
    write,
)

on_session_loop = pytest.mark.asyncio(loop_scope="session")  # the app fixture lives on the session loop

MAX_FILE_MB = 0.05  # 52 kB: small enough to test the limit cheaply
FRENCH = (
    "Le café du coin sert une crème brûlée délicieuse. La façade de l'hôtel est repeinte chaque printemps, "
    "et les clients commandent une piña colada en terrasse.\n"
)
BAD_FILES: dict[str, tuple[bytes, str]] = {
    # file name: (content, a word the skip reason must contain)
    "corrupt.pdf": (corrupt_pdf_bytes(), "not a readable PDF"),
    "locked.pdf": (encrypted_pdf_bytes(["Top secret plans."]), "password"),
    "program.txt": (binary_bytes(), "binary"),
    "empty.txt": (b"", "empty"),
    "blank.md": (b"   \n\n  \t\n", "empty"),
}
UNSUPPORTED: dict[str, tuple[bytes, str]] = {
    # file name: (content, the part's Content-Type)
    "setup.exe": (b"MZ\x90\x00" + binary_bytes(), "application/octet-stream"),
    "no_suffix": (b"plain words", "text/plain"),
    "photo.md": (b"\x89PNG\r\n\x1a\n", "image/png"),
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bad-input") / "data"


@pytest.fixture(scope="module")
async def client(data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=data_dir, max_file_mb=MAX_FILE_MB, auth="off", host="127.0.0.1"
    )
    async with app_client(settings) as http:
        good = await http.post(
            "/api/documents?wait=true", files=[("files", ("good.md", TOPICS["volcanoes.md"].encode()))]
        )
        assert good.json()["results"][0]["status"] == "added"
        yield http


async def snapshot(client: httpx.AsyncClient) -> dict[str, Any]:
    documents = (await client.get("/api/documents")).json()["documents"]
    search = await client.post("/api/search", json={"query": "magma eruption lava", "k": 1})
    return {"documents": documents, "top": search.json()["results"][0]["document"]}


@pytest.mark.parametrize("name", list(BAD_FILES))
@on_session_loop
async def test_bad_upload_is_skipped_with_its_reason(client: httpx.AsyncClient, name: str) -> None:
    before = await snapshot(client)
    content, expected = BAD_FILES[name]
    response = await client.post("/api/documents?wait=true", files=[("files", (name, content))])
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    assert result["status"] == "skipped"
    assert result["document"] is None and result["chunks"] == 0
    assert expected in result["reason"], result["reason"]
    assert await snapshot(client) == before


@on_session_loop
async def test_bad_files_do_not_stop_good_ones_in_the_same_upload(client: httpx.AsyncClient) -> None:
    files = [("files", (name, content)) for name, (content, _) in BAD_FILES.items()]
    files.insert(3, ("files", ("cells.pdf", pdf_bytes(["Mitochondria are the powerhouse of the cell."]))))
    results = (await client.post("/api/documents?wait=true", files=files)).json()["results"]
    statuses = {r["filename"]: r["status"] for r in results}
    assert statuses.pop("cells.pdf") == "added"
    assert set(statuses.values()) == {"skipped"}
    top = (await client.post("/api/search", json={"query": "powerhouse of the cell", "k": 1})).json()
    assert top["results"][0]["document"] == "cells.pdf"


@on_session_loop
async def test_non_utf8_text_is_decoded_not_garbled(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/documents?wait=true", files=[("files", ("menu.txt", (FRENCH * 3).encode("cp1252")))]
    )
    (result,) = response.json()["results"]
    assert result["status"] == "added", result
    hits = (
        await client.post("/api/search", json={"query": "crème brûlée", "k": 1, "mode": "keyword"})
    ).json()
    assert hits["results"][0]["document"] == "menu.txt"
    assert "crème brûlée" in hits["results"][0]["text"]


@pytest.mark.parametrize("name", list(UNSUPPORTED))
@on_session_loop
async def test_unsupported_types_are_refused_from_the_part_headers(
    client: httpx.AsyncClient, name: str
) -> None:
    """415 with the supported types, decided from the part's headers: the part's body is never read, and
    the good file sent before it is not stored either."""
    before = await snapshot(client)
    content, content_type = UNSUPPORTED[name]
    boundary = "ragchat-test-boundary"
    good = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="fine.md"\r\n'
        f"Content-Type: text/markdown\r\n\r\n# Fine\n\nA fine file.\r\n"
    ).encode()
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    megabytes_sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal megabytes_sent
        yield good + head + content
        for _ in range(20):  # 20 MB that the server has no reason to read
            megabytes_sent += 1
            yield b"\0" * 1024 * 1024
        yield f"\r\n--{boundary}--\r\n".encode()

    response = await client.post(
        "/api/documents",
        content=body(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 415, response.text
    error = response.json()["error"]
    assert error["code"] == "unsupported_file_type"
    assert name in error["message"] and ".pdf" in error["message"] and ".docx" in error["message"]
    assert megabytes_sent <= 1, f"the server read {megabytes_sent} MB of a part it had refused"
    assert await snapshot(client) == before


@on_session_loop
async def test_too_large_upload_is_refused_and_nothing_is_stored(client: httpx.AsyncClient) -> None:
    before = await snapshot(client)
    big = b"# Big\n\n" + b"lorem ipsum dolor sit amet " * 4000  # ~108 kB > 52 kB
    response = await client.post(
        "/api/documents",
        files=[("files", ("small.md", b"# Small\n\nfits easily")), ("files", ("big.md", big))],
    )
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "file_too_large"
    assert "big.md" in error["message"] and "RAGCHAT_MAX_FILE_MB" in error["message"]
    assert await snapshot(client) == before


def raw_upload(filename: bytes, content: bytes) -> tuple[bytes, dict[str, str]]:
    """A multipart body written byte by byte, for names that HTTP clients would escape or drop."""
    boundary = b"ragchat-test-boundary"
    body = (
        b"--"
        + boundary
        + b'\r\nContent-Disposition: form-data; name="files"; filename="'
        + filename
        + b'"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + content + b"\r\n--" + boundary + b"--\r\n"
    )
    return body, {"content-type": f"multipart/form-data; boundary={boundary.decode()}"}


@pytest.mark.parametrize(
    "filename",
    [
        "../evil.md",
        "../../etc/cron.d/evil.md",
        "/etc/passwd.md",
        "/tmp/abs.md",
        "sub/dir.md",
        "..\\evil.md",
        "..",
    ],
)
@on_session_loop
async def test_unsafe_upload_names_are_refused(
    client: httpx.AsyncClient, data_dir: Path, filename: str
) -> None:
    before = await snapshot(client)
    response = await client.post(
        "/api/documents", files=[("files", (filename, b"# Evil\n\nwrite me anywhere"))]
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_filename"
    assert "name" in error["message"]
    assert await snapshot(client) == before
    assert not list(data_dir.parent.rglob("evil.md"))
    assert not await anyio.Path("/tmp/abs.md").exists()


@pytest.mark.parametrize("filename", [b"", b"   ", b"a\x01b.md", b"tab\there.md", b"../evil.md"])
@on_session_loop
async def test_unsafe_raw_upload_names_are_refused(client: httpx.AsyncClient, filename: bytes) -> None:
    before = await snapshot(client)
    body, headers = raw_upload(filename, b"# Evil\n\nwrite me anywhere")
    response = await client.post("/api/documents", content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_filename"
    assert await snapshot(client) == before


def test_folder_ingest_skips_bad_files_and_keeps_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    for name, (content, _) in BAD_FILES.items():
        write(folder / name, content)
    write(folder / "setup.exe", UNSUPPORTED["setup.exe"][0])
    write(folder / "no_suffix", UNSUPPORTED["no_suffix"][0])
    write(folder / "huge.md", b"# Huge\n\n" + b"word " * 20_000)
    write(folder / "nested" / "sourdough.txt", TOPICS["sourdough.txt"])
    write(folder / "chess.html", TOPICS["chess.html"])
    write(folder / "menu.txt", (FRENCH * 3).encode("cp1252"))
    runner = CliRunner()
    env = {"RAGCHAT_DATA_DIR": str(tmp_path / "data"), "RAGCHAT_MAX_FILE_MB": str(MAX_FILE_MB)}

    result = runner.invoke(cli_app, ["ingest", str(folder)], env=env)
    assert result.exit_code == 0, result.output
    for name in (*BAD_FILES, "setup.exe", "no_suffix"):
        assert name in result.output
    assert "huge.md" in result.output and "RAGCHAT_MAX_FILE_MB" in result.output
    listed = runner.invoke(cli_app, ["documents", "list", "--json"], env=env)
    paths = sorted(Path(line.split('"path": "')[1].split('"')[0]).name for line in listed.stdout.splitlines())
    assert paths == ["chess.html", "menu.txt", "sourdough.txt"]

    # A second ingest of only bad files fails clearly and leaves the stored documents as they were.
    again = runner.invoke(
        cli_app, ["ingest", str(folder / "corrupt.pdf"), str(folder / "program.txt")], env=env
    )
    assert again.exit_code == 1
    assert "no file could be ingested" in again.stderr
    assert runner.invoke(cli_app, ["documents", "list", "--json"], env=env).stdout == listed.stdout
