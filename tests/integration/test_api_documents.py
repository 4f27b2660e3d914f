"""The HTTP contract for documents, collections, search and health: the real app, model and SQLite."""

from __future__ import annotations

import gc
import weakref
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from ragchat.api.app import create_app
from ragchat.config import Settings
from tests.support.app import app_client
from tests.support.sample_files import TOPICS, docx_bytes, pdf_bytes

pytestmark = pytest.mark.asyncio(loop_scope="session")

SEARCH_KEYS = {"rank", "score", "chunk_id", "document_id", "document", "heading", "text", "start", "end"}
DOCUMENT_KEYS = {
    "id",
    "collection",
    "path",
    "title",
    "chunk_count",
    "char_count",
    "content_hash",
    "created_at",
}


@pytest.fixture(scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=tmp_path_factory.mktemp("api") / "data", auth="off", host="127.0.0.1"
    )
    async with app_client(settings) as http:
        yield http


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code"}
    assert error["code"] == code
    assert error["message"]
    return error


async def upload(
    client: httpx.AsyncClient, files: dict[str, bytes], collection: str | None
) -> httpx.Response:
    """POST the files; once the upload is accepted (202), the answer of GET /api/jobs/{id} when done."""
    data = {"collection": collection} if collection else {}
    response = await client.post(
        "/api/documents", files=[("files", (name, body)) for name, body in files.items()], data=data
    )
    if response.status_code != 202:
        return response
    job = response.headers["location"]
    assert job == f"/api/jobs/{response.json()['id']}"
    while response.json()["status"] != "done":
        await anyio.sleep(0.1)
        response = await client.get(job)
    return response


async def test_upload_several_files_of_every_type(client: httpx.AsyncClient) -> None:
    files = {name: text.encode() for name, text in TOPICS.items()}
    files["photosynthesis.pdf"] = pdf_bytes(
        ["Photosynthesis turns light, water and carbon dioxide into sugar."]
    )
    files["tides.docx"] = docx_bytes("Tides", ["The Moon's gravity pulls the oceans into two tidal bulges."])
    response = await upload(client, files, "mixed")
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["filename"] for r in results] == list(files)
    for result in results:
        assert result["status"] == "added", result
        assert result["reason"] is None
        assert result["chunks"] == result["document"]["chunk_count"] > 0
        assert set(result["document"]) == DOCUMENT_KEYS
        assert result["document"]["collection"] == "mixed"
        assert result["document"]["path"] == result["filename"]

    listed = (await client.get("/api/documents", params={"collection": "mixed"})).json()["documents"]
    assert sorted(d["path"] for d in listed) == sorted(files)
    assert "mixed" in [c["name"] for c in (await client.get("/api/collections")).json()["collections"]]

    hits = (
        await client.post("/api/search", json={"query": "tidal bulges gravity", "collection": "mixed"})
    ).json()
    assert hits["results"][0]["document"] == "tides.docx"
    hits = (
        await client.post("/api/search", json={"query": "light into sugar", "collection": "mixed"})
    ).json()
    assert hits["results"][0]["document"] == "photosynthesis.pdf"


async def test_reupload_is_idempotent_and_changes_replace(client: httpx.AsyncClient) -> None:
    first = (await upload(client, {"note.md": b"# Note\n\nThe harbour opens at six."}, "idem")).json()[
        "results"
    ][0]
    again = (await upload(client, {"note.md": b"# Note\n\nThe harbour opens at six."}, "idem")).json()[
        "results"
    ][0]
    assert again["status"] == "unchanged"
    assert again["document"]["id"] == first["document"]["id"]
    changed = (await upload(client, {"note.md": b"# Note\n\nThe harbour opens at nine."}, "idem")).json()
    replaced = changed["results"][0]
    assert replaced["status"] == "replaced"
    assert replaced["document"]["id"] == first["document"]["id"]
    assert replaced["document"]["content_hash"] != first["document"]["content_hash"]
    documents = (await client.get("/api/documents", params={"collection": "idem"})).json()["documents"]
    assert len(documents) == 1
    hits = (
        await client.post("/api/search", json={"query": "harbour", "collection": "idem", "mode": "keyword"})
    ).json()
    assert [hit["text"] for hit in hits["results"]] == ["# Note\n\nThe harbour opens at nine."]


