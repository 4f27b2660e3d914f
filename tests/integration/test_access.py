"""Identity and access on the real app (uvicorn on a socket, real SQLite, real vLLM, the `openai` client,
the `ragchat` CLI acting on the same data directory while the app runs).

The route matrix enumerates every route from the app itself: a route added later without a declared access
level, or without an example request below, fails `test_route_matrix`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from sqlalchemy import update
from typer.testing import CliRunner

from ragchat.api.app import create_app
from ragchat.api.auth import declared_routes
from ragchat.cli.main import app as cli_app
from ragchat.config import Settings
from ragchat.core.access import AccessService, Principal
from ragchat.core.conversations import ConversationService, NewTurn, new_id
from ragchat.infra.conversations import ConversationStore
from ragchat.infra.db import open_database
from ragchat.infra.db.schema import api_keys
from ragchat.infra.identity import IdentityStore
from tests.support.vllm import VllmServer, free_port

ADMIN_PASSWORD = "admin-password-for-tests-0"
ALICE_PASSWORD = "alice-password-for-tests-1"
SHARED_TEXT = b"# Otters\n\nSea otters hold hands while they sleep so that they do not drift apart."


class SecretsInLogs(logging.Handler):
    """Keeps every log record written while the module's app runs (DEBUG and up, uvicorn's access log
    too), except the test's own HTTP clients' header dumps (httpcore, openai): they hold what they send."""

    CLIENT_LOGGERS = ("httpcore", "openai")

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(self.CLIENT_LOGGERS):
            self.lines.append(self.format(record))


@dataclass
class World:
    url: str
    settings: Settings
    cli: Callable[..., str]
    keys: dict[str, str]  # principal -> Authorization header value (absent: anonymous)
    secrets: list[str] = field(default_factory=list)  # every key, password and session id the tests used
    log: SecretsInLogs = field(default_factory=SecretsInLogs)
    made: dict[str, str] = field(default_factory=dict)  # things examples made once (name -> URL)

    def http(self, principal: str | None = None) -> httpx.Client:
        headers = {"Authorization": self.keys[principal]} if principal in self.keys else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)

    def new_key(self, user: str, scope: str = "read") -> tuple[str, str]:
        """(key, id) of a fresh key made with the CLI."""
        import json

        made = json.loads(self.cli("keys", "create", "--user", user, "--scope", scope, "--json"))
        self.secrets.append(made["key"])
        return made["key"], made["id"]


@pytest.fixture(scope="module")
def world(vllm_server: VllmServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("access") / "data"
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=data_dir,
        auth="on",
        host="127.0.0.1",
        admin_password=ADMIN_PASSWORD,
        metrics_token="metrics-token-for-tests-0123",
        vllm_base_url=vllm_server.base_url,
        vllm_model=vllm_server.model,
        llm_max_tokens=4,
        login_attempts=5,
    )
    env = {"RAGCHAT_DATA_DIR": str(data_dir)}
    runner = CliRunner()

    def cli(*args: str, code: int = 0, stdin: str | None = None) -> str:
        result = runner.invoke(cli_app, list(args), env=env, input=stdin)
        assert result.exit_code == code, f"ragchat {' '.join(args)}: exit {result.exit_code}\n{result.output}"
        return result.stdout

    log = SecretsInLogs()
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(log)
    root.setLevel(logging.DEBUG)
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_config=None, log_level="debug", access_log=True
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 180
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the app did not start"
        time.sleep(0.1)
    try:
        world = World(url=f"http://127.0.0.1:{port}", settings=settings, cli=cli, keys={}, log=log)
        world.secrets += [ADMIN_PASSWORD, ALICE_PASSWORD, "metrics-token-for-tests-0123"]
        cli("users", "add", "alice", "--password-stdin", stdin=ALICE_PASSWORD + "\n")
        cli("users", "add", "bob")  # key-only
        cli("users", "add", "carol")
        cli("users", "add", "dave")
        cli("groups", "add", "writers")
        cli("groups", "add-member", "writers", "carol")
        admin_key, _ = world.new_key("admin", "write")
        with world.http() as http:
            http.headers["Authorization"] = f"Bearer {admin_key}"
            uploaded = http.post(
                "/api/documents?wait=true",
                files={"files": ("otters.md", SHARED_TEXT)},
                data={"collection": "shared"},
            )
            assert uploaded.status_code == 200, uploaded.text
        cli("collections", "grant", "shared", "--user", "alice", "--read")
        cli("collections", "grant", "shared", "--group", "writers", "--write")
        revoked, revoked_id = world.new_key("alice")
        cli("keys", "revoke", revoked_id)
        expired, expired_id = world.new_key("alice")
        engine = open_database(settings.resolved_database_url)
        with engine.begin() as conn:
            past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="seconds")
            conn.execute(update(api_keys).where(api_keys.c.id == expired_id).values(expires_at=past))
        engine.dispose()
        world.keys.update(
            {
                "malformed": "Bearer rck_not-a-key",
                "revoked": f"Bearer {revoked}",
                "expired": f"Bearer {expired}",
                "read_no_grant": f"Bearer {world.new_key('bob')[0]}",
                "read_grant": f"Bearer {world.new_key('alice')[0]}",
                "write": f"Bearer {world.new_key('carol', 'write')[0]}",
                "admin": f"Bearer {admin_key}",
            }
        )
        yield world
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        root.removeHandler(log)
        root.setLevel(previous_level)


PRINCIPALS = ("anonymous", "malformed", "revoked", "expired", "read_no_grant", "read_grant", "write", "admin")
UNAUTHENTICATED = ("anonymous", "malformed", "revoked", "expired")
MEMBERS = ("read_no_grant", "read_grant", "write")
USERS = {"read_no_grant": "bob", "read_grant": "alice", "write": "carol", "admin": "admin"}


@dataclass
class Example:
    """One request per route: `make(world, principal)` returns (path, kwargs for httpx); `scoped` marks a
    request on collection `shared`; `expect` overrides the status the level implies for some principals."""

    make: Callable[[World, str], tuple[str, dict[str, Any]]]
    scoped: bool = False
    expect: dict[str, int] = field(default_factory=dict)


def fixed(path: str, **kwargs: Any) -> Callable[[World, str], tuple[str, dict[str, Any]]]:
    return lambda _world, _principal: (path, kwargs)


def _document_to_delete(world: World, principal: str) -> tuple[str, dict[str, Any]]:
    with world.http("admin") as http:
        body = http.post(
            "/api/documents?wait=true",
            files={"files": (f"gone-{principal}.md", f"# Gone\n\nTo delete, {principal}.".encode())},
            data={"collection": "shared"},
        ).json()
    return f"/api/documents/{body['results'][0]['document']['id']}", {}


def _carols_job(world: World, _principal: str) -> tuple[str, dict[str, Any]]:
    """A job of carol's (the `write` principal): hers to see, an admin's too, nobody else's."""
    if "carols_job" not in world.made:
        with world.http("write") as http:
            response = http.post(
                "/api/documents",
                files={"files": ("carols.md", b"# Carol\n\nCarol's notes.")},
                data={"collection": "shared"},
            )
            assert response.status_code == 202, response.text
            world.made["carols_job"] = response.headers["location"]
    return world.made["carols_job"], {}


