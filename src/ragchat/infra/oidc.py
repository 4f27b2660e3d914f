"""OpenID Connect relying party: discovery, the authorization code flow with PKCE, and ID token checks.

Built on Authlib (the authorization URL, the token request with client authentication, the ID token
claim rules) and joserfc (JWS signatures against the provider's JWKS):

    client = OidcClient(config)
    request = await client.authorization_request(redirect_uri)   # -> url, state, nonce, code_verifier
    ... the browser comes back to redirect_uri with ?code=&state= ...
    identity = await client.complete(code=..., redirect_uri=..., code_verifier=..., nonce=...)

`complete` checks the ID token's signature (a key of the provider's JWKS; `none` and HMAC algorithms are
refused), issuer, audience (and `azp`), expiry, nonce and `at_hash`, then reads the user name and groups
from its claims, asking the userinfo endpoint when the ID token lacks them. Every failure raises
`OidcError` whose message never contains a token, code or secret.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

METADATA_TTL_S = 3600.0
# A token naming a key the cached JWKS lacks makes us fetch the JWKS again, at most this often (a forged
# token with a random `kid` must not turn every request into a fetch from the provider).
JWKS_REFRESH_INTERVAL_S = 60.0
# Clock difference tolerated between the provider and this host when checking exp/iat.
CLOCK_LEEWAY_S = 60
HTTP_TIMEOUT_S = 10.0


class OidcError(Exception):
    """A login through the identity provider failed. `code` is stable; `message` is safe to show."""

    def __init__(self, code: str, message: str, *, provider_unavailable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.provider_unavailable = provider_unavailable


@dataclass(frozen=True)
class OidcConfig:
    """What the relying party needs to know (from RAGCHAT_OIDC_* settings)."""

    issuer: str
    client_id: str
    client_secret: str | None
    scopes: str = "openid profile email"
    username_claim: str = "preferred_username"
    groups_claim: str = "groups"


@dataclass(frozen=True)
class AuthorizationRequest:
    """Where to send the browser, and the secrets to keep until it comes back."""

    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class OidcIdentity:
    """Who logged in: the provider's subject, the ragchat user name and group names from the claims."""

    subject: str
    username: str
    groups: tuple[str, ...]


