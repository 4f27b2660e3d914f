"""Trusted proxy headers: an authenticating proxy in front of ragchat (oauth2-proxy, Authelia, Authentik, a
company gateway) names the user in RAGCHAT_TRUSTED_USER_HEADER (and the groups in
RAGCHAT_TRUSTED_GROUPS_HEADER). The headers count only when the TCP peer is one of
RAGCHAT_TRUSTED_PROXIES; from any other address they are ignored, as if absent, so a client that reaches
the app directly cannot name itself.

The peer is the ASGI `client`: `ragchat serve` turns uvicorn's X-Forwarded-For rewriting off when trusted
headers are configured (with plain `uvicorn app.main:app`, pass --no-proxy-headers).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.requests import Request

from ragchat.config import IPNetwork, Settings
from ragchat.infra.oidc import group_names

MAX_HEADER_CHARS = 4096


def peer_is_trusted(host: str | None, networks: Sequence[IPNetwork]) -> bool:
    """Whether the address `host` lies in one of `networks` (an IPv4-mapped IPv6 address counts as IPv4)."""
    if not host or not networks:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def proxied_identity(request: Request, settings: Settings) -> tuple[str, tuple[str, ...]] | None:
    """(user name, groups) that a trusted proxy vouches for on this request; None when no trusted header
    applies (not configured, absent, empty, or the request does not come from a trusted proxy)."""
    header = settings.trusted_user_header
    if header is None:
        return None
    name = request.headers.get(header, "").strip()
    if not name or len(name) > MAX_HEADER_CHARS:
        return None
    peer = request.client.host if request.client else None
    if not peer_is_trusted(peer, settings.trusted_proxy_networks):
        return None
    groups_header = settings.trusted_groups_header
    groups = group_names(request.headers.get(groups_header, "")[:MAX_HEADER_CHARS]) if groups_header else ()
    return name, groups