def _collection_to_delete(world: World, principal: str) -> tuple[str, dict[str, Any]]:
    name = f"doomed-{principal}"
    world.cli("collections", "create", name)
    world.cli("collections", "grant", name, "--user", "alice", "--read")
    world.cli("collections", "grant", name, "--group", "writers", "--write")
    return f"/api/collections/{name}", {}


def _key_to_revoke(world: World, principal: str) -> tuple[str, dict[str, Any]]:
    _, key_id = world.new_key(USERS.get(principal, "admin"))
    return f"/api/keys/{key_id}", {}


def _user_to_delete(world: World, principal: str) -> tuple[str, dict[str, Any]]:
    name = f"leaver-{principal}"
    world.cli("users", "add", name)
    return f"/api/users/{name}", {}


def _grant_to_remove(world: World, _principal: str) -> tuple[str, dict[str, Any]]:
    world.cli("collections", "grant", "shared", "--user", "dave", "--read")
    return "/api/collections/shared/grants/user/dave", {}


def _conversation_of(world: World, principal: str, *, collection: str = "shared") -> tuple[str, str]:
    """(conversation id, turn id) of a one-turn conversation of the principal's user (admin's for callers
    who are not signed in), written to the database as the chat endpoint writes it."""
    engine = open_database(world.settings.resolved_database_url)
    try:
        user = IdentityStore(engine).user_by_name(USERS.get(principal, "admin"))
        assert user is not None
        turn = NewTurn(
            conversation_id=new_id(),
            turn_id=new_id(),
            question="Do otters hold hands?",
            answer="Yes [1].",
            model="smollm2",
            sources=[],
            prompt_chunks=[],
        )
        owner = Principal(name=user.name, role="member", auth="key", user_id=user.id)
        access = AccessService(
            IdentityStore(engine),
            session_hours=1,
            login_attempts=5,
            login_attempts_per_address=5,
            login_window_s=1,
        )
        ConversationService(ConversationStore(engine), access, retention_days=None).record_turn(
            owner, turn, collection=collection
        )
        return turn.conversation_id, turn.turn_id
    finally:
        engine.dispose()


