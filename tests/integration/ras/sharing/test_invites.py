"""Granting is throttled per person (429 with Retry-After), and an invited contact is
told -- through the outbox, like verification codes -- who shared what and how to
accept, with no secret in the message; an invitee who already has an account also gets
a ``share.invited`` feed event. The granter's answer is the same either way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from heslock.ras.services.sharing.notify import FEED_KIND, PURPOSE
from heslock.ras.services.udms.senders import OUTBOX_NAME
from tests.integration.ras.sharing.conftest import Rig
from tests.support import auth

BODY: dict[str, Any] = {"role": "guest", "permissions": ["operate"]}


def outbox(rig: Rig) -> list[dict[str, Any]]:
    path: Path = rig.app.state.ras.settings.data_dir / OUTBOX_NAME
    if not path.exists():
        return []
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [e for e in entries if e["purpose"] == PURPOSE]


async def feed(rig: Rig, who: str) -> list[dict[str, Any]]:
    return list(await rig.call("GET", "/v1/events", who, 200, params={"kind": FEED_KIND}))


async def test_invitees_are_told_by_sms_and_email_and_in_their_feed(rig: Rig) -> None:
    lock = await rig.add_lock("olga", "Front door")
    # By phone, to nobody with an account: the SMS names who and what, and nothing else.
    by_phone = await rig.share(
        "olga", "x", contact={"phone": "+442079460958"}, lock_ids=[str(lock)], **BODY
    )
    [sms] = outbox(rig)
    assert sms["channel"] == "sms"
    assert sms["to"] == "+442079460958"
    assert sms["code"] == ""
    text = sms["text"]
    assert text.startswith('Olga shared "Front door" with you on heslock.')
    assert "Invitations" in text
    assert len(text) <= 160
    assert by_phone["id"] not in text  # no id, no token, no link to follow

    # By e-mail, to Mia who has that address verified: the message, and a feed event.
    to_mia = await rig.share("olga", "mia", lock_ids=[str(lock)], **BODY)
    assert [e["to"] for e in outbox(rig)][-1] == rig.email("mia")
    [event] = await feed(rig, "mia")
    assert event["payload"]["share_id"] == to_mia["id"]
    assert event["actor_id"] == str(rig.ids["olga"])
    assert await feed(rig, "olga") == []  # the granter's feed has its own share.created
    # Both answers look alike: nothing tells the granter who has an account.
    assert by_phone["status"] == to_mia["status"] == "pending"
    assert by_phone.keys() == to_mia.keys()
    notified = await rig.audit("share.invite_notify")
    assert [r.result for r in notified] == ["ok", "ok"]
    assert all("@" not in json.dumps(r.details) for r in notified)  # no contact in the log

    # A home invitation is told too; the accepting works as before.
    home = await rig.home()
    member = await rig.member(home, "gus")
    assert outbox(rig)[-1]["to"] == rig.email("gus")
    await rig.accept("gus", member["id"])


async def test_one_contact_gets_a_bounded_number_of_notices(rig: Rig) -> None:
    settings = rig.app.state.ras.settings
    rig.app.state.ras.settings = settings.model_copy(
        update={"share_invites_per_contact_per_day": 2}
    )
    locks = [await rig.add_lock("olga", f"door {n}") for n in range(3)]
    for lock in locks:
        await rig.share("olga", "sam", lock_ids=[str(lock)], **BODY)  # all made ...
    assert len(outbox(rig)) == 2  # ... two told


async def test_granting_is_rate_limited_per_person(rig: Rig) -> None:
    settings = rig.app.state.ras.settings
    rig.app.state.ras.settings = settings.model_copy(
        update={"share_create_burst": 2, "share_create_per_hour": 1.0}
    )
    locks = [await rig.add_lock("olga", f"door {n}") for n in range(3)]
    home = await rig.home()
    await rig.share("olga", "mia", lock_ids=[str(locks[0])], **BODY)
    await rig.member(home, "gus")
    response = await rig.client.post(
        "/v1/shares",
        json={"invitee": {"email": rig.email("sam")}, "lock_ids": [str(locks[1])], **BODY},
        headers=auth("olga"),
    )
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(response.headers["retry-after"]) <= 3600
    refused = await rig.client.post(
        f"/v1/homes/{home}/members", json={"invitee": {"email": rig.email("sam")}},
        headers=auth("olga"),
    )  # fmt: skip
    assert refused.status_code == 429
    assert len(outbox(rig)) == 2  # nothing sent for the refused ones
    denied = [r for r in await rig.audit("share.create") if r.result == "denied"]
    assert len(denied) == 2
    # Another person's bucket is their own; and an hour later Olga may grant again.
    mine = await rig.add_lock("mia", "shed")
    await rig.share("mia", "sam", lock_ids=[str(mine)], **BODY)
    rig.clock.at = rig.clock.at.replace(hour=rig.clock.at.hour + 1)
    await rig.share("olga", "sam", lock_ids=[str(locks[2])], **BODY)
