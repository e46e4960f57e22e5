"""The pure parts of the authorisation server: scopes, routes, redirect URIs, secrets."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from heslock.ras.keystore import Keystore, MasterKey
from heslock.ras.services.errors import InvalidInput
from heslock.ras.services.oauth import scopes
from heslock.ras.services.oauth.scopes import Scope
from heslock.ras.services.oauth.secrets import (
    SecretKind,
    client_secret_pepper,
    digest,
    is_secret,
    new_secret,
    same,
)
from heslock.ras.services.oauth.server import AppClient
from heslock.ras.services.oauth.store import (
    check_redirect_uri,
    client_secret_digest,
    integration_of,
    request_digest,
)
from heslock.ras.services.sharing.policy import Permission
from heslock.ras.store.models import OAuthClient, OAuthGrant


def test_parse_and_render_round_trip() -> None:
    parsed = scopes.parse("locks:read events:read")
    assert parsed == {Scope.LOCKS_READ, Scope.EVENTS_READ}
    assert scopes.render(parsed) == "events:read locks:read"
    assert scopes.parse(None) == frozenset()
    assert scopes.parse("") == frozenset()


@pytest.mark.parametrize("text", ["admin", "locks:read  events:read", "LOCKS:READ", "x" * 300])
def test_unknown_or_malformed_scopes_are_refused(text: str) -> None:
    with pytest.raises(scopes.ScopeError):
        scopes.parse(text)


def test_scopes_map_onto_sharing_permissions() -> None:
    assert scopes.permissions_of([Scope.LOCKS_LOCK]) == {Permission.LOCK}
    assert scopes.permissions_of([Scope.LOCKS_OPERATE]) == {Permission.OPERATE, Permission.LOCK}
    assert scopes.permissions_of([Scope.LOCKS_READ]) == {Permission.VIEW_STATUS}
    assert scopes.permissions_of([Scope.EVENTS_READ]) == {Permission.VIEW_LOG}
    assert scopes.permissions_of([Scope.SHARES_MANAGE]) == {Permission.MANAGE_SHARES}
    assert Permission.MANAGE_SETTINGS not in scopes.permissions_of(scopes.ALL_SCOPES)


def test_lock_scope_never_unlocks() -> None:
    lock_only = scopes.permissions_of([Scope.LOCKS_LOCK])
    assert scopes.command_allowed("lock", lock_only)
    assert not scopes.command_allowed("unlock", lock_only)
    assert not scopes.command_allowed("status", lock_only)
    operate = scopes.permissions_of([Scope.LOCKS_OPERATE])
    assert scopes.command_allowed("unlock", operate)
    assert not scopes.command_allowed("reboot", operate)
    assert not scopes.command_allowed(None, operate)


def test_routes_fail_closed() -> None:
    every = scopes.ALL_SCOPES
    assert scopes.route_allows("GET", "/v1/locks", [Scope.LOCKS_LOCK])
    assert not scopes.route_allows("GET", "/v1/locks/{lock_id}/events", [Scope.LOCKS_READ])
    assert scopes.route_allows("get", "/v1/locks/{lock_id}/events", [Scope.EVENTS_READ])
    for method, template in [
        ("GET", "/v1/account"),
        ("DELETE", "/v1/locks/{lock_id}"),
        ("POST", "/v1/locks/{lock_id}/transfer"),
        ("GET", "/v1/gateways"),
        ("POST", "/v1/apps"),
        ("GET", "/v1/grants"),
        ("POST", "/v1/locks/{lock_id}/frames"),
        ("GET", "/v1/shares"),
    ]:
        assert not scopes.route_allows(method, template, every), template
    assert not scopes.route_allows("POST", "/v1/shares", [Scope.LOCKS_OPERATE])


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example/cb",
        "https://app.example:8443/cb?x=1",
        "http://127.0.0.1:9000/cb",
        "http://localhost/cb",
        "http://[::1]:8080/cb",
    ],
)
def test_acceptable_redirect_uris(uri: str) -> None:
    assert check_redirect_uri(uri) == uri


@pytest.mark.parametrize(
    "uri",
    [
        "http://app.example/cb",
        "https://app.example/cb#frag",
        "https://user@app.example/cb",
        "https://*.example/cb",
        "javascript:alert(1)",
        "/relative",
        "https:///nohost",
        "https://app.example/" + "x" * 600,
        "https://app.example/c b",
        "",
    ],
)
def test_refused_redirect_uris(uri: str) -> None:
    with pytest.raises(InvalidInput):
        check_redirect_uri(uri)


def _client(kind: str = "public", secret_hash: bytes | None = None) -> OAuthClient:
    return OAuthClient(
        id=uuid.uuid4(),
        owner_id=uuid.uuid4(),
        name="app",
        client_type=kind,
        redirect_uris=["https://app.example/cb"],
        secret_hash=secret_hash,
    )


def test_redirect_uri_comparison_is_exact() -> None:
    keystore = Keystore(MasterKey(bytes(32)))
    client = AppClient(_client(), client_secret_pepper(keystore))
    assert client.check_redirect_uri("https://app.example/cb")
    for variant in (
        "https://app.example/cb/",
        "https://APP.example/cb",
        "https://app.example:443/cb",
        "https://app.example/cb?x",
        "https://app.example/cb/x",
    ):
        assert not client.check_redirect_uri(variant)
    assert client.get_default_redirect_uri() is None


def test_client_secret_is_checked_against_its_peppered_digest() -> None:
    pepper = client_secret_pepper(Keystore(MasterKey(bytes(32))))
    other = client_secret_pepper(Keystore(MasterKey(bytes([1]) * 32)))
    row = _client("confidential")
    secret = new_secret(SecretKind.CLIENT_SECRET)
    row.secret_hash = client_secret_digest(pepper, row.id, secret)
    assert AppClient(row, pepper).check_client_secret(secret)
    flipped = "B" if secret.endswith("A") else "A"  # always a different secret
    assert not AppClient(row, pepper).check_client_secret(secret[:-1] + flipped)
    assert not AppClient(row, other).check_client_secret(secret)  # a database copy alone
    public = AppClient(_client(), pepper)
    assert not public.check_client_secret(secret)
    assert public.check_endpoint_auth_method("none", "token")
    assert not public.check_endpoint_auth_method("none", "introspection")
    assert not public.check_grant_type("client_credentials")
    assert AppClient(row, pepper).check_grant_type("client_credentials")
    assert not AppClient(row, pepper).check_grant_type("password")
    assert not AppClient(row, pepper).check_response_type("token")


def test_secrets_have_their_prefix_and_full_entropy() -> None:
    token = new_secret(SecretKind.ACCESS)
    assert is_secret(token, SecretKind.ACCESS)
    assert not is_secret(token, SecretKind.REFRESH)
    assert not is_secret(token + "x", SecretKind.ACCESS)
    assert not is_secret("hla_" + token[5:], SecretKind.ACCESS)
    assert len(digest(token)) == 32
    assert new_secret(SecretKind.ACCESS) != token
    assert same(digest(token), digest(token))
    assert not same(digest(token), None)


def test_request_digest_binds_every_parameter() -> None:
    base = {
        "response_type": "code",
        "client_id": "c",
        "redirect_uri": "https://a/cb",
        "scope": "locks:read",
        "state": "s",
        "code_challenge": "x",
        "code_challenge_method": "S256",
    }
    first = request_digest(base)
    for key in base:
        assert request_digest({**base, key: "other"}) != first, key
    assert request_digest({**base, "unrelated": "y"}) == first


def test_integration_never_exceeds_the_grant() -> None:
    lock = uuid.uuid4()
    grant = OAuthGrant(
        id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        client_id=uuid.uuid4(),
        scopes=["locks:read"],
        lock_ids=[str(lock)],
        home_ids=[],
        created_at=datetime.now(UTC),
    )
    found = integration_of(grant, "locks:read locks:operate")
    assert found.scopes == {"locks:read"}
    assert found.permissions == {Permission.VIEW_STATUS}
    assert found.reaches(lock, None)
    assert not found.reaches(uuid.uuid4(), None)