def _own_conversation(suffix: str = "", **kwargs: Any) -> Callable[[World, str], tuple[str, dict[str, Any]]]:
    return lambda world, principal: (
        f"/api/conversations/{_conversation_of(world, principal)[0]}{suffix}",
        kwargs,
    )


def _own_turn(world: World, principal: str) -> tuple[str, dict[str, Any]]:
    conversation_id, turn_id = _conversation_of(world, principal)
    return f"/api/conversations/{conversation_id}/turns/{turn_id}/feedback", {"json": {"rating": "down"}}


def _shared_by_admin(world: World, _principal: str) -> tuple[str, dict[str, Any]]:
    conversation_id, _ = _conversation_of(world, "admin")
    with world.http("admin") as http:
        token = http.post(f"/api/conversations/{conversation_id}/share").json()["token"]
    return f"/api/shared/{token}", {}


MANAGE_ONLY = {"read_no_grant": 404, "read_grant": 403, "write": 403}
NOT_CONFIGURED = dict.fromkeys(PRINCIPALS, 404)
EXAMPLES: dict[tuple[str, str], Example] = {
    ("GET", "/health"): Example(fixed("/health")),
    ("GET", "/"): Example(fixed("/")),
    ("GET", "/static"): Example(fixed("/static/app.css")),
    ("POST", "/api/auth/login"): Example(
        fixed("/api/auth/login", json={"username": "alice", "password": ALICE_PASSWORD})
    ),
    ("POST", "/api/auth/logout"): Example(fixed("/api/auth/logout")),
    ("GET", "/api/auth/me"): Example(fixed("/api/auth/me")),
    ("GET", "/api/auth/methods"): Example(fixed("/api/auth/methods")),
    # Single sign-on is not configured here: its routes answer 404 to everyone (tests/integration/test_sso_*).
    ("GET", "/api/auth/oidc/login"): Example(fixed("/api/auth/oidc/login"), expect=NOT_CONFIGURED),
    ("GET", "/api/auth/oidc/callback"): Example(
        fixed("/api/auth/oidc/callback", params={"state": "s", "code": "c"}), expect=NOT_CONFIGURED
    ),
    ("POST", "/api/auth/oidc/logout"): Example(fixed("/api/auth/oidc/logout")),
    ("GET", "/api/health"): Example(fixed("/api/health")),
    ("GET", "/api/status"): Example(fixed("/api/status", params={"window": 0})),
    ("GET", "/openapi.json"): Example(fixed("/openapi.json")),
    ("GET", "/docs"): Example(fixed("/docs")),
    ("GET", "/metrics"): Example(fixed("/metrics")),
    ("GET", "/api/keys"): Example(fixed("/api/keys")),
    ("POST", "/api/keys"): Example(fixed("/api/keys", json={"scope": "read", "name": "matrix"})),
    ("DELETE", "/api/keys/{key_id}"): Example(_key_to_revoke),
    ("GET", "/api/users"): Example(fixed("/api/users")),
    ("DELETE", "/api/users/{name}"): Example(_user_to_delete),
    ("GET", "/api/groups"): Example(fixed("/api/groups")),
    ("GET", "/api/audit"): Example(fixed("/api/audit")),
    ("GET", "/api/collections"): Example(fixed("/api/collections")),
    ("POST", "/api/collections"): Example(lambda _w, p: ("/api/collections", {"json": {"name": f"new-{p}"}})),
    ("DELETE", "/api/collections/{name}"): Example(_collection_to_delete, scoped=True, expect={"write": 403}),
    ("GET", "/api/collections/{name}/grants"): Example(
        fixed("/api/collections/shared/grants"), scoped=True, expect=MANAGE_ONLY
    ),
    ("PUT", "/api/collections/{name}/grants"): Example(
        fixed("/api/collections/shared/grants", json={"kind": "user", "name": "dave", "permission": "read"}),
        scoped=True,
        expect={"write": 403},
    ),
    ("DELETE", "/api/collections/{name}/grants/{kind}/{grantee}"): Example(
        _grant_to_remove, scoped=True, expect={"write": 403}
    ),
    ("GET", "/api/documents"): Example(fixed("/api/documents", params={"collection": "shared"}), scoped=True),
    ("POST", "/api/documents"): Example(
        lambda _w, p: (
            "/api/documents",
            {"files": {"files": (f"up-{p}.md", b"# Up\n\nUploaded.")}, "data": {"collection": "shared"}},
        ),
        scoped=True,
    ),
    ("DELETE", "/api/documents/{document_id}"): Example(_document_to_delete, scoped=True),
    ("GET", "/api/jobs"): Example(fixed("/api/jobs")),
    ("GET", "/api/jobs/{job_id}"): Example(_carols_job, expect={"read_no_grant": 404, "read_grant": 404}),
    ("POST", "/api/search"): Example(
        fixed("/api/search", json={"query": "otters", "collection": "shared"}), scoped=True
    ),
    ("GET", "/api/conversations"): Example(fixed("/api/conversations")),
    ("GET", "/api/conversations/{conversation_id}"): Example(_own_conversation()),
    ("PATCH", "/api/conversations/{conversation_id}"): Example(_own_conversation(json={"title": "Otters"})),
    ("DELETE", "/api/conversations/{conversation_id}"): Example(_own_conversation()),
    ("POST", "/api/conversations/{conversation_id}/share"): Example(_own_conversation("/share")),
    ("DELETE", "/api/conversations/{conversation_id}/share"): Example(_own_conversation("/share")),
    ("PUT", "/api/conversations/{conversation_id}/turns/{turn_id}/feedback"): Example(_own_turn),
    ("GET", "/api/shared/{token}"): Example(_shared_by_admin, scoped=True),
    ("GET", "/shared/{token}"): Example(fixed("/shared/any-token")),
    ("GET", "/v1/models"): Example(fixed("/v1/models")),
    ("POST", "/v1/chat/completions"): Example(
        fixed(
            "/v1/chat/completions",
            json={
                "model": "ragchat/shared",
                "messages": [{"role": "user", "content": "Otters?"}],
                "max_tokens": 2,
            },
        ),
        scoped=True,
    ),
}