class OidcClient:
    """One identity provider, its discovery document and keys cached; owns an HTTP client (`aclose`)."""

    def __init__(self, config: OidcConfig) -> None:
        self.config = config
        self._http = httpx.AsyncClient(timeout=HTTP_TIMEOUT_S)
        self._lock = anyio.Lock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

    # --- discovery and keys -------------------------------------------------------------------------
    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (cached for an hour); its `issuer` must be the configured one."""
        async with self._lock:
            if self._metadata is None or time.monotonic() - self._metadata_at > METADATA_TTL_S:
                url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
                document = await self._get_json(url, "discovery document")
                if document.get("issuer") != self.config.issuer:
                    raise OidcError(
                        "sso_misconfigured",
                        f"the identity provider calls itself {document.get('issuer')!r}, not "
                        f"{self.config.issuer!r}: set RAGCHAT_OIDC_ISSUER to its exact issuer",
                    )
                for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    if not isinstance(document.get(field), str):
                        raise OidcError(
                            "sso_misconfigured", f"the identity provider's discovery document lacks {field}"
                        )
                self._metadata, self._metadata_at = document, time.monotonic()
            return self._metadata

    async def _key_set(self, *, refresh: bool = False) -> KeySet:
        metadata = await self.metadata()
        async with self._lock:
            stale = refresh and time.monotonic() - self._keys_at > JWKS_REFRESH_INTERVAL_S
            if self._keys is None or stale:
                document = await self._get_json(metadata["jwks_uri"], "signing keys (JWKS)")
                try:
                    self._keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
                except (JoseError, ValueError, TypeError, KeyError):
                    raise OidcError(
                        "sso_provider_error", "the identity provider's signing keys (JWKS) are unreadable"
                    ) from None
                self._keys_at = time.monotonic()
            return self._keys

    async def _get_json(self, url: str, what: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._http.get(url, **kwargs)
        except httpx.HTTPError as exc:
            raise OidcError(
                "sso_provider_unavailable",
                f"the identity provider did not answer for its {what} ({type(exc).__name__})",
                provider_unavailable=True,
            ) from None
        if response.status_code != 200:
            raise OidcError(
                "sso_provider_unavailable",
                f"the identity provider answered {response.status_code} for its {what}",
                provider_unavailable=True,
            )
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise OidcError("sso_provider_error", f"the identity provider's {what} is not a JSON object")
        return document

    # --- the flow -----------------------------------------------------------------------------------
    async def authorization_request(self, redirect_uri: str) -> AuthorizationRequest:
        """A fresh authorization request (code flow, PKCE S256, state and nonce) to send the browser to."""
        metadata = await self.metadata()
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        code_verifier = secrets.token_urlsafe(64)
        async with self._oauth_client(redirect_uri) as client:
            url, _ = client.create_authorization_url(
                metadata["authorization_endpoint"], state=state, code_verifier=code_verifier, nonce=nonce
            )
        return AuthorizationRequest(url=url, state=state, nonce=nonce, code_verifier=code_verifier)

    async def complete(self, *, code: str, redirect_uri: str, code_verifier: str, nonce: str) -> OidcIdentity:
        """Exchange `code` for tokens, check the ID token and return who logged in."""
        metadata = await self.metadata()
        async with self._oauth_client(redirect_uri) as client:
            try:
                token = await client.fetch_token(
                    metadata["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                )
            except OAuthError as exc:
                raise OidcError(
                    "sso_login_failed", f"the identity provider refused the login ({exc.error})"
                ) from None
            except httpx.HTTPError as exc:
                raise OidcError(
                    "sso_provider_unavailable",
                    f"the identity provider's token endpoint did not answer ({type(exc).__name__})",
                    provider_unavailable=True,
                ) from None
        id_token, access_token = token.get("id_token"), token.get("access_token")
        if not isinstance(id_token, str):
            raise OidcError("sso_login_failed", "the identity provider sent no ID token (is openid a scope?)")
        claims = await self.validate_id_token(
            id_token, nonce=nonce, access_token=access_token if isinstance(access_token, str) else None
        )
        wanted = (self.config.username_claim, self.config.groups_claim)
        if any(_claim(claims, name) is None for name in wanted) and isinstance(access_token, str):
            claims = {**await self._userinfo(access_token, subject=claims["sub"]), **claims}
        return self.identity_from_claims(claims)

    async def validate_id_token(
        self, id_token: str, *, nonce: str, access_token: str | None = None
    ) -> dict[str, Any]:
        """The ID token's claims once its signature, issuer, audience, expiry and nonce are checked."""
        metadata = await self.metadata()
        algorithms = [
            alg
            for alg in metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
            if isinstance(alg, str) and alg != "none" and not alg.startswith("HS")
        ] or ["RS256"]
        try:
            try:
                token = jwt.decode(id_token, await self._key_set(), algorithms=algorithms)
            except InvalidKeyIdError:
                token = jwt.decode(id_token, await self._key_set(refresh=True), algorithms=algorithms)
        except (JoseError, ValueError) as exc:
            raise OidcError(
                "sso_invalid_id_token", f"the ID token's signature is not valid ({type(exc).__name__})"
            ) from None
        claims = CodeIDToken(
            token.claims,
            token.header,
            {
                "iss": {"essential": True, "value": self.config.issuer},
                "aud": {"essential": True, "value": self.config.client_id},
            },
            {"nonce": nonce, "client_id": self.config.client_id, "access_token": access_token},
        )
        try:
            claims.validate(leeway=CLOCK_LEEWAY_S)
        except JoseError as exc:
            raise OidcError("sso_invalid_id_token", f"the ID token was refused: {exc.description}") from None
        return dict(claims)

    async def _userinfo(self, access_token: str, *, subject: str) -> dict[str, Any]:
        endpoint = (await self.metadata()).get("userinfo_endpoint")
        if not isinstance(endpoint, str):
            return {}
        info = await self._get_json(endpoint, "userinfo", headers={"Authorization": f"Bearer {access_token}"})
        if info.get("sub") != subject:
            raise OidcError("sso_login_failed", "the userinfo endpoint describes another subject")
        return info

    def identity_from_claims(self, claims: Mapping[str, Any]) -> OidcIdentity:
        """The user name and groups that the configured claims name (a dotted name reaches into objects,
        e.g. realm_access.roles)."""
        name = _claim(claims, self.config.username_claim)
        if not isinstance(name, str) or not name.strip():
            raise OidcError(
                "sso_no_username",
                f"the identity provider sent no {self.config.username_claim!r} claim to name the user "
                "(RAGCHAT_OIDC_USERNAME_CLAIM; is its scope in RAGCHAT_OIDC_SCOPES?)",
            )
        return OidcIdentity(
            subject=str(claims["sub"]),
            username=name.strip(),
            groups=group_names(_claim(claims, self.config.groups_claim)),
        )

    async def end_session_url(self, post_logout_redirect_uri: str) -> str | None:
        """The provider's end-session URL that returns to `post_logout_redirect_uri`, if it has one."""
        try:
            endpoint = (await self.metadata()).get("end_session_endpoint")
        except OidcError:
            return None
        if not isinstance(endpoint, str):
            return None
        params = {"client_id": self.config.client_id, "post_logout_redirect_uri": post_logout_redirect_uri}
        return str(httpx.URL(endpoint).copy_merge_params(params))

    def _oauth_client(self, redirect_uri: str) -> AsyncOAuth2Client:
        secret = self.config.client_secret
        return AsyncOAuth2Client(
            client_id=self.config.client_id,
            client_secret=secret,
            token_endpoint_auth_method="client_secret_basic" if secret else "none",
            scope=self.config.scopes,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=HTTP_TIMEOUT_S,
        )


def _claim(claims: Mapping[str, Any], name: str) -> Any:
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def group_names(value: Any) -> tuple[str, ...]:
    """Group names from a claim or header value: a list of names, or one string separated by commas or |
    (as oauth2-proxy, Authelia and Authentik send them). Blanks and duplicates are dropped, order kept."""
    if isinstance(value, str):
        items: list[Any] = value.replace("|", ",").split(",")
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        return ()
    names = (item.strip() for item in items if isinstance(item, str))
    return tuple(dict.fromkeys(name for name in names if name))
