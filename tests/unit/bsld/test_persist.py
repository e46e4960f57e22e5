"""The lock's flash: state across restarts, atomic writes, corrupt files (issue 3)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heslock.bsld import LockConfig, LogCode, SimulatedLock, StateFileError
from heslock.bsld.persist import decode, encode, read_state, write_atomic
from heslock.protocol import (
    BoltState,
    Cmd,
    ConfigOp,
    ConfigType,
    EventType,
    OperationOp,
    OperationType,
    ReasonCode,
)
from heslock.protocol.messages import u16
from tests.unit.bsld.ras import T0, Ras, make_identity

BOLT = OperationType.BOLT


def registered(path: Path) -> tuple[SimulatedLock, Ras]:
    lock = SimulatedLock.load(make_identity(), path)
    assert lock.load_problem is not None
    assert "first start" in lock.load_problem
    lock.press_registration_button(T0)
    ras = Ras(lock)
    ras.negotiate(T0)
    return lock, ras


def test_state_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    lock, ras = registered(path)
    first = ras.command(Cmd.OPERATION, BOLT, OperationOp.UNLOCK, T0 + 1)
    assert ras.status(lock.handle_frame(first, T0 + 1)).bolt is BoltState.UNLOCKED
    lock.open_door(T0 + 2)
    log_before = list(lock.log)
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    again = SimulatedLock.load(lock.identity, path)
    assert again.load_problem is None
    status = again.status(T0 + 3)
    assert status.bound
    assert status.key_version == 1
    assert (status.bolt, status.door) == (BoltState.UNLOCKED, lock.status(T0 + 3).door)
    assert list(again.log) == log_before
    before, after = lock.snapshot().current_acceptor, again.snapshot().current_acceptor
    assert before is not None
    assert after is not None
    assert (after.highest_ts, after.counter_high, after.counter_bitmap) == (
        before.highest_ts,
        before.counter_high,
        before.counter_bitmap,
    )
    assert after.floor_ts == before.highest_ts  # the RAM cache is gone: the floor covers it
    # the RAM replay cache is gone, but a frame accepted before the restart is refused
    assert ras.reason(again.handle_frame(first, T0 + 4)) is ReasonCode.REPLAY
    assert again.log.newest(1).code is LogCode.STARTED
    # the same key and counters go on; the event counter continues where it was
    seen: list[bytes] = []
    again.add_event_listener(seen.append)
    lock_cmd = ras.command(Cmd.OPERATION, BOLT, OperationOp.LOCK, T0 + 5)
    assert ras.status(again.handle_frame(lock_cmd, T0 + 5)).bolt is BoltState.LOCKED
    frame, body = ras.open(seen[0])
    assert frame.type == EventType.REMOTE_OPERATION
    assert body.seq == 3  # unlock 1, door 2


def test_settings_from_the_ras_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    lock, ras = registered(path)
    wire = ras.command(Cmd.CONFIG, ConfigType.AUTO_RELOCK, ConfigOp.SET, T0 + 1, u16(42))
    assert ras.reason(lock.handle_frame(wire, T0 + 1)) is None
    wider = ras.command(Cmd.CONFIG, ConfigType.TIMESTAMP_WINDOW, ConfigOp.SET, T0 + 2, u16(120))
    assert ras.reason(lock.handle_frame(wider, T0 + 2)) is None
    again = SimulatedLock.load(lock.identity, path, LockConfig(auto_relock_s=0))
    assert again.config.auto_relock_s == 42
    # the restored 120 s window is in force in the restored acceptors
    late = ras.command(Cmd.OPERATION, BOLT, OperationOp.STATUS, T0 + 3)
    assert ras.reason(again.handle_frame(late, T0 + 100)) is None


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # torn write
        lambda data: b"",
        lambda data: b"\xff\xfe not json",
        lambda data: data.replace(b'"key_version":1', b'"key_version":"one"'),
        lambda data: data.replace(b'"phase":"idle"', b'"phase":"sideways"'),
        lambda data: data.replace(b'"format":"heslock-bsld-state"', b'"format":"other"'),
        lambda data: data.replace(b'"version":1', b'"version":9'),
    ],
)
def test_corrupt_file_is_reported_and_the_lock_starts_unbound(
    tmp_path: Path, damage: object
) -> None:
    path = tmp_path / "lock.json"
    lock, _ = registered(path)
    good = path.read_bytes()
    bad = damage(good)  # type: ignore[operator]
    assert bad != good
    path.write_bytes(bad)
    again = SimulatedLock.load(lock.identity, path)
    assert again.load_problem is not None
    assert "unusable state file" in again.load_problem
    assert not again.status(T0).bound
    assert again.key_version == 0
    assert len(again.log) == 0
    # the bad file was moved aside, not destroyed
    aside = path.with_name("lock.json.corrupt-1")
    assert aside.read_bytes() == bad
    # the fresh state is written on the next step, and is complete
    again.tick(T0 + 1)
    assert not read_state(path).key_state.bound


def test_a_file_of_another_device_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    lock, _ = registered(path)
    other = make_identity(device="F2:00:00:00:00:01")
    again = SimulatedLock.load(other, path)
    assert again.load_problem is not None
    assert "belongs to device" in again.load_problem
    assert not again.bound
    del lock


def test_failed_write_is_reported_and_retried(tmp_path: Path) -> None:
    path = tmp_path / "missing-dir" / "lock.json"
    lock = SimulatedLock(make_identity(), state_path=path)
    lock.press_registration_button(T0)
    assert lock.persist_problem is not None
    assert "cannot write" in lock.persist_problem
    path.parent.mkdir()
    lock.tick(T0 + 1)
    assert _persist_problem(lock) is None
    assert path.exists()


def _persist_problem(lock: SimulatedLock) -> str | None:
    return lock.persist_problem  # read through a call: the tick changed it


def test_write_atomic_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_atomic(path, b"one")
    write_atomic(path, b"two")
    assert path.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["state.json"]


def test_snapshot_round_trips(tmp_path: Path) -> None:
    lock, ras = registered(tmp_path / "lock.json")
    lock.handle_frame(ras.command(Cmd.OPERATION, BOLT, OperationOp.UNLOCK, T0 + 1), T0 + 1)
    snap = lock.snapshot()
    assert decode(encode(snap)) == snap


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_damage_to_a_state_file_is_a_clean_error_or_a_valid_state(data: st.DataObject) -> None:
    lock = SimulatedLock(make_identity())
    lock.press_registration_button(T0)
    Ras(lock).negotiate(T0)
    doc = json.loads(encode(lock.snapshot()))
    # replace one field anywhere in the document by an arbitrary JSON value
    paths: list[tuple[object, str | int]] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                paths.append((node, key))
                walk(value)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                paths.append((node, i))
                walk(value)

    walk(doc)
    parent, key = data.draw(st.sampled_from(paths))
    junk = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(),
        st.text(max_size=40),
        st.lists(st.integers(), max_size=3),
    )
    parent[key] = data.draw(junk)  # type: ignore[index]
    raw = json.dumps(doc).encode()
    try:
        snap = decode(raw)
    except StateFileError:
        return
    assert encode(snap)  # what was accepted is a whole, encodable state