def expected_status(level: str, example: Example, principal: str) -> int | None:
    """The status the route's level implies (None: any 2xx)."""
    if principal in example.expect:
        return example.expect[principal]
    if level == "public":
        return None
    if principal in UNAUTHENTICATED:
        return 401
    if level in ("user", "read"):
        return 404 if (example.scoped and principal == "read_no_grant") else None
    if level == "write":
        return 403 if principal in ("read_no_grant", "read_grant") else None
    return None if principal == "admin" else 403  # admin, metrics


def test_route_matrix(world: World) -> None:
    routes = list(declared_routes(create_app(world.settings)))
    undeclared = [path for path, _, level in routes if level is None]
    assert not undeclared, f"routes without an access level: {undeclared}"
    failures = []
    for path, methods, level in routes:
        for method in sorted(methods) or ["GET"]:
            if method == "HEAD":
                continue
            example = EXAMPLES.get((method, path))
            assert example is not None, f"add an example request for {method} {path} to EXAMPLES"
            assert level is not None
            for principal in PRINCIPALS:
                url, kwargs = example.make(world, principal)
                with world.http(principal) as http:
                    response = http.request(method, url, **kwargs)
                expected = expected_status(level, example, principal)
                ok = (
                    200 <= response.status_code < 300
                    if expected is None
                    else response.status_code == expected
                )
                if not ok:
                    failures.append(
                        f"{method} {url} as {principal}: {response.status_code} {response.text[:150]}"
                    )
                if response.status_code == 401:
                    assert response.json()["error"]["code"] == "unauthenticated"
    assert not failures, "\n".join(failures)


