"""Identity and access: who is asking (a `Principal`), what they may do on a collection, API keys, login
sessions with rate limiting, users and groups, and the audit log.

Rules (docs/security.md tells them to users):
- Roles: `admin` may do everything; a `member`'s permission on a collection is `manage` if they own it,
  else the best grant to them or to one of their groups (`read` < `write`), else none.
- A key's scope caps it: a `read` key never writes (its permission is at most `read`); a `write` key and a
  login session have the user's full rights.
- A collection the caller may not read is reported exactly as one that does not exist.
- Nothing is cached: each call reads the database, so revocations count at the next request.

Errors are domain errors (`AccessError` and its subclasses, each with a stable `code`); the HTTP layer
maps them onto statuses. Every method blocks (database, argon2): call them from a worker thread.

    AccessError
    ├── Unauthenticated          no, malformed, unknown, revoked or expired credentials
    ├── InvalidCredentials       a login with a wrong name or password (one message for both)
    ├── TooManyAttempts          too many failed logins lately (`retry_after_s`)
    ├── Forbidden                known caller, not allowed
    │   └── CsrfFailed           a cookie-authenticated change without the token or from a foreign page
    ├── NotFound                 no such user, group, key (or a collection the caller may not read)
    ├── Conflict                 the name is taken
    └── InvalidInput             a value outside what is accepted
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from pathlib import Path
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ragchat.core.ingest import InvalidCollectionName, check_collection_name
from ragchat.infra.identity import (
    AuditRecord,
    GrantRecord,
    IdentityStore,
    KeyRecord,
    NameTaken,
    UserRecord,
)

KEY_PREFIX = "rck"
_KEY_FORMAT = re.compile(r"^rck_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
KEY_USE_RESOLUTION_S = 60  # last_used_at is written at most once a minute per key
MAX_PASSWORD_CHARS = 1024

Scope = Literal["read", "write"]
AuthKind = Literal["session", "key", "off", "local", "metrics", "proxy"]


class AccessError(Exception):
    """A request the access rules refuse; `code` is stable and machine-readable, the message is for users."""

    code = "forbidden"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthenticated(AccessError):
    code = "unauthenticated"


class InvalidCredentials(AccessError):
    code = "invalid_credentials"


class TooManyAttempts(AccessError):
    code = "too_many_attempts"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Forbidden(AccessError):
    code = "forbidden"


class CsrfFailed(Forbidden):
    code = "csrf_failed"


class NotFound(AccessError):
    code = "not_found"


class CollectionNotFound(NotFound):
    code = "collection_not_found"

    def __init__(self, name: str, readable: list[str]) -> None:
        listed = ", ".join(readable) or "none"
        super().__init__(f"no collection named {name!r}; collections you may read: {listed}")


class Conflict(AccessError):
    code = "name_taken"


class InvalidInput(AccessError):
    code = "invalid_request"


class Permission(IntEnum):
    """What a principal may do on one collection; each level includes the ones below."""

    NONE = 0
    READ = 1
    WRITE = 2
    MANAGE = 3  # grants and deletion

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request or CLI command acts as. `user_id` is None for the implicit admins (auth off, CLI)."""

    name: str
    role: Literal["admin", "member"]
    auth: AuthKind
    scope: Scope = "write"
    user_id: int | None = None
    group_ids: tuple[int, ...] = ()
    group_names: tuple[str, ...] = ()
    key_id: str | None = None
    csrf_token: str | None = field(default=None, repr=False)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @classmethod
    def local_admin(cls, name: str, auth: AuthKind) -> Principal:
        """The implicit admin of `RAGCHAT_AUTH=off` and of the local CLI."""
        return cls(name=name, role="admin", auth=auth)


@dataclass(frozen=True, slots=True)
class CollectionView:
    name: str
    owner: str | None
    permission: Permission
    documents: int


@dataclass(frozen=True, slots=True)
class LoginResult:
    principal: Principal
    session_token: str  # the cookie's value; only its hash is stored
    csrf_token: str


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@functools.cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()  # argon2id, the library's (RFC 9106 low-memory) parameters


