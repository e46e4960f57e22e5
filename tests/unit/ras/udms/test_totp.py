"""TOTP: pyotp against the RFC 6238 Appendix B vectors; our drift window and replay rule."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest

from heslock.ras.services.udms.totp import DIGITS, STEP_S, matching_step, new_seed, step_of

VECTORS = json.loads((Path(__file__).parents[3] / "vectors" / "rfc6238_totp.json").read_text())
DIGESTS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: f"{v['mode']}-{v['time']}")
def test_rfc6238_appendix_b(vector: dict[str, Any]) -> None:
    seed = VECTORS["seeds_ascii"][vector["mode"]].encode("ascii")
    totp = pyotp.TOTP(
        base64.b32encode(seed).decode("ascii"),
        digits=VECTORS["digits"],
        digest=DIGESTS[vector["mode"]],
        interval=VECTORS["step_seconds"],
    )
    moment = datetime.fromtimestamp(vector["time"], UTC)
    assert moment.strftime("%Y-%m-%d %H:%M:%S") == vector["utc"]
    assert totp.timecode(moment) == int(vector["t_hex"], 16)
    assert totp.at(moment) == vector["totp"]


def test_vectors_cover_all_three_modes() -> None:
    assert {v["mode"] for v in VECTORS["vectors"]} == {"SHA1", "SHA256", "SHA512"}
    assert len(VECTORS["vectors"]) == 18


NOW = datetime(2030, 6, 1, 12, 0, 15, tzinfo=UTC)


def test_seed_is_160_bits_of_base32() -> None:
    seeds = {new_seed() for _ in range(20)}
    assert len(seeds) == 20
    assert all(len(base64.b32decode(s)) == 20 for s in seeds)


def test_drift_window_and_replay() -> None:
    seed = new_seed()
    totp = pyotp.TOTP(seed, digits=DIGITS, interval=STEP_S)
    current = step_of(NOW)
    for offset in (-1, 0, 1):
        code = totp.generate_otp(current + offset)
        assert matching_step(seed, code, NOW, after=None) == current + offset
    for offset in (-2, 2):
        assert matching_step(seed, totp.generate_otp(current + offset), NOW, after=None) is None
    code = totp.at(NOW)
    # Once the current step was accepted, its code (and older ones) are refused.
    assert matching_step(seed, code, NOW, after=current) is None
    assert matching_step(seed, totp.generate_otp(current - 1), NOW, after=current - 1) is None
    later = totp.at(NOW + timedelta(seconds=STEP_S))
    assert matching_step(seed, later, NOW, after=current) == current + 1


def test_wrong_and_malformed_codes() -> None:
    seed = new_seed()
    totp = pyotp.TOTP(seed)
    code = totp.at(NOW)
    window = {totp.generate_otp(step_of(NOW) + d) for d in (-1, 0, 1)}
    wrong = next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in window)
    assert matching_step(seed, wrong, NOW, after=None) is None
    assert matching_step(seed, "", NOW, after=None) is None
    assert matching_step(seed, code + "0", NOW, after=None) is None
