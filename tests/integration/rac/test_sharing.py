"""Sharing, geofencing and the event feed through the SDK, against the real RAS: homes,
a lock shared by e-mail with a second real user who accepts the invitation and sees the
lock with their role and permissions until the owner revokes it; fences, a location
report and the arrival it raises; the feed's share events; the synchronous client."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import aclosing
from datetime import UTC, date, datetime, timedelta

import pytest

from heslock.protocol.makers import KEYSTONE
from heslock.rac import (
    AsyncRasClient,
    DateRange,
    Lock,
    RasClient,
    RasProblem,
    Schedule,
    Window,
)
from heslock.rac.nearby import NearbyRadio, register_nearby
from tests.integration.rac.conftest import System, new_email

pytestmark = pytest.mark.timeout(90)

CLIENT_RADIO = "C0:00:00:00:00:AB"
EVERY_DAY = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: Near Berlin's Brandenburg Gate.
LATITUDE, LONGITUDE = 52.516275, 13.377704


async def _bound_lock(system: System, owner: AsyncRasClient, name: str) -> Lock:
    """A lock registered by ``owner`` over the client's own radio."""
    peripheral = await system.add_lock(KEYSTONE)
    device = peripheral.lock.identity.device_id
    async with NearbyRadio("local", CLIENT_RADIO, local=system.vlink) as radio:
        reg = await register_nearby(owner, radio, device.hex, name)
    assert reg.lock_id is not None
    return await owner.locks.get(reg.lock_id)


