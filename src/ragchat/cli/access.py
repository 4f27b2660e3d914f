"""CLI commands for identity and access: `users`, `groups`, `keys`, `collections` and `audit`.

They work on the database directly (as `ingest` does), acting as the local admin `cli`; a running app sees
each change at its next request. None of them prompts when standard input is not a terminal.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.table import Table

from ragchat.cli.common import console, fail, settings_or_exit
from ragchat.container import open_access, open_store
from ragchat.core.access import AccessError, AccessService, Principal
from ragchat.infra.db import DatabaseError
from ragchat.infra.identity import KeyRecord
from ragchat.infra.store import StoreError

T = TypeVar("T")
CLI_ADMIN = Principal.local_admin("cli", "local")

users_app = typer.Typer(name="users", help="Add, list and disable users.", no_args_is_help=True)
groups_app = typer.Typer(name="groups", help="Groups (teams) of users.", no_args_is_help=True)
keys_app = typer.Typer(name="keys", help="Create, list and revoke API keys.", no_args_is_help=True)
collections_app = typer.Typer(
    name="collections", help="Create, share and delete collections.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    for group in (users_app, groups_app, keys_app, collections_app):
        app.add_typer(group)
    app.command(name="audit")(audit)


def with_access(work: Callable[[AccessService], T]) -> T:
    """Run `work` on the configured database; access errors become one line and exit status 1."""
    settings = settings_or_exit()
    try:
        access = open_access(settings)
    except (DatabaseError, OSError) as exc:
        raise fail(str(exc)) from None
    try:
        return work(access)
    except AccessError as exc:
        raise fail(exc.message) from None
    finally:
        access.identity.engine.dispose()


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False))


# --- users -----------------------------------------------------------------------------------------------


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="User name (letters, digits, _ . @ -)."),
    admin: bool = typer.Option(False, "--admin", help="Make the user an admin."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from standard input (first line)."
    ),
) -> None:
    """Add a user. Without --password-stdin the user signs in with API keys only, unless standard input is a
    terminal, where you are asked for a password (empty: keys only)."""
    password: str | None = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise fail("--password-stdin: standard input held no password", 2)
    elif sys.stdin.isatty():
        password = getpass.getpass("Password (empty: API keys only): ") or None
    with_access(lambda access: access.add_user(CLI_ADMIN, name, admin=admin, password=password))
    console.print(
        f"added user {name}" + (" (admin)" if admin else "") + ("" if password else ", API keys only")
    )


@users_app.command("list")
def users_list(as_json: bool = typer.Option(False, "--json", help="One JSON object per user.")) -> None:
    """List users."""
    users = with_access(lambda access: access.list_users(CLI_ADMIN))
    if as_json:
        for user in users:
            _echo_json(
                {
                    "name": user.name,
                    "role": user.role,
                    "active": user.active,
                    "password": user.password_hash is not None,
                    "created_at": user.created_at,
                }
            )
        return
    table = Table("name", "role", "active", "password", "created")
    for user in users:
        table.add_row(
            user.name,
            user.role,
            "yes" if user.active else "no",
            "yes" if user.password_hash else "no",
            user.created_at,
        )
    console.print(table)


@users_app.command("disable")
def users_disable(name: str = typer.Argument(..., help="User name.")) -> None:
    """Disable a user: their sessions end and their keys stop working at once."""
    with_access(lambda access: access.set_user_active(CLI_ADMIN, name, False))
    console.print(f"disabled user {name}")


@users_app.command("enable")
def users_enable(name: str = typer.Argument(..., help="User name.")) -> None:
    """Enable a disabled user again."""
    with_access(lambda access: access.set_user_active(CLI_ADMIN, name, True))
    console.print(f"enabled user {name}")


@users_app.command("delete")
def users_delete(
    name: str = typer.Argument(..., help="User name."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a user for good: their API keys, sessions, grants and saved conversations go with them.
    Collections they own stay, managed by admins. To keep everything, `disable` the user instead."""
    if not yes and not typer.confirm(f"Delete user {name} with their keys and conversations?"):
        raise typer.Exit(1)
    with_access(lambda access: access.delete_user(CLI_ADMIN, name))
    console.print(f"deleted user {name}")


