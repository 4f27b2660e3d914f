"""The use cases (`ragchat.core`) know nothing of HTTP: no web framework or HTTP client imported, no HTTP
status named. Their errors are domain errors that `ragchat.api.errors.ERRORS` alone maps to statuses."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import ragchat.core

CORE = Path(ragchat.core.__file__).parent
HTTP_MODULES = {"fastapi", "starlette", "http", "httpx", "uvicorn"}
HTTP_NAMES = {"status_code", "HTTPStatus", "HTTPException"}
STATUS_TEXT = re.compile(r"\b(?:HTTP|status)\s*[45]\d\d\b", re.IGNORECASE)


def http_mentions(source: str) -> list[str]:
    """What in `source` imports an HTTP module or names an HTTP status (empty when nothing does)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module]
            found += [f"import {m}" for m in modules if m and m.split(".")[0] in HTTP_MODULES]
        elif isinstance(node, ast.Name) and node.id in HTTP_NAMES:
            found.append(node.id)
        elif isinstance(node, ast.Attribute) and node.attr in HTTP_NAMES:
            found.append(node.attr)
        elif isinstance(node, ast.keyword) and node.arg and "status" in node.arg:
            if is_http_status(node.value):
                found.append(f"{node.arg}={ast.unparse(node.value)}")
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any("status" in ast.unparse(s) for s in sides) and any(map(is_http_status, sides)):
                found.append(ast.unparse(node))
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and STATUS_TEXT.search(node.value)
        ):
            found.append(repr(node.value))
    return found


def is_http_status(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int and 400 <= node.value < 600


def test_no_core_module_imports_http_or_names_a_status() -> None:
    modules = sorted(CORE.rglob("*.py"))
    assert len(modules) >= 5  # chat, prompt, retrieve, ingest, errors...
    offences = {str(p.relative_to(CORE)): http_mentions(p.read_text(encoding="utf-8")) for p in modules}
    assert {name: found for name, found in offences.items() if found} == {}


def test_the_scan_finds_what_it_looks_for() -> None:
    assert http_mentions("from fastapi import Request") == ["import fastapi"]
    assert http_mentions("import starlette.responses") == ["import starlette.responses"]
    assert http_mentions("raise Refused('x', status=404)") == ["status=404"]
    assert http_mentions("if response.status_code == 503: pass") == [
        "response.status_code == 503",
        "status_code",
    ]
    assert http_mentions("message = 'answered HTTP 502'") == ["'answered HTTP 502'"]
    assert http_mentions("max_tokens = 512\nstatus = 'added'") == []
