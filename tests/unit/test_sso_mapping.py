"""How single sign-on maps a provider's user and groups onto ragchat's (on a real SQLite database), and the
pending logins each taken once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ragchat.core.access import AccessService, Principal
from ragchat.core.sso import SingleSignOn, SsoUserRefused
from ragchat.infra.db import open_database, sqlite_url
from ragchat.infra.identity import IdentityStore
from ragchat.infra.pending_logins import PendingLogin, PendingLoginStore

ROOT = Principal.local_admin("test", "local")


@pytest.fixture
def sso(tmp_path: Path) -> Iterator[SingleSignOn]:
    engine = open_database(sqlite_url(tmp_path / "ragchat.sqlite3"))
    access = AccessService(IdentityStore(engine))
    yield SingleSignOn(access, oidc=None, pending=PendingLoginStore(engine))
    engine.dispose()


def groups_of(sso: SingleSignOn, name: str) -> list[str]:
    identity = sso.access.identity
    user = identity.user_by_name(name)
    assert user is not None
    return [group for _, group in identity.groups_of(user.id)]


def test_groups_are_created_replaced_and_cleaned(sso: SingleSignOn) -> None:
    sso.external_user("carol", ["/engineering", "Team A", "ops", "ops"], via="oidc", address=None)
    assert groups_of(sso, "carol") == [
        "engineering",
        "ops",
    ]  # Keycloak's path slash dropped, bad name skipped
    sso.external_user("carol", ["ops", "sales"], via="oidc", address=None)
    assert groups_of(sso, "carol") == ["ops", "sales"]
    sso.external_user("carol", [], via="proxy", address=None)
    assert groups_of(sso, "carol") == []
    actions = [event.action for event in sso.access.audit_events(ROOT)]
    assert actions.count("groups_synced") == 3 and actions.count("user_added") == 1


@pytest.mark.parametrize(
    ("prepare", "name", "code"),
    [
        (lambda access: None, "not a name", "sso_invalid_username"),
        (
            lambda access: access.add_user(ROOT, "dora", password="dora-local-password"),
            "dora",
            "sso_local_account",
        ),
        (
            lambda access: (access.add_user(ROOT, "erin"), access.set_user_active(ROOT, "erin", False)),
            "erin",
            "sso_user_disabled",
        ),
    ],
)
def test_refusals(
    sso: SingleSignOn, prepare: Callable[[AccessService], object], name: str, code: str
) -> None:
    prepare(sso.access)
    with pytest.raises(SsoUserRefused) as refused:
        sso.external_user(name, ["ops"], via="oidc", address=None)
    assert refused.value.code == code


def test_without_auto_creation_unknown_users_are_refused(sso: SingleSignOn) -> None:
    sso.auto_create_users = False
    with pytest.raises(SsoUserRefused) as refused:
        sso.external_user("frank", [], via="oidc", address=None)
    assert refused.value.code == "sso_unknown_user"
    sso.access.add_user(ROOT, "frank")
    assert sso.external_user("frank", [], via="oidc", address=None).name == "frank"


def test_a_pending_login_is_taken_once(sso: SingleSignOn) -> None:
    login = PendingLogin(nonce="n", code_verifier="v", redirect_uri="http://localhost/cb")
    sso.pending.put("state-1", login)
    assert sso.pending.take("state-2") is None
    assert sso.pending.take("state-1") == login
    assert sso.pending.take("state-1") is None
    expired = PendingLoginStore(sso.pending.engine, lifetime_s=-1)
    expired.put("state-3", login)
    assert expired.take("state-3") is None