async def test_share_a_lock_accept_it_see_it_and_revoke_it(system: System) -> None:
    friend_email = new_email()
    owner = await system.user()
    friend = await system.user(friend_email)
    async with owner, friend:
        lock = await _bound_lock(system, owner, "front door")
        assert (lock.access, lock.role) == ("owner", "owner")
        assert lock.can("manage_shares")
        assert lock.can("operate", "nearby")

        # A home with the lock in it.
        home = await owner.homes.create("Seaside", "Europe/Berlin")
        assert (home.role, home.lock_ids, home.time_zone) == ("owner", (), "Europe/Berlin")
        home = await owner.homes.add_lock(home.id, lock.id)
        assert home.lock_ids == (lock.id,)
        renamed = await owner.homes.rename(home.id, "Beach house")
        assert renamed.name == "Beach house"
        assert (await owner.homes.get(home.id)).name == "Beach house"
        assert [h.id for h in await owner.homes.list()] == [home.id]
        with pytest.raises(RasProblem) as not_seen:
            await friend.homes.get(home.id)
        assert not_seen.value.status == 404

        # The share: an invitation to the friend's e-mail address.
        now = datetime.now(UTC)
        schedule = Schedule(
            windows=(Window(EVERY_DAY, "00:00", "00:00"),),
            date_ranges=(DateRange(date(2020, 1, 1), date(2099, 12, 31)),),
        )
        share = await owner.shares.create(
            email=friend_email,
            lock_ids=[lock.id],
            role="guest",
            permissions=["operate", "view_status"],
            paths=["remote"],
            validity="from_until",
            not_before=now - timedelta(minutes=5),
            not_after=now + timedelta(days=1),
            schedule=schedule,
            label="plants",
        )
        assert (share.status, share.scope, share.role) == ("pending", "locks", "guest")
        assert share.invitee is not None
        assert (share.invitee.kind, share.invitee.address) == ("email", friend_email)
        assert share.lock_ids == (lock.id,)
        assert share.locks[0].name == "front door"
        assert set(share.permissions) >= {"operate", "view_status"}
        assert share.paths == ("remote",)
        assert share.validity.kind == "from_until"
        assert share.schedule == schedule
        assert share.grantee_id is None

        # The friend sees the invitation and accepts it.
        [invitation] = await friend.invitations.list()
        assert invitation.id == share.id
        assert (invitation.role, invitation.label) == ("guest", "plants")
        assert [ref.id for ref in invitation.locks] == [lock.id]
        accepted = await friend.invitations.accept(invitation.id)
        friend_id = (await friend.account.get()).id
        assert (accepted.status, accepted.grantee_id) == ("active", friend_id)
        assert await friend.invitations.list() == []

        [seen] = await friend.locks.list()
        assert (seen.id, seen.access, seen.role) == (lock.id, "shared", "guest")
        assert seen.shared
        assert seen.can("operate")
        assert seen.can("view_status")
        assert not seen.can("operate", "nearby")  # the share's paths: remote only
        assert not seen.can("manage_shares")
        assert (await friend.shares.received()).items[0].id == share.id
        assert [s.id for s in (await owner.shares.of_lock(lock.id)).items] == [share.id]

        # The owner changes the terms: only what is given is sent.
        updated = await owner.shares.update(share.id, label="watering", clear_schedule=True)
        assert (updated.label, updated.schedule, updated.role) == ("watering", None, "guest")

        # A second share (of the whole home, never accepted) pages the listing.
        other = await owner.shares.create(email=new_email(), home_id=home.id, role="member")
        assert (other.scope, other.home_id, other.lock_ids) == ("home", home.id, (lock.id,))
        first = await owner.shares.list(limit=1)
        assert len(first.items) == 1
        assert first.next_cursor is not None
        second = await owner.shares.list(limit=1, cursor=first.next_cursor)
        assert second.next_cursor is None
        assert {first.items[0].id, second.items[0].id} == {share.id, other.id}
        members = await owner.homes.members(home.id)
        assert [m.id for m in members.items] == [other.id]

        # Revoked: at once, and the lock is gone from the friend's list.
        revoked = await owner.shares.revoke(share.id)
        assert revoked.status == "revoked"
        assert revoked.revoked_at is not None
        assert await friend.locks.list() == []
        assert (await owner.shares.list()).items == (other,)
        assert {s.id for s in (await owner.shares.list(state="all")).items} == {
            share.id,
            other.id,
        }

        # The feed tells both sides what happened to the share.
        feed = await owner.events.list(kind="share.*")
        mine = [e for e in feed if e.payload["share_id"] == str(share.id)]
        assert [e.kind for e in mine] == [
            "share.revoked",
            "share.updated",
            "share.accepted",
            "share.created",
        ]  # newest first
        assert all(e.credential == "owner" for e in mine if e.kind != "share.accepted")
        assert [e.id for e in await owner.events.list(kind="share.*", before=mine[1].id)][:2] == [
            mine[2].id,
            mine[3].id,
        ]
        oldest_first = await owner.events.list(kind=["share.created"], after=0)
        assert [e.payload["share_id"] for e in oldest_first] == [str(share.id), str(other.id)]
        theirs = await friend.events.list(kind="share.*")
        assert {"share.accepted", "share.revoked"} <= {e.kind for e in theirs}

        # Declining an invitation ends it; a deleted home revokes its shares.
        third = await owner.shares.create(email=friend_email, home_id=home.id)
        await friend.invitations.decline(third.id)
        assert (await owner.shares.get(third.id)).status == "revoked"
        await owner.homes.remove_lock(home.id, lock.id)
        assert (await owner.homes.get(home.id)).lock_ids == ()
        await owner.homes.delete(home.id)
        assert await owner.homes.list() == []
        revocations = await owner.events.list(kind="share.revoked", after=mine[0].id)
        assert [(e.payload["share_id"], e.payload["revoke_reason"]) for e in revocations] == [
            (str(third.id), "declined"),
            (str(other.id), "home-deleted"),
        ]


