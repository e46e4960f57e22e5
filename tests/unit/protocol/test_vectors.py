"""heslock's published protocol vectors (docs/test-vectors.json), checked both ways.

- encode: the fields (or, for frames that are not well formed, the plaintext) sealed under
  the vector's key in its profile give exactly the wire bytes;
- decode: a fresh receiver in the vector's direction at the vector's ``now`` accepts the
  wire bytes with exactly these fields, or refuses them with exactly the given reason;
- the file is what tools/gen_test_vectors.py produces, byte for byte (it cannot drift).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tools import gen_test_vectors

from heslock.protocol import (
    Accepted,
    Cmd,
    Direction,
    Frame,
    FrameAcceptor,
    FrameCodec,
    KeyAckBody,
    KeyPartBody,
    OpBody,
    Profile,
    Rejected,
)
from heslock.protocol.crypto import KDF_CONTEXT, KDF_LABEL_ENC, KDF_LABEL_MAC, derive_frame_keys

ROOT = Path(__file__).resolve().parents[3]
VECTORS_FILE = ROOT / "docs" / "test-vectors.json"
DOC: dict[str, Any] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
VECTORS: list[dict[str, Any]] = DOC["vectors"]
VALID = [v for v in VECTORS if v["valid"]]
INVALID = [v for v in VECTORS if not v["valid"]]


def ids(vector: dict[str, Any]) -> str:
    return str(vector["name"])


def codec(vector: dict[str, Any]) -> FrameCodec:
    return FrameCodec(bytes.fromhex(vector["key"]), Profile(vector["profile"]))


def frame_of(fields: dict[str, Any]) -> Frame:
    return Frame(fields["cmd"], fields["type"], bytes.fromhex(fields["value"]), fields["timestamp"])


def body_json(body: OpBody | KeyPartBody | KeyAckBody) -> dict[str, Any]:
    if isinstance(body, KeyPartBody):
        return {"layout": "key", "version": body.version, "key_bytes": body.key_bytes.hex()}
    if isinstance(body, KeyAckBody):
        return {
            "layout": "key_ack",
            "version": body.version,
            "device_id": body.device_id.hex(),
            "part": body.part,
        }
    return {"layout": "op", "op": body.op, "seq": body.seq, "args": body.args.hex()}


def verdict_of(vector: dict[str, Any]) -> Accepted | Rejected:
    acceptor = FrameAcceptor(codec(vector), direction=Direction(vector["direction"]))
    if "time_challenge" in vector:
        acceptor.issue_time_challenge(vector["time_challenge"], vector["now"])
    verdict = acceptor.accept(bytes.fromhex(vector["wire"]), vector["now"])
    assert isinstance(verdict, Accepted | Rejected)
    return verdict


# ------------------------------------------------------------------ the file itself


def test_enough_vectors_of_every_kind() -> None:
    assert len(VECTORS) >= 30
    names = {v["name"] for v in VECTORS}
    assert len(names) == len(VECTORS), "vector names are unique"
    for profile in Profile:
        mine = [v for v in VECTORS if v["profile"] == profile.value]
        groups = {v["fields"]["group"] for v in mine if v["valid"]}
        assert groups == {c.name for c in Cmd}, profile
        assert any(v["name"].endswith("/5-commit") for v in mine)
        reasons = {v["reason"] for v in mine if not v["valid"]}
        assert {"BAD_CHECK", "STALE", "UNKNOWN_COMMAND", "BAD_LENGTH"} <= reasons
    assert "BAD_TAG" in {v["reason"] for v in INVALID if v["profile"] == "secure"}


def test_derived_keys_published() -> None:
    keys = DOC["keys"]
    enc, mac = derive_frame_keys(bytes.fromhex(keys["lock_key"]))
    assert (keys["secure_enc_key"], keys["secure_mac_key"]) == (enc.hex(), mac.hex())
    kdf = keys["kdf"]
    assert (kdf["label_enc"], kdf["label_mac"], kdf["context"]) == (
        KDF_LABEL_ENC.decode(),
        KDF_LABEL_MAC.decode(),
        KDF_CONTEXT.decode(),
    )


def test_file_is_reproduced_byte_for_byte() -> None:
    assert gen_test_vectors.render() == VECTORS_FILE.read_text(encoding="utf-8")


def test_generator_check_and_output_cli(tmp_path: Path) -> None:
    script = ROOT / "tools" / "gen_test_vectors.py"
    ok = subprocess.run(
        [sys.executable, str(script), "--check", str(VECTORS_FILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    out = tmp_path / "vectors.json"
    assert gen_test_vectors.main(["--output", str(out)]) == 0
    assert out.read_bytes() == VECTORS_FILE.read_bytes()
    out.write_text(out.read_text(encoding="utf-8").replace('"valid": true', '"valid": false', 1))
    assert gen_test_vectors.main(["--check", str(out)]) == 1
    assert gen_test_vectors.main(["--check", str(tmp_path / "missing.json")]) == 1


# ------------------------------------------------------------------ every vector, both ways


@pytest.mark.parametrize("vector", [v for v in VECTORS if v["fields"] is not None], ids=ids)
def test_encode(vector: dict[str, Any]) -> None:
    frame = frame_of(vector["fields"])
    assert bytes(frame).hex() == vector["plaintext"]
    assert frame.check == vector["fields"]["check"]
    assert frame.is_response == vector["fields"]["response"]
    wire = codec(vector).seal(frame)
    if vector.get("reason") == "BAD_LENGTH":
        assert wire.hex().startswith(vector["wire"])
    elif vector.get("reason") != "BAD_TAG":
        assert wire.hex() == vector["wire"]


@pytest.mark.parametrize("vector", VALID, ids=ids)
def test_decode_valid(vector: dict[str, Any]) -> None:
    verdict = verdict_of(vector)
    assert isinstance(verdict, Accepted), verdict
    assert verdict.frame == frame_of(vector["fields"])
    assert body_json(verdict.body) == vector["fields"]["body"]
    assert codec(vector).open_plaintext(bytes.fromhex(vector["wire"])).hex() == vector["plaintext"]


@pytest.mark.parametrize("vector", INVALID, ids=ids)
def test_decode_invalid(vector: dict[str, Any]) -> None:
    verdict = verdict_of(vector)
    assert isinstance(verdict, Rejected), verdict
    assert verdict.reason.name == vector["reason"]
    if vector["reason"] == "BAD_CHECK":
        wire = bytes.fromhex(vector["wire"])
        assert codec(vector).open_plaintext(wire).hex() == vector["plaintext"]


@pytest.mark.parametrize("vector", [v for v in VECTORS if "exchange" in v], ids=ids)
def test_exchange_frames_name_their_device_and_key(vector: dict[str, Any]) -> None:
    body = vector["fields"]["body"]
    if body["layout"] == "key_ack":
        assert body["device_id"] == vector["device_id"].lower()
    step = vector["name"].rsplit("/", 1)[1]
    new_key = vector["new_key"]
    # Parts and the part-1 ack travel under the old key; the proof and stage b under the new.
    assert (vector["key"] == new_key) == (step in ("4-proof", "5-commit", "6-commit-ack"))