# --- groups ----------------------------------------------------------------------------------------------


@groups_app.command("add")
def groups_add(name: str = typer.Argument(..., help="Group name.")) -> None:
    """Add a group."""
    with_access(lambda access: access.add_group(CLI_ADMIN, name))
    console.print(f"added group {name}")


@groups_app.command("add-member")
def groups_add_member(group: str = typer.Argument(...), user: str = typer.Argument(...)) -> None:
    """Put a user in a group."""
    with_access(lambda access: access.set_membership(CLI_ADMIN, group, user, True))
    console.print(f"{user} is in {group}")


@groups_app.command("remove-member")
def groups_remove_member(group: str = typer.Argument(...), user: str = typer.Argument(...)) -> None:
    """Take a user out of a group."""
    with_access(lambda access: access.set_membership(CLI_ADMIN, group, user, False))
    console.print(f"{user} is no longer in {group}")


@groups_app.command("list")
def groups_list(as_json: bool = typer.Option(False, "--json", help="One JSON object per group.")) -> None:
    """List groups and their members."""
    groups = with_access(lambda access: access.list_groups(CLI_ADMIN))
    if as_json:
        for name, members in groups:
            _echo_json({"name": name, "members": members})
        return
    table = Table("group", "members")
    for name, members in groups:
        table.add_row(name, ", ".join(members))
    console.print(table)


# --- keys ------------------------------------------------------------------------------------------------


def _key_json(key: KeyRecord) -> dict[str, Any]:
    return {
        "id": key.id,
        "user": key.user_name,
        "name": key.name,
        "scope": key.scope,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "last_used_at": key.last_used_at,
        "revoked": key.revoked_at is not None,
    }


