"""Saved conversations through the real app (uvicorn), real SQLite, the real embedding model and a real vLLM
CPU server, driven by the official `openai` client (`extra_body`) and plain HTTP, with authentication on:
a conversation continued over three turns by id, listed, renamed, rated, shared and deleted; another user
gets 404 on it; a share link works only for a reader of the collection; feedback export feeds `ragchat eval`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from typer.testing import CliRunner

from ragchat.cli.main import app as cli_app
from ragchat.config import Settings
from tests.support.live_app import live_app
from tests.support.vllm import VllmServer

pytestmark = [pytest.mark.llm]

HANDBOOK = Path(__file__).resolve().parents[1] / "data" / "chat_corpus"
ADMIN_PASSWORD = "admin-password-for-tests-0"
QUESTIONS = ("How do I rotate an API key?", "How long does the old key keep working?", "Who can do it?")


@dataclass
class World:
    url: str
    cli: Callable[..., str]
    keys: dict[str, str]  # user -> API key

    def http(self, user: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[user]}"} if user else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)

    def openai(self, user: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.keys[user], max_retries=0)


@pytest.fixture(scope="module")
def world(vllm_server: VllmServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("conversations") / "data"
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=data_dir,
        auth="on",
        host="127.0.0.1",
        admin_password=ADMIN_PASSWORD,
        default_collection="handbook",
        chunk_tokens=100,
        chunk_overlap_tokens=0,
        retrieval_k=3,
        vllm_base_url=vllm_server.base_url,
        vllm_model=vllm_server.model,
        llm_max_tokens=12,  # short answers: the CPU model is slow
        llm_temperature=0.0,
    )
    runner = CliRunner()

    def cli(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli_app, list(args), env={"RAGCHAT_DATA_DIR": str(data_dir)})
        assert result.exit_code == code, f"ragchat {' '.join(args)}: exit {result.exit_code}\n{result.output}"
        return result.stdout if code == 0 else result.output

    with live_app(settings) as url:
        keys: dict[str, str] = {}
        for user in ("alice", "bob", "carol"):
            cli("users", "add", user)
        for user in ("admin", "alice", "bob", "carol"):
            made = cli("keys", "create", "--user", user, "--scope", "write", "--json")
            keys[user] = json.loads(made)["key"]
        world = World(url=url, cli=cli, keys=keys)
        with world.http("admin") as http:
            files = [("files", (f.name, f.read_bytes())) for f in sorted(HANDBOOK.glob("*.md"))]
            uploaded = http.post("/api/documents?wait=true", files=files, data={"collection": "handbook"})
            assert uploaded.status_code == 200, uploaded.text
        for user in ("alice", "bob"):  # carol may not read the handbook
            cli("collections", "grant", "handbook", "--user", user, "--read")
        yield world


@pytest.fixture(scope="module")
def conversation(world: World) -> dict[str, Any]:
    """Alice's conversation: started with `store: true`, continued twice by id (once streaming)."""
    asked: list[dict[str, Any]] = []
    with world.openai("alice") as client:
        first = client.chat.completions.create(
            model="ragchat", messages=[{"role": "user", "content": QUESTIONS[0]}], extra_body={"store": True}
        )
        extra = first.model_extra or {}
        conversation_id = extra["conversation_id"]
        asked.append({"turn_id": extra["turn_id"], "answer": first.choices[0].message.content, **extra})
        stream = client.chat.completions.create(
            model="ragchat",
            messages=[{"role": "user", "content": QUESTIONS[1]}],
            stream=True,
            extra_body={"conversation_id": conversation_id},
        )
        chunks = list(stream)
        head, tail = chunks[0].model_extra or {}, chunks[-1].model_extra or {}
        assert head["conversation_id"] == conversation_id and head["turn_id"]
        assert "conversation_id" not in (chunks[1].model_extra or {})  # the first chunk only
        answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        asked.append({"turn_id": head["turn_id"], "answer": answer, "sources": tail["sources"]})
        third = client.chat.completions.create(
            model="ragchat",
            messages=[{"role": "user", "content": QUESTIONS[2]}],
            extra_body={"conversation_id": conversation_id},
        )
        extra = third.model_extra or {}
        assert extra["conversation_id"] == conversation_id
        asked.append({"turn_id": extra["turn_id"], "answer": third.choices[0].message.content, **extra})
    return {"id": conversation_id, "turns": asked}


