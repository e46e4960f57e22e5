"""Account deletion releases sharing: shares received and granted, homes (a UDMS hook)."""

from __future__ import annotations

import uuid

from heslock.ras.services import audit
from heslock.ras.services.sharing.accounts import release_account
from heslock.ras.services.sharing.shares import release_lock
from heslock.ras.store.models import Home, Share
from tests.integration.ras.sharing.conftest import Rig


async def test_the_hook_is_installed(rig: Rig) -> None:
    assert release_account in rig.app.state.udms.deletion_hooks


async def test_deleting_the_grantee_revokes_and_erases_their_contact(rig: Rig) -> None:
    lock = await rig.add_lock("olga")
    received = await rig.granted("olga", "gus", lock_ids=[str(lock)])
    pending = await rig.share("olga", "gus", lock_ids=[str(lock)])  # to the address only
    ctx = audit.AuditContext(f"user:{rig.ids['gus']}")
    async with rig.maker() as session, session.begin():
        await release_account(session, rig.ids["gus"], ctx, rig.clock.at)
    async with rig.maker() as session:
        row = await session.get(Share, uuid.UUID(received))
        assert row is not None
        assert (row.revoke_reason, row.invite_address) == ("account-deleted", None)
        waiting = await session.get(Share, uuid.UUID(pending["id"]))
        assert waiting is not None
        assert waiting.revoked_at is None  # an address, not an account: it stays pending
    (record,) = await rig.audit("share.revoke")
    assert (record.actor, record.details["reason"]) == (ctx.actor, "account-deleted")


async def test_deleting_the_owner_revokes_their_shares_and_deletes_their_homes(rig: Rig) -> None:
    home = await rig.home()
    lock = await rig.add_lock("olga")
    await rig.call("PUT", f"/v1/homes/{home}/locks/{lock}", "olga", 200)
    outside = await rig.add_lock("olga", "shed")
    await rig.accept("mia", (await rig.member(home, "mia"))["id"])
    kept = await rig.granted("olga", "gus", lock_ids=[str(outside)])
    ctx = audit.AuditContext(f"user:{rig.ids['olga']}")
    async with rig.maker() as session, session.begin():
        await release_account(session, rig.ids["olga"], ctx, rig.clock.at)
    async with rig.maker() as session:
        assert await session.get(Home, uuid.UUID(home)) is None
        row = await session.get(Share, uuid.UUID(kept))
        assert row is not None
        assert row.revoke_reason == "account-deleted"
    assert {r.details["reason"] for r in await rig.audit("share.revoke")} == {"account-deleted"}
    assert len(await rig.audit("share.revoke")) == 2
    (deleted,) = await rig.audit("home.delete")
    assert deleted.target == f"home:{home}"
    assert (await rig.call("GET", "/v1/me/shares", "mia", 200))["items"] == []


async def test_release_lock_tidies_shares_of_a_transferred_lock(rig: Rig) -> None:
    """What DDMS is to call on transfer and unbind (access is refused without it)."""
    home = await rig.home()
    lock, other = await rig.add_lock("olga"), await rig.add_lock("olga", "shed")
    await rig.call("PUT", f"/v1/homes/{home}/locks/{lock}", "olga", 200)
    alone = await rig.granted("olga", "gus", lock_ids=[str(lock)])
    both = await rig.granted("olga", "mia", lock_ids=[str(lock), str(other)])
    ctx = audit.AuditContext(f"user:{rig.ids['olga']}")
    async with rig.maker() as session, session.begin():
        touched = await release_lock(
            session, ctx, uuid.UUID(str(lock)), rig.clock.at, "transferred"
        )
    assert touched == 2
    gone = await rig.call("GET", f"/v1/shares/{alone}", "olga", 200)
    assert (gone["status"], gone["revoke_reason"]) == ("revoked", "transferred")
    narrowed = await rig.call("GET", f"/v1/shares/{both}", "olga", 200)
    assert narrowed["status"] == "active"
    assert [lk["id"] for lk in narrowed["locks"]] == [str(other)]
    assert (await rig.call("GET", f"/v1/homes/{home}", "olga", 200))["lock_ids"] == []
    (update,) = await rig.audit("share.update")
    assert update.details["lock_removed"] == str(lock)
