"""The DDMS rows of the SCS policy table: owner and admin, and 404 for everyone else."""

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
    authorize,
)
from heslock.ras.services.errors import Forbidden, NotFound

OWNER = Principal(PrincipalKind.USER, uuid.uuid4())
OTHER = Principal(PrincipalKind.USER, uuid.uuid4())
ADMIN = Principal(PrincipalKind.USER, uuid.uuid4(), is_admin=True)
DDMS_ACTIONS = [
    Action.DEVICE_CHECK,
    Action.REGISTRATION_CREATE,
    Action.REGISTRATION_READ,
    Action.REGISTRATION_DRIVE,
    Action.GATEWAY_CREATE,
    Action.GATEWAY_ROTATE_SECRET,
]


@pytest.mark.parametrize("action", DDMS_ACTIONS)
def test_every_ddms_action_has_a_policy_and_hides_from_strangers(action: Action) -> None:
    assert action in POLICY
    resource = Resource(ResourceKind.REGISTRATION, "r1", OWNER.id)
    authorize(OWNER, action, resource)
    with pytest.raises(NotFound):
        authorize(OTHER, action, resource)


def test_admin_reads_registrations_but_does_not_drive_them() -> None:
    resource = Resource(ResourceKind.REGISTRATION, "r1", OWNER.id)
    authorize(ADMIN, Action.REGISTRATION_READ, resource)
    with pytest.raises(Forbidden):
        authorize(ADMIN, Action.REGISTRATION_DRIVE, resource)
    with pytest.raises(Forbidden):
        authorize(
            ADMIN, Action.GATEWAY_ROTATE_SECRET, Resource(ResourceKind.GATEWAY, "g", OWNER.id)
        )