def test_jobs_are_seen_by_their_owner_and_admins(world: World) -> None:
    carols, _ = _carols_job(world, "write")
    with world.http("write") as http:
        own = http.get("/api/jobs").json()["jobs"]
    with world.http("read_grant") as http:
        alices = http.get("/api/jobs").json()["jobs"]
        assert http.get(carols).status_code == 404
    with world.http("admin") as http:
        everyone = http.get("/api/jobs", params={"limit": 500}).json()["jobs"]
    assert own and {job["owner"] for job in own} == {"carol"}
    assert alices == []  # alice uploaded nothing (her key is read-only)
    assert carols.rsplit("/", 1)[1] in {job["id"] for job in everyone}
    assert {"carol", "admin"} <= {job["owner"] for job in everyone}


def test_unreadable_collection_answers_exactly_like_a_missing_one(world: World) -> None:
    world.cli("collections", "create", "private")
    with world.http("read_no_grant") as http:
        hidden = http.post("/api/search", json={"query": "x", "collection": "private"})
        missing = http.post("/api/search", json={"query": "x", "collection": "no-such-thing"})
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["code"] == missing.json()["error"]["code"] == "collection_not_found"
    assert hidden.json()["error"]["message"].replace("private", "X") == missing.json()["error"][
        "message"
    ].replace("no-such-thing", "X")


def test_openai_client_sees_only_readable_collections(world: World) -> None:
    alice = world.keys["read_grant"].removeprefix("Bearer ")
    bob = world.keys["read_no_grant"].removeprefix("Bearer ")
    with openai.OpenAI(base_url=f"{world.url}/v1", api_key=alice, max_retries=0) as client:
        ids = {model.id for model in client.models.list()}
        assert "ragchat/shared" in ids and "ragchat/private" not in ids
        assert "ragchat" not in ids  # the default collection is admin-managed and not shared with alice
        answer = client.chat.completions.create(
            model="ragchat/shared",
            messages=[{"role": "user", "content": "Do otters hold hands?"}],
            max_tokens=2,
        )
        assert answer.choices[0].message.content is not None
    with openai.OpenAI(base_url=f"{world.url}/v1", api_key=bob, max_retries=0) as client:
        assert list(client.models.list()) == []
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(
                model="ragchat/shared", messages=[{"role": "user", "content": "Otters?"}], max_tokens=2
            )
    with (
        openai.OpenAI(base_url=f"{world.url}/v1", api_key="rck_wrong", max_retries=0) as client,
        pytest.raises(openai.AuthenticationError),
    ):
        client.models.list()