@functools.cache
def _decoy_hash() -> str:
    """A hash to verify against when the user does not exist, so both cases take as long."""
    return _hasher().hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """The argon2id hash of `password` (salted; parameters stored in the hash)."""
    return _hasher().hash(password)


def check_new_password(password: str) -> str:
    if len(password) < 12 or len(password) > MAX_PASSWORD_CHARS:
        raise InvalidInput(f"a password must be 12 to {MAX_PASSWORD_CHARS} characters long")
    return password


def _verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher().verify(password_hash or _decoy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def _check_name(name: str, what: str) -> str:
    if not USER_NAME.match(name):
        raise InvalidInput(
            f"invalid {what} name {name!r}: use 1-64 letters, digits, '_', '.', '@' or '-', starting with a "
            "letter or digit"
        )
    return name


def _collection_name(name: str) -> str:
    try:
        return check_collection_name(name)
    except InvalidCollectionName as exc:
        raise InvalidInput(str(exc)) from None


class AccessService:
    """The access rules over an `IdentityStore`. One per process; safe to share between threads."""

    def __init__(
        self,
        identity: IdentityStore,
        *,
        session_hours: float = 12.0,
        login_attempts: int = 5,
        login_attempts_per_address: int = 20,
        login_window_s: float = 900.0,
    ) -> None:
        self.identity = identity
        self._session_lifetime = timedelta(hours=session_hours)
        self._login_attempts = login_attempts
        self._login_attempts_per_address = login_attempts_per_address
        self._login_window = timedelta(seconds=login_window_s)

    # --- authentication --------------------------------------------------------------------------------

    def principal_for_key(self, token: str) -> Principal:
        """The principal an API key (`rck_<id>_<secret>`) stands for; `Unauthenticated` if it is malformed,
        unknown, revoked, expired, or its user is disabled (one message for all: nothing to probe)."""
        match = _KEY_FORMAT.match(token)
        found = self.identity.key_with_user(match.group(1)) if match else None
        refused = Unauthenticated("the API key is not valid (unknown, revoked or expired)")
        if match is None or found is None:
            raise refused
        key, user = found
        if not hmac.compare_digest(key.secret_hash, _sha256(match.group(2))):
            raise refused
        moment = now()
        if key.revoked_at is not None or not user.active:
            raise refused
        if key.expires_at is not None and iso(moment) >= key.expires_at:
            raise refused
        stamp = iso(moment)
        if key.last_used_at is None or key.last_used_at < iso(
            moment - timedelta(seconds=KEY_USE_RESOLUTION_S)
        ):
            self.identity.touch_key(
                key.id, at=stamp, unless_since=iso(moment - timedelta(seconds=KEY_USE_RESOLUTION_S))
            )
        return self._principal(
            user, auth="key", scope="read" if key.scope == "read" else "write", key_id=key.id
        )

    def principal_for_session(self, token: str) -> Principal:
        """The principal a session cookie stands for; `Unauthenticated` if unknown or expired."""
        found = self.identity.session_with_user(_sha256(token)) if token else None
        if found is None:
            raise Unauthenticated("not logged in (or the session ended); log in again")
        session, user = found
        if iso(now()) >= session.expires_at or not user.active:
            raise Unauthenticated("not logged in (or the session ended); log in again")
        return self._principal(user, auth="session", scope="write", csrf_token=session.csrf_token)

    def _principal(
        self,
        user: UserRecord,
        *,
        auth: AuthKind,
        scope: Scope,
        key_id: str | None = None,
        csrf_token: str | None = None,
    ) -> Principal:
        groups = self.identity.groups_of(user.id)
        return Principal(
            name=user.name,
            role="admin" if user.role == "admin" else "member",
            auth=auth,
            scope=scope,
            user_id=user.id,
            group_ids=tuple(group_id for group_id, _ in groups),
            group_names=tuple(name for _, name in groups),
            key_id=key_id,
            csrf_token=csrf_token,
        )

    def login(self, name: str, password: str, address: str | None) -> LoginResult:
        """Check a name and password; a new session on success. Refused (`TooManyAttempts`) once the account
        or the address has failed too often within the window, before the password is even checked."""
        moment = now()
        since = iso(moment - self._login_window)
        account_key = name[:128]
        for count, oldest, limit in (
            (
                *self.identity.recent_failures(action="login_failed", since=since, target=account_key),
                self._login_attempts,
            ),
            (
                *self.identity.recent_failures(action="login_failed", since=since, address=address or "-"),
                self._login_attempts_per_address,
            ),
        ):
            if count >= limit and oldest is not None:
                wait = datetime.fromisoformat(oldest) + self._login_window - moment
                retry_after = max(1, int(wait.total_seconds()) + 1)
                raise TooManyAttempts(
                    f"too many failed logins; try again in {_duration(retry_after)}", retry_after
                )
        user = self.identity.user_by_name(name) if len(password) <= MAX_PASSWORD_CHARS else None
        ok = _verify_password(user.password_hash if user else None, password[:MAX_PASSWORD_CHARS])
        if user is None or not ok or not user.active:
            self.record(None, "login_failed", account_key, {}, address, actor=account_key)
            raise InvalidCredentials("wrong user name or password")
        return self.start_session(user, address, {})

    def start_session(self, user: UserRecord, address: str | None, detail: dict[str, Any]) -> LoginResult:
        """A new login session for a user already authenticated (by password here, or by single
        sign-on: `detail` says how, for the audit log)."""
        moment = now()
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self.identity.add_session(
            token_hash=_sha256(token),
            user_id=user.id,
            csrf_token=csrf,
            created_at=iso(moment),
            expires_at=iso(moment + self._session_lifetime),
        )
        principal = self._principal(user, auth="session", scope="write", csrf_token=csrf)
        self.record(principal, "login", user.name, detail, address)
        return LoginResult(principal, token, csrf)

    def principal_for_user(self, user: UserRecord, *, auth: AuthKind) -> Principal:
        """The principal of a user vouched for elsewhere (a trusted proxy), with the user's full rights."""
        return self._principal(user, auth=auth, scope="write")

    def logout(self, token: str) -> None:
        """End the session (a no-op if it has ended already)."""
        self.identity.delete_session(_sha256(token))

    @property
    def session_lifetime_s(self) -> int:
        return int(self._session_lifetime.total_seconds())

    # --- collections -----------------------------------------------------------------------------------

    def permission(self, principal: Principal, collection: str) -> Permission:
        """The principal's permission on the collection (NONE also when it does not exist)."""
        exists, owner_id, granted = self.identity.collection_access(
            collection, principal.user_id, principal.group_ids
        )
        if not exists:
            return Permission.NONE
        return self._cap(principal, self._uncapped(principal, owner_id, granted))

    @staticmethod
    def _uncapped(principal: Principal, owner_id: int | None, granted: list[str]) -> Permission:
        if principal.is_admin or (owner_id is not None and owner_id == principal.user_id):
            return Permission.MANAGE
        best = Permission.NONE
        for permission in granted:
            best = max(best, Permission.WRITE if permission == "write" else Permission.READ)
        return best

    @staticmethod
    def _cap(principal: Principal, permission: Permission) -> Permission:
        return min(permission, Permission.READ) if principal.scope == "read" else permission

    def require(self, principal: Principal, collection: str, needed: Permission) -> Permission:
        """The principal's permission on the collection if it is at least `needed`; else
        `CollectionNotFound` (cannot read it, or it does not exist) or `Forbidden` (can read it)."""
        permission = self.permission(principal, collection)
        if permission < Permission.READ:
            raise CollectionNotFound(collection, self.readable_names(principal))
        if permission < needed:
            raise Forbidden(
                f"you may not {_VERBS[needed]} collection {collection!r}"
                + (" with a read-only key" if principal.scope == "read" else "")
            )
        return permission

    def readable_collections(self, principal: Principal) -> list[CollectionView]:
        """The collections the principal may read, by name."""
        records = self.identity.list_collections()
        granted = (
            {} if principal.is_admin else self.identity.grants_to(principal.user_id, principal.group_ids)
        )
        views = []
        for record in records:
            permission = self._cap(
                principal, self._uncapped(principal, record.owner_id, granted.get(record.name, []))
            )
            if permission >= Permission.READ:
                views.append(CollectionView(record.name, record.owner_name, permission, record.documents))
        return views

    def readable_names(self, principal: Principal) -> list[str]:
        return [view.name for view in self.readable_collections(principal)]

    def create_collection(
        self, principal: Principal, name: str, *, owner: str | None = None, address: str | None = None
    ) -> None:
        """A new empty collection owned by the caller (an admin may name another owner, or none with
        `owner=""`: admin-managed). `Conflict` if the name is taken, also by one the caller cannot read."""
        _collection_name(name)
        self._require_write_scope(principal)
        owner_id = principal.user_id
        if owner is not None:
            if not principal.is_admin:
                raise Forbidden("only an admin may create a collection for someone else")
            owner_id = self._user(owner).id if owner else None
        try:
            self.identity.add_collection(name, owner_id=owner_id)
        except NameTaken:
            raise Conflict(f"a collection named {name!r} exists already") from None
        self.record(principal, "collection_created", name, {"owner": owner or principal.name}, address)

    def prepare_write(self, principal: Principal, collection: str, address: str | None = None) -> None:
        """Make sure the principal may write into `collection`; a collection that does not exist yet is
        created, owned by the caller (admins create admin-managed ones)."""
        _collection_name(collection)
        self._require_write_scope(principal)
        owner_id = None if principal.is_admin else principal.user_id
        if self.identity.add_collection(collection, owner_id=owner_id, if_missing=True):
            self.record(principal, "collection_created", collection, {"owner": principal.name}, address)
            return
        self.require(principal, collection, Permission.WRITE)

    def delete_collection(
        self,
        principal: Principal,
        name: str,
        delete_data: Callable[[str], object],
        address: str | None = None,
    ) -> None:
        """Delete the collection with every document, chunk, vector and grant (`delete_data` removes the
        stored rows and search indexes in one transaction); owner or admin."""
        self.require(principal, name, Permission.MANAGE)
        delete_data(name)
        self.record(principal, "collection_deleted", name, {}, address)

    # --- grants ----------------------------------------------------------------------------------------

    def grants(self, principal: Principal, collection: str) -> list[GrantRecord]:
        self.require(principal, collection, Permission.MANAGE)
        return self.identity.grants_of(collection)

    def put_grant(
        self,
        principal: Principal,
        collection: str,
        kind: str,
        name: str,
        permission: str,
        address: str | None = None,
    ) -> None:
        """Give a user or group `read` or `write` on the collection (replacing their earlier grant)."""
        self.require(principal, collection, Permission.MANAGE)
        if permission not in ("read", "write"):
            raise InvalidInput("permission must be 'read' or 'write'")
        principal_id = self._grantee(kind, name)
        self.identity.put_grant(collection, kind, principal_id, permission)
        self.record(
            principal,
            "grant_set",
            collection,
            {"kind": kind, "name": name, "permission": permission},
            address,
        )

    def delete_grant(
        self, principal: Principal, collection: str, kind: str, name: str, address: str | None = None
    ) -> None:
        self.require(principal, collection, Permission.MANAGE)
        if not self.identity.delete_grant(collection, kind, self._grantee(kind, name)):
            raise NotFound(f"{collection!r} has no grant to {kind} {name!r}")
        self.record(principal, "grant_removed", collection, {"kind": kind, "name": name}, address)

    def _grantee(self, kind: str, name: str) -> int:
        if kind == "user":
            return self._user(name).id
        if kind == "group":
            group_id = self.identity.group_id(name)
            if group_id is None:
                raise NotFound(f"no group named {name!r}")
            return group_id
        raise InvalidInput("kind must be 'user' or 'group'")

    # --- API keys --------------------------------------------------------------------------------------

    def create_key(
        self,
        principal: Principal,
        *,
        user: str | None = None,
        scope: str = "read",
        name: str = "",
        expires_days: int | None = None,
        address: str | None = None,
    ) -> tuple[KeyRecord, str]:
        """A new key for the caller (an admin may name any user); returns it with its secret
        `rck_<id>_<secret>`, which is shown this once and stored only as a SHA-256 hash."""
        self._require_write_scope(principal)
        if scope not in ("read", "write"):
            raise InvalidInput("scope must be 'read' or 'write'")
        if expires_days is not None and not 1 <= expires_days <= 3650:
            raise InvalidInput("expiry must be 1 to 3650 days")
        if len(name) > 100:
            raise InvalidInput("a key name has at most 100 characters")
        owner = self._owner_for(principal, user)
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        moment = now()
        self.identity.add_key(
            key_id=key_id,
            user_id=owner.id,
            name=name,
            secret_hash=_sha256(secret),
            scope=scope,
            created_at=iso(moment),
            expires_at=None if expires_days is None else iso(moment + timedelta(days=expires_days)),
        )
        detail: dict[str, Any] = {"user": owner.name, "scope": scope, "expires_days": expires_days}
        self.record(principal, "key_created", key_id, detail, address)
        record = self.identity.key(key_id)
        assert record is not None
        return record, f"{KEY_PREFIX}_{key_id}_{secret}"

    def list_keys(self, principal: Principal, user: str | None = None) -> list[KeyRecord]:
        """The caller's keys; an admin may ask for one user's (`user`) or, from the CLI, everyone's."""
        if user is None and principal.user_id is None:
            return self.identity.list_keys()
        return self.identity.list_keys(self._owner_for(principal, user).id)

    def revoke_key(self, principal: Principal, key_id: str, address: str | None = None) -> None:
        """Revoke a key (the caller's own, or any for an admin); it stops working at the next request."""
        self._require_write_scope(principal)
        key = self.identity.key(key_id)
        if key is None or (not principal.is_admin and key.user_id != principal.user_id):
            raise NotFound(f"no API key with id {key_id!r}")
        self.identity.revoke_key(key_id, at=iso(now()))
        self.record(principal, "key_revoked", key_id, {"user": key.user_name}, address)

    def _owner_for(self, principal: Principal, user: str | None) -> UserRecord:
        if user is None or user == principal.name:
            if principal.user_id is None:
                raise InvalidInput("name the user (--user NAME)")
            found = self.identity.user_by_id(principal.user_id)
            assert found is not None
            return found
        if not principal.is_admin:
            raise Forbidden("only an admin may manage another user's keys")
        return self._user(user)

    # --- users and groups ------------------------------------------------------------------------------

    def add_user(
        self,
        principal: Principal,
        name: str,
        *,
        admin: bool = False,
        password: str | None = None,
        address: str | None = None,
    ) -> UserRecord:
        """A new active user; without a password they sign in with keys only."""
        self._require_admin(principal)
        _check_name(name, "user")
        password_hash = None if password is None else hash_password(check_new_password(password))
        try:
            user = self.identity.add_user(
                name, role="admin" if admin else "member", password_hash=password_hash, created_at=iso(now())
            )
        except NameTaken:
            raise Conflict(f"a user named {name!r} exists already") from None
        assert user is not None
        self.record(
            principal, "user_added", name, {"role": user.role, "password": password is not None}, address
        )
        return user

    def list_users(self, principal: Principal) -> list[UserRecord]:
        return self.identity.list_users()

    def set_user_active(
        self, principal: Principal, name: str, active: bool, address: str | None = None
    ) -> None:
        """Disable (ending every session and key of theirs at once) or enable a user."""
        self._require_admin(principal)
        user = self._user(name)
        self.identity.set_user_active(user.id, active)
        self.record(principal, "user_enabled" if active else "user_disabled", name, {}, address)

    def delete_user(self, principal: Principal, name: str, address: str | None = None) -> None:
        """Delete a user: their keys, sessions, grants and saved conversations go with them; collections they
        own become admin-managed. An admin cannot delete themselves (another admin can)."""
        self._require_admin(principal)
        user = self._user(name)
        if user.id == principal.user_id:
            raise Forbidden("you cannot delete your own user; another admin can")
        self.identity.delete_user(user.id)
        self.record(principal, "user_deleted", name, {}, address)

    def set_password(self, principal: Principal, name: str, password: str | None) -> None:
        self._require_admin(principal)
        user = self._user(name)
        password_hash = None if password is None else hash_password(check_new_password(password))
        self.identity.set_password_hash(user.id, password_hash)
        self.record(principal, "password_set", name, {}, None)

    def add_group(self, principal: Principal, name: str) -> None:
        self._require_admin(principal)
        _check_name(name, "group")
        try:
            self.identity.add_group(name, created_at=iso(now()))
        except NameTaken:
            raise Conflict(f"a group named {name!r} exists already") from None
        self.record(principal, "group_added", name, {}, None)

    def set_membership(self, principal: Principal, group: str, user: str, member: bool) -> None:
        self._require_admin(principal)
        group_id = self.identity.group_id(group)
        if group_id is None:
            raise NotFound(f"no group named {group!r}")
        self.identity.set_membership(group_id, self._user(user).id, member)
        self.record(principal, "member_added" if member else "member_removed", group, {"user": user}, None)

    def list_groups(self, principal: Principal) -> list[tuple[str, list[str]]]:
        return self.identity.list_groups()

    def _user(self, name: str) -> UserRecord:
        user = self.identity.user_by_name(name)
        if user is None:
            raise NotFound(f"no user named {name!r}")
        return user

    @staticmethod
    def _require_admin(principal: Principal) -> None:
        if not principal.is_admin:
            raise Forbidden("only an admin may do this")
        AccessService._require_write_scope(principal)

    @staticmethod
    def _require_write_scope(principal: Principal) -> None:
        if principal.scope != "write":
            raise Forbidden("a read-only key cannot change anything")

    # --- audit -----------------------------------------------------------------------------------------

    def record(
        self,
        principal: Principal | None,
        action: str,
        target: str,
        detail: dict[str, Any],
        address: str | None,
        *,
        actor: str | None = None,
    ) -> None:
        """Append an event to the audit log (never a secret: callers pass names, ids and counts only)."""
        self.identity.append_audit(
            at=iso(now()),
            actor=actor or (principal.name if principal else "-"),
            action=action,
            target=target,
            detail=detail,
            address=address,
        )

    def audit_events(
        self, principal: Principal, *, limit: int = 100, since: str | None = None
    ) -> list[AuditRecord]:
        if not principal.is_admin:
            raise Forbidden("only an admin may read the audit log")
        return self.identity.list_audit(limit=limit, since=since)

    # --- first start -----------------------------------------------------------------------------------

    def bootstrap_admin(self, password: str | None, password_file: Path) -> Path | None:
        """With no users yet, create `admin` with `password`, or with a random one written to
        `password_file` (mode 0600) whose path is returned. Safe when several workers start at once: the
        user table is checked and written under one write lock, so exactly one of them creates it."""
        if self.identity.count_users():
            return None
        generated = password is None
        chosen = password if password is not None else secrets.token_urlsafe(18)
        created = self.identity.add_user(
            "admin",
            role="admin",
            password_hash=hash_password(chosen),
            created_at=iso(now()),
            only_if_none=True,
        )
        if created is None:
            return None
        self.record(
            None, "user_added", "admin", {"role": "admin", "first_start": True}, None, actor="ragchat"
        )
        if not generated:
            return None
        password_file.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(chosen + "\n")
        os.chmod(password_file, 0o600)
        return password_file


_VERBS = {Permission.READ: "read", Permission.WRITE: "write into", Permission.MANAGE: "manage"}


def _duration(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} s"
    return f"{(seconds + 59) // 60} min"
