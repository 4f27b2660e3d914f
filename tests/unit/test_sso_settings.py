"""Single sign-on settings and the parsing of group lists (claims and proxy headers)."""

from __future__ import annotations

import ipaddress

import pytest

from ragchat.config import SettingsError, load_settings
from ragchat.infra.oidc import group_names


def test_group_names_from_claims_and_headers() -> None:
    assert group_names(["a", " b ", "a", "", 3]) == ("a", "b")
    assert group_names("eng, sales|ops") == ("eng", "sales", "ops")
    assert group_names(None) == ()
    assert group_names({"not": "a list"}) == ()


def test_trusted_proxies_parse_addresses_and_networks() -> None:
    settings = load_settings(
        _env_file=None,
        trusted_user_header="X-Forwarded-User",
        trusted_proxies="127.0.0.1, 10.0.0.0/8 ::1",
    )
    assert settings.trusted_proxy_networks == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"password_login": "off"}, "RAGCHAT_PASSWORD_LOGIN=off needs single sign-on"),
        ({"trusted_user_header": "X-User"}, "needs RAGCHAT_TRUSTED_PROXIES"),
        ({"trusted_groups_header": "X-Groups"}, "needs RAGCHAT_TRUSTED_USER_HEADER"),
        ({"trusted_proxies": "10.0.0.300"}, "not an IP address or CIDR network"),
        ({"oidc_issuer": "https://idp.example"}, "needs RAGCHAT_OIDC_CLIENT_ID"),
        ({"oidc_issuer": "idp.example", "oidc_client_id": "x"}, "http:// or https://"),
        ({"oidc_scopes": "profile email"}, "must include the scope openid"),
    ],
)
def test_unsafe_or_incomplete_settings_are_refused(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(_env_file=None, **overrides)


def test_password_login_may_be_off_with_sso() -> None:
    settings = load_settings(
        _env_file=None, oidc_issuer="https://idp.example", oidc_client_id="ragchat", password_login="off"
    )
    assert settings.sso_enabled and settings.password_login == "off"
    assert settings.oidc_scopes == "openid profile email"