def test_cli_changes_count_at_the_next_request(world: World) -> None:
    key, key_id = world.new_key("dave")
    search = {"query": "otters", "collection": "shared"}
    with world.http() as http:
        http.headers["Authorization"] = f"Bearer {key}"
        assert http.post("/api/search", json=search).status_code == 404
        world.cli("collections", "grant", "shared", "--user", "dave", "--read")
        assert http.post("/api/search", json=search).status_code == 200
        world.cli("collections", "revoke", "shared", "--user", "dave")
        assert http.post("/api/search", json=search).status_code == 404
        world.cli("collections", "grant", "shared", "--user", "dave", "--read")
        world.cli("keys", "revoke", key_id)
        assert http.post("/api/search", json=search).status_code == 401
        other, _ = world.new_key("dave")
        http.headers["Authorization"] = f"Bearer {other}"
        assert http.get("/api/auth/me").status_code == 200
        world.cli("users", "disable", "dave")
        assert http.get("/api/auth/me").status_code == 401
        world.cli("users", "enable", "dave")


def test_keys_are_stored_as_hashes_and_listed_without_secrets(world: World) -> None:
    listed = world.cli("keys", "list", "--json")
    for secret in world.secrets:
        assert secret not in listed
    database = (world.settings.data_dir / "ragchat.sqlite3").read_bytes()
    key = world.keys["write"].removeprefix("Bearer ")
    assert key.encode() not in database and key.rsplit("_", 1)[1].encode() not in database


def _login(http: httpx.Client, name: str, password: str) -> httpx.Response:
    return http.post("/api/auth/login", json={"username": name, "password": password})


def test_login_failures_look_alike_and_are_rate_limited(world: World) -> None:
    with world.http() as http:
        wrong = _login(http, "carol", "not-her-password-at-all")  # carol has no password: keys only
        unknown = _login(http, "nobody-here", "not-her-password-at-all")
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.json() == unknown.json()
        assert wrong.json()["error"]["code"] == "invalid_credentials"
        for _ in range(4):
            assert _login(http, "carol", "still-wrong-password").status_code == 401
        throttled = _login(http, "carol", "still-wrong-password")
        assert throttled.status_code == 429
        assert throttled.json()["error"]["code"] == "too_many_attempts"
        assert 0 < int(throttled.headers["Retry-After"]) <= 900
    events = world.cli("audit", "--json")
    assert events.count('"login_failed"') >= 6


def test_session_cookie_and_csrf(world: World) -> None:
    with world.http() as http:
        response = _login(http, "alice", ALICE_PASSWORD)
        assert response.status_code == 200
        cookie = response.headers["set-cookie"]
        session = http.cookies["ragchat_session"]
        csrf = response.json()["csrf_token"]
        world.secrets += [session, csrf]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
        assert response.json()["user"] == {"name": "alice", "role": "member", "groups": [], "auth": "session"}
        me = http.get("/api/auth/me").json()
        assert me["csrf_token"] == csrf and me["user"]["auth"] == "session"

        before = http.get("/api/keys").json()["keys"]
        no_token = http.post("/api/keys", json={"scope": "read"})
        foreign = http.post(
            "/api/keys",
            json={"scope": "read"},
            headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"},
        )
        form = http.post(
            "/api/documents",
            files={"files": ("evil.md", b"# Evil")},
            data={"collection": "shared"},
            headers={"Origin": "https://evil.example"},
        )
        for refused in (no_token, foreign, form):
            assert refused.status_code == 403
            assert refused.json()["error"]["code"] == "csrf_failed"
        assert http.get("/api/keys").json()["keys"] == before
        made = http.post(
            "/api/keys", json={"scope": "read"}, headers={"X-CSRF-Token": csrf, "Origin": world.url}
        )
        assert made.status_code == 201
        world.secrets.append(made.json()["key"])

        out = http.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})
        assert out.status_code == 204
        http.cookies.set("ragchat_session", session)  # a stolen copy of the ended session
        assert http.get("/api/auth/me").status_code == 401