@keys_app.command("create")
def keys_create(
    user: str = typer.Option(..., "--user", help="Whose key it is."),
    scope: str = typer.Option(
        "read", "--scope", help="read (search, chat, list) or write (also upload, delete)."
    ),
    expires: int | None = typer.Option(None, "--expires", min=1, max=3650, help="Days until it expires."),
    name: str = typer.Option("", "--name", help="A label, e.g. the machine or script using it."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object with `key` and `id`."),
) -> None:
    """Create an API key. It is printed this once; only its hash is stored."""
    if scope not in ("read", "write"):
        raise fail("--scope must be read or write", 2)
    record, secret = with_access(
        lambda access: access.create_key(CLI_ADMIN, user=user, scope=scope, name=name, expires_days=expires)
    )
    if as_json:
        _echo_json({**_key_json(record), "key": secret})
        return
    typer.echo(secret)
    console.print(
        f"[dim]key {record.id} for {user}, scope {scope}; shown once: store it now[/dim]", highlight=False
    )


@keys_app.command("list")
def keys_list(
    user: str | None = typer.Option(None, "--user", help="Only this user's keys."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per key."),
) -> None:
    """List API keys (never their secrets)."""
    keys = with_access(lambda access: access.list_keys(CLI_ADMIN, user))
    if as_json:
        for key in keys:
            _echo_json(_key_json(key))
        return
    table = Table("id", "user", "name", "scope", "created", "expires", "last used", "revoked")
    for key in keys:
        table.add_row(
            key.id,
            key.user_name,
            key.name,
            key.scope,
            key.created_at,
            key.expires_at or "-",
            key.last_used_at or "-",
            key.revoked_at or "-",
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: str = typer.Argument(..., metavar="ID", help="The key's id (from `keys list`)."),
) -> None:
    """Revoke a key: it stops working at the next request."""
    with_access(lambda access: access.revoke_key(CLI_ADMIN, key_id))
    console.print(f"revoked key {key_id}")


# --- collections -----------------------------------------------------------------------------------------


@collections_app.command("create")
def collections_create(
    name: str = typer.Argument(...),
    owner: str | None = typer.Option(None, "--owner", help="Owning user (default: none, admin-managed)."),
) -> None:
    """Create an empty collection."""
    with_access(lambda access: access.create_collection(CLI_ADMIN, name, owner=owner or ""))
    console.print(f"created collection {name}" + (f" owned by {owner}" if owner else ""))


@collections_app.command("list")
def collections_list(
    as_json: bool = typer.Option(False, "--json", help="One JSON object per collection."),
) -> None:
    """List collections with owner, document count and grants."""

    def read(access: AccessService) -> list[dict[str, Any]]:
        return [
            {
                "name": view.name,
                "owner": view.owner,
                "documents": view.documents,
                "grants": [
                    {"kind": g.kind, "name": g.principal_name, "permission": g.permission}
                    for g in access.grants(CLI_ADMIN, view.name)
                ],
            }
            for view in access.readable_collections(CLI_ADMIN)
        ]

    rows = with_access(read)
    if as_json:
        for row in rows:
            _echo_json(row)
        return
    table = Table("collection", "owner", "documents", "grants")
    for row in rows:
        grants = ", ".join(f"{g['kind']} {g['name']}: {g['permission']}" for g in row["grants"])
        table.add_row(row["name"], row["owner"] or "(admins)", str(row["documents"]), grants or "-")
    console.print(table)


def _grantee(user: str | None, group: str | None) -> tuple[str, str]:
    if (user is None) == (group is None):
        raise fail("name exactly one of --user USER or --group GROUP", 2)
    return ("user", user) if user is not None else ("group", group or "")


@collections_app.command("grant")
def collections_grant(
    name: str = typer.Argument(...),
    user: str | None = typer.Option(None, "--user"),
    group: str | None = typer.Option(None, "--group"),
    read: bool = typer.Option(False, "--read", help="May search, chat and list."),
    write: bool = typer.Option(False, "--write", help="May also upload, replace and delete documents."),
) -> None:
    """Share a collection with a user or group."""
    kind, grantee = _grantee(user, group)
    if read == write:
        raise fail("give exactly one of --read or --write", 2)
    permission = "write" if write else "read"
    with_access(lambda access: access.put_grant(CLI_ADMIN, name, kind, grantee, permission))
    console.print(f"{kind} {grantee} may {permission} {name}")


@collections_app.command("revoke")
def collections_revoke(
    name: str = typer.Argument(...),
    user: str | None = typer.Option(None, "--user"),
    group: str | None = typer.Option(None, "--group"),
) -> None:
    """Stop sharing a collection with a user or group."""
    kind, grantee = _grantee(user, group)
    with_access(lambda access: access.delete_grant(CLI_ADMIN, name, kind, grantee))
    console.print(f"{kind} {grantee} no longer has access to {name}")


@collections_app.command("delete")
def collections_delete(name: str = typer.Argument(...)) -> None:
    """Delete a collection with every document, chunk, vector and grant of it."""
    settings = settings_or_exit()
    try:
        store = open_store(settings)
    except (StoreError, OSError) as exc:
        raise fail(str(exc)) from None
    try:
        with_access(lambda access: access.delete_collection(CLI_ADMIN, name, store.delete_collection))
    finally:
        store.close()
    console.print(f"deleted collection {name}")


# --- audit -----------------------------------------------------------------------------------------------


def audit(
    limit: int = typer.Option(100, "--limit", min=1, max=100_000, help="How many events, newest first."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per event."),
) -> None:
    """Show the audit log: logins, keys, grants, uploads and deletions, newest first."""
    events = with_access(lambda access: access.audit_events(CLI_ADMIN, limit=limit))
    if as_json:
        for event in events:
            _echo_json(
                {
                    "at": event.at,
                    "actor": event.actor,
                    "action": event.action,
                    "target": event.target,
                    "detail": event.detail,
                    "address": event.address,
                }
            )
        return
    table = Table("at", "actor", "action", "target", "detail", "address")
    for event in events:
        table.add_row(
            event.at,
            event.actor,
            event.action,
            event.target,
            json.dumps(event.detail, ensure_ascii=False) if event.detail else "",
            event.address or "",
        )
    console.print(table)
