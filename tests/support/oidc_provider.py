"""A real OpenID provider for the single sign-on tests: Node's oidc-provider run by tests/oidc/provider.mjs.

`start_oidc_provider(folder, redirect_uris=[...])` starts one on a free loopback port (its signing key is
made here, so tests can also sign tokens with the provider's own key); the `oidc_provider` fixture is one
whose client redirects to the in-process test app (`http://localhost`, see tests/support/app.py).
`scripts/setup.sh` installs the npm package into tests/oidc/node_modules.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.support.processes import wait_until_healthy
from tests.support.vllm import free_port

OIDC_DIR = Path(__file__).resolve().parents[1] / "oidc"
START_TIMEOUT_S = 60.0
CALLBACK_PATH = "/api/auth/oidc/callback"
IN_PROCESS_APP_URL = "http://localhost"  # the in-process test app (tests/support/app.py)


@dataclass(frozen=True)
class ProviderAccount:
    """An account of the test provider: it signs in with `password`; `groups` is its groups claim."""

    name: str
    password: str
    groups: tuple[str, ...]

    def as_config(self) -> dict[str, Any]:
        return {
            "id": self.name,
            "password": self.password,
            "name": self.name.title(),
            "email": f"{self.name}@example.test",
            "groups": list(self.groups),
        }


ALICE = ProviderAccount("alice", "alice-correct-horse", ("engineering",))
BOB = ProviderAccount("bob", "bob-battery-staple", ("sales", "support"))


@dataclass(frozen=True)
class OidcProvider:
    """A running test provider. `signing_key` is its private signing key (a joserfc RSAKey)."""

    issuer: str
    client_id: str
    client_secret: str
    signing_key: RSAKey
    accounts: tuple[ProviderAccount, ...]
    log_path: Path

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """Settings overrides that point ragchat at this provider (the groups scope included)."""
        values: dict[str, Any] = {
            "oidc_issuer": self.issuer,
            "oidc_client_id": self.client_id,
            "oidc_client_secret": self.client_secret,
            "oidc_scopes": "openid profile email groups",
        }
        values.update(overrides)
        return values

    def id_token(self, *, key: RSAKey | None = None, **claims: Any) -> str:
        """An ID token for alice signed with the provider's own key (or `key`); `claims` override the
        defaults (issuer, audience = the client, an hour of validity)."""
        now = int(time.time())
        values: dict[str, Any] = {
            "iss": self.issuer,
            "sub": ALICE.name,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 3600,
            "preferred_username": ALICE.name,
            "groups": list(ALICE.groups),
        }
        values.update(claims)
        signer = key or self.signing_key
        return jwt.encode({"alg": "RS256", "kid": signer.kid}, values, signer)


_FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')


async def sign_in(
    client: httpx.AsyncClient,
    authorization_url: str,
    account: ProviderAccount,
    *,
    password: str | None = None,
) -> httpx.Response:
    """Go through the provider's real pages as a browser would: its login form, then its consent form.
    Returns the first response that leaves the provider (the redirect to ragchat's callback), or the
    provider's page when it keeps the browser (a wrong password)."""
    issuer = str(httpx.URL(authorization_url).copy_with(path="/", query=None)).rstrip("/")
    response = await client.get(authorization_url)
    forms = {"login": {"login": account.name, "password": password or account.password}, "confirm": {}}
    for _ in range(10):
        if response.is_redirect:
            location = response.headers["location"]
            target = response.url.join(location)
            if not str(target).startswith(issuer):
                return response
            response = await client.get(target)
            continue
        match = _FORM_ACTION.search(response.text)
        step = match.group(1).rsplit("/", 1)[-1] if match else None
        if response.status_code != 200 or match is None or step not in forms:
            return response
        response = await client.post(response.url.join(match.group(1)), data=forms.pop(step))
    raise AssertionError("the provider's pages did not end in a redirect")


@contextmanager
def start_oidc_provider(
    folder: Path, *, redirect_uris: list[str], post_logout_redirect_uris: list[str] | None = None
) -> Iterator[OidcProvider]:
    """Run tests/oidc/provider.mjs with one confidential client until the block ends."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: the single sign-on tests need Node 20 (apt-get install nodejs)")
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail("oidc-provider is not installed: run scripts/setup.sh (npm ci --prefix tests/oidc)")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    key = RSAKey.generate_key(
        2048, parameters={"kid": secrets.token_hex(8), "use": "sig", "alg": "RS256"}, private=True
    )
    accounts = (ALICE, BOB)
    provider = OidcProvider(
        issuer=issuer,
        client_id="ragchat-test",
        client_secret=secrets.token_urlsafe(24),
        signing_key=key,
        accounts=accounts,
        log_path=folder / "oidc-provider.log",
    )
    config = {
        "port": port,
        "issuer": issuer,
        "client": {
            "client_id": provider.client_id,
            "client_secret": provider.client_secret,
            "redirect_uris": redirect_uris,
            "post_logout_redirect_uris": post_logout_redirect_uris or [],
        },
        "jwks": {"keys": [key.as_dict(private=True)]},
        "cookie_keys": [secrets.token_urlsafe(24)],
        "accounts": [account.as_config() for account in accounts],
    }
    config_path = folder / "oidc-provider.json"
    config_path.write_text(json.dumps(config))
    with provider.log_path.open("wb") as log:
        process = subprocess.Popen(
            [node, str(OIDC_DIR / "provider.mjs"), str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_healthy(
            f"{issuer}/.well-known/openid-configuration", process, provider.log_path, START_TIMEOUT_S
        )
        yield provider
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    """A provider (for the whole session) whose client redirects to the in-process test app."""
    with start_oidc_provider(
        tmp_path_factory.mktemp("oidc"),
        redirect_uris=[IN_PROCESS_APP_URL + CALLBACK_PATH],
        post_logout_redirect_uris=[IN_PROCESS_APP_URL + "/"],
    ) as provider:
        yield provider