def test_security_headers_and_closed_cors(world: World) -> None:
    with world.http() as http:
        for path in ("/health", "/", "/api/auth/me"):
            response = http.get(path, headers={"Origin": "https://evil.example"})
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "no-referrer"
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            assert "access-control-allow-origin" not in response.headers
        assert http.get("/health").json() == {"status": "ok"}
        scrape = http.get("/metrics", headers={"Authorization": "Bearer metrics-token-for-tests-0123"})
        assert scrape.status_code == 200 and "ragchat_" in scrape.text


def test_delete_collection_removes_every_trace(world: World) -> None:
    with world.http("admin") as http:
        http.post(
            "/api/documents?wait=true",
            files={"files": ("a.md", b"# A\n\nAardvarks.")},
            data={"collection": "gone"},
        )
        world.cli("collections", "grant", "gone", "--user", "alice", "--read")
        assert http.delete("/api/collections/gone").status_code == 204
        assert http.get("/api/documents", params={"collection": "gone"}).status_code == 404
        assert http.post("/api/search", json={"query": "aardvarks", "collection": "gone"}).status_code == 404
        assert "gone" not in world.cli("collections", "list", "--json")
        http.post(
            "/api/documents?wait=true",
            files={"files": ("b.md", b"# B\n\nBadgers.")},
            data={"collection": "gone"},
        )
        hits = http.post("/api/search", json={"query": "aardvarks", "collection": "gone", "mode": "keyword"})
        assert hits.json()["results"] == []  # nothing of the old collection came back with the new one
    with world.http("read_grant") as http:
        assert http.get("/api/documents", params={"collection": "gone"}).status_code == 404  # grant gone too
    audit = world.cli("audit", "--json")
    assert '"collection_deleted"' in audit and '"document_added"' in audit and '"key_revoked"' in audit


def test_auth_off_needs_a_loopback_address(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        Settings(_env_file=None, data_dir=tmp_path, auth="off", host="0.0.0.0")  # type: ignore[call-arg]
    result = CliRunner().invoke(
        cli_app, ["serve", "--host", "0.0.0.0"], env={"RAGCHAT_AUTH": "off", "RAGCHAT_HOST": "127.0.0.1"}
    )
    assert result.exit_code == 2 and "loopback" in result.output


def test_first_start_writes_a_private_one_time_password(make_settings: Callable[..., Settings]) -> None:
    from ragchat.container import _prepare_access, initial_admin_password_file

    settings = make_settings(auth="on", host="0.0.0.0")
    access = _prepare_access(settings)
    again = _prepare_access(settings)  # a second worker finds the admin made
    try:
        path = initial_admin_password_file(settings)
        assert path.stat().st_mode & 0o777 == 0o600
        password = path.read_text().strip()
        assert access.login("admin", password, "127.0.0.1").principal.is_admin
        assert [user.name for user in again.list_users(access.login("admin", password, None).principal)] == [
            "admin"
        ]
    finally:
        access.identity.engine.dispose()
        again.identity.engine.dispose()


def test_no_secret_in_any_log_line(world: World) -> None:
    """Runs last in this module: every log line the app and uvicorn wrote during these tests."""
    assert world.log.lines, "nothing was logged: the capture is broken"
    assert any("/api/search" in line for line in world.log.lines)  # uvicorn's access log was captured
    keys = [value.removeprefix("Bearer ") for value in world.keys.values()]
    for line in world.log.lines:
        for secret in (*world.secrets, *keys):
            assert secret not in line, f"a secret is in the log: {line[:200]}"
