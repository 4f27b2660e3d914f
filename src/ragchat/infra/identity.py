"""Users, groups, API keys, sessions, collection owners and grants, and the audit log, in the database.

Plain rows in and out (SQLAlchemy Core on the engine of `ragchat.infra.db`, SQLite or PostgreSQL); the
rules about who may do what live in `ragchat.core.access`. Nothing is cached: every call reads the
database, so a change made by another process (the CLI next to a running server, another worker) counts at
the next request. Every method blocks: the HTTP layer calls them from a worker thread.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from ragchat.infra.db import IDENTITY_WRITES, write_transaction
from ragchat.infra.db.schema import (
    api_keys,
    audit_log,
    collection_grants,
    collections,
    documents,
    group_members,
    groups,
    sessions,
    users,
)


class NameTaken(Exception):
    """A user, group or collection of that name exists already."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    name: str
    role: str  # admin | member
    active: bool
    password_hash: str | None
    created_at: str


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    user_id: int
    user_name: str
    name: str
    secret_hash: str
    scope: str  # read | write
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None


@dataclass(frozen=True, slots=True)
class SessionRecord:
    token_hash: str
    user_id: int
    csrf_token: str
    expires_at: str


@dataclass(frozen=True, slots=True)
class CollectionRecord:
    name: str
    owner_id: int | None
    owner_name: str | None
    documents: int


@dataclass(frozen=True, slots=True)
class GrantRecord:
    collection: str
    kind: str  # user | group
    principal_id: int
    principal_name: str
    permission: str  # read | write


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: str
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    address: str | None


_USER_COLUMNS = (
    users.c.id,
    users.c.name,
    users.c.role,
    users.c.active,
    users.c.password_hash,
    users.c.created_at,
)


def _user(row: Any) -> UserRecord:
    return UserRecord(
        id=int(row.id),
        name=str(row.name),
        role=str(row.role),
        active=bool(row.active),
        password_hash=row.password_hash,
        created_at=str(row.created_at),
    )


