"""The pure sharing decision: role x permission x path, validity, one-time, schedules."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heslock.ras.services.sharing.policy import (
    ALL_PATHS,
    ALL_PERMISSIONS,
    GRANTABLE_ROLES,
    REQUIRED,
    ROLE_PERMISSIONS,
    Grant,
    LockAction,
    Path,
    Permission,
    PolicyError,
    Reason,
    Role,
    Validity,
    ValidityKind,
    closure,
    decide,
    grant_permissions,
    permissions_in_force,
)
from heslock.ras.services.sharing.schedule import Schedule

NOW = datetime(2026, 6, 3, 10, 0, tzinfo=UTC)  # a Wednesday, 12:00 in Berlin
BERLIN = ZoneInfo("Europe/Berlin")
HOUR = timedelta(hours=1)

#: The expected matrix: role -> the actions it allows by default.
EXPECTED: dict[Role, set[LockAction]] = {
    Role.OWNER: set(LockAction),
    Role.ADMIN: set(LockAction),
    Role.MEMBER: {LockAction.UNLOCK, LockAction.LOCK, LockAction.STATUS, LockAction.EVENTS},
    Role.GUEST: {LockAction.UNLOCK, LockAction.LOCK, LockAction.STATUS},
}


def share(
    role: Role = Role.GUEST, permissions: Iterable[Permission] | None = None, **fields: Any
) -> Grant:
    chosen = ROLE_PERMISSIONS[role] if permissions is None else frozenset(permissions)
    return Grant(uuid.uuid4(), role, chosen, **fields)


def grant_of(role: Role) -> Grant:
    return Grant.owner() if role is Role.OWNER else share(role)


@pytest.mark.parametrize(
    ("role", "action", "path"), list(itertools.product(Role, LockAction, Path))
)
def test_role_permission_path_matrix(role: Role, action: LockAction, path: Path) -> None:
    decision = decide([grant_of(role)], action, path, NOW)
    assert decision.allowed == (action in EXPECTED[role])
    if decision.allowed:
        assert decision.reason is (Reason.OWNER if role is Role.OWNER else Reason.SHARE)
        assert not decision.spends
    else:
        assert decision.reason is Reason.PERMISSION
        assert decision.grant is None


def test_no_grants_is_no_grant() -> None:
    decision = decide([], LockAction.STATUS, Path.REMOTE, NOW)
    assert (decision.allowed, decision.reason) == (False, Reason.NO_GRANT)


def test_operate_implies_lock_but_lock_never_unlocks() -> None:
    assert closure([Permission.OPERATE]) == {Permission.OPERATE, Permission.LOCK}
    assert closure([Permission.LOCK]) == {Permission.LOCK}
    lock_only = share(Role.GUEST, permissions={Permission.LOCK})
    for path in Path:
        assert decide([lock_only], LockAction.LOCK, path, NOW).allowed
        unlock = decide([lock_only], LockAction.UNLOCK, path, NOW)
        assert (unlock.allowed, unlock.reason) == (False, Reason.PERMISSION)
    operate = share(Role.GUEST, permissions={Permission.OPERATE})  # stored without "lock"
    assert decide([operate], LockAction.LOCK, Path.REMOTE, NOW).allowed


def test_lock_only_for_integrations_through_scope() -> None:
    """The owner lets an integration lock but never unlock."""
    owner = [Grant.owner()]
    scope = {Permission.LOCK}
    locked = decide(owner, LockAction.LOCK, Path.INTEGRATION, NOW, scope=scope)
    unlocked = decide(owner, LockAction.UNLOCK, Path.INTEGRATION, NOW, scope=scope)
    assert locked.allowed
    assert (unlocked.allowed, unlocked.reason) == (False, Reason.SCOPE)
    # A scope with operate brings lock along.
    assert decide(owner, LockAction.LOCK, Path.INTEGRATION, NOW, scope={Permission.OPERATE}).allowed


def test_a_share_limited_to_paths() -> None:
    nearby_only = share(Role.GUEST, paths=frozenset({Path.NEARBY}))
    assert decide([nearby_only], LockAction.UNLOCK, Path.NEARBY, NOW).allowed
    for path in (Path.REMOTE, Path.INTEGRATION):
        refused = decide([nearby_only], LockAction.UNLOCK, path, NOW)
        assert (refused.allowed, refused.reason) == (False, Reason.PATH)


def test_validity_window_is_half_open() -> None:
    g = share(
        validity=Validity(ValidityKind.FROM_UNTIL, NOW, NOW + HOUR),
    )
    before = decide([g], LockAction.UNLOCK, Path.REMOTE, NOW - timedelta(microseconds=1))
    assert (before.allowed, before.reason) == (False, Reason.NOT_YET_VALID)
    assert decide([g], LockAction.UNLOCK, Path.REMOTE, NOW).allowed
    assert decide([g], LockAction.UNLOCK, Path.REMOTE, NOW + HOUR - timedelta(seconds=1)).allowed
    after = decide([g], LockAction.UNLOCK, Path.REMOTE, NOW + HOUR)
    assert (after.allowed, after.reason) == (False, Reason.EXPIRED)


@pytest.mark.parametrize(
    ("kind", "before", "after", "message"),
    [
        (ValidityKind.PERMANENT, NOW, None, "no from or until"),
        (ValidityKind.FROM_UNTIL, NOW, None, "both"),
        (ValidityKind.FROM_UNTIL, NOW, NOW, "after from"),
        (ValidityKind.ONE_TIME, NOW + HOUR, NOW, "after from"),
        (ValidityKind.FROM_UNTIL, datetime(2026, 1, 1), NOW, "aware"),  # naive on purpose
    ],
)
def test_bad_validity(
    kind: ValidityKind, before: datetime | None, after: datetime | None, message: str
) -> None:
    with pytest.raises(PolicyError, match=message):
        Validity(kind, before, after)


def test_one_time_is_spent_by_actuation_only() -> None:
    once = share(validity=Validity(ValidityKind.ONE_TIME))
    status = decide([once], LockAction.STATUS, Path.REMOTE, NOW)
    assert (status.allowed, status.spends) == (True, False)
    unlock = decide([once], LockAction.UNLOCK, Path.NEARBY, NOW)
    assert (unlock.allowed, unlock.spends, unlock.grant_id) == (True, True, once.id)
    lock = decide([once], LockAction.LOCK, Path.REMOTE, NOW)
    assert lock.spends
    spent = Grant(once.id, once.role, once.permissions, validity=once.validity, spent=True)
    for action in (LockAction.UNLOCK, LockAction.STATUS):
        refused = decide([spent], action, Path.REMOTE, NOW)
        assert (refused.allowed, refused.reason) == (False, Reason.SPENT)


def test_a_one_time_key_is_not_spent_when_another_grant_suffices() -> None:
    once = share(validity=Validity(ValidityKind.ONE_TIME))
    permanent = share(Role.MEMBER)
    decision = decide([once, permanent], LockAction.UNLOCK, Path.REMOTE, NOW)
    assert (decision.allowed, decision.spends) == (True, False)
    assert decision.grant_id == permanent.id


def test_owner_grant_is_preferred() -> None:
    decision = decide([share(Role.ADMIN), Grant.owner()], LockAction.UNLOCK, Path.REMOTE, NOW)
    assert decision.reason is Reason.OWNER


def test_revoked_grants_allow_nothing() -> None:
    revoked = share(Role.ADMIN, revoked=True)
    for action in LockAction:
        decision = decide([revoked], action, Path.REMOTE, NOW)
        assert (decision.allowed, decision.reason) == (False, Reason.REVOKED)


def test_schedule_in_the_lock_zone() -> None:
    office = Schedule.from_json(
        {
            "windows": [
                {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}
            ]
        }
    )
    g = share(schedule=office, zone=BERLIN)
    assert decide([g], LockAction.UNLOCK, Path.REMOTE, NOW).allowed  # Wed 12:00
    evening = decide([g], LockAction.UNLOCK, Path.REMOTE, NOW + 6 * HOUR)  # 18:00
    assert (evening.allowed, evening.reason) == (False, Reason.OUTSIDE_SCHEDULE)
    no_zone = share(schedule=office, zone=None)
    refused = decide([no_zone], LockAction.UNLOCK, Path.REMOTE, NOW)
    assert (refused.allowed, refused.reason) == (False, Reason.NO_TIME_ZONE)


def test_schedule_boundary_across_berlin_spring_forward() -> None:
    """A night guest (Sat 22:00 - Sun 06:00) on 2026-03-28/29: seven real hours."""
    night = Schedule.from_json({"windows": [{"days": ["sat"], "start": "22:00", "end": "06:00"}]})
    g = share(schedule=night, zone=BERLIN)
    opens = datetime(2026, 3, 28, 21, 0, tzinfo=UTC)  # 22:00 CET
    closes = datetime(2026, 3, 29, 4, 0, tzinfo=UTC)  # 06:00 CEST
    second = timedelta(seconds=1)
    results = [
        decide([g], LockAction.UNLOCK, Path.REMOTE, at).allowed
        for at in (opens - second, opens, closes - second, closes)
    ]
    assert results == [False, True, True, False]


def test_refusal_names_the_furthest_check() -> None:
    lock_only = share(permissions={Permission.LOCK})
    expired = share(validity=Validity(ValidityKind.FROM_UNTIL, NOW - 2 * HOUR, NOW - HOUR))
    decision = decide([lock_only, expired], LockAction.UNLOCK, Path.REMOTE, NOW)
    assert decision.reason is Reason.EXPIRED
    wrong_path = share(paths=frozenset({Path.NEARBY}))
    decision = decide([lock_only, wrong_path], LockAction.UNLOCK, Path.REMOTE, NOW)
    assert decision.reason is Reason.PATH


def test_grant_permissions_defaults_and_ceilings() -> None:
    for role in GRANTABLE_ROLES:
        assert grant_permissions(role, None) == ROLE_PERMISSIONS[role]
    assert grant_permissions(Role.GUEST, [Permission.OPERATE]) == {
        Permission.OPERATE,
        Permission.LOCK,
    }
    with pytest.raises(PolicyError, match="does not allow view_log"):
        grant_permissions(Role.GUEST, [Permission.VIEW_LOG])
    with pytest.raises(PolicyError, match="manage_shares"):
        grant_permissions(Role.MEMBER, [Permission.LOCK, Permission.MANAGE_SHARES])
    with pytest.raises(PolicyError, match="at least one"):
        grant_permissions(Role.MEMBER, [])
    with pytest.raises(PolicyError, match="cannot be granted"):
        grant_permissions(Role.OWNER, None)


def test_permissions_in_force() -> None:
    assert permissions_in_force([Grant.owner()], Path.REMOTE, NOW) == ALL_PERMISSIONS
    guest = share(Role.GUEST, paths=frozenset({Path.REMOTE}))
    assert permissions_in_force([guest], Path.REMOTE, NOW) == ROLE_PERMISSIONS[Role.GUEST]
    assert permissions_in_force([guest], Path.NEARBY, NOW) == frozenset()


def test_naive_now_is_refused() -> None:
    with pytest.raises(PolicyError, match="aware"):
        decide([Grant.owner()], LockAction.UNLOCK, Path.REMOTE, datetime(2026, 1, 1))


def test_every_action_has_a_permission() -> None:
    assert set(REQUIRED) == set(LockAction)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(GRANTABLE_ROLES),
    st.frozensets(st.sampled_from(list(Permission))),
    st.frozensets(st.sampled_from(list(Path)), min_size=1),
    st.sampled_from(list(LockAction)),
    st.sampled_from(list(Path)),
)
def test_a_share_never_allows_beyond_its_permissions_and_paths(
    role: Role,
    permissions: frozenset[Permission],
    paths: frozenset[Path],
    action: LockAction,
    path: Path,
) -> None:
    g = Grant(uuid.uuid4(), role, permissions, paths)
    decision = decide([g], action, path, NOW)
    assert decision.allowed == (REQUIRED[action] in closure(permissions) and path in paths)
    # And adding grants never takes a permission away (monotonic).
    assert (
        not decision.allowed or decide([g, share(), share(revoked=True)], action, path, NOW).allowed
    )


def test_all_paths_and_permissions_constants() -> None:
    assert len(ALL_PATHS) == 3
    assert len(ALL_PERMISSIONS) == 6
