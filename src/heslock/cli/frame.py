"""``heslock frame encode|decode``: a tool for people debugging a lock's frames.

Secret input (the key) is taken from the command line for convenience in a lab; the tool
never writes it anywhere. Decoding prints JSON; a frame that fails a check is reported
with its reason code (exit 3), bad input is one line on stderr (exit 2).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from heslock.errors import UsageError
from heslock.protocol import (
    Cmd,
    EventType,
    Frame,
    FrameCodec,
    FrameRejected,
    KeyAckBody,
    KeyPartBody,
    OpBody,
    Profile,
    ReasonCode,
    decode_body,
)
from heslock.protocol.acceptance import Direction
from heslock.protocol.codes import RESPONSE_BIT, is_key_layout
from heslock.protocol.frame import MAX_COUNTER, MAX_TIMESTAMP

app = typer.Typer(help="Encode and decode 16/20-byte lock frames.", no_args_is_help=True)


def parse_int(text: str, what: str, maximum: int) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise UsageError(f"{what} must be a number (decimal or 0x hex), got {text!r}") from None
    if not 0 <= value <= maximum:
        raise UsageError(f"{what} must be 0..{maximum}, got {value}")
    return value


def parse_hex(text: str, what: str, size: int | None = None, *, secret: bool = False) -> bytes:
    """Hex to bytes. A ``secret`` (a key) is never repeated in an error message."""
    cleaned = text.strip().replace(" ", "").replace(":", "")
    cleaned = cleaned.removeprefix("0x")
    try:
        data = bytes.fromhex(cleaned)
    except ValueError:
        shown = "" if secret else f", got {text!r}"
        raise UsageError(f"{what} must be hex digits{shown}") from None
    if size is not None and len(data) != size:
        raise UsageError(f"{what} must be {size} bytes ({size * 2} hex digits), got {len(data)}")
    return data


def parse_profile(text: str) -> Profile:
    try:
        return Profile(text.lower())
    except ValueError:
        raise UsageError(f"profile must be 'base' or 'secure', got {text!r}") from None


@app.command()
def encode(
    key: Annotated[str, typer.Option(help="Lock key, 32 hex digits.")],
    cmd: Annotated[str, typer.Option(help="Command byte, e.g. 0x03.")],
    type_: Annotated[str, typer.Option("--type", help="Type byte, e.g. 0x01.")],
    value: Annotated[str, typer.Option(help="Value, 18 hex digits (9 bytes).")],
    ts: Annotated[str, typer.Option(help="Unix timestamp (uint32).")],
    profile: Annotated[str, typer.Option(help="base or secure.")] = "secure",
    counter: Annotated[
        str | None, typer.Option(help="Secure profile: counter written into value[1:5].")
    ] = None,
) -> None:
    """Build a frame, encrypt it (and tag it) and print the wire bytes in hex."""
    prof = parse_profile(profile)
    raw_value = bytearray(parse_hex(value, "--value", 9))
    if counter is not None:
        if prof is not Profile.SECURE:
            raise UsageError("--counter goes with --profile secure (base uses value[1:3])")
        raw_value[1:5] = parse_int(counter, "--counter", MAX_COUNTER).to_bytes(4, "big")
    frame = Frame(
        parse_int(cmd, "--cmd", 0xFF),
        parse_int(type_, "--type", 0xFF),
        bytes(raw_value),
        parse_int(ts, "--ts", MAX_TIMESTAMP),
    )
    typer.echo(FrameCodec(parse_hex(key, "--key", 16, secret=True), prof).seal(frame).hex())


@app.command()
def decode(
    frame_hex: Annotated[str, typer.Argument(metavar="HEX", help="The frame as on the air.")],
    key: Annotated[str, typer.Option(help="Lock key, 32 hex digits.")],
    profile: Annotated[
        str | None, typer.Option(help="base or secure; default: from the length (16 or 20).")
    ] = None,
) -> None:
    """Decrypt and check a frame; print its fields as JSON."""
    wire = parse_hex(frame_hex, "HEX")
    if profile is not None:
        prof = parse_profile(profile)
    elif len(wire) in (16, 20):
        prof = Profile.BASE if len(wire) == 16 else Profile.SECURE
    else:
        raise UsageError(f"a frame is 16 (base) or 20 (secure) bytes, got {len(wire)}")
    codec = FrameCodec(parse_hex(key, "--key", 16, secret=True), prof)
    report: dict[str, Any] = {"profile": prof.value, "length": len(wire)}
    try:
        plain = codec.open_plaintext(wire)
    except FrameRejected as exc:
        report.update(valid=False, reason=exc.reason.name)
        if exc.reason is ReasonCode.BAD_TAG:
            report["tag_ok"] = False  # a length refusal never got as far as the tag
        _emit(report, ok=False)
        return
    if prof is Profile.SECURE:
        report["tag_ok"] = True
    report.update(_fields(plain))
    if report.get("key_layout") and not report["response"]:
        # A key part carries half of a new lock key: never print it, nor the check byte,
        # which is the XOR of those bytes and so 8 bits of them.
        report["value"] = "<key version and 8 key bytes, not shown>"
        report["check"] = "<not shown>"
    else:
        report["plaintext"] = plain.hex()
    try:
        frame = Frame.from_bytes(plain)
        report["check_ok"] = True
        direction = Direction.FROM_LOCK if frame.is_response else Direction.TO_LOCK
        report["body"] = _body(decode_body(frame, direction, prof))
        report["valid"] = True
    except FrameRejected as exc:
        report.update(valid=False, reason=exc.reason.name)
        report.setdefault("check_ok", exc.reason != ReasonCode.BAD_CHECK)
    _emit(report, ok=report["valid"])


def _fields(plain: bytes) -> dict[str, Any]:
    group = plain[0] & ~RESPONSE_BIT
    out: dict[str, Any] = {
        "cmd": f"0x{plain[0]:02x}",
        "type": f"0x{plain[1]:02x}",
        "value": plain[2:11].hex(),
        "check": f"0x{plain[11]:02x}",
        "timestamp": int.from_bytes(plain[12:16], "big"),
        "response": bool(plain[0] & RESPONSE_BIT),
    }
    if group in Cmd._value2member_map_:
        out["group"] = Cmd(group).name
        if group == Cmd.ERROR and plain[1] in ReasonCode._value2member_map_:
            out["error_reason"] = ReasonCode(plain[1]).name
        if group == Cmd.EVENT and plain[1] in EventType._value2member_map_:
            out["event"] = EventType(plain[1]).name
        out["key_layout"] = is_key_layout(plain[0], plain[1])
    return out


def _body(body: OpBody | KeyPartBody | KeyAckBody) -> dict[str, Any]:
    if isinstance(body, OpBody):
        return {"op": f"0x{body.op:02x}", "seq": body.seq, "args": body.args.hex()}
    if isinstance(body, KeyPartBody):
        return {"key_version": body.version, "key_bytes": "<8 bytes, not shown>"}
    return {
        "key_version": body.version,
        "device_id": body.device_id.hex().upper(),
        "part": body.part,
    }


def _emit(report: dict[str, Any], *, ok: bool) -> None:
    typer.echo(json.dumps(report, indent=2))
    if not ok:
        raise typer.Exit(3)