def _key(row: Any) -> KeyRecord:
    return KeyRecord(
        id=str(row.id),
        user_id=int(row.user_id),
        user_name=str(row.user_name),
        name=str(row.name),
        secret_hash=str(row.secret_hash),
        scope=str(row.scope),
        created_at=str(row.created_at),
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


_KEY_QUERY = select(
    api_keys.c.id,
    api_keys.c.user_id,
    users.c.name.label("user_name"),
    api_keys.c.name,
    api_keys.c.secret_hash,
    api_keys.c.scope,
    api_keys.c.created_at,
    api_keys.c.expires_at,
    api_keys.c.revoked_at,
    api_keys.c.last_used_at,
).join(users, users.c.id == api_keys.c.user_id)


class IdentityStore:
    """The identity tables of one database (the engine is shared with whoever opened it)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- users -----------------------------------------------------------------------------------------

    def count_users(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(users)).scalar_one())

    def add_user(
        self, name: str, *, role: str, password_hash: str | None, created_at: str, only_if_none: bool = False
    ) -> UserRecord | None:
        """Insert a user; `NameTaken` if the name is in use. With `only_if_none`, insert only while the
        table is empty (checked under the write lock) and return None otherwise: the first-start admin."""
        try:
            with write_transaction(self.engine, serialize=IDENTITY_WRITES) as conn:
                if only_if_none and conn.execute(select(func.count()).select_from(users)).scalar_one():
                    return None
                conn.execute(
                    insert(users).values(
                        name=name, role=role, active=True, password_hash=password_hash, created_at=created_at
                    )
                )
                row = conn.execute(select(*_USER_COLUMNS).where(users.c.name == name)).one()
        except IntegrityError:
            raise NameTaken(name) from None
        return _user(row)

    def user_by_name(self, name: str) -> UserRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(*_USER_COLUMNS).where(users.c.name == name)).first()
        return None if row is None else _user(row)

    def user_by_id(self, user_id: int) -> UserRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(*_USER_COLUMNS).where(users.c.id == user_id)).first()
        return None if row is None else _user(row)

    def list_users(self) -> list[UserRecord]:
        with self.engine.connect() as conn:
            return [_user(row) for row in conn.execute(select(*_USER_COLUMNS).order_by(users.c.name))]

    def set_user_active(self, user_id: int, active: bool) -> None:
        """Enable or disable a user; disabling also deletes every session of theirs."""
        with write_transaction(self.engine, serialize=IDENTITY_WRITES) as conn:
            conn.execute(update(users).where(users.c.id == user_id).values(active=active))
            if not active:
                conn.execute(delete(sessions).where(sessions.c.user_id == user_id))

    def delete_user(self, user_id: int) -> None:
        """Delete a user with everything that is theirs alone: keys, sessions, group memberships, grants and
        saved conversations (the foreign keys cascade). Collections they own stay, managed by admins."""
        with write_transaction(self.engine, serialize=IDENTITY_WRITES) as conn:
            conn.execute(update(collections).where(collections.c.owner_id == user_id).values(owner_id=None))
            conn.execute(
                delete(collection_grants).where(
                    and_(
                        collection_grants.c.principal_kind == "user",
                        collection_grants.c.principal_id == user_id,
                    )
                )
            )
            conn.execute(delete(users).where(users.c.id == user_id))

    def set_password_hash(self, user_id: int, password_hash: str | None) -> None:
        with write_transaction(self.engine, serialize=IDENTITY_WRITES) as conn:
            conn.execute(update(users).where(users.c.id == user_id).values(password_hash=password_hash))

    # --- groups ----------------------------------------------------------------------------------------

    def add_group(self, name: str, *, created_at: str) -> int:
        try:
            with write_transaction(self.engine, serialize=IDENTITY_WRITES) as conn:
                result = conn.execute(insert(groups).values(name=name, created_at=created_at))
                return int(result.inserted_primary_key[0])  # type: ignore[index]
        except IntegrityError:
            raise NameTaken(name) from None

    def group_id(self, name: str) -> int | None:
        with self.engine.connect() as conn:
            found = conn.execute(select(groups.c.id).where(groups.c.name == name)).scalar()
        return None if found is None else int(found)

    def set_membership(self, group_id: int, user_id: int, member: bool) -> None:
        with write_transaction(self.engine, serialize=IDENTITY_WRITES) as conn:
            conn.execute(
                delete(group_members).where(
                    and_(group_members.c.group_id == group_id, group_members.c.user_id == user_id)
                )
            )
            if member:
                conn.execute(insert(group_members).values(group_id=group_id, user_id=user_id))

    def replace_groups(self, user_id: int, names: Sequence[str], *, created_at: str) -> bool:
        """Make the user a member of exactly the groups `names` (creating missing groups), in one
        transaction; True if anything changed (single sign-on maps the provider's groups this way). The
        usual case, nothing to change, only reads: a trusted proxy's user is mapped at every request."""
        wanted = set(names)
        if {name for _, name in self.groups_of(user_id)} == wanted:
            return False
        with write_transaction(self.engine, serialize=IDENTITY_WRITES) as conn:
            current = {
                str(row.name): int(row.id)
                for row in conn.execute(
                    select(groups.c.id, groups.c.name)
                    .join(group_members, group_members.c.group_id == groups.c.id)
                    .where(group_members.c.user_id == user_id)
                )
            }
            if wanted == set(current):
                return False
            gone = [group_id for name, group_id in current.items() if name not in wanted]
            if gone:
                conn.execute(
                    delete(group_members).where(
                        and_(group_members.c.user_id == user_id, group_members.c.group_id.in_(gone))
                    )
                )
            for name in sorted(wanted - set(current)):
                group_id = conn.execute(select(groups.c.id).where(groups.c.name == name)).scalar()
                if group_id is None:
                    inserted = conn.execute(insert(groups).values(name=name, created_at=created_at))
                    group_id = inserted.inserted_primary_key[0]  # type: ignore[index]
                conn.execute(insert(group_members).values(group_id=group_id, user_id=user_id))
        return True

    def groups_of(self, user_id: int) -> list[tuple[int, str]]:
        """(id, name) of each group the user belongs to."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(groups.c.id, groups.c.name)
                .join(group_members, group_members.c.group_id == groups.c.id)
                .where(group_members.c.user_id == user_id)
                .order_by(groups.c.name)
            )
            return [(int(row.id), str(row.name)) for row in rows]

    def list_groups(self) -> list[tuple[str, list[str]]]:
        """(group name, member names) for every group, by name."""
        with self.engine.connect() as conn:
            names = [
                str(name) for name in conn.execute(select(groups.c.name).order_by(groups.c.name)).scalars()
            ]
            members: dict[str, list[str]] = {name: [] for name in names}
            rows = conn.execute(
                select(groups.c.name.label("group_name"), users.c.name.label("user_name"))
                .join(group_members, group_members.c.group_id == groups.c.id)
                .join(users, users.c.id == group_members.c.user_id)
                .order_by(users.c.name)
            )
            for row in rows:
                members[str(row.group_name)].append(str(row.user_name))
        return list(members.items())

    # --- API keys --------------------------------------------------------------------------------------

    def add_key(
        self,
        *,
        key_id: str,
        user_id: int,
        name: str,
        secret_hash: str,
        scope: str,
        created_at: str,
        expires_at: str | None,
    ) -> None:
        with write_transaction(self.engine, serialize=IDENTITY_WRITES) as conn:
            conn.execute(
                insert(api_keys).values(
                    id=key_id,
                    user_id=user_id,
                    name=name,
                    secret_hash=secret_hash,
                    scope=scope,
                    created_at=created_at,
                    expires_at=expires_at,
                )
            )

    def key_with_user(self, key_id: str) -> tuple[KeyRecord, UserRecord] | None:
        """The key and its user, read in one query."""
        query = _KEY_QUERY.add_columns(
            users.c.role, users.c.active, users.c.password_hash, users.c.created_at.label("user_created_at")
        ).where(api_keys.c.id == key_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        user = UserRecord(
            id=int(row.user_id),
            name=str(row.user_name),
            role=str(row.role),
            active=bool(row.active),
            password_hash=row.password_hash,
            created_at=str(row.user_created_at),
        )
        return _key(row), user

    def list_keys(self, user_id: int | None = None) -> list[KeyRecord]:
        query = _KEY_QUERY.order_by(users.c.name, api_keys.c.created_at, api_keys.c.id)
        if user_id is not None:
            query = query.where(api_keys.c.user_id == user_id)
        with self.engine.connect() as conn:
            return [_key(row) for row in conn.execute(query)]

    def key(self, key_id: str) -> KeyRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(_KEY_QUERY.where(api_keys.c.id == key_id)).first()
        return None if row is None else _key(row)

    def revoke_key(self, key_id: str, *, at: str) -> bool:
        """Mark the key revoked (if it is not already); False if there is no such key."""
        with write_transaction(self.engine, serialize=IDENTITY_WRITES) as conn:
            found = conn.execute(select(api_keys.c.id).where(api_keys.c.id == key_id)).first()
            if found is None:
                return False
            conn.execute(
                update(api_keys)
                .where(and_(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)))
                .values(revoked_at=at)
            )
        return True

    def touch_key(self, key_id: str, *, at: str, unless_since: str) -> None:
        """Record a use of the key, unless one was recorded at or after `unless_since`."""
        with self.engine.begin() as conn:
            conn.execute(
                update(api_keys)
                .where(
                    and_(
                        api_keys.c.id == key_id,
                        or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at < unless_since),
                    )
                )
                .values(last_used_at=at)
            )

    # --- sessions --------------------------------------------------------------------------------------

    def add_session(
        self, *, token_hash: str, user_id: int, csrf_token: str, created_at: str, expires_at: str
    ) -> None:
        with write_transaction(self.engine, serialize=IDENTITY_WRITES) as conn:
            conn.execute(delete(sessions).where(sessions.c.expires_at < created_at))  # keep the table small
            conn.execute(
                insert(sessions).values(
                    token_hash=token_hash,
                    user_id=user_id,
                    csrf_token=csrf_token,
                    created_at=created_at,
                    expires_at=expires_at,
                )
            )

    def session_with_user(self, token_hash: str) -> tuple[SessionRecord, UserRecord] | None:
        query = (
            select(sessions.c.csrf_token, sessions.c.expires_at, *_USER_COLUMNS)
            .join(users, users.c.id == sessions.c.user_id)
            .where(sessions.c.token_hash == token_hash)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        session = SessionRecord(
            token_hash=token_hash,
            user_id=int(row.id),
            csrf_token=str(row.csrf_token),
            expires_at=row.expires_at,
        )
        return session, _user(row)

    def delete_session(self, token_hash: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.token_hash == token_hash))

    # --- collections and grants ------------------------------------------------------------------------

    def collection(self, name: str) -> CollectionRecord | None:
        found = self.list_collections(names=[name])
        return found[0] if found else None

    def list_collections(self, names: Sequence[str] | None = None) -> list[CollectionRecord]:
        """Every collection (or those named), with its owner and how many documents it holds."""
        counts = (
            select(documents.c.collection, func.count().label("n"))
            .group_by(documents.c.collection)
            .subquery()
        )
        query = (
            select(collections.c.name, collections.c.owner_id, users.c.name.label("owner_name"), counts.c.n)
            .outerjoin(users, users.c.id == collections.c.owner_id)
            .outerjoin(counts, counts.c.collection == collections.c.name)
            .order_by(collections.c.name)
        )
        if names is not None:
            query = query.where(collections.c.name.in_(list(names)))
        with self.engine.connect() as conn:
            return [
                CollectionRecord(
                    name=str(row.name),
                    owner_id=row.owner_id,
                    owner_name=row.owner_name,
                    documents=int(row.n or 0),
                )
                for row in conn.execute(query)
            ]

    def add_collection(self, name: str, *, owner_id: int | None, if_missing: bool = False) -> bool:
        """Create an empty collection; `NameTaken` if it exists (or, with `if_missing`, return False)."""
        try:
            with write_transaction(self.engine, serialize=IDENTITY_WRITES) as conn:
                query = select(collections.c.id).where(collections.c.name == name)
                taken = conn.execute(query).first() is not None
                if not taken:
                    conn.execute(insert(collections).values(name=name, owner_id=owner_id))
        except IntegrityError:  # made at this moment by an upload (which does not take the identity lock)
            taken = True
        if taken and not if_missing:
            raise NameTaken(name)
        return not taken

    def set_collection_owner(self, name: str, owner_id: int | None) -> None:
        with write_transaction(self.engine, serialize=IDENTITY_WRITES) as conn:
            conn.execute(update(collections).where(collections.c.name == name).values(owner_id=owner_id))

    def collection_access(
        self, name: str, user_id: int | None, group_ids: Sequence[int]
    ) -> tuple[bool, int | None, list[str]]:
        """(exists, owner id, permissions granted to the user or one of the groups) for one collection,
        in one query."""
        principal = [
            and_(collection_grants.c.principal_kind == "user", collection_grants.c.principal_id == user_id)
        ]
        if group_ids:
            principal.append(
                and_(
                    collection_grants.c.principal_kind == "group",
                    collection_grants.c.principal_id.in_(list(group_ids)),
                )
            )
        query = (
            select(collections.c.owner_id, collection_grants.c.permission)
            .outerjoin(
                collection_grants,
                and_(collection_grants.c.collection == collections.c.name, or_(*principal)),
            )
            .where(collections.c.name == name)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return False, None, []
        return True, rows[0].owner_id, [str(row.permission) for row in rows if row.permission is not None]

    def grants_to(self, user_id: int | None, group_ids: Sequence[int]) -> dict[str, list[str]]:
        """collection name: permissions granted to the user or one of the groups."""
        principal = [
            and_(collection_grants.c.principal_kind == "user", collection_grants.c.principal_id == user_id)
        ]
        if group_ids:
            principal.append(
                and_(
                    collection_grants.c.principal_kind == "group",
                    collection_grants.c.principal_id.in_(list(group_ids)),
                )
            )
        found: dict[str, list[str]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(
                select(collection_grants.c.collection, collection_grants.c.permission).where(or_(*principal))
            ):
                found.setdefault(str(row.collection), []).append(str(row.permission))
        return found

    def grants_of(self, collection: str) -> list[GrantRecord]:
        user_grants = select(
            collection_grants.c.collection,
            collection_grants.c.principal_kind,
            collection_grants.c.principal_id,
            users.c.name,
            collection_grants.c.permission,
        ).join(
            users,
            and_(
                collection_grants.c.principal_kind == "user", users.c.id == collection_grants.c.principal_id
            ),
        )
        group_grants = select(
            collection_grants.c.collection,
            collection_grants.c.principal_kind,
            collection_grants.c.principal_id,
            groups.c.name,
            collection_grants.c.permission,
        ).join(
            groups,
            and_(
                collection_grants.c.principal_kind == "group", groups.c.id == collection_grants.c.principal_id
            ),
        )
        grants: list[GrantRecord] = []
        with self.engine.connect() as conn:
            for query in (user_grants, group_grants):
                for row in conn.execute(query.where(collection_grants.c.collection == collection)):
                    grants.append(
                        GrantRecord(str(row[0]), str(row[1]), int(row[2]), str(row[3]), str(row[4]))
                    )
        return sorted(grants, key=lambda grant: (grant.kind, grant.principal_name))

    def put_grant(self, collection: str, kind: str, principal_id: int, permission: str) -> None:
        with write_transaction(self.engine, serialize=IDENTITY_WRITES) as conn:
            conn.execute(
                delete(collection_grants).where(
                    and_(
                        collection_grants.c.collection == collection,
                        collection_grants.c.principal_kind == kind,
                        collection_grants.c.principal_id == principal_id,
                    )
                )
            )
            conn.execute(
                insert(collection_grants).values(
                    collection=collection,
                    principal_kind=kind,
                    principal_id=principal_id,
                    permission=permission,
                )
            )

    def delete_grant(self, collection: str, kind: str, principal_id: int) -> bool:
        with write_transaction(self.engine, serialize=IDENTITY_WRITES) as conn:
            result = conn.execute(
                delete(collection_grants).where(
                    and_(
                        collection_grants.c.collection == collection,
                        collection_grants.c.principal_kind == kind,
                        collection_grants.c.principal_id == principal_id,
                    )
                )
            )
        return bool(result.rowcount)

    # --- audit log -------------------------------------------------------------------------------------

    def append_audit(
        self, *, at: str, actor: str, action: str, target: str, detail: dict[str, Any], address: str | None
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(audit_log).values(
                    at=at,
                    actor=actor,
                    action=action,
                    target=target,
                    detail=json.dumps(detail, ensure_ascii=False, sort_keys=True),
                    address=address,
                )
            )

    def list_audit(self, *, limit: int, since: str | None = None) -> list[AuditRecord]:
        """The newest `limit` events (at or after `since`), newest first."""
        query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if since is not None:
            query = query.where(audit_log.c.at >= since)
        with self.engine.connect() as conn:
            return [
                AuditRecord(
                    id=int(row.id),
                    at=str(row.at),
                    actor=str(row.actor),
                    action=str(row.action),
                    target=str(row.target),
                    detail=json.loads(row.detail),
                    address=row.address,
                )
                for row in conn.execute(query)
            ]

    def recent_failures(
        self, *, action: str, since: str, target: str | None = None, address: str | None = None
    ) -> tuple[int, str | None]:
        """(how many `action` events since `since` for this target or address, the oldest one's time)."""
        condition = and_(audit_log.c.action == action, audit_log.c.at >= since)
        if target is not None:
            condition = and_(condition, audit_log.c.target == target)
        if address is not None:
            condition = and_(condition, audit_log.c.address == address)
        with self.engine.connect() as conn:
            row = conn.execute(select(func.count(), func.min(audit_log.c.at)).where(condition)).one()
        return int(row[0]), row[1]
