"""The OpenID Connect relying party (`ragchat.infra.oidc`) against a real provider (Node's oidc-provider):
the whole code flow through the provider's own pages, and the ID token checks with crafted tokens."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
from joserfc.jwk import RSAKey

from ragchat.infra.oidc import OidcClient, OidcConfig, OidcError
from tests.support.oidc_provider import ALICE, BOB, CALLBACK_PATH, IN_PROCESS_APP_URL, OidcProvider, sign_in

pytestmark = pytest.mark.asyncio(loop_scope="session")

REDIRECT_URI = IN_PROCESS_APP_URL + CALLBACK_PATH


@pytest.fixture
async def client(oidc_provider: OidcProvider) -> AsyncIterator[OidcClient]:
    settings = oidc_provider.settings()
    oidc = OidcClient(
        OidcConfig(
            issuer=settings["oidc_issuer"],
            client_id=settings["oidc_client_id"],
            client_secret=settings["oidc_client_secret"],
            scopes=settings["oidc_scopes"],
        )
    )
    yield oidc
    await oidc.aclose()


async def test_code_flow_through_the_provider_pages(client: OidcClient) -> None:
    for account in (ALICE, BOB):
        request = await client.authorization_request(REDIRECT_URI)
        query = httpx.URL(request.url).params
        assert query["code_challenge_method"] == "S256"
        assert query["state"] == request.state and query["nonce"] == request.nonce
        assert request.code_verifier not in request.url
        async with httpx.AsyncClient(timeout=30) as browser:
            response = await sign_in(browser, request.url, account)
        callback = httpx.URL(response.headers["location"])
        assert str(callback).startswith(REDIRECT_URI)
        assert callback.params["state"] == request.state
        identity = await client.complete(
            code=callback.params["code"],
            redirect_uri=REDIRECT_URI,
            code_verifier=request.code_verifier,
            nonce=request.nonce,
        )
        assert identity.username == account.name
        assert identity.groups == account.groups


async def test_wrong_password_stays_at_the_provider(client: OidcClient) -> None:
    request = await client.authorization_request(REDIRECT_URI)
    async with httpx.AsyncClient(timeout=30) as browser:
        response = await sign_in(browser, request.url, ALICE, password="not-her-password")
    assert response.status_code == 200
    assert "Wrong username or password" in response.text


async def test_a_code_is_refused_without_its_verifier_and_twice(client: OidcClient) -> None:
    request = await client.authorization_request(REDIRECT_URI)
    async with httpx.AsyncClient(timeout=30) as browser:
        response = await sign_in(browser, request.url, ALICE)
    code = httpx.URL(response.headers["location"]).params["code"]
    with pytest.raises(OidcError) as refused:
        await client.complete(
            code=code, redirect_uri=REDIRECT_URI, code_verifier="x" * 64, nonce=request.nonce
        )
    assert refused.value.code == "sso_login_failed"
    assert code not in refused.value.message
    identity = await client.complete(
        code=code, redirect_uri=REDIRECT_URI, code_verifier=request.code_verifier, nonce=request.nonce
    )
    assert identity.username == ALICE.name
    with pytest.raises(OidcError) as replayed:
        await client.complete(
            code=code, redirect_uri=REDIRECT_URI, code_verifier=request.code_verifier, nonce=request.nonce
        )
    assert replayed.value.code == "sso_login_failed"


async def test_a_valid_token_passes(client: OidcClient, oidc_provider: OidcProvider) -> None:
    claims = await client.validate_id_token(oidc_provider.id_token(nonce="n-1"), nonce="n-1")
    assert claims["preferred_username"] == ALICE.name


@pytest.mark.parametrize(
    ("case", "claims"),
    [
        ("expired", {"nonce": "n-1", "exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}),
        ("wrong audience", {"nonce": "n-1", "aud": "another-client"}),
        ("wrong issuer", {"nonce": "n-1", "iss": "http://127.0.0.1:1"}),
        ("wrong nonce", {"nonce": "someone-elses"}),
        ("no nonce", {}),
        ("shared audience without azp", {"nonce": "n-1", "aud": ["ragchat-test", "another-client"]}),
    ],
)
async def test_bad_tokens_are_refused(
    client: OidcClient, oidc_provider: OidcProvider, case: str, claims: dict[str, object]
) -> None:
    with pytest.raises(OidcError) as refused:
        await client.validate_id_token(oidc_provider.id_token(**claims), nonce="n-1")
    assert refused.value.code == "sso_invalid_id_token", case


async def test_a_forged_signature_is_refused(client: OidcClient, oidc_provider: OidcProvider) -> None:
    impostor = RSAKey.generate_key(2048, parameters={"kid": oidc_provider.signing_key.kid}, private=True)
    with pytest.raises(OidcError) as refused:
        await client.validate_id_token(oidc_provider.id_token(key=impostor, nonce="n-1"), nonce="n-1")
    assert refused.value.code == "sso_invalid_id_token"
    unknown_kid = RSAKey.generate_key(2048, parameters={"kid": "not-the-providers"}, private=True)
    with pytest.raises(OidcError):
        await client.validate_id_token(oidc_provider.id_token(key=unknown_kid, nonce="n-1"), nonce="n-1")


async def test_unsigned_tokens_are_refused(client: OidcClient, oidc_provider: OidcProvider) -> None:
    header, payload, _ = oidc_provider.id_token(nonce="n-1").split(".")
    none_header = "eyJhbGciOiJub25lIn0"  # {"alg":"none"}
    for token in (f"{none_header}.{payload}.", f"{header}.{payload}.", "not a token"):
        with pytest.raises(OidcError):
            await client.validate_id_token(token, nonce="n-1")


async def test_a_wrong_issuer_setting_is_explained(oidc_provider: OidcProvider) -> None:
    oidc = OidcClient(OidcConfig(issuer=oidc_provider.issuer + "/", client_id="x", client_secret=None))
    try:
        with pytest.raises(OidcError) as refused:
            await oidc.metadata()
        assert "RAGCHAT_OIDC_ISSUER" in refused.value.message
    finally:
        await oidc.aclose()


async def test_an_unreachable_provider_is_reported() -> None:
    oidc = OidcClient(OidcConfig(issuer="http://127.0.0.1:9", client_id="x", client_secret=None))
    try:
        with pytest.raises(OidcError) as refused:
            await oidc.authorization_request(REDIRECT_URI)
        assert refused.value.provider_unavailable
    finally:
        await oidc.aclose()
