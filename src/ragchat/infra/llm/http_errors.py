"""Turning the HTTP failures of an OpenAI-compatible server into the LLM error hierarchy
(`ragchat.infra.llm`): each error names the server and quotes its own message."""

from __future__ import annotations

from typing import Any

import httpx

from ragchat.infra.llm import LLMModelNotFound, LLMRequestRejected, LLMTimeout, LLMUnavailable


async def post_json(http: httpx.AsyncClient, url: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST `body` to `url` and return the JSON object, mapping failures onto the LLM error hierarchy."""
    try:
        response = await http.post(url, json=body)
    except httpx.TimeoutException as exc:
        raise LLMTimeout(f"the LLM server at {url} did not answer in time ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        reason = describe_transport_error(exc)
        raise LLMUnavailable(f"cannot reach the LLM server at {url}: {reason}") from None
    return checked_json(response)


def checked_json(response: httpx.Response) -> dict[str, Any]:
    """The JSON body of a successful response; an LLM error naming the server's own message otherwise."""
    if response.status_code == 404:
        raise LLMModelNotFound(f"{response.request.url} answered 404: {server_message(response)}")
    if response.status_code >= 500:
        raise LLMUnavailable(
            f"the LLM server answered {response.status_code} at {response.request.url}: "
            f"{server_message(response)}"
        )
    if response.status_code >= 400:
        raise LLMRequestRejected(f"the LLM server refused the request: {server_message(response)}")
    data = response.json()
    if not isinstance(data, dict):
        raise LLMRequestRejected(f"unexpected answer from {response.request.url}: {str(data)[:200]}")
    return data


def server_message(response: httpx.Response) -> str:
    """The `error.message` (or `message`/`detail`) of an error body, else its first 200 characters."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        for key in ("message", "detail"):
            if data.get(key):
                return str(data[key])
    return str(data)[:200]


def describe_transport_error(exc: Exception) -> str:
    """A short human description of a connection failure."""
    return str(exc).strip() or type(exc).__name__