def test_a_conversation_continued_by_id_keeps_every_turn_with_its_sources(
    world: World, conversation: dict[str, Any]
) -> None:
    with world.http("alice") as http:
        stored = http.get(f"/api/conversations/{conversation['id']}").json()
    assert stored["title"] == QUESTIONS[0] and stored["collection"] == "handbook"
    assert stored["turn_count"] == 3 and stored["shared"] is False
    assert [t["question"] for t in stored["turns"]] == list(QUESTIONS)
    assert [t["position"] for t in stored["turns"]] == [0, 1, 2]
    for turn, asked in zip(stored["turns"], conversation["turns"], strict=True):
        assert turn["id"] == asked["turn_id"] and turn["answer"] == asked["answer"]
        assert turn["sources"] == asked["sources"] and turn["sources"]  # a citation opens its passage
        assert turn["model"] and turn["feedback"] is None


def test_the_list_is_newest_first_and_rename_sticks(world: World, conversation: dict[str, Any]) -> None:
    with world.openai("alice") as client:
        newer = client.chat.completions.create(
            model="ragchat",
            messages=[{"role": "user", "content": "When are invoices issued?"}],
            max_tokens=1,
            extra_body={"store": True},
        )
    newer_id = (newer.model_extra or {})["conversation_id"]
    with world.http("alice") as http:
        listed = http.get("/api/conversations").json()
        assert [c["id"] for c in listed["conversations"][:2]] == [newer_id, conversation["id"]]
        assert listed["conversations"][1]["turn_count"] == 3 and listed["next"] is None
        paged = http.get("/api/conversations", params={"limit": 1}).json()
        assert [c["id"] for c in paged["conversations"]] == [newer_id]
        rest = http.get("/api/conversations", params={"limit": 1, "before": paged["next"]}).json()
        assert [c["id"] for c in rest["conversations"]] == [conversation["id"]]
        renamed = http.patch(f"/api/conversations/{conversation['id']}", json={"title": "Key rotation"})
        assert renamed.status_code == 200 and renamed.json()["title"] == "Key rotation"
        assert http.get(f"/api/conversations/{conversation['id']}").json()["title"] == "Key rotation"
        assert http.patch(f"/api/conversations/{conversation['id']}", json={"title": ""}).status_code == 422
    with world.http("bob") as http:
        assert http.get("/api/conversations").json() == {"conversations": [], "next": None}


def test_stateless_requests_stay_stateless(world: World) -> None:
    with world.openai("alice") as client:
        completion = client.chat.completions.create(
            model="ragchat", messages=[{"role": "user", "content": "Refunds?"}], max_tokens=1
        )
    assert not {"conversation_id", "turn_id"} & set(completion.model_extra or {})


def test_another_users_conversation_is_a_404(world: World, conversation: dict[str, Any]) -> None:
    path = f"/api/conversations/{conversation['id']}"
    turn_id = conversation["turns"][0]["turn_id"]
    with world.http("carol") as carol, world.http("alice") as alice:
        missing = alice.get("/api/conversations/no-such-conversation")
        for response in (
            carol.get(path),
            carol.patch(path, json={"title": "mine"}),
            carol.delete(path),
            carol.post(f"{path}/share"),
            carol.put(f"{path}/turns/{turn_id}/feedback", json={"rating": "up"}),
        ):
            assert response.status_code == 404 and response.json() == missing.json()
    with world.openai("bob") as client, pytest.raises(openai.NotFoundError):
        client.chat.completions.create(  # bob may read the collection, but the conversation is alice's
            model="ragchat",
            messages=[{"role": "user", "content": "And then?"}],
            extra_body={"conversation_id": conversation["id"]},
        )
    with world.openai("alice") as client, pytest.raises(openai.BadRequestError, match="handbook"):
        client.chat.completions.create(
            model="ragchat/other",
            messages=[{"role": "user", "content": "And then?"}],
            extra_body={"conversation_id": conversation["id"]},
        )


def test_a_share_link_works_only_for_readers_of_the_collection(
    world: World, conversation: dict[str, Any]
) -> None:
    path = f"/api/conversations/{conversation['id']}/share"
    with world.http("alice") as alice:
        link = alice.post(path).json()
        assert link["url"] == f"/shared/{link['token']}" and alice.post(path).json() == link
        assert alice.get(f"/api/conversations/{conversation['id']}").json()["shared"] is True
    with world.http("bob") as bob:
        shown = bob.get(f"/api/shared/{link['token']}")
        assert shown.status_code == 200 and shown.json()["shared"] is True
        assert [t["question"] for t in shown.json()["turns"]] == list(QUESTIONS)
        page = bob.get(link["url"])
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    with world.http("carol") as carol:
        assert carol.get(f"/api/shared/{link['token']}").status_code == 404  # may not read the handbook
    with world.http(None) as anonymous:
        assert anonymous.get(f"/api/shared/{link['token']}").status_code == 401
    with world.http("alice") as alice:
        assert alice.delete(path).status_code == 204
    with world.http("bob") as bob:
        assert bob.get(f"/api/shared/{link['token']}").status_code == 404


