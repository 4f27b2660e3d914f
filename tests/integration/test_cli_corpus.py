"""The real `ragchat` CLI (typer app, in-process), real model and store: ingest, search, documents, eval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ragchat.cli.main import app as cli_app
from tests.support.sample_files import TOPICS, write

SEARCH_KEYS = {"rank", "score", "document", "heading", "chunk_id", "text"}


class Cli:
    """Runs `ragchat ...` with its data in a temporary folder."""

    def __init__(self, data_dir: Path) -> None:
        self.runner = CliRunner()
        self.env = {"RAGCHAT_DATA_DIR": str(data_dir)}

    def __call__(self, *args: str, code: int = 0) -> Result:
        result = self.runner.invoke(cli_app, list(args), env=self.env)
        assert result.exit_code == code, f"exit {result.exit_code}\n{result.output}"
        return result


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli") / "corpus"
    for name, text in TOPICS.items():
        write(folder / name, text)
    return folder


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Cli:
    runner = Cli(tmp_path_factory.mktemp("cli-data") / "data")
    result = runner("ingest", str(corpus))
    assert "added" in result.stdout and "chunks stored" in result.stdout
    return runner


def documents(cli: Cli, *args: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in cli("documents", "list", "--json", *args).stdout.splitlines()]


def test_ingest_summary_and_idempotence(cli: Cli, corpus: Path) -> None:
    again = cli("ingest", str(corpus))
    summary = dict(line.split("\t") for line in again.stdout.splitlines() if "\t" in line)
    assert summary["unchanged"] == "3"
    assert summary["added"] == "0"
    assert len(documents(cli)) == 3


def test_piped_tables_print_one_row_per_item_with_full_values(cli: Cli) -> None:
    """Without a terminal (CliRunner has none) a table is a header and tab-separated rows, never wrapped:
    `ragchat documents list | grep NAME` finds every document by its whole path."""
    stored = documents(cli)
    assert max(len(str(document["path"])) for document in stored) > 40  # a terminal table would wrap it
    header, *rows = cli("documents", "list").stdout.splitlines()
    assert header.split("\t") == ["id", "collection", "path", "chunks", "created (UTC)"]
    assert sorted(row.split("\t")[:4] for row in rows) == sorted(
        [str(d["id"]), str(d["collection"]), str(d["path"]), str(d["chunk_count"])] for d in stored
    )


def test_search_json_lines(cli: Cli, corpus: Path) -> None:
    out = cli("search", "wild yeast starter", "--k", "2", "--json").stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert 1 <= len(rows) <= 2
    assert all(set(row) == SEARCH_KEYS for row in rows)
    assert rows[0]["rank"] == 1
    assert rows[0]["document"] == str(corpus / "sourdough.txt")
    assert "starter" in rows[0]["text"]

    for mode in ("vector", "keyword"):
        first = json.loads(cli("search", "Sicilian Defence", "--json", "--mode", mode).stdout.splitlines()[0])
        assert first["document"] == str(corpus / "chess.html")
        assert "Chess openings" in first["heading"]

    human = cli("search", "Queen's Gambit", "-k", "1").stdout
    assert "chess.html" in human and "1." in human


def test_documents_list_and_delete(tmp_path: Path, corpus: Path) -> None:
    cli = Cli(tmp_path / "data")
    cli("ingest", str(corpus / "volcanoes.md"), str(corpus / "chess.html"), "--collection", "games")
    rows = documents(cli)
    assert {Path(str(row["path"])).name for row in rows} == {"volcanoes.md", "chess.html"}
    assert all({"id", "path", "collection"} <= set(row) and row["collection"] == "games" for row in rows)
    assert documents(cli, "--collection", "other") == []

    victim = next(row for row in rows if str(row["path"]).endswith("volcanoes.md"))
    assert "Deleted" in cli("documents", "delete", str(victim["id"])).stdout
    missing = cli("documents", "delete", str(victim["id"]), code=1)
    assert "error:" in missing.stderr and "no document" in missing.stderr
    assert [row["id"] for row in documents(cli)] == [r["id"] for r in rows if r["id"] != victim["id"]]
    hits = cli("search", "magma", "--collection", "games", "--json", "--mode", "keyword").stdout
    assert hits == ""


def test_eval_hit_at_k_and_mrr(cli: Cli, tmp_path: Path) -> None:
    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        "\n".join(
            json.dumps(line)
            for line in (
                {"q": "Why do volcanoes explode?", "expected": ["volcanoes.md"]},
                {"q": "How do I feed a sourdough starter?", "expected": ["sourdough.txt", "other.md"]},
                {"q": "Which chess opening answers 1.e4 with c5?", "expected": ["chess.html"]},
                {"q": "Who painted the Mona Lisa?", "expected": ["art.md"]},  # no such file: a miss
            )
        )
        + "\n"
    )
    out = cli("eval", str(questions), "--k", "1", "--mode", "all", "--json").stdout
    scores = {row["mode"]: row for row in map(json.loads, out.splitlines())}
    assert set(scores) == {"hybrid", "vector", "keyword"}
    for row in scores.values():
        assert row["questions"] == 4 and row["k"] == 1
    assert scores["hybrid"]["hit_at_k"] == pytest.approx(0.75)
    assert scores["hybrid"]["mrr"] == pytest.approx(0.75)

    table = cli("eval", str(questions), "--k", "3").stdout
    assert "hit@3" in table and "MRR@3" in table and "0.750" in table


def test_eval_rejects_malformed_question_files(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"q": "fine", "expected": ["a.md"]}\n{"question": "wrong key"}\n')
    result = cli("eval", str(bad), code=1)
    assert "bad.jsonl:2" in result.stderr


def test_clear_errors_for_bad_arguments(cli: Cli, corpus: Path) -> None:
    assert "invalid collection name" in cli("ingest", str(corpus), "-c", "../up", code=2).stderr
    assert "unknown --mode" in cli("search", "x", "--mode", "fuzzy", code=2).stderr
    missing = cli("ingest", str(corpus / "nope.md"), code=1)
    assert "no such file or folder" in missing.stdout
    assert "no file could be ingested" in missing.stderr
    help_text = cli("ingest", "--help").stdout
    assert "Example" in help_text and "--collection" in help_text
