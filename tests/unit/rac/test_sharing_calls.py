"""Sharing, geofencing and feed calls (heslock.rac.calls) and their answers' models: what
each sends, what it refuses before sending anything, and how the answers decode. The
real RAS is in tests/integration/rac/test_sharing.py."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import httpx
import pytest

from heslock.rac import RasClient, Schedule, Window, calls
from heslock.rac.errors import InvalidArgument, RasBadAnswer
from heslock.rac.models import DateRange, FeedEvent, Geofence, Lock, Share, SharePage, decode
from heslock.rac.tokens import MemoryTokenStore
from tests.unit.rac.test_client import pair

LOCK = uuid.UUID("6f1c1f4e-9d2e-4a55-8e0b-1f1d2c3b4a59")
HOME = uuid.UUID("0d6b3cf2-51f1-4ac4-9a8e-b2f5f1f7a6a0")
WHEN = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)

LOCK_VIEW: dict[str, object] = {
    "id": str(LOCK), "device_id": "2AA09AC1BAF5", "owner_id": str(uuid.uuid4()),
    "name": "Front door", "profile": "secure", "key_version": 1, "bolt_state": 1,
    "door_state": None, "battery": 80, "state_at": None, "bound_at": "2026-11-24T00:45:31Z",
}  # fmt: skip
SHARE: dict[str, object] = {
    "id": str(uuid.uuid4()), "owner_id": str(uuid.uuid4()), "scope": "locks",
    "home_id": None, "home_name": None, "locks": [{"id": str(LOCK), "name": "Front door"}],
    "status": "pending", "grantee_id": None,
    "invitee": {"kind": "email", "address": "b@example.org"}, "label": None,
    "role": "guest", "permissions": ["lock", "operate"], "paths": ["remote"],
    "validity": {"kind": "permanent", "not_before": None, "not_after": None},
    "schedule": {
        "windows": [{"days": ["mon", "tue"], "start": "08:00", "end": "18:00"}],
        "date_ranges": [{"first": "2026-12-24", "last": "2026-12-26"}],
    },
    "uses": 0, "spent_at": None, "created_by": None, "created_at": "2026-11-24T00:00:00Z",
    "updated_at": "2026-11-24T00:00:00Z", "accepted_at": None, "revoked_at": None,
    "revoked_by": None, "revoke_reason": None,
}  # fmt: skip


def _share(**terms: object) -> calls.Call[Share]:
    args: dict[str, object] = {
        "email": "b@example.org", "phone": None, "lock_ids": [LOCK], "home_id": None,
        "role": "guest", "permissions": None, "paths": None, "validity": "permanent",
        "not_before": None, "not_after": None, "schedule": None, "label": None,
    }  # fmt: skip
    args.update(terms)
    return calls.share_create(**args)  # type: ignore[arg-type]


def _update(**terms: object) -> calls.Call[Share]:
    args: dict[str, object] = {
        "role": None, "permissions": None, "paths": None, "validity": None,
        "not_before": None, "not_after": None, "schedule": None, "clear_schedule": False,
        "label": None, "clear_label": False,
    }  # fmt: skip
    args.update(terms)
    return calls.share_update(uuid.uuid4(), **args)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- lock view


def test_a_lock_view_carries_access_role_and_permissions_by_path() -> None:
    lock = decode(
        Lock,
        {
            **LOCK_VIEW,
            "access": "shared",
            "role": "guest",
            "permissions": {"remote": ["lock", "operate"], "nearby": [], "integration": []},
        },
    )
    assert (lock.access, lock.role, lock.shared) == ("shared", "guest", True)
    assert lock.permissions["remote"] == ("lock", "operate")
    assert lock.can("operate")
    assert not lock.can("operate", "nearby")
    assert not lock.can("manage_shares")


def test_a_lock_from_a_ras_before_sharing_is_its_owners() -> None:
    lock = decode(Lock, LOCK_VIEW)
    assert (lock.access, lock.role, lock.permissions) == ("owner", None, {})
    assert lock.can("manage_settings", "nearby")


def test_permissions_are_checked_member_by_member() -> None:
    with pytest.raises(RasBadAnswer, match=r"Lock\.permissions\['remote'\]\[1\] is not a string"):
        decode(Lock, {**LOCK_VIEW, "permissions": {"remote": ["lock", 7]}})


# --------------------------------------------------------------------------- models


def test_a_share_decodes_with_its_schedule_and_round_trips_it() -> None:
    share = decode(Share, SHARE)
    assert share.lock_ids == (LOCK,)
    assert share.invitee is not None
    assert share.invitee.address == "b@example.org"
    assert share.schedule == Schedule(
        windows=(Window(("mon", "tue"), "08:00", "18:00"),),
        date_ranges=(DateRange(date(2026, 12, 24), date(2026, 12, 26)),),
    )
    assert share.schedule.to_json() == SHARE["schedule"]
    page = decode(SharePage, {"items": [SHARE], "next_cursor": None})
    assert (len(page.items), page.next_cursor) == (1, None)


def test_numbers_dates_and_payloads_decode_strictly() -> None:
    fence: dict[str, object] = {
        "id": str(uuid.uuid4()), "lock_id": None, "home_id": str(HOME), "latitude": 52,
        "longitude": 13.4, "radius_m": 150, "remote_unlock_inside": False, "arrival": "off",
        "suppress_after_open_s": 300, "max_age_s": 120, "max_accuracy_m": 100.0,
        "accuracy_limit_m": 75.0, "created_at": "2026-11-24T00:00:00Z",
        "updated_at": "2026-11-24T00:00:00Z",
    }  # fmt: skip
    decoded = decode(Geofence, fence)
    assert decoded.latitude == 52.0
    assert isinstance(decoded.latitude, float)  # JSON's integral number is a float here
    with pytest.raises(RasBadAnswer, match=r"Geofence\.radius_m is not a number"):
        decode(Geofence, {**fence, "radius_m": True})
    with pytest.raises(RasBadAnswer, match="is not an ISO 8601 date"):
        decode(Share, {**SHARE, "schedule": {"date_ranges": [{"first": "xmas", "last": "x"}]}})
    event = decode(
        FeedEvent,
        {
            "id": 7, "kind": "share.created", "created_at": "2026-11-24T00:00:00Z",
            "lock_id": None, "home_id": None, "gateway_id": None, "actor_id": None,
            "path": "remote", "credential": "owner", "payload": {"lock_ids": [str(LOCK)]},
        },
    )  # fmt: skip
    assert event.payload == {"lock_ids": [str(LOCK)]}


# --------------------------------------------------------------------------- homes, shares


def test_home_calls() -> None:
    assert calls.home_create("Seaside", "Europe/Berlin").json == {
        "name": "Seaside",
        "time_zone": "Europe/Berlin",
    }
    assert calls.home_update(HOME, None, "UTC").json == {"time_zone": "UTC"}
    with pytest.raises(InvalidArgument, match="name, the time zone or both"):
        calls.home_update(HOME, None, None)
    add = calls.home_add_lock(HOME, str(LOCK).upper())
    assert (add.method, add.path) == ("PUT", f"/v1/homes/{HOME}/locks/{LOCK}")
    assert calls.home_remove_lock(HOME, LOCK).ok == frozenset({204})
    members = calls.home_members(HOME, 10, "abc", "all")
    assert members.params == (("limit", "10"), ("state", "all"), ("cursor", "abc"))


def test_a_share_sends_the_terms_given_and_the_role_defaults_otherwise() -> None:
    plain = _share()
    assert plain.json == {
        "invitee": {"email": "b@example.org"}, "lock_ids": [str(LOCK)], "role": "guest",
        "validity": {"kind": "permanent"},
    }  # fmt: skip
    assert plain.ok == frozenset({201})
    east = timezone(timedelta(hours=2))
    full = _share(
        email=None,
        phone="+441632960958",
        lock_ids=None,
        home_id=HOME,
        role="member",
        permissions=["operate", "view_log", "operate"],
        paths=["remote", "nearby"],
        validity="from_until",
        not_before=WHEN,
        not_after=WHEN.astimezone(east) + timedelta(days=1),
        schedule=Schedule(windows=(Window(("sat",), "22:00", "06:00"),)),
        label="weekends",
    )
    assert full.json == {
        "invitee": {"phone": "+441632960958"},
        "home_id": str(HOME),
        "role": "member",
        "permissions": ["operate", "view_log"],
        "paths": ["remote", "nearby"],
        "validity": {
            "kind": "from_until",
            "not_before": "2026-11-24T08:00:00+00:00",
            "not_after": "2026-11-25T10:00:00+02:00",
        },
        "schedule": {
            "windows": [{"days": ["sat"], "start": "22:00", "end": "06:00"}],
            "date_ranges": [],
        },
        "label": "weekends",
    }


@pytest.mark.parametrize(
    ("terms", "words"),
    [
        ({"email": None}, "one e-mail address or one phone number"),
        ({"phone": "+441632960958"}, "one e-mail address or one phone number"),
        ({"home_id": HOME}, "not both"),
        ({"lock_ids": []}, r"some locks \(lock_ids\) or a home"),
        ({"lock_ids": ["front door"]}, "not a lock id"),
        ({"role": "owner"}, "role is one of admin, member, guest"),
        ({"permissions": ["fly"]}, "a permission is one of"),
        ({"permissions": "operate"}, "a list, not the string"),
        ({"paths": ["teleport"]}, "a path is one of"),
        ({"validity": "forever"}, "validity is one of"),
        ({"not_before": datetime(2026, 1, 1)}, "not_before needs a time zone"),
    ],
)
def test_a_bad_share_is_refused_before_sending(terms: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        _share(**terms)


def test_a_share_update_sends_only_the_changes() -> None:
    assert _update(label="new").json == {"label": "new"}
    assert _update(clear_label=True, clear_schedule=True).json == {
        "label": None,
        "schedule": None,
    }
    assert _update(role="member").json == {"role": "member"}
    assert _update(validity="one_time").json == {"validity": {"kind": "one_time"}}
    assert _update(label="x").method == "PATCH"
    with pytest.raises(InvalidArgument, match="nothing to change"):
        _update()
    with pytest.raises(InvalidArgument, match="go with a validity kind"):
        _update(not_after=WHEN)
    with pytest.raises(InvalidArgument, match="or clear it, not both"):
        _update(label="x", clear_label=True)
    with pytest.raises(InvalidArgument, match="or clear it, not both"):
        _update(schedule=Schedule(), clear_schedule=True)


@pytest.mark.parametrize(
    ("limit", "cursor", "state", "words"),
    [
        (0, None, "active", "limit is 1..200"),
        (201, None, "active", "limit is 1..200"),
        (10, "", "active", "next_cursor of a previous page"),
        (10, "x" * 129, "active", "next_cursor of a previous page"),
        (10, None, "revoked", "state is one of active, all"),
    ],
)
def test_pages_are_checked(limit: int, cursor: str | None, state: str, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        calls.shares_list(limit, cursor, state)


def test_invitation_calls() -> None:
    share = uuid.uuid4()
    assert calls.invitation_accept(share).path == f"/v1/invitations/{share}/accept"
    decline = calls.invitation_decline(share)
    assert (decline.method, decline.ok) == ("POST", frozenset({204}))
    with pytest.raises(InvalidArgument, match="not a share id"):
        calls.invitation_accept("1")


# --------------------------------------------------------------------------- geofencing


def test_a_fence_belongs_to_a_lock_or_a_home() -> None:
    put = calls.geofence_put(
        None, HOME, latitude=52, longitude=13.5, radius_m=100, remote_unlock_inside=True,
        arrival="suggest", suppress_after_open_s=None, max_age_s=60, max_accuracy_m=None,
    )  # fmt: skip
    assert (put.method, put.path, put.ok) == (
        "PUT", f"/v1/homes/{HOME}/geofence", frozenset({200, 201}),
    )  # fmt: skip
    assert put.json == {
        "latitude": 52.0, "longitude": 13.5, "radius_m": 100.0, "remote_unlock_inside": True,
        "arrival": "suggest", "max_age_s": 60,
    }  # fmt: skip
    assert calls.geofence_get(LOCK, None).path == f"/v1/locks/{LOCK}/geofence"
    for lock_id, home_id in ((None, None), (LOCK, HOME)):
        with pytest.raises(InvalidArgument, match=r"a lock \(lock_id\) or a home"):
            calls.geofence_delete(lock_id, home_id)
    with pytest.raises(InvalidArgument, match="arrival is one of"):
        calls.geofence_put(
            LOCK, None, latitude=0, longitude=0, radius_m=100, remote_unlock_inside=False,
            arrival="unlock", suppress_after_open_s=None, max_age_s=None, max_accuracy_m=None,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("latitude", "longitude", "accuracy", "taken_at", "words"),
    [
        (91.0, 0.0, 10.0, WHEN, "latitude is -90..90"),
        (0.0, -180.5, 10.0, WHEN, "longitude -180..180"),
        (float("nan"), 0.0, 10.0, WHEN, "latitude is -90..90"),
        (0.0, 0.0, 0.0, WHEN, "accuracy_m is a positive"),
        (0.0, 0.0, float("nan"), WHEN, "accuracy_m is a positive"),
        (0.0, 0.0, 10.0, datetime(2026, 1, 1), "taken_at needs a time zone"),
    ],
)
def test_a_bad_location_is_refused_before_sending(
    latitude: float, longitude: float, accuracy: float, taken_at: datetime, words: str
) -> None:
    with pytest.raises(InvalidArgument, match=words):
        calls.location_report(latitude, longitude, accuracy, taken_at)


def test_a_location_report() -> None:
    call = calls.location_report(-33.9, 151.2, 8, WHEN)
    assert (call.method, call.path, call.ok) == ("POST", "/v1/location", frozenset({201}))
    assert call.json == {
        "latitude": -33.9, "longitude": 151.2, "accuracy_m": 8.0,
        "taken_at": "2026-11-24T08:00:00+00:00",
    }  # fmt: skip
    assert calls.location_forget().method == "DELETE"
    suggestion = uuid.uuid4()
    assert calls.arrival_confirm(suggestion).path == f"/v1/arrivals/{suggestion}/confirm"


# --------------------------------------------------------------------------- event feed


def _events(**query: object) -> calls.Call[list[FeedEvent]]:
    args: dict[str, object] = {
        "lock_id": None, "kind": None, "before": None, "after": None, "since": None,
        "until": None, "limit": 50,
    }  # fmt: skip
    args.update(query)
    return calls.events_list(**args)  # type: ignore[arg-type]


def test_the_feed_query() -> None:
    assert _events().params == (("limit", "50"),)
    call = _events(lock_id=LOCK, kind=["share.*", "lock.door", "share.*"], after=0, since=WHEN)
    assert call.params == (
        ("limit", "50"), ("after", "0"), ("lock_id", str(LOCK)), ("kind", "share.*"),
        ("kind", "lock.door"), ("since", "2026-11-24T08:00:00+00:00"),
    )  # fmt: skip
    assert _events(kind="command.ok", before=9).params == (
        ("limit", "50"), ("before", "9"), ("kind", "command.ok"),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"limit": 0}, "limit is 1..500"),
        ({"before": 3, "after": 1}, "before or after, not both"),
        ({"before": 0}, "before is an event id"),
        ({"after": -1}, "after is an event id"),
        ({"kind": [""]}, "non-empty kinds"),
        ({"kind": [f"k{i}" for i in range(33)]}, "non-empty kinds"),
        ({"until": datetime(2026, 1, 1)}, "until needs a time zone"),
    ],
)
def test_a_bad_feed_query_is_refused(query: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        _events(**query)


def test_repeated_kinds_reach_the_ras_as_repeated_parameters() -> None:
    seen: list[httpx.URL] = []

    def ras(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, json=[])

    with RasClient(
        "https://ras.test", tokens=MemoryTokenStore(pair(1)), transport=httpx.MockTransport(ras)
    ) as client:
        assert client.events.list(kind=["share.created", "share.revoked"], limit=5) == []
    assert seen[0].params.get_list("kind") == ["share.created", "share.revoked"]
    assert seen[0].params["limit"] == "5"
