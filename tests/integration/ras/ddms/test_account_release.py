"""Account deletion revokes every DDMS grant (issue 4): the UDMS deletion hook."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from heslock.ras.services import audit
from heslock.ras.services.ddms.accounts import release_account
from heslock.ras.services.scs.credentials import ScsCredentialStore
from heslock.ras.store.models import Device, DeviceStatus, Gateway, Lock, Registration
from tests.integration.ras.ddms.conftest import Ras
from tests.support import auth


async def test_the_app_registers_the_release_hook(ras: Ras) -> None:
    assert release_account in ras.apps[0].state.udms.deletion_hooks


async def test_release_unbinds_locks_revokes_gateways_and_ends_registrations(ras: Ras) -> None:
    bound = await ras.new_lock()
    lock_id = await ras.bind(bound)
    pending = await ras.new_lock()
    registration = await ras.start(pending)  # stage a handed out, never finished
    gateway = (
        await ras.client.post("/v1/gateways", json={"name": "hall"}, headers=auth("a"))
    ).json()
    other = (await ras.client.post("/v1/gateways", json={"name": "b's"}, headers=auth("b"))).json()
    store = ScsCredentialStore(ras.maker(), ras.settings.domain)
    assert await store.scram_sha256(gateway["id"]) is not None

    async with ras.maker()() as session, session.begin():
        ctx = audit.AuditContext(f"user:{ras.ids['a']}")
        await release_account(session, ras.ids["a"], ctx, datetime.now(UTC))

    async with ras.maker()() as session:
        assert await session.get(Lock, uuid.UUID(lock_id)) is None
        device = await session.get(Device, bound.identity.device_id.hex)
        assert device is not None
        assert device.status == DeviceStatus.RESET_REQUIRED.value
        reg = await session.get(Registration, uuid.UUID(registration["registration_id"]))
        assert reg is not None
        assert reg.phase == "failed"
        assert reg.old_key_enc == b""
        assert reg.new_key_enc == b""
        revoked = await session.get(Gateway, uuid.UUID(gateway["id"]))
        assert revoked is not None
        assert revoked.revoked_at is not None
        untouched = await session.get(Gateway, uuid.UUID(other["id"]))
        assert untouched is not None
        assert untouched.revoked_at is None
        owned = (await session.execute(select(Lock).where(Lock.owner_id == ras.ids["a"]))).all()
        assert owned == []
    assert await store.scram_sha256(gateway["id"]) is None  # can no longer log in
    assert await store.scram_sha256(other["id"]) is not None
    reasons = [
        (r.action, r.details.get("reason")) for r in await ras.audit_rows()
        if r.details and r.details.get("reason") == "account-deleted"
    ]  # fmt: skip
    assert sorted(reasons) == [
        ("gateway.revoke", "account-deleted"),
        ("lock.unbind", "account-deleted"),
        ("register.fail", "account-deleted"),
    ]