async def test_search_contract_and_modes(client: httpx.AsyncClient) -> None:
    await upload(client, {name: text.encode() for name, text in TOPICS.items()}, "search")
    for mode in ("hybrid", "vector", "keyword"):
        response = await client.post(
            "/api/search", json={"query": "sourdough starter", "k": 2, "collection": "search", "mode": mode}
        )
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert 1 <= len(results) <= 2
        assert [r["rank"] for r in results] == list(range(1, len(results) + 1))
        for result in results:
            assert set(result) == SEARCH_KEYS
        assert results[0]["document"] == "sourdough.txt"
        assert results[0]["end"] > results[0]["start"] >= 0
    no_hits = await client.post("/api/search", json={"query": "sourdough"})  # default collection is empty
    assert no_hits.json() == {"results": []}


async def test_search_rejects_bad_requests_in_the_error_shape(client: httpx.AsyncClient) -> None:
    assert_error(await client.post("/api/search", json={"query": ""}), 422, "invalid_request")
    assert_error(await client.post("/api/search", json={"query": "x", "k": 500}), 422, "invalid_request")
    assert_error(
        await client.post("/api/search", json={"query": "x", "mode": "fuzzy"}), 422, "invalid_request"
    )
    error = assert_error(
        await client.post("/api/search", json={"query": "x", "collection": "no-such"}),
        404,
        "collection_not_found",
    )
    assert "no-such" in error["message"]
    assert_error(
        await client.post("/api/search", json={"query": "x", "collection": "../x"}), 400, "invalid_collection"
    )


async def test_delete_removes_the_document_everywhere(client: httpx.AsyncClient) -> None:
    body = b"Quokkas are small marsupials that live on Rottnest Island."
    result = (await upload(client, {"quokka.txt": body}, "del")).json()["results"][0]
    document_id = result["document"]["id"]
    search = {"query": "quokka marsupial", "collection": "del"}
    assert (await client.post("/api/search", json=search)).json()["results"][0]["document_id"] == document_id

    assert (await client.delete(f"/api/documents/{document_id}")).status_code == 204
    assert_error(await client.delete(f"/api/documents/{document_id}"), 404, "document_not_found")
    assert (await client.get("/api/documents", params={"collection": "del"})).json() == {"documents": []}
    listed = {c["name"]: c for c in (await client.get("/api/collections")).json()["collections"]}
    assert listed["del"]["documents"] == 0  # the collection stays (DELETE /api/collections removes it)
    for mode in ("keyword", "vector"):
        response = await client.post("/api/search", json={**search, "mode": mode, "collection": "mixed"})
        assert all(hit["document_id"] != document_id for hit in response.json()["results"])


async def test_upload_request_errors(client: httpx.AsyncClient) -> None:
    assert_error(await client.post("/api/documents", json={"files": []}), 400, "invalid_multipart")
    assert_error(
        await client.post("/api/documents", data={"collection": "x"}, files={}), 400, "invalid_multipart"
    )
    no_files = await client.post(
        "/api/documents",
        files=[("collection", (None, b"x"))],  # a multipart form with no file part
    )
    assert_error(no_files, 400, "no_files")
    assert_error(await upload(client, {"a.md": b"# A\n\ntext"}, "bad name!"), 400, "invalid_collection")
    wrong_field = await client.post("/api/documents", files=[("file", ("a.md", b"# A"))])
    assert_error(wrong_field, 400, "invalid_multipart")
    duplicate = await client.post(
        "/api/documents", files=[("files", ("a.md", b"one")), ("files", ("a.md", b"two"))]
    )
    assert_error(duplicate, 400, "duplicate_filename")


async def test_health_and_openapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}  # liveness only
    health = (await client.get("/api/health")).json()
    assert health["status"] == "ok"
    assert health["version"]
    listed = (await client.get("/api/documents")).json()["documents"]
    assert health["documents"] == len(listed)
    assert set(health["llm"]) == {"backend", "model", "reachable"}
    assert health["llm"]["reachable"] is None  # no request has gone to the LLM yet

    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert paths["/api/documents"]["post"]["summary"] == "Upload documents"
    body = paths["/api/documents"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["properties"]["files"]["type"] == "array"
    for path, method in (
        ("/api/documents", "get"),
        ("/api/collections", "get"),
        ("/api/documents/{document_id}", "delete"),
        ("/api/search", "post"),
        ("/health", "get"),
        ("/api/health", "get"),
    ):
        assert paths[path][method]["summary"]
    assert "SearchResponse" in spec["components"]["schemas"]


async def test_a_stopped_app_lets_go_of_its_services(tmp_path_factory: pytest.TempPathFactory) -> None:
    """FastAPI's module-level caches keep every app's route functions, so an app object outlives its stop;
    what it held (the embedding model, the store) must not, or every app a process builds stays in memory."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=tmp_path_factory.mktemp("stopped") / "data", auth="off", host="127.0.0.1"
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        services = weakref.ref(app.state.services)
        embedder = weakref.ref(app.state.services.embedder)
    gc.collect()
    assert services() is None and embedder() is None
