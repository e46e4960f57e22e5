"""Sharing wired into the command paths, end to end on the real remote-control rig.

A real RAS (HTTPS + its XMPP relay on loopback TLS), a real gateway, a SimulatedLock on a
bumble virtual link and a phone (a bumble central) for nearby mode: the rig of
tests/integration/ras/commands, with people who hold every kind of grant on one lock.

- The role x permission x path matrix: owner, admin share, home member, guest, a "lock
  only" share, a view-only share, a nearby-only share, the RAS's administrator and a
  stranger, each x unlock / lock / status / events, by the remote path (through the
  gateway) and the nearby path (the phone carries the frame); the integration path at
  the resolver with an integration's scope (its OAuth is a later issue). Every cell
  asserts the HTTP status and problem; every allowed unlock, that the bolt moved and that
  the command and its audit records name the actor; every refusal, its audit reason.
- Lock views: grantees list and read the lock (marked ``shared``, with their role and the
  permissions in force), rename needs ``manage_settings``; unbind and transfer stay the
  owner's; a transfer releases the shares.
- Revocation while a nearby frame is outstanding; a one-time key (spent once, its own
  retry still answered, a concurrent second use refused); a schedule across Berlin's
  spring-forward night, with the RAS's and the lock's clocks moved, never slept.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path as FsPath
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from heslock.bsld.peripheral import LockPeripheral
from heslock.protocol import BoltState
from heslock.protocol.makers import ACME, KEYSTONE, LUMEN
from heslock.ras.api import create_app
from heslock.ras.bootstrap import initialise
from heslock.ras.server import RasServer
from heslock.ras.services.access import Principal, PrincipalKind
from heslock.ras.services.commands.nearby import NEARBY_FRAME_TTL_S
from heslock.ras.services.sharing.policy import LockAction, Path, Permission
from heslock.ras.services.sharing.resolver import effective_access
from heslock.ras.settings import load_settings
from heslock.ras.store import create_engine, create_sessionmaker
from heslock.ras.store.models import AuditRecord, Command, Contact, ContactKind, Lock, User
from heslock.ras.tls import client_context
from heslock.xmpp import Jid
from tests.integration.ras.commands.conftest import (
    TEST_SCRAM_ITERATIONS,
    GatewayAccount,
    Rig,
    ShiftedClock,
)
from tests.integration.ras.commands.test_commands import problem
from tests.integration.ras.commands.test_nearby import Phone, answer, issue
from tests.integration.ras.conftest import CHEAP_ARGON2
from tests.support import TokenTable, auth

pytestmark = pytest.mark.timeout(240)

#: The people: the owner, the grantees (set up in :func:`_shared`), the RAS's
#: administrator ("root": the rig's ``admin``) and a stranger.
GRANTEES = ("ada", "mia", "gus", "lea", "vic", "nia")
PEOPLE = ("olga", *GRANTEES, "sam")
COMMANDS = ("unlock", "lock", "status")
ALL = frozenset({"unlock", "lock", "status", "events"})
ACTUATE = frozenset({"unlock", "lock"})
#: What each may do by the remote path (the nearby path: the same, minus ``events``,
#: which is no command; ``nia`` holds a nearby-only share).
REMOTE: dict[str, frozenset[str]] = {
    "olga": ALL,  # the owner
    "ada": ALL,  # an admin share on the lock
    "mia": ALL,  # a member of the lock's home (view_log included)
    "gus": ACTUATE | {"status"},  # a guest share: no log
    "lea": frozenset({"lock"}),  # "lock only"
    "vic": frozenset({"status", "events"}),  # view only (status and log)
    "nia": frozenset(),  # a guest share for the nearby path only
    "root": frozenset(),  # the RAS's administrator: sees, never operates
    "sam": frozenset(),  # a stranger
}
NEARBY: dict[str, frozenset[str]] = {
    **{who: REMOTE[who] - {"events"} for who in REMOTE},
    "nia": ACTUATE | {"status"},
}


#: The permissions each grantee's lock view lists for the remote path.
PERMISSIONS: dict[str, list[str]] = {
    "ada": sorted(p.value for p in Permission),
    "mia": ["lock", "operate", "view_log", "view_status"],
    "gus": ["lock", "operate", "view_status"],
    "lea": ["lock"],
    "vic": ["view_log", "view_status"],
    "nia": [],
}


def refusal(who: str, path: str) -> tuple[int, str, str]:
    """How a refused cell answers: HTTP status, problem code, audited reason."""
    if who == "sam":
        return 404, "not-found", "no-grant"  # the lock's existence stays hidden
    if who == "root":
        return 403, "forbidden", "no-grant"
    if who == "nia" and path == "remote":
        return 403, "access-denied", "path"
    return 403, "access-denied", "permission"


# ------------------------------------------------------------------ the rig


@pytest.fixture
async def rig(tmp_path: FsPath, database_url: str) -> AsyncIterator[Rig]:
    """tests/integration/ras/commands' rig with this module's people, each with a
    verified e-mail address (to accept invitations) and a bearer token of their name."""
    settings = load_settings(
        {
            "data_dir": tmp_path / "data",
            "database_url": database_url,
            "https_port": 0,
            "xmpp_port": 0,
            "xmpp_direct_tls_port": 0,
            "scram_iterations": TEST_SCRAM_ITERATIONS,
            **CHEAP_ARGON2,
        },
        env={},
    )
    init = await initialise(settings, "root@localhost")
    engine = create_engine(settings.database_url)
    tokens = TokenTable()
    ids = {"admin": uuid.UUID(init.admin_id)}
    root = Principal(PrincipalKind.USER, ids["admin"], is_admin=True)
    tokens.tokens.update(root=root, admin=root)  # "admin": the rig's device imports
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            for name in PEOPLE:
                user = User(display_name=name.title())
                session.add(user)
                await session.flush()
                session.add(
                    Contact(
                        user_id=user.id,
                        kind=ContactKind.EMAIL.value,
                        address=f"{name}@example.org",
                        verified_at=datetime.now(UTC),
                    )
                )
                ids[name] = user.id
                tokens.tokens[name] = Principal(PrincipalKind.USER, user.id)
    finally:
        await engine.dispose()
    ids["root"] = ids["admin"]
    app = create_app(settings, authenticator=tokens)
    server = RasServer(settings, app, relay=True)
    assert server.relay is not None
    await server.start()
    client = httpx.AsyncClient(
        base_url=server.url, verify=client_context(settings.tls_ca), timeout=30
    )
    found = Rig(settings, server, server.relay, client, ids)
    try:
        yield found
    finally:
        await client.aclose()
        await found.close()


async def call(rig: Rig, method: str, url: str, who: str, expect: int, **kwargs: Any) -> Any:
    response = await rig.client.request(method, url, headers=auth(who), **kwargs)
    assert response.status_code == expect, (method, url, who, response.text)
    return response.json() if response.content else None


async def grant(rig: Rig, to: str, home: str | None = None, **terms: Any) -> str:
    """Olga shares (``terms``: a share's body; with ``home``: a membership of that home)
    with ``to``'s address, and ``to`` accepts; the share's id."""
    body = {"invitee": {"email": f"{to}@example.org"}, **terms}
    url = f"/v1/homes/{home}/members" if home is not None else "/v1/shares"
    made = await call(rig, "POST", url, "olga", 201, json=body)
    await call(rig, "POST", f"/v1/invitations/{made['id']}/accept", to, 200)
    return str(made["id"])


async def bound(
    rig: Rig, maker: Any, clock: ShiftedClock | None = None
) -> tuple[LockPeripheral, str, GatewayAccount, Any]:
    """Olga's lock, bound through her gateway (which stays online), in her Berlin home."""
    if clock is not None:
        rig.server.app.state.ddms.clock = clock
        peripheral = await rig.add_lock_with(maker, clock)
    else:
        peripheral = await rig.add_lock(maker)
    account = await rig.create_gateway("olga")
    gateway = await rig.start_gateway(account)
    await rig.seen_by(account, peripheral.lock.identity.device_id)
    lock_id = await rig.register(peripheral, Jid.parse(account.jid).bare, token="olga")
    return peripheral, lock_id, account, gateway


async def homed(rig: Rig, lock_id: str) -> str:
    home = await call(
        rig, "POST", "/v1/homes", "olga", 201, json={"name": "home", "time_zone": "Europe/Berlin"}
    )
    await call(rig, "PUT", f"/v1/homes/{home['id']}/locks/{lock_id}", "olga", 200)
    return str(home["id"])


async def _shared(rig: Rig, lock_id: str) -> dict[str, str]:
    """Every grantee's share on the lock (module docstring); their share ids."""
    home = await homed(rig, lock_id)
    locks = [lock_id]
    return {
        "ada": await grant(rig, "ada", lock_ids=locks, role="admin"),
        "mia": await grant(rig, "mia", home=home, role="member"),
        "gus": await grant(rig, "gus", lock_ids=locks, role="guest"),
        "lea": await grant(rig, "lea", lock_ids=locks, role="guest", permissions=["lock"]),
        "vic": await grant(
            rig, "vic", lock_ids=locks, role="member", permissions=["view_status", "view_log"]
        ),
        "nia": await grant(rig, "nia", lock_ids=locks, role="guest", paths=["nearby"]),
    }


def knob(peripheral: LockPeripheral, bolt: BoltState) -> None:
    """Someone at the door turns the knob (so that the next unlock has to move it)."""
    peripheral.press(lambda t: peripheral.lock.turn_knob(bolt, t))


def bolt(peripheral: LockPeripheral) -> BoltState:
    return peripheral.lock.status(0).bolt


async def command_rows(rig: Rig, lock_id: str) -> dict[uuid.UUID, Command]:
    async with rig.maker()() as session:
        query = select(Command).where(Command.lock_id == uuid.UUID(lock_id))
        return {c.id: c for c in (await session.execute(query)).scalars()}


async def audits(rig: Rig, action: str) -> list[AuditRecord]:
    async with rig.maker()() as session:
        query = select(AuditRecord).where(AuditRecord.action == action).order_by(AuditRecord.id)
        return list((await session.execute(query)).scalars())


async def refusals(rig: Rig) -> list[AuditRecord]:
    """The audit records of refused commands (not the lock's own refusals, which are
    outcomes of a command: those name its ``command_id``)."""
    found = await audits(rig, "lock.command")
    return [r for r in found if r.result == "denied" and "command_id" not in r.details]


class Ledger:
    """What the cells expect the audit log to hold, checked once at the end."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.ok: list[tuple[str, str, str, str]] = []  # actor, command, path, command id
        self.denied: list[tuple[str, str, str, str]] = []  # actor, command, path, reason

    def actor(self, who: str) -> str:
        return f"user:{self.rig.ids[who]}"

    async def check(self, lock_id: str) -> None:
        target = f"lock:{lock_id}"
        records = [r for r in await audits(self.rig, "lock.command") if r.target == target]
        ok = [
            (r.actor, r.details["command"], r.details["path"], r.details["command_id"])
            for r in records
            if r.result == "ok"
        ]
        denied = [
            (r.actor, r.details["command"], r.details["path"], r.details["reason"])
            for r in await refusals(self.rig)
            if r.target == target
        ]
        assert sorted(ok) == sorted(self.ok)
        assert sorted(denied) == sorted(self.denied)
        # Every command is its actor's (a guest's unlock is the guest's, not the owner's).
        rows = await command_rows(self.rig, lock_id)
        assert sorted(f"user:{r.user_id}" for r in rows.values()) == sorted(a for a, *_ in self.ok)
        for actor, command, path, command_id in self.ok:
            row = rows[uuid.UUID(command_id)]
            assert (f"user:{row.user_id}", row.command, row.path) == (actor, command, path)


# ------------------------------------------------------------------ the matrix


async def test_role_permission_path_matrix(rig: Rig) -> None:
    peripheral, lock_id, _account, gateway = await bound(rig, KEYSTONE)
    shares = await _shared(rig, lock_id)
    ledger = Ledger(rig)
    keys = (f"k-{n}" for n in itertools.count())

    # Remote: through the gateway.
    for who, what in itertools.product(REMOTE, sorted(ALL)):
        allowed = what in REMOTE[who]
        if what == "events":
            response = await rig.client.get(f"/v1/locks/{lock_id}/events", headers=auth(who))
            if allowed:
                assert response.status_code == 200, (who, response.text)
                assert isinstance(response.json(), list)
            else:
                status, code, _reason = refusal(who, "remote")
                problem(response, status, code)
            continue
        if allowed:  # so that an allowed unlock or lock has to move the bolt
            knob(peripheral, BoltState.UNLOCKED if what == "lock" else BoltState.LOCKED)
        response = await rig.command(lock_id, what, next(keys), token=who)
        if not allowed:
            status, code, reason = refusal(who, "remote")
            body = problem(response, status, code)
            if code == "access-denied":
                assert body["reason"] == reason, (who, what, body)
            ledger.denied.append((ledger.actor(who), what, "remote", reason))
            continue
        assert response.status_code == 200, (who, what, response.text)
        answered = response.json()
        assert answered["state"] == "ok"
        if what == "unlock":
            assert answered["bolt"] == "unlocked"
            assert bolt(peripheral) is BoltState.UNLOCKED, who  # the lock moved
        if what == "lock":
            assert bolt(peripheral) is BoltState.LOCKED, who
        if what == "status":
            assert answered["bolt"] == "locked", who  # the lock's own report
        ledger.ok.append((ledger.actor(who), what, "remote", answered["command_id"]))

    # Nearby: the gateway goes; the phone carries each frame the RAS hands out.
    await rig.stop_gateway(gateway)
    async with Phone(rig) as phone:
        for who, what in itertools.product(NEARBY, COMMANDS):
            allowed = what in NEARBY[who]
            response = await issue(rig, lock_id, what, next(keys), token=who)
            if not allowed:
                status, code, reason = refusal(who, "nearby")
                body = problem(response, status, code)
                if code == "access-denied":
                    assert body["reason"] == reason, (who, what, body)
                ledger.denied.append((ledger.actor(who), what, "nearby", reason))
                continue
            assert response.status_code == 201, (who, what, response.text)
            frame = response.json()
            knob(peripheral, BoltState.UNLOCKED if what == "lock" else BoltState.LOCKED)
            reply = await phone.carry(peripheral, frame["frame"])
            settled = await answer(rig, lock_id, frame["command_id"], reply, token=who)
            assert settled.status_code == 200, (who, what, settled.text)
            assert settled.json()["state"] == "ok"
            assert settled.json()["bolt"] == ("locked" if what != "unlock" else "unlocked")
            if what == "unlock":
                assert bolt(peripheral) is BoltState.UNLOCKED, who
            if what == "lock":
                assert bolt(peripheral) is BoltState.LOCKED, who
            ledger.ok.append((ledger.actor(who), what, "nearby", frame["command_id"]))
    await ledger.check(lock_id)

    # Every share's use is counted and audited under its grantee, with the command.
    holder = {f"share:{share}": who for who, share in shares.items()}
    uses: dict[str, set[str]] = {}
    for use in await audits(rig, "share.use"):
        who = holder[str(use.target)]
        assert use.actor == ledger.actor(who)
        uses.setdefault(who, set()).add(use.details["command_id"])
    assert uses == {
        who: {c for a, _cmd, _p, c in ledger.ok if a == ledger.actor(who)} for who in GRANTEES
    }
    for who in GRANTEES:
        got = await call(rig, "GET", f"/v1/shares/{shares[who]}", "olga", 200)
        assert got["uses"] == len(uses[who]), who


async def test_integration_path_at_the_resolver(rig: Rig) -> None:
    """An integration acting for a person (issue 8) is narrowed by its own scope, and a
    share that leaves out the integration path refuses it."""
    _peripheral, lock_id, _account, _gateway = await bound(rig, LUMEN)
    await _shared(rig, lock_id)
    scope = frozenset({Permission.LOCK, Permission.VIEW_STATUS})
    wanted = {"unlock": LockAction.UNLOCK, "lock": LockAction.LOCK, "status": LockAction.STATUS}
    now = datetime.now(UTC)
    found: dict[str, set[str]] = {}
    async with rig.maker()() as session:
        lock = await session.get(Lock, uuid.UUID(lock_id))
        assert lock is not None
        for who, remote in REMOTE.items():
            principal = Principal(PrincipalKind.USER, rig.ids[who], is_admin=who == "root")
            access = await effective_access(
                session, principal, lock, now, Path.INTEGRATION, scope=scope
            )
            found[who] = {c for c, action in wanted.items() if access.decide(action).allowed}
            refused = access.decide(LockAction.UNLOCK)
            assert not refused.allowed
            if "unlock" in remote:
                assert refused.reason.value == "scope", who
    assert found == {
        who: set(REMOTE[who] - {"events"}) & {"lock", "status"} if who != "nia" else set()
        for who in REMOTE
    }


# ------------------------------------------------------------------ lock views


async def test_grantees_see_the_lock_and_only_the_owner_gives_it_away(rig: Rig) -> None:
    _peripheral, lock_id, _account, _gateway = await bound(rig, ACME)
    shares = await _shared(rig, lock_id)
    assert (await rig.command(lock_id, "status", "view-1", token="olga")).status_code == 200
    for who in GRANTEES:
        listed = await call(rig, "GET", "/v1/locks", who, 200)
        assert [v["id"] for v in listed] == [lock_id], who
        view = await call(rig, "GET", f"/v1/locks/{lock_id}", who, 200)
        assert view == listed[0]
        assert (view["access"], view["owner_id"]) == ("shared", str(rig.ids["olga"]))
        assert view["permissions"]["remote"] == PERMISSIONS[who], who
        # The last known state is status: only with view_status.
        sees = "status" in REMOTE[who] or "status" in NEARBY[who]
        assert (view["bolt_state"] is not None) == sees, who
    roles = {w: (await call(rig, "GET", f"/v1/locks/{lock_id}", w, 200))["role"] for w in GRANTEES}
    assert roles == {
        "ada": "admin", "mia": "member", "gus": "guest", "lea": "guest", "vic": "member",
        "nia": "guest",
    }  # fmt: skip
    nia = await call(rig, "GET", f"/v1/locks/{lock_id}", "nia", 200)
    assert (nia["permissions"]["remote"], nia["permissions"]["nearby"]) == (
        [],
        ["lock", "operate", "view_status"],
    )
    owner = await call(rig, "GET", f"/v1/locks/{lock_id}", "olga", 200)
    assert (owner["access"], owner["role"]) == ("owner", "owner")
    assert owner["permissions"]["nearby"] == sorted(p.value for p in Permission)
    admin = await call(rig, "GET", f"/v1/locks/{lock_id}", "root", 200)
    assert (admin["access"], admin["role"], admin["permissions"]["remote"]) == (
        "administrator",
        None,
        [],
    )
    assert await call(rig, "GET", "/v1/locks", "root", 200) == []  # not in their own list
    problem(await rig.client.get(f"/v1/locks/{lock_id}", headers=auth("sam")), 404, "not-found")
    assert await call(rig, "GET", "/v1/locks", "sam", 200) == []

    # Renaming is manage_settings: the owner and the admin share; a member is refused.
    renamed = await call(rig, "PATCH", f"/v1/locks/{lock_id}", "ada", 200, json={"name": "hall"})
    assert (renamed["name"], renamed["access"]) == ("hall", "shared")
    for who, status, code in (("mia", 403, "access-denied"), ("root", 403, "forbidden")):
        refused = await rig.client.patch(
            f"/v1/locks/{lock_id}", json={"name": "x"}, headers=auth(who)
        )
        problem(refused, status, code)
    problem(
        await rig.client.patch(f"/v1/locks/{lock_id}", json={"name": "x"}, headers=auth("sam")),
        404,
        "not-found",
    )
    # Unbind, transfer and rotation stay the owner's: a grantee who sees the lock is
    # told so (403), a stranger learns nothing (404).
    to_sam = {"to_user": str(rig.ids["sam"])}
    for method, url, body in (
        ("DELETE", f"/v1/locks/{lock_id}", None),
        ("POST", f"/v1/locks/{lock_id}/transfer", to_sam),
        ("POST", f"/v1/locks/{lock_id}/rotation", None),
    ):
        problem(
            await rig.client.request(method, url, json=body, headers=auth("ada")), 403, "forbidden"
        )
        problem(
            await rig.client.request(method, url, json=body, headers=auth("sam")), 404, "not-found"
        )

    # A transfer ends every share, and DDMS releases them in the same transaction.
    moved = await call(rig, "POST", f"/v1/locks/{lock_id}/transfer", "olga", 200, json=to_sam)
    assert (moved["owner_id"], moved["access"], moved["role"]) == (
        str(rig.ids["sam"]),
        "none",
        None,
    )
    for who in GRANTEES:
        problem(await rig.client.get(f"/v1/locks/{lock_id}", headers=auth(who)), 404, "not-found")
        problem(await rig.command(lock_id, "unlock", f"after-{who}", token=who), 404, "not-found")
    released = await call(rig, "GET", f"/v1/shares/{shares['gus']}", "olga", 200)
    assert (released["status"], released["revoke_reason"]) == ("revoked", "transferred")
    mine = await call(rig, "GET", f"/v1/locks/{lock_id}", "sam", 200)
    assert (mine["access"], mine["role"]) == ("owner", "owner")


# ------------------------------------------------------------------ revocation


async def test_revoking_while_a_nearby_frame_is_outstanding(rig: Rig) -> None:
    clock = ShiftedClock()
    peripheral, lock_id, _account, gateway = await bound(rig, ACME, clock)
    await rig.stop_gateway(gateway)
    share = await grant(rig, "gus", lock_ids=[lock_id])
    knob(peripheral, BoltState.LOCKED)
    first = await issue(rig, lock_id, "unlock", "out-1", token="gus")
    late = await issue(rig, lock_id, "unlock", "out-2", token="gus")
    assert (first.status_code, late.status_code) == (201, 201), (first.text, late.text)

    await call(rig, "POST", f"/v1/shares/{share}/revoke", "olga", 200)
    # At once: no new frame, no remote command, not even this key's frame again.
    problem(await issue(rig, lock_id, "unlock", "out-3", token="gus"), 404, "not-found")
    problem(await issue(rig, lock_id, "unlock", "out-1", token="gus"), 404, "not-found")
    problem(await rig.command(lock_id, "unlock", "out-4", token="gus"), 404, "not-found")
    issued = {uuid.UUID(first.json()["command_id"]), uuid.UUID(late.json()["command_id"])}
    assert set(await command_rows(rig, lock_id)) == issued  # the refusals wrote none

    async with Phone(rig) as phone:
        # Within its window the frame already handed out still opens the door, and
        # what the lock did is recorded.
        reply = await phone.carry(peripheral, first.json()["frame"])
        assert bolt(peripheral) is BoltState.UNLOCKED
        settled = await answer(rig, lock_id, first.json()["command_id"], reply, token="gus")
        assert settled.status_code == 200, settled.text
        assert (settled.json()["state"], settled.json()["bolt"]) == ("ok", "unlocked")
        # Nobody else answers for it.
        problem(
            await answer(rig, lock_id, first.json()["command_id"], reply, token="olga"),
            404,
            "not-found",
        )
        # After the lock's window (30 s) the other frame is refused by the lock itself.
        knob(peripheral, BoltState.LOCKED)
        clock.advance(NEARBY_FRAME_TTL_S + 40)
        stale = await phone.carry(peripheral, late.json()["frame"])
        assert bolt(peripheral) is BoltState.LOCKED
        refused = await answer(rig, lock_id, late.json()["command_id"], stale, token="gus")
    body = problem(refused, 409, "lock-refused")
    assert (body["reason"], body["state"]) == ("STALE", "refused")
    rows = await command_rows(rig, lock_id)
    states = {r.idempotency_key: (r.state, r.user_id) for r in rows.values()}
    assert states["out-1"] == ("ok", rig.ids["gus"])
    assert states["out-2"] == ("refused", rig.ids["gus"])
    denied = await refusals(rig)
    assert [(r.actor, r.details["path"], r.details["reason"]) for r in denied] == [
        (f"user:{rig.ids['gus']}", "nearby", "no-grant"),
        (f"user:{rig.ids['gus']}", "nearby", "no-grant"),
        (f"user:{rig.ids['gus']}", "remote", "no-grant"),
    ]


# ------------------------------------------------------------------ one-time keys


async def test_a_one_time_key_opens_once(rig: Rig) -> None:
    peripheral, lock_id, _account, _gateway = await bound(rig, KEYSTONE)
    share = await grant(rig, "gus", lock_ids=[lock_id], validity={"kind": "one_time"})
    knob(peripheral, BoltState.LOCKED)
    first = await rig.command(lock_id, "unlock", "once-1", token="gus")
    assert first.status_code == 200, first.text
    assert bolt(peripheral) is BoltState.UNLOCKED
    knob(peripheral, BoltState.LOCKED)
    spent = problem(
        await rig.command(lock_id, "unlock", "once-2", token="gus"), 403, "access-denied"
    )
    assert spent["reason"] == "spent"
    nearby = problem(
        await issue(rig, lock_id, "unlock", "once-3", token="gus"), 403, "access-denied"
    )
    assert nearby["reason"] == "spent"
    # The first request's own retry still gets its first answer (and sends nothing).
    again = await rig.command(lock_id, "unlock", "once-1", token="gus")
    assert (again.status_code, again.json()) == (200, first.json())
    assert bolt(peripheral) is BoltState.LOCKED
    got = await call(rig, "GET", f"/v1/shares/{share}", "olga", 200)
    assert (got["status"], got["uses"]) == ("spent", 1)
    (use,) = await audits(rig, "share.use")
    assert (use.actor, use.details["spent"], use.details["command_id"]) == (
        f"user:{rig.ids['gus']}",
        True,
        first.json()["command_id"],
    )
    denied = await refusals(rig)
    assert [(r.details["path"], r.details["reason"]) for r in denied] == [
        ("remote", "spent"),
        ("nearby", "spent"),
    ]


async def test_two_concurrent_uses_of_a_one_time_key(rig: Rig) -> None:
    """Both requests pass the first check; under the lock row exactly one spends it."""
    peripheral, lock_id, _account, _gateway = await bound(rig, LUMEN)
    await grant(rig, "gus", lock_ids=[lock_id], validity={"kind": "one_time"})
    knob(peripheral, BoltState.LOCKED)
    answers = await asyncio.gather(
        rig.command(lock_id, "unlock", "race-1", token="gus"),
        rig.command(lock_id, "unlock", "race-2", token="gus"),
    )
    assert sorted(a.status_code for a in answers) == [200, 403], [a.text for a in answers]
    (loser,) = [a for a in answers if a.status_code == 403]
    assert problem(loser, 403, "access-denied")["reason"] == "spent"
    assert bolt(peripheral) is BoltState.UNLOCKED
    rows = await command_rows(rig, lock_id)
    assert [r.idempotency_key for r in rows.values() if r.user_id == rig.ids["gus"]] in (
        ["race-1"],
        ["race-2"],
    )
    assert len(await audits(rig, "share.use")) == 1


# ------------------------------------------------------------------ schedules and DST

SECOND = timedelta(seconds=1)
#: Sat 2026-03-28 22:00 CET to Sun 2026-03-29 06:00 CEST: Berlin springs forward at
#: 02:00 CET (01:00 UTC) in between, so the window is seven real hours.
OPENS = datetime(2026, 3, 28, 21, 0, tzinfo=UTC)
CLOSES = datetime(2026, 3, 29, 4, 0, tzinfo=UTC)


def set_clock(clock: ShiftedClock, at: datetime) -> None:
    """Move the RAS's and the lock's clock (one object) forward to ``at``.

    Forward only: the lock refuses frames stamped at or below the newest it accepted.
    """
    assert at.timestamp() >= clock(), "the clocks only move forward"
    clock.offset = at.timestamp() - time.time()


async def test_schedule_across_the_spring_forward_night(rig: Rig) -> None:
    """Allowed just inside the window's edges, refused just outside, on both paths; the
    edges are wall-clock times in the home's zone (a fixed offset gets one of them
    wrong by an hour: 20:59:50 UTC is 22:59:50 CEST, 04:00 UTC is 05:00 CET)."""
    clock = ShiftedClock()  # back to the Saturday noon before, for the whole test:
    clock.offset = datetime(2026, 3, 28, 12, 0, tzinfo=UTC).timestamp() - time.time()
    peripheral, lock_id, _account, gateway = await bound(rig, ACME, clock)
    await rig.stop_gateway(gateway)
    await homed(rig, lock_id)
    night = {"windows": [{"days": ["sat"], "start": "22:00", "end": "06:00"}]}
    await grant(rig, "gus", lock_ids=[lock_id], schedule=night)
    keys = (f"dst-{n}" for n in itertools.count())

    async def refused() -> None:
        for response in (
            await rig.command(lock_id, "unlock", next(keys), token="gus"),
            await issue(rig, lock_id, "unlock", next(keys), token="gus"),
        ):
            assert problem(response, 403, "access-denied")["reason"] == "outside-schedule"

    async def opens_the_door(phone: Phone) -> None:
        knob(peripheral, BoltState.LOCKED)
        issued = await issue(rig, lock_id, "unlock", next(keys), token="gus")
        assert issued.status_code == 201, issued.text
        reply = await phone.carry(peripheral, issued.json()["frame"])
        settled = await answer(rig, lock_id, issued.json()["command_id"], reply, token="gus")
        assert settled.status_code == 200, settled.text
        assert bolt(peripheral) is BoltState.UNLOCKED

    async with Phone(rig) as phone:
        set_clock(clock, OPENS - 10 * SECOND)  # Sat 21:59:50 CET
        await refused()
        set_clock(clock, OPENS + SECOND)
        await opens_the_door(phone)
        set_clock(clock, CLOSES - 10 * SECOND)  # Sun 05:59:50 CEST
        await opens_the_door(phone)
        set_clock(clock, CLOSES)  # Sun 06:00 CEST
        await refused()
    denied = await refusals(rig)
    assert [(r.details["path"], r.details["reason"]) for r in denied] == [
        ("remote", "outside-schedule"),
        ("nearby", "outside-schedule"),
    ] * 2