async def test_geofences_location_and_arrival(system: System) -> None:
    owner = await system.user()
    async with owner:
        lock = await _bound_lock(system, owner, "gate")
        home = await owner.homes.create("Town", "Europe/Berlin")

        fence = await owner.geofences.put(
            home_id=home.id, latitude=LATITUDE, longitude=LONGITUDE, radius_m=150
        )
        assert (fence.home_id, fence.lock_id, fence.arrival) == (home.id, None, "off")
        assert fence.radius_m == 150.0
        assert fence.accuracy_limit_m == 75.0  # min(max_accuracy_m 100, radius / 2)
        assert await owner.geofences.get(home_id=home.id) == fence
        await owner.geofences.delete(home_id=home.id)
        with pytest.raises(RasProblem) as gone:
            await owner.geofences.get(home_id=home.id)
        assert gone.value.status == 404

        own = await owner.geofences.put(
            lock.id, latitude=LATITUDE, longitude=LONGITUDE, radius_m=100, arrival="suggest"
        )
        replaced = await owner.geofences.put(
            lock.id,
            latitude=LATITUDE,
            longitude=LONGITUDE,
            radius_m=100,
            arrival="suggest",
            max_age_s=60,
        )
        assert (replaced.id, replaced.max_age_s, replaced.lock_id) == (own.id, 60, lock.id)

        # Arriving inside the lock's fence raises a suggestion; it unlocks nothing itself.
        accepted = await owner.location.report(LATITUDE, LONGITUDE, accuracy_m=10.0)
        [suggestion] = accepted.suggestions
        assert (suggestion.lock_id, suggestion.mode) == (lock.id, "suggest")
        assert [s.id for s in await owner.arrivals.list()] == [suggestion.id]
        confirmation = await owner.arrivals.confirm(suggestion.id)
        assert confirmation.suggestion.confirmed_at is not None
        assert confirmation.next.path == f"/v1/locks/{lock.id}/commands"
        assert confirmation.next.body == {"command": "unlock"}
        assert confirmation.next.idempotency_key
        assert await owner.arrivals.list() == []
        await owner.location.forget()


async def test_bad_input_is_refused_by_the_ras_with_a_problem(system: System) -> None:
    """What only the RAS can judge (a zone, a radius) comes back as a typed problem."""
    owner = await system.user()
    async with owner:
        with pytest.raises(RasProblem) as bad_zone:
            await owner.homes.create("Nowhere", "Mars/Olympus_Mons")
        assert bad_zone.value.status in (400, 422)
        home = await owner.homes.create("Here", "UTC")
        with pytest.raises(RasProblem) as tiny:
            await owner.geofences.put(home_id=home.id, latitude=0.0, longitude=0.0, radius_m=1)
        assert tiny.value.status == 422
        with pytest.raises(RasProblem) as unknown:
            await owner.shares.get(uuid.uuid4())
        assert unknown.value.status == 404


async def test_synchronous_client_shares_the_session(system: System) -> None:
    """RasClient on the async client's token store (run in a thread: this test's loop
    serves the RAS)."""
    owner = await system.user()
    friend_email = new_email()
    async with owner:

        def flow() -> tuple[str, float, list[uuid.UUID], uuid.UUID, str]:
            with RasClient(system.url, ca=system.ca, tokens=owner.tokens) as ras:
                home = ras.homes.create("Cabin", "Europe/Oslo")
                ras.geofences.put(home_id=home.id, latitude=60.0, longitude=10.0, radius_m=500)
                share = ras.shares.create(email=friend_email, home_id=home.id)
                [event] = ras.events.list(kind="share.created")
                return (
                    ras.homes.get(home.id).name,
                    ras.geofences.get(home_id=home.id).radius_m,
                    [s.id for s in ras.shares.list().items],
                    share.id,
                    str(event.payload["share_id"]),
                )

        name, radius, listed, share_id, in_feed = await asyncio.to_thread(flow)
        assert (name, radius, listed, in_feed) == ("Cabin", 500.0, [share_id], str(share_id))
        [home] = await owner.homes.list()  # the same session, seen by the async client
        assert home.name == "Cabin"


async def test_the_live_feed_resumes_after_an_id_then_goes_on_live(system: System) -> None:
    owner = await system.user()
    async with owner:
        home = await owner.homes.create("Flat", "UTC")
        newest = await owner.events.list(limit=1)
        start = newest[0].id if newest else 0
        # Made before the stream opens: resuming after ``start`` must still bring it.
        share = await owner.shares.create(email=new_email(), home_id=home.id)
        async with aclosing(owner.events.stream(last_event_id=start, kind="share.*")) as feed:
            async with asyncio.timeout(20):
                created = await anext(feed)
                assert (created.kind, created.payload["share_id"]) == (
                    "share.created",
                    str(share.id),
                )
                await owner.shares.revoke(share.id)  # live: the stream is open now
                revoked = await anext(feed)
        assert revoked.kind == "share.revoked"
        assert revoked.id > created.id
        assert [e.id for e in await owner.events.list(kind="share.*")] == [revoked.id, created.id]
