"""Logins sent to the OpenID provider and not back yet, in the database (table `oidc_logins`).

Kept server-side so that any worker process or replica can finish a login that another one started, and so
that each `state` is good for one callback only: `take` deletes the row it returns, inside one write
transaction, so two callbacks with the same state cannot both succeed. Only a hash of the state is stored.
Every method blocks: call them from a worker thread.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, insert, select

from ragchat.infra.db import IDENTITY_WRITES, write_transaction
from ragchat.infra.db.schema import oidc_logins


@dataclass(frozen=True)
class PendingLogin:
    """What the callback needs to finish a login: the nonce and PKCE verifier sent with it."""

    nonce: str
    code_verifier: str
    redirect_uri: str


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


class PendingLoginStore:
    """The pending logins of one database."""

    def __init__(self, engine: Engine, *, lifetime_s: float = 600.0) -> None:
        self.engine = engine
        self.lifetime = timedelta(seconds=lifetime_s)

    def put(self, state: str, login: PendingLogin) -> None:
        """Remember a login sent with `state` (expired ones are dropped on the way)."""
        now = datetime.now(UTC)
        with write_transaction(self.engine, serialize=IDENTITY_WRITES) as conn:
            conn.execute(delete(oidc_logins).where(oidc_logins.c.expires_at < _iso(now)))
            conn.execute(
                insert(oidc_logins).values(
                    state_hash=_hash(state),
                    nonce=login.nonce,
                    code_verifier=login.code_verifier,
                    redirect_uri=login.redirect_uri,
                    created_at=_iso(now),
                    expires_at=_iso(now + self.lifetime),
                )
            )

    def take(self, state: str) -> PendingLogin | None:
        """The login sent with `state`, removed so it cannot be used again; None if unknown, used or
        expired."""
        key = _hash(state)
        with write_transaction(self.engine, serialize=IDENTITY_WRITES) as conn:
            row = conn.execute(select(oidc_logins).where(oidc_logins.c.state_hash == key)).first()
            if row is None:
                return None
            conn.execute(delete(oidc_logins).where(oidc_logins.c.state_hash == key))
        if row.expires_at < _iso(datetime.now(UTC)):
            return None
        return PendingLogin(nonce=row.nonce, code_verifier=row.code_verifier, redirect_uri=row.redirect_uri)
