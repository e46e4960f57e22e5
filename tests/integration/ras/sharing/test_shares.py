"""Shares over the API: invitations by contact, acceptance, delegation, revocation, audit."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import update

from heslock.ras.store.models import Contact
from tests.integration.ras.sharing.conftest import Rig


async def test_invitation_is_pending_whoever_has_the_contact(rig: Rig) -> None:
    """Granting reveals nothing: a contact with an account and one without look alike."""
    lock = await rig.add_lock("olga")
    known = await rig.share("olga", "gus", lock_ids=[str(lock)])
    unknown = await rig.share(
        "olga", "x", lock_ids=[str(lock)], contact={"email": "nobody@example.net"}
    )
    for body in (known, unknown):
        assert body["status"] == "pending"
        assert body["grantee_id"] is None
        assert body["accepted_at"] is None
    assert set(known) == set(unknown)
    assert known["invitee"] == {"kind": "email", "address": "gus@example.org"}
    # The address is normalised (lower case, IDNA domain) like a UDMS contact.
    upper = await rig.share("olga", "x", lock_ids=[str(lock)], contact={"email": "Gus@Example.ORG"})
    assert upper["invitee"]["address"] == "gus@example.org"


async def test_accepting_needs_a_verified_contact(rig: Rig) -> None:
    lock = await rig.add_lock("olga")
    await rig.add_person("una", verified=False)
    share = await rig.share("olga", "una", lock_ids=[str(lock)])
    # Una's address is not verified: she sees nothing and cannot accept.
    assert await rig.call("GET", "/v1/invitations", "una", 200) == []
    await rig.accept("una", share["id"], expect=404)
    # Neither can anyone else, whatever they know of the id.
    await rig.accept("sam", share["id"], expect=404)
    async with rig.maker() as session, session.begin():
        await session.execute(
            update(Contact)
            .where(Contact.user_id == rig.ids["una"])
            .values(verified_at=rig.clock.at)
        )
    listed = await rig.call("GET", "/v1/invitations", "una", 200)
    assert [i["id"] for i in listed] == [share["id"]]
    assert listed[0]["owner_name"] == "Olga"
    assert listed[0]["locks"] == [{"id": str(lock), "name": "front door"}]
    accepted = await rig.accept("una", share["id"])
    assert accepted["status"] == "active"
    assert accepted["grantee_id"] == str(rig.ids["una"])
    # Accepted once: it is no longer an invitation.
    await rig.accept("una", share["id"], expect=404)
    mine = await rig.call("GET", "/v1/me/shares", "una", 200)
    assert [s["id"] for s in mine["items"]] == [share["id"]]
    assert mine["next_cursor"] is None


async def test_invitations_lapse(rig: Rig) -> None:
    lock = await rig.add_lock("olga")
    share = await rig.share("olga", "gus", lock_ids=[str(lock)])
    rig.clock.at += timedelta(days=14)
    assert await rig.call("GET", "/v1/invitations", "gus", 200) == []
    await rig.accept("gus", share["id"], expect=404)
    got = await rig.call("GET", f"/v1/shares/{share['id']}", "olga", 200)
    assert got["status"] == "invitation-expired"


async def test_decline_and_renounce(rig: Rig) -> None:
    lock = await rig.add_lock("olga")
    declined = await rig.share("olga", "gus", lock_ids=[str(lock)])
    await rig.call("POST", f"/v1/invitations/{declined['id']}/decline", "gus", 204)
    got = await rig.call("GET", f"/v1/shares/{declined['id']}", "olga", 200)
    assert (got["status"], got["revoke_reason"]) == ("revoked", "declined")
    kept = await rig.granted("olga", "gus", lock_ids=[str(lock)])
    renounced = await rig.call("POST", f"/v1/shares/{kept}/revoke", "gus", 200)
    assert (renounced["status"], renounced["revoke_reason"]) == ("revoked", "renounced")
    assert renounced["revoked_by"] == str(rig.ids["gus"])


async def test_owner_cannot_accept_a_share_of_their_own_lock(rig: Rig) -> None:
    lock = await rig.add_lock("olga")
    share = await rig.share("olga", "olga", lock_ids=[str(lock)])
    await rig.accept("olga", share["id"], expect=409)


async def test_strangers_see_nothing(rig: Rig) -> None:
    lock = await rig.add_lock("olga")
    share_id = await rig.granted("olga", "gus", lock_ids=[str(lock)])
    await rig.call("GET", f"/v1/shares/{share_id}", "sam", 404)
    await rig.call("POST", f"/v1/shares/{share_id}/revoke", "sam", 404)
    await rig.call("PATCH", f"/v1/shares/{share_id}", "sam", 404, json={"label": "x"})
    await rig.call("GET", f"/v1/locks/{lock}/shares", "sam", 404)
    await rig.share("sam", "gus", expect=404, lock_ids=[str(lock)])
    await rig.call("GET", f"/v1/shares/{uuid.uuid4()}", "olga", 404)
    # The guest sees their share, not the lock's list, and cannot share it on.
    await rig.call("GET", f"/v1/shares/{share_id}", "gus", 200)
    forbidden = await rig.call("GET", f"/v1/locks/{lock}/shares", "gus", 403)
    assert forbidden["type"].endswith("/forbidden")
    await rig.share("gus", "mia", expect=403, lock_ids=[str(lock)])
    # The RAS's administrator reads and revokes (abuse handling) but does not grant.
    await rig.call("GET", f"/v1/locks/{lock}/shares", "root", 200)
    await rig.share("root", "mia", expect=403, lock_ids=[str(lock)])
    revoked = await rig.call("POST", f"/v1/shares/{share_id}/revoke", "root", 200)
    assert revoked["revoked_by"] == str(rig.ids["root"])


async def test_bad_terms_are_refused_with_reasons(rig: Rig) -> None:
    lock = await rig.add_lock("olga")
    ids = [str(lock)]
    bad = await rig.share("olga", "gus", 422, lock_ids=ids, role="guest", permissions=["view_log"])
    assert bad["type"].endswith("/invalid-input")
    assert "view_log" in bad["detail"]
    half_open = {"kind": "from_until", "not_before": "2026-06-03T10:00:00Z"}
    bad = await rig.share("olga", "gus", 422, lock_ids=ids, validity=half_open)
    assert "both" in bad["detail"]
    naive = {"kind": "permanent", "not_before": "2026-06-03T10:00:00"}
    bad = await rig.share("olga", "gus", 422, lock_ids=ids, validity=naive)
    assert bad["type"].endswith("/validation-failed")  # a naive time never gets in
    late = {"windows": [{"days": ["mon"], "start": "25:00", "end": "09:00"}]}
    bad = await rig.share("olga", "gus", 422, lock_ids=ids, schedule=late)
    assert bad["type"].endswith("/validation-failed")
    bad = await rig.share("olga", "gus", 422, lock_ids=ids, schedule={})
    assert "at least one window" in bad["detail"]
    # A schedule needs the lock's zone: this lock is in no home yet.
    bad = await rig.share(
        "olga", "gus", 422, lock_ids=ids,
        schedule={"windows": [{"days": ["mon"], "start": "08:00", "end": "09:00"}]},
    )  # fmt: skip
    assert "home" in bad["detail"]
    bad = await rig.share("olga", "gus", 422, lock_ids=ids, contact={"email": "not an address"})
    assert bad["type"].endswith("/invalid-input")
    bad = await rig.share(
        "olga", "gus", 422, lock_ids=ids, contact={"email": "a@b.org", "phone": "+4930123456"}
    )
    assert bad["type"].endswith("/validation-failed")
    await rig.share("olga", "gus", 422, lock_ids=ids, home_id=str(uuid.uuid4()))
    await rig.share("olga", "gus", 422)  # neither locks nor a home
    other = await rig.add_lock("mia", "mia's door")
    await rig.share("olga", "gus", 404, lock_ids=[str(lock), str(other)])  # not hers
    await rig.call("GET", f"/v1/locks/{lock}/shares?cursor=bogus", "olga", 422)


async def test_a_phone_invitation_is_stored_in_e164(rig: Rig) -> None:
    lock = await rig.add_lock("olga")
    body = await rig.share("olga", "x", lock_ids=[str(lock)], contact={"phone": "+44 20 7946 0958"})
    assert body["invitee"] == {"kind": "phone", "address": "+442079460958"}


async def test_update_changes_terms_and_is_audited(rig: Rig) -> None:
    lock = await rig.add_lock("olga")
    share_id = await rig.granted("olga", "gus", lock_ids=[str(lock)], label="cleaner")
    changed = await rig.call(
        "PATCH", f"/v1/shares/{share_id}", "olga", 200,
        json={"permissions": ["lock"], "paths": ["nearby"], "label": None},
    )  # fmt: skip
    assert changed["permissions"] == ["lock"]
    assert changed["paths"] == ["nearby"]
    assert changed["label"] is None
    assert changed["grantee_id"] == str(rig.ids["gus"])
    records = await rig.audit("share.update")
    assert len(records) == 1
    assert records[0].actor == f"user:{rig.ids['olga']}"
    assert records[0].details["changed"] == ["label", "paths", "permissions"]
    await rig.call("POST", f"/v1/shares/{share_id}/revoke", "olga", 200)
    await rig.call("PATCH", f"/v1/shares/{share_id}", "olga", 409, json={"label": "again"})


async def test_every_grant_acceptance_and_revocation_names_its_actor(rig: Rig) -> None:
    lock = await rig.add_lock("olga")
    share_id = await rig.granted("olga", "gus", lock_ids=[str(lock)])
    await rig.call("POST", f"/v1/shares/{share_id}/revoke", "olga", 200)
    again = await rig.call("POST", f"/v1/shares/{share_id}/revoke", "olga", 200)  # idempotent
    assert again["status"] == "revoked"
    (created,) = await rig.audit("share.create")
    (accepted,) = await rig.audit("share.accept")
    (revoked,) = await rig.audit("share.revoke")
    assert created.actor == f"user:{rig.ids['olga']}"
    assert created.target == f"share:{share_id}"
    assert created.details["locks"] == [str(lock)]
    assert created.details["contact_kind"] == "email"
    assert "gus@example.org" not in str(created.details)  # never the address
    assert accepted.actor == f"user:{rig.ids['gus']}"
    assert revoked.actor == f"user:{rig.ids['olga']}"
    assert revoked.details["grantee"] == str(rig.ids["gus"])
