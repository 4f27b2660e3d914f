"""Routes: login and logout, API keys, collections with their owners and grants, users, groups and the
audit log (docs/security.md says who may call which)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from ragchat.api.auth import (
    PUBLIC,
    SESSION_COOKIE,
    AdminPrincipal,
    ReadPrincipal,
    UserPrincipal,
    WritePrincipal,
    blocking,
    check_origin,
    client_address,
    set_session_cookie,
)
from ragchat.api.deps import ServicesDep
from ragchat.api.errors import ApiError
from ragchat.api.routes.sso import LoginMethods, login_methods
from ragchat.config import Settings
from ragchat.core.access import LoginResult, Principal
from ragchat.infra.identity import KeyRecord

router = APIRouter(tags=["access"])

_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid API key or session"},
    403: {"description": "Not allowed"},
}


# --- login ---------------------------------------------------------------------------------------------


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


class UserOut(BaseModel):
    name: str
    role: Literal["admin", "member"]
    groups: list[str]
    auth: str = Field(description="How this request was authenticated: session, key, proxy or off")


class Me(BaseModel):
    user: UserOut
    csrf_token: str | None = Field(description="Send as X-CSRF-Token on state-changing requests (sessions)")
    login: LoginMethods = Field(description="How one may sign in here (password form, SSO button)")


def _user_out(principal: Principal) -> UserOut:
    return UserOut(
        name=principal.name, role=principal.role, groups=list(principal.group_names), auth=principal.auth
    )


@router.post(
    "/api/auth/login",
    response_model=Me,
    summary="Log in",
    description="Check a user name and password; on success the `ragchat_session` cookie is set. Wrong name "
    "and wrong password get the same 401; too many failures get 429 with Retry-After.",
    dependencies=[Depends(PUBLIC)],
    responses={
        401: {"description": "Wrong user name or password"},
        429: {"description": "Too many attempts"},
    },
)
async def login(body: LoginRequest, request: Request, response: Response, services: ServicesDep) -> Me:
    check_origin(request)  # a login form posted from another site would sign the browser in as someone else
    settings: Settings = request.app.state.settings
    if settings.password_login == "off":
        raise ApiError(
            403, "password_login_off", "password login is switched off here; sign in with single sign-on"
        )
    result = await blocking(services.access.login, body.username, body.password, client_address(request))
    set_session_cookie(response, request, result.session_token, services.access.session_lifetime_s)
    return Me(user=_user_out(result.principal), csrf_token=result.csrf_token, login=login_methods(settings))


@router.post(
    "/api/auth/logout",
    status_code=204,
    response_class=Response,
    summary="Log out",
    description="Ends the session and clears its cookie.",
    responses=_REFUSALS,
)
async def logout(request: Request, services: ServicesDep, _: UserPrincipal) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await blocking(services.access.logout, token)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


@router.get("/api/auth/me", response_model=Me, summary="Who am I", responses=_REFUSALS)
async def me(request: Request, response: Response, services: ServicesDep, principal: UserPrincipal) -> Me:
    csrf_token = principal.csrf_token
    if principal.auth == "proxy" and csrf_token is None and principal.user_id is not None:
        # A user named by a trusted proxy gets a session for its CSRF token (see api/auth.py).
        def open_session() -> LoginResult:
            user = services.access.identity.user_by_id(principal.user_id)  # type: ignore[arg-type]
            assert user is not None
            return services.access.start_session(user, client_address(request), {"via": "proxy"})

        result = await blocking(open_session)
        set_session_cookie(response, request, result.session_token, services.access.session_lifetime_s)
        csrf_token = result.csrf_token
    methods = login_methods(request.app.state.settings)
    return Me(user=_user_out(principal), csrf_token=csrf_token, login=methods)


# --- API keys ------------------------------------------------------------------------------------------


class KeyOut(BaseModel):
    id: str
    name: str
    scope: Literal["read", "write"]
    created_at: str
    expires_at: str | None
    last_used_at: str | None
    revoked: bool
    user: str

    @classmethod
    def of(cls, key: KeyRecord) -> KeyOut:
        return cls(
            id=key.id,
            name=key.name,
            scope="write" if key.scope == "write" else "read",
            created_at=key.created_at,
            expires_at=key.expires_at,
            last_used_at=key.last_used_at,
            revoked=key.revoked_at is not None,
            user=key.user_name,
        )


class KeyList(BaseModel):
    keys: list[KeyOut]


class KeyRequest(BaseModel):
    name: str = Field("", max_length=100)
    scope: Literal["read", "write"] = "read"
    expires_days: int | None = Field(None, ge=1, le=3650)


class NewKey(KeyOut):
    key: str = Field(description="The key itself: shown this once, stored only as a hash")


@router.get("/api/keys", response_model=KeyList, summary="List API keys", responses=_REFUSALS)
async def list_keys(
    services: ServicesDep,
    principal: UserPrincipal,
    user: str | None = Query(None, max_length=64, description="Another user's keys (admins)"),
) -> KeyList:
    keys = await blocking(services.access.list_keys, principal, user)
    return KeyList(keys=[KeyOut.of(key) for key in keys])


@router.post(
    "/api/keys", response_model=NewKey, status_code=201, summary="Create an API key", responses=_REFUSALS
)
async def create_key(
    body: KeyRequest, request: Request, services: ServicesDep, principal: WritePrincipal
) -> NewKey:
    def create() -> tuple[KeyRecord, str]:
        return services.access.create_key(
            principal,
            scope=body.scope,
            name=body.name,
            expires_days=body.expires_days,
            address=client_address(request),
        )

    record, secret = await blocking(create)
    return NewKey(**KeyOut.of(record).model_dump(), key=secret)


@router.delete(
    "/api/keys/{key_id}",
    status_code=204,
    response_class=Response,
    summary="Revoke an API key",
    responses={**_REFUSALS, 404: {"description": "No such key (of yours)"}},
)
async def revoke_key(
    key_id: str, request: Request, services: ServicesDep, principal: WritePrincipal
) -> Response:
    await blocking(services.access.revoke_key, principal, key_id, client_address(request))
    return Response(status_code=204)


# --- collections and grants ----------------------------------------------------------------------------


class CollectionOut(BaseModel):
    name: str
    owner: str | None = Field(description="The owner's user name; null: managed by admins")
    permission: Literal["read", "write", "manage"]
    documents: int


class CollectionList(BaseModel):
    collections: list[CollectionOut]


class CollectionRequest(BaseModel):
    name: str = Field(min_length=1, max_length=64)


class GrantOut(BaseModel):
    kind: Literal["user", "group"]
    name: str
    permission: Literal["read", "write"]


class GrantList(BaseModel):
    grants: list[GrantOut]


_NOT_READABLE: dict[int | str, dict[str, Any]] = {
    **_REFUSALS,
    404: {"description": "No such collection (or you may not read it)"},
}


@router.get(
    "/api/collections", response_model=CollectionList, summary="Collections you may read", responses=_REFUSALS
)
async def list_collections(services: ServicesDep, principal: ReadPrincipal) -> CollectionList:
    views = await blocking(services.access.readable_collections, principal)
    return CollectionList(
        collections=[
            CollectionOut(
                name=view.name,
                owner=view.owner,
                permission=view.permission.label,  # type: ignore[arg-type]
                documents=view.documents,
            )
            for view in views
        ]
    )


@router.post(
    "/api/collections",
    status_code=201,
    response_model=CollectionOut,
    summary="Create a collection (you own it)",
    responses={**_REFUSALS, 409: {"description": "The name is taken"}},
)
async def create_collection(
    body: CollectionRequest, request: Request, services: ServicesDep, principal: WritePrincipal
) -> CollectionOut:
    def create() -> None:
        services.access.create_collection(principal, body.name, address=client_address(request))

    await blocking(create)
    return CollectionOut(
        name=body.name, owner=principal.name if principal.user_id else None, permission="manage", documents=0
    )


@router.delete(
    "/api/collections/{name}",
    status_code=204,
    response_class=Response,
    summary="Delete a collection",
    description="Removes the collection with every document, chunk, vector and grant of it (owner or admin).",
    responses=_NOT_READABLE,
)
async def delete_collection(
    name: str, request: Request, services: ServicesDep, principal: WritePrincipal
) -> Response:
    await blocking(
        services.access.delete_collection,
        principal,
        name,
        services.store.delete_collection,
        client_address(request),
    )
    return Response(status_code=204)


@router.get(
    "/api/collections/{name}/grants",
    response_model=GrantList,
    summary="Who may use a collection",
    responses=_NOT_READABLE,
)
async def list_grants(name: str, services: ServicesDep, principal: UserPrincipal) -> GrantList:
    grants = await blocking(services.access.grants, principal, name)
    return GrantList(
        grants=[
            GrantOut(kind=grant.kind, name=grant.principal_name, permission=grant.permission)  # type: ignore[arg-type]
            for grant in grants
        ]
    )


class GrantRequest(BaseModel):
    kind: Literal["user", "group"]
    name: str = Field(min_length=1, max_length=64)
    permission: Literal["read", "write"]


@router.put(
    "/api/collections/{name}/grants",
    response_model=GrantList,
    summary="Share a collection",
    responses=_NOT_READABLE,
)
async def put_grant(
    name: str, body: GrantRequest, request: Request, services: ServicesDep, principal: WritePrincipal
) -> GrantList:
    def put() -> None:
        services.access.put_grant(
            principal, name, body.kind, body.name, body.permission, client_address(request)
        )

    await blocking(put)
    return await list_grants(name, services, principal)


@router.delete(
    "/api/collections/{name}/grants/{kind}/{grantee}",
    status_code=204,
    response_class=Response,
    summary="Stop sharing a collection with a user or group",
    responses=_NOT_READABLE,
)
async def delete_grant(
    name: str,
    kind: Literal["user", "group"],
    grantee: str,
    request: Request,
    services: ServicesDep,
    principal: WritePrincipal,
) -> Response:
    def remove() -> None:
        services.access.delete_grant(principal, name, kind, grantee, client_address(request))

    await blocking(remove)
    return Response(status_code=204)


# --- users, groups, audit ------------------------------------------------------------------------------


class UserInfo(BaseModel):
    name: str
    role: Literal["admin", "member"] | None = Field(description="Shown to admins only")
    active: bool | None = Field(description="Shown to admins only")
    created_at: str | None = Field(description="Shown to admins only")


class UserList(BaseModel):
    users: list[UserInfo]


class GroupInfo(BaseModel):
    name: str
    members: list[str] | None = Field(description="Shown to admins only")


class GroupList(BaseModel):
    groups: list[GroupInfo]


@router.get(
    "/api/users", response_model=UserList, summary="Users (names only for members)", responses=_REFUSALS
)
async def list_users(services: ServicesDep, principal: UserPrincipal) -> UserList:
    users = await blocking(services.access.list_users, principal)
    if principal.is_admin:
        return UserList(
            users=[
                UserInfo(
                    name=u.name,
                    role="admin" if u.role == "admin" else "member",
                    active=u.active,
                    created_at=u.created_at,
                )
                for u in users
            ]
        )
    return UserList(
        users=[UserInfo(name=u.name, role=None, active=None, created_at=None) for u in users if u.active]
    )


@router.delete(
    "/api/users/{name}",
    status_code=204,
    response_class=Response,
    summary="Delete a user (admins)",
    description="Their API keys, sessions, grants and saved conversations go with them; collections they own "
    "stay, managed by admins. An admin cannot delete themselves.",
    responses={**_REFUSALS, 404: {"description": "No such user"}},
)
async def delete_user(
    request: Request,
    services: ServicesDep,
    principal: AdminPrincipal,
    name: str = Path(min_length=1, max_length=64),
) -> Response:
    await blocking(services.access.delete_user, principal, name, client_address(request))
    return Response(status_code=204)


@router.get(
    "/api/groups", response_model=GroupList, summary="Groups (names only for members)", responses=_REFUSALS
)
async def list_groups(services: ServicesDep, principal: UserPrincipal) -> GroupList:
    groups = await blocking(services.access.list_groups, principal)
    return GroupList(
        groups=[
            GroupInfo(name=name, members=members if principal.is_admin else None) for name, members in groups
        ]
    )


class AuditEvent(BaseModel):
    at: str
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    address: str | None


class AuditLog(BaseModel):
    events: list[AuditEvent]


@router.get(
    "/api/audit", response_model=AuditLog, summary="The audit log, newest first (admins)", responses=_REFUSALS
)
async def audit(
    services: ServicesDep,
    principal: AdminPrincipal,
    limit: int = Query(100, ge=1, le=1000),
    since: str | None = Query(None, max_length=40, description="Only events at or after this ISO time"),
) -> AuditLog:
    def read() -> list[AuditEvent]:
        return [
            AuditEvent(
                at=e.at, actor=e.actor, action=e.action, target=e.target, detail=e.detail, address=e.address
            )
            for e in services.access.audit_events(principal, limit=limit, since=since)
        ]

    return AuditLog(events=await blocking(read))
