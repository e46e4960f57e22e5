"""SCS authorisation: the policy table, owner/admin/stranger, fail-closed."""

from __future__ import annotations

import uuid

import pytest

from heslock.ras.services.access import (
    POLICY,
    Action,
    Principal,
    PrincipalKind,
    Resource,
    ResourceKind,
    Role,
    authorize,
)
from heslock.ras.services.errors import Forbidden, NotFound

OWNER = Principal(PrincipalKind.USER, uuid.uuid4())
ADMIN = Principal(PrincipalKind.USER, uuid.uuid4(), is_admin=True)
STRANGER = Principal(PrincipalKind.USER, uuid.uuid4())
GATEWAY_WITH_OWNER_ID = Principal(PrincipalKind.GATEWAY, OWNER.id)
LOCK = Resource(ResourceKind.LOCK, "lock-1", owner_id=OWNER.id)


def test_every_action_has_a_policy_row() -> None:
    assert set(POLICY) == set(Action)


@pytest.mark.parametrize("action", list(Action))
def test_owner_and_admin_follow_the_table(action: Action) -> None:
    for principal, role in ((OWNER, Role.OWNER), (ADMIN, Role.ADMIN)):
        if role in POLICY[action]:
            authorize(principal, action, LOCK)
        else:
            with pytest.raises(Forbidden):
                authorize(principal, action, LOCK)


@pytest.mark.parametrize("action", list(Action))
def test_a_stranger_learns_nothing(action: Action) -> None:
    with pytest.raises(NotFound, match="no such lock"):
        authorize(STRANGER, action, LOCK)


def test_admin_may_not_open_other_peoples_doors() -> None:
    with pytest.raises(Forbidden):
        authorize(ADMIN, Action.LOCK_OPERATE, LOCK)
    authorize(OWNER, Action.LOCK_OPERATE, LOCK)


def test_a_gateway_is_never_an_owner_even_with_a_matching_id() -> None:
    with pytest.raises(NotFound):
        authorize(GATEWAY_WITH_OWNER_ID, Action.LOCK_READ, LOCK)


def test_collections_are_forbidden_not_hidden() -> None:
    with pytest.raises(Forbidden):
        authorize(OWNER, Action.AUDIT_READ, Resource(ResourceKind.AUDIT))
    authorize(ADMIN, Action.AUDIT_READ, Resource(ResourceKind.AUDIT))


def test_unknown_action_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(POLICY, Action.LOCK_READ)
    with pytest.raises(NotFound):
        authorize(STRANGER, Action.LOCK_READ, LOCK)
    with pytest.raises(Forbidden):
        authorize(OWNER, Action.LOCK_READ, LOCK)


def test_audit_ids_are_opaque() -> None:
    assert OWNER.audit_actor == f"user:{OWNER.id}"
    assert LOCK.audit_target == "lock:lock-1"