def test_a_down_rated_answer_is_exported_and_becomes_an_eval_question(
    world: World, conversation: dict[str, Any], tmp_path: Path
) -> None:
    turn_id = conversation["turns"][0]["turn_id"]
    with world.http("alice") as http:
        rated = http.put(
            f"/api/conversations/{conversation['id']}/turns/{turn_id}/feedback",
            json={"rating": "down", "comment": "It forgot the grace period."},
        )
        assert rated.status_code == 200
        assert rated.json()["feedback"] == {"rating": "down", "comment": "It forgot the grace period."}
        assert (
            http.put(
                f"/api/conversations/{conversation['id']}/turns/{turn_id}/feedback",
                json={"rating": "sideways"},
            ).status_code
            == 422
        )
    lines = [json.loads(line) for line in world.cli("feedback", "export", "--json").splitlines()]
    assert len(lines) == 1
    line = lines[0]
    assert line["question"] == QUESTIONS[0] and line["answer"] == conversation["turns"][0]["answer"]
    assert (line["rating"], line["comment"]) == ("down", "It forgot the grace period.")
    assert line["collection"] == "handbook"
    assert line["model"] and line["passages"] and line["expected"] == []
    assert world.cli("feedback", "export", "--json", "--since", "2999-01-01") == ""
    question_set = tmp_path / "to-check.jsonl"
    question_set.write_text(json.dumps(line) + "\n")
    assert "expected" in world.cli("eval", str(question_set), code=1)
    # The admin fills in the document that answers the question; `ragchat eval` takes the line as it is.
    question_set.write_text(json.dumps({**line, "expected": ["api-keys.md"]}) + "\n")
    scores = json.loads(
        world.cli("eval", str(question_set), "--collection", "handbook", "--json", "--k", "3")
    )
    assert scores["questions"] == 1 and scores["hit_at_k"] == 1.0


def test_deleting_a_conversation_makes_it_a_404_everywhere(
    world: World, conversation: dict[str, Any]
) -> None:
    path = f"/api/conversations/{conversation['id']}"
    with world.http("alice") as http:
        assert http.delete(path).status_code == 204
        assert http.get(path).status_code == 404
        listed = http.get("/api/conversations").json()["conversations"]
        assert conversation["id"] not in [c["id"] for c in listed]
    with world.openai("alice") as client, pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="ragchat",
            messages=[{"role": "user", "content": "Still there?"}],
            extra_body={"conversation_id": conversation["id"]},
        )


def test_deleting_a_user_deletes_their_conversations_and_keys(world: World) -> None:
    with world.openai("bob") as client:
        asked = client.chat.completions.create(
            model="ragchat", messages=[{"role": "user", "content": QUESTIONS[0]}], extra_body={"store": True}
        )
    conversation_id, turn_id = ((asked.model_extra or {})[k] for k in ("conversation_id", "turn_id"))
    with world.http("bob") as bob:
        token = bob.post(f"/api/conversations/{conversation_id}/share").json()["token"]
        rating = {"rating": "down", "comment": "bob's"}
        assert bob.put(
            f"/api/conversations/{conversation_id}/turns/{turn_id}/feedback", json=rating
        ).is_success

    def exported_conversations() -> list[str]:
        lines = world.cli("feedback", "export", "--json").splitlines()
        return [json.loads(line)["conversation_id"] for line in lines]

    assert conversation_id in exported_conversations()
    with world.http("alice") as alice:
        assert alice.get(f"/api/shared/{token}").status_code == 200
        assert alice.delete("/api/users/bob").status_code == 403  # admins only
    with world.http("admin") as admin:
        assert admin.delete("/api/users/admin").status_code == 403  # not oneself
        assert admin.delete(f"/api/users/{'x' * 65}").status_code == 422  # names are at most 64 characters
        assert admin.delete("/api/users/bob").status_code == 204
        assert admin.delete("/api/users/bob").status_code == 404
        assert "bob" not in [u["name"] for u in admin.get("/api/users").json()["users"]]
        assert any(
            e["action"] == "user_deleted" and e["target"] == "bob"
            for e in admin.get("/api/audit").json()["events"]
        )
    with world.http("bob") as bob:
        assert bob.get("/api/conversations").status_code == 401  # the key went with the user
    with world.http("alice") as alice:
        assert alice.get(f"/api/shared/{token}").status_code == 404  # the conversation went too
    assert conversation_id not in exported_conversations()

    world.cli("users", "delete", "carol", "--yes")
    assert "carol" not in world.cli("users", "list")
    world.cli("users", "delete", "carol", "--yes", code=1)
