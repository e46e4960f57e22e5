"""What the client command line adds to the SDK (heslock.cli.user, heslock.cli.lock):
naming locks, following events, JSON for scripts, and failures worded for people."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from heslock.ble.errors import BleTimeout
from heslock.cli.lock import new_events, pick_lock
from heslock.cli.user import CliFailure, User, failures, plain
from heslock.errors import UsageError
from heslock.rac import Lock, LockEvent, NotLoggedIn, RasProblem, RasUnreachable
from heslock.rac.errors import PROBLEM_BASE
from heslock.rac.profile import ProfileFile

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _lock(name: str, device: str) -> Lock:
    return Lock(uuid.uuid4(), device, uuid.uuid4(), name, "secure", 1, 1, 0, 90, T0, T0)


def _event(n: int) -> LockEvent:
    return LockEvent(n, "manual_operation", 1, n, T0, T0, "gw@localhost", 1, 0, 90)


def test_a_lock_is_named_by_its_name_or_device_id() -> None:
    front, back = _lock("Front door", "2AA09AC1BAF5"), _lock("Back door", "0AF2A1E5BA4B")
    assert pick_lock([front, back], "front DOOR") is front
    assert pick_lock([front, back], "0a:f2:a1:e5:ba:4b") is back
    with pytest.raises(CliFailure, match="no lock 'Shed'") as missing:
        pick_lock([front, back], "Shed")
    assert missing.value.exit_code == 4
    with pytest.raises(UsageError, match="use an id"):
        pick_lock([front, _lock("front door", "111111111111")], "Front door")


def test_following_prints_only_newer_events_oldest_first() -> None:
    page = [_event(9), _event(8), _event(7), _event(6)]  # newest first, as the RAS answers
    assert [e.id for e in new_events(page, 7)] == [8, 9]
    assert new_events(page, 9) == []


def test_json_for_scripts() -> None:
    lock = _lock("Front door", "2AA09AC1BAF5")
    data = plain({"lock": lock, "frame": b"\x01\x02", "at": T0, "path": Path("/x")})
    assert data["lock"]["id"] == str(lock.id)
    assert data["lock"]["bolt"] == "locked"  # the state codes' names are added
    assert data["frame"] == "AQI="
    assert data["at"] == "2026-01-01T00:00:00+00:00"
    assert data["path"] == "/x"


def _who(tmp_path: Path, *, json: bool = False, name: str = "default") -> User:
    return User(ProfileFile(tmp_path / "profiles.json"), name, json, explicit=name != "default")


@pytest.mark.parametrize(
    ("error", "exit_code", "words"),
    [
        (NotLoggedIn("not logged in"), 4, "Log in: heslock --profile home account"),
        (
            RasProblem.from_document(
                409,
                {"type": PROBLEM_BASE + "lock-refused", "detail": "refused", "reason": "JAMMED"},
            ),
            3,
            "The bolt is jammed",
        ),
        (
            RasProblem.from_document(
                503, {"type": PROBLEM_BASE + "gateway-unavailable", "detail": "no gateway"}
            ),
            5,
            "--nearby",
        ),
        (
            RasProblem.from_document(
                429, {"type": PROBLEM_BASE + "rate-limited", "retry_after": 60}
            ),
            4,
            "Wait 60 s",
        ),
        (RasUnreachable("cannot reach the RAS at https://x: refused"), 5, "server running"),
        (BleTimeout("lock 2AA09AC1BAF5 was not heard"), 5, "near this radio"),
    ],
)
def test_failures_say_what_happened_and_what_to_do(
    tmp_path: Path, error: Exception, exit_code: int, words: str
) -> None:
    with pytest.raises(CliFailure) as failure, failures(_who(tmp_path, name="home")):
        raise error
    assert failure.value.exit_code == exit_code
    assert words in str(failure.value)
    assert "\n" not in str(failure.value)


def test_with_json_the_error_is_also_a_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    problem = RasProblem.from_document(
        404, {"type": PROBLEM_BASE + "not-found", "detail": "no such lock"}
    )
    with pytest.raises(CliFailure), failures(_who(tmp_path, json=True)):
        raise problem
    out = capsys.readouterr().out
    assert '"code": "not-found"' in out
    assert '"status": 404' in out
