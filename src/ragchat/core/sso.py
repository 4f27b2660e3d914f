"""Single sign-on: users whom an identity provider (OpenID Connect) or an authenticating proxy vouches for.

Both ways end in the same mapping (`SingleSignOn.external_user`): the user name names a ragchat user
(created at the first login unless RAGCHAT_OIDC_AUTO_CREATE_USERS=false; then only users an admin made may
log in), and the provider's group list REPLACES the user's ragchat groups at every login, so grants to a
group follow the identity provider. A user who has a local password is never taken over by a provider
that sends the same name (the first-start `admin`, for one). An OpenID login then gets an ordinary
ragchat session (`AccessService.start_session`, as a password login does).

    SsoLoginFailed(Unauthenticated)   the provider's answer is refused (state, token, code)
    SsoUserRefused(Forbidden)         the user may not log in this way (unknown, disabled, local account)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import anyio.to_thread

from ragchat.core.access import (
    USER_NAME,
    AccessService,
    Forbidden,
    LoginResult,
    Principal,
    Unauthenticated,
    iso,
    now,
)
from ragchat.infra.identity import NameTaken, UserRecord
from ragchat.infra.oidc import AuthorizationRequest, OidcClient, OidcError
from ragchat.infra.pending_logins import PendingLogin, PendingLoginStore

logger = logging.getLogger(__name__)


class SsoLoginFailed(Unauthenticated):
    """The provider's answer was refused: unknown or replayed state, a bad ID token, a refused code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class SsoUserRefused(Forbidden):
    """The provider vouches for the user, but ragchat does not let them in."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class SingleSignOn:
    """Logins through an OpenID provider (`oidc` set) and through an authenticating proxy's headers."""

    def __init__(
        self,
        access: AccessService,
        *,
        oidc: OidcClient | None,
        pending: PendingLoginStore,
        auto_create_users: bool = True,
    ) -> None:
        self.access = access
        self.oidc = oidc
        self.pending = pending
        self.auto_create_users = auto_create_users

    async def aclose(self) -> None:
        """Close the OpenID client."""
        if self.oidc is not None:
            await self.oidc.aclose()

    # --- OpenID Connect -----------------------------------------------------------------------------
    async def begin(self, redirect_uri: str) -> AuthorizationRequest:
        """A new login: where to send the browser. Its state, nonce and verifier are kept server-side."""
        oidc = self._client()
        request = await oidc.authorization_request(redirect_uri)
        pending = PendingLogin(
            nonce=request.nonce, code_verifier=request.code_verifier, redirect_uri=redirect_uri
        )
        await anyio.to_thread.run_sync(self.pending.put, request.state, pending)
        return request

    async def finish(self, *, state: str, code: str, address: str | None) -> LoginResult:
        """The browser came back with `state` and `code`: check everything, then open a ragchat session.
        Raises `SsoLoginFailed`, `SsoUserRefused` or (provider down or misconfigured) `OidcError`."""
        oidc = self._client()
        pending = await anyio.to_thread.run_sync(self.pending.take, state)
        if pending is None:
            raise SsoLoginFailed(
                "sso_state_invalid", "this sign-in link is unknown, used already or expired; sign in again"
            )
        try:
            identity = await oidc.complete(
                code=code,
                redirect_uri=pending.redirect_uri,
                code_verifier=pending.code_verifier,
                nonce=pending.nonce,
            )
        except OidcError as exc:
            if exc.provider_unavailable or exc.code == "sso_misconfigured":
                raise
            await anyio.to_thread.run_sync(self._record_failure, exc.code, address)
            raise SsoLoginFailed(exc.code, exc.message) from None

        def sign_in() -> LoginResult:
            user = self.external_user(identity.username, identity.groups, via="oidc", address=address)
            return self.access.start_session(user, address, {"via": "oidc"})

        return await anyio.to_thread.run_sync(sign_in)

    async def end_session_url(self, post_logout_redirect_uri: str) -> str | None:
        """The provider's logout page that returns to `post_logout_redirect_uri`, if it offers one."""
        return None if self.oidc is None else await self.oidc.end_session_url(post_logout_redirect_uri)

    def _client(self) -> OidcClient:
        if self.oidc is None:
            raise SsoUserRefused(
                "sso_not_configured", "single sign-on is not configured (RAGCHAT_OIDC_ISSUER)"
            )
        return self.oidc

    def _record_failure(self, code: str, address: str | None) -> None:
        self.access.record(None, "login_failed", "-", {"via": "oidc", "reason": code}, address, actor="-")

    # --- authenticating proxy -----------------------------------------------------------------------
    def principal_for_proxy(self, name: str, groups: Sequence[str], address: str | None) -> Principal:
        """The principal a trusted proxy's headers name (mapped as an OpenID login is). Blocking."""
        user = self.external_user(name, groups, via="proxy", address=address)
        return self.access.principal_for_user(user, auth="proxy")

    # --- the mapping ----------------------------------------------------------------------------------
    def external_user(self, name: str, groups: Sequence[str], *, via: str, address: str | None) -> UserRecord:
        """The ragchat user an identity provider vouches for, created if allowed, with its groups
        replaced by `groups`. Blocking."""
        identity = self.access.identity
        if not USER_NAME.match(name):
            raise SsoUserRefused(
                "sso_invalid_username",
                f"the identity provider's user name {name!r} is not a valid ragchat user name (1-64 "
                "letters, digits, '_', '.', '@' or '-')",
            )
        user = identity.user_by_name(name)
        if user is None:
            if not self.auto_create_users:
                raise SsoUserRefused(
                    "sso_unknown_user",
                    f"there is no ragchat user {name!r}; an admin must create it first "
                    "(RAGCHAT_OIDC_AUTO_CREATE_USERS=false)",
                )
            try:
                user = identity.add_user(name, role="member", password_hash=None, created_at=iso(now()))
                self.access.record(
                    None, "user_added", name, {"role": "member", "via": via}, address, actor=via
                )
            except NameTaken:  # another request created it at the same moment
                user = identity.user_by_name(name)
            assert user is not None
        if user.password_hash is not None:
            raise SsoUserRefused(
                "sso_local_account",
                f"the ragchat user {name!r} has a local password; it logs in with that password, not "
                "through single sign-on",
            )
        if not user.active:
            raise SsoUserRefused("sso_user_disabled", f"the ragchat user {name!r} is disabled")
        wanted = sorted(set(self._group_names(groups)))
        if identity.replace_groups(user.id, wanted, created_at=iso(now())):
            self.access.record(
                None, "groups_synced", name, {"groups": wanted, "via": via}, address, actor=via
            )
        return user

    @staticmethod
    def _group_names(groups: Sequence[str]) -> list[str]:
        names = []
        for group in groups:
            name = group.lstrip("/")  # Keycloak sends group paths: /engineering
            if USER_NAME.match(name):
                names.append(name)
            else:
                logger.warning("single sign-on: group %r is not a valid ragchat group name; skipped", group)
        return names
