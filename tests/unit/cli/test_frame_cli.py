"""``heslock frame encode|decode`` (issue 2): the lock-debugging tool, end to end.

Driven in-process through :func:`heslock.cli.main` (the console script's entry point) and
once as the installed console script in a real subprocess. Covers: encode -> decode round
trips in both profiles, checked against an independent AES/CMAC computation; the JSON
fields of decode (valid, check_ok, tag_ok, body, reason); the exit codes (0 ok, 2 bad
input, 3 frame refused); every kind of bad input giving exit 2 and exactly one
``heslock: error:`` line without a traceback; and that no output ever contains the key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from operator import xor
from pathlib import Path
from typing import Any, Protocol

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from heslock.cli import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, app, main
from heslock.protocol.crypto import derive_frame_keys

KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")  # NIST SP 800-38A's AES-128 key
KEY_HEX = KEY.hex()
OTHER_KEY_HEX = "000102030405060708090a0b0c0d0e0f"
TS = 1_700_000_000
#: OPERATION/BOLT/UNLOCK, base layout: op 01, seq 0007, reserved 0000, args 00000000.
UNLOCK_VALUE = "010007000000000000"
#: Seconds the console script may take to start and answer (a loaded CI machine).
SUBPROCESS_TIMEOUT_S = 60


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def report(self) -> dict[str, Any]:
        data = json.loads(self.out)
        assert isinstance(data, dict)
        return data


class Cli(Protocol):
    def __call__(self, *argv: str) -> Result: ...


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    def run(*argv: str) -> Result:
        # main() registers its command groups on the module-level app at every call
        # (test_repeated_calls_do_not_accumulate_command_groups); restore the app after
        # each call so every test sees the app as a fresh process would.
        groups, commands = list(app.registered_groups), list(app.registered_commands)
        try:
            code = main(["frame", *argv])
        finally:
            app.registered_groups[:] = groups
            app.registered_commands[:] = commands
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def encode_args(**options: str | None) -> list[str]:
    """``encode`` with valid defaults; ``name=None`` drops an option, ``type_`` is --type."""
    values: dict[str, str | None] = {
        "key": KEY_HEX,
        "cmd": "0x03",
        "type": "0x01",
        "value": UNLOCK_VALUE,
        "ts": str(TS),
    }
    values.update({name.rstrip("_"): value for name, value in options.items()})
    args = ["encode"]
    for name, value in values.items():
        if value is not None:
            args += [f"--{name}", value]
    return args


def encode(cli: Cli, **options: str | None) -> str:
    result = cli(*encode_args(**options))
    assert result.code == EXIT_OK, result.err
    assert result.err == ""
    wire = result.out.strip()
    assert result.out == wire + "\n"
    return wire


def plaintext(cmd: int, type_: int, value: bytes, ts: int) -> bytes:
    head = bytes((cmd, type_)) + value
    return head + bytes((reduce(xor, head, 0),)) + ts.to_bytes(4, "big")


def aes_cbc_zero_iv(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def reference_wire(profile: str, plain: bytes, key: bytes = KEY) -> bytes:
    """The wire bytes computed without heslock's codec (only its documented KDF)."""
    if profile == "base":
        return aes_cbc_zero_iv(key, plain)
    enc_key, mac_key = derive_frame_keys(key)
    ciphertext = aes_cbc_zero_iv(enc_key, plain)
    mac = CMAC(algorithms.AES(mac_key))
    mac.update(ciphertext)
    return ciphertext + mac.finalize()[:4]


def assert_usage_error(result: Result, mentions: str) -> None:
    """Exit 2, nothing on stdout, exactly one ``heslock: error:`` line naming the problem."""
    assert result.code == EXIT_USAGE, (result.out, result.err)
    assert result.out == ""
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("heslock: error: "), lines[0]
    assert "Traceback" not in result.err
    assert mentions in lines[0]


# --- round trips ---------------------------------------------------------------------

ROUND_TRIPS = [
    # (profile, cmd, type, value, counter, expected op, seq, args)
    ("base", 0x03, 0x01, UNLOCK_VALUE, None, 0x01, 7, "00000000"),
    ("base", 0x04, 0x01, "02ffff0000003c0000", None, 0x02, 0xFFFF, "003c0000"),
    ("base", 0x83, 0x01, "0300090000010102a0", None, 0x03, 9, "010102a0"),
    ("secure", 0x03, 0x01, "010000000000000000", "5", 0x01, 5, "00000000"),
    ("secure", 0x05, 0x01, "01ffffffff00000000", None, 0x01, 0xFFFF_FFFF, "00000000"),
    ("secure", 0x03, 0x01, "0200000000deadbeef", "0xfffffffe", 0x02, 0xFFFF_FFFE, "deadbeef"),
]


@pytest.mark.parametrize(
    ("profile", "cmd", "type_", "value", "counter", "op", "seq", "args"), ROUND_TRIPS
)
def test_encode_then_decode_round_trip(
    cli: Cli,
    profile: str,
    cmd: int,
    type_: int,
    value: str,
    counter: str | None,
    op: int,
    seq: int,
    args: str,
) -> None:
    wire_hex = encode(
        cli,
        cmd=f"0x{cmd:02x}",
        type_=f"{type_}",
        value=value,
        profile=profile,
        counter=counter,
    )
    sent_value = bytes.fromhex(value)
    if counter is not None:
        sent_value = sent_value[:1] + int(counter, 0).to_bytes(4, "big") + sent_value[5:]
    plain = plaintext(cmd, type_, sent_value, TS)
    assert bytes.fromhex(wire_hex) == reference_wire(profile, plain)

    result = cli("decode", "--key", KEY_HEX, wire_hex)
    assert result.code == EXIT_OK
    assert result.err == ""
    report = result.report()
    assert report["profile"] == profile
    assert report["length"] == (16 if profile == "base" else 20)
    assert report["valid"] is True
    assert report["check_ok"] is True
    if profile == "secure":
        assert report["tag_ok"] is True
    else:
        assert "tag_ok" not in report  # the base profile has no tag to check
    assert report["plaintext"] == plain.hex()
    assert report["cmd"] == f"0x{cmd:02x}"
    assert report["type"] == f"0x{type_:02x}"
    assert report["value"] == sent_value.hex()
    assert report["check"] == f"0x{plain[11]:02x}"
    assert report["timestamp"] == TS
    assert report["response"] is bool(cmd & 0x80)
    assert report["body"] == {"op": f"0x{op:02x}", "seq": seq, "args": args}
    assert "reason" not in report


def test_decode_profile_follows_length_and_can_be_given(cli: Cli) -> None:
    wire = encode(cli, profile="base")
    assert cli("decode", "--key", KEY_HEX, wire).report()["profile"] == "base"
    forced = cli("decode", "--key", KEY_HEX, "--profile", "BASE", wire)
    assert forced.code == EXIT_OK
    assert forced.report()["valid"] is True


def test_decode_accepts_separators_and_0x_prefix(cli: Cli) -> None:
    wire = encode(cli, profile="secure", counter="3")
    spaced = "0x" + ":".join(wire[i : i + 2] for i in range(0, len(wire), 2))
    result = cli("decode", "--key", KEY_HEX.upper(), spaced)
    assert result.code == EXIT_OK
    assert result.report()["body"]["seq"] == 3


def test_encode_is_deterministic_and_counter_changes_the_frame(cli: Cli) -> None:
    first = encode(cli, profile="secure", counter="1")
    assert encode(cli, profile="secure", counter="1") == first
    assert encode(cli, profile="secure", counter="2") != first


def test_decode_names_groups_events_and_error_reasons(cli: Cli) -> None:
    event = encode(cli, cmd="0x86", type_="0x03", value="0100010000" + "01000000", profile="base")
    report = cli("decode", "--key", KEY_HEX, event).report()
    assert (report["group"], report["event"], report["valid"]) == ("EVENT", "JAM", True)
    error = encode(cli, cmd="0x8f", type_="0x07", value="0100010000" + "00000000", profile="base")
    report = cli("decode", "--key", KEY_HEX, error).report()
    assert (report["group"], report["error_reason"], report["valid"]) == ("ERROR", "REPLAY", True)


# --- refused frames: exit 3 with the reason --------------------------------------------


def test_flipped_tag_bit_is_bad_tag(cli: Cli) -> None:
    wire = bytearray.fromhex(encode(cli, profile="secure", counter="1"))
    wire[-1] ^= 0x01
    result = cli("decode", "--key", KEY_HEX, wire.hex())
    assert result.code == EXIT_REFUSED
    assert result.err == ""
    report = result.report()
    assert report["valid"] is False
    assert report["tag_ok"] is False
    assert report["reason"] == "BAD_TAG"
    assert "body" not in report
    assert "plaintext" not in report  # nothing is decrypted before the tag verifies


def test_flipped_ciphertext_bit_is_bad_tag(cli: Cli) -> None:
    wire = bytearray.fromhex(encode(cli, profile="secure", counter="1"))
    wire[0] ^= 0x80
    report = cli("decode", "--key", KEY_HEX, wire.hex()).report()
    assert (report["valid"], report["tag_ok"], report["reason"]) == (False, False, "BAD_TAG")


def test_secure_frame_under_wrong_key_is_bad_tag(cli: Cli) -> None:
    wire = encode(cli, profile="secure", counter="1")
    result = cli("decode", "--key", OTHER_KEY_HEX, wire)
    assert result.code == EXIT_REFUSED
    assert result.report()["reason"] == "BAD_TAG"


def test_base_frame_under_wrong_key_fails_the_check_byte(cli: Cli) -> None:
    wire = encode(cli, profile="base")
    result = cli("decode", "--key", OTHER_KEY_HEX, wire)
    assert result.code == EXIT_REFUSED
    report = result.report()
    assert report["valid"] is False
    assert report["check_ok"] is False
    assert report["reason"] == "BAD_CHECK"
    assert "body" not in report


def test_secure_frame_with_valid_tag_and_bad_check_byte(cli: Cli) -> None:
    plain = bytearray(plaintext(0x03, 0x01, bytes.fromhex("010000000100000000"), TS))
    plain[11] ^= 0xFF
    wire = reference_wire("secure", bytes(plain))
    result = cli("decode", "--key", KEY_HEX, wire.hex())
    assert result.code == EXIT_REFUSED
    report = result.report()
    assert (report["tag_ok"], report["check_ok"], report["valid"]) == (True, False, False)
    assert report["reason"] == "BAD_CHECK"


def test_unknown_command_passes_the_check_but_is_refused(cli: Cli) -> None:
    wire = encode(cli, cmd="0x7e", profile="base")
    result = cli("decode", "--key", KEY_HEX, wire)
    assert result.code == EXIT_REFUSED
    report = result.report()
    assert (report["check_ok"], report["valid"], report["reason"]) == (
        True,
        False,
        "UNKNOWN_COMMAND",
    )
    assert "group" not in report


def test_base_reserved_bytes_must_be_zero(cli: Cli) -> None:
    wire = encode(cli, value="010007ffff00000000", profile="base")
    report = cli("decode", "--key", KEY_HEX, wire).report()
    assert (report["check_ok"], report["valid"], report["reason"]) == (True, False, "BAD_VALUE")


def test_length_not_matching_the_given_profile_is_refused(cli: Cli) -> None:
    wire = encode(cli, profile="secure", counter="1")
    result = cli("decode", "--key", KEY_HEX, "--profile", "base", wire)
    assert result.code == EXIT_REFUSED
    report = result.report()
    assert (report["valid"], report["reason"], report["length"]) == (False, "BAD_LENGTH", 20)


def test_length_refusal_does_not_claim_a_checked_tag(cli: Cli) -> None:
    wire = encode(cli, profile="base")
    report = cli("decode", "--key", KEY_HEX, "--profile", "secure", wire).report()
    assert report["reason"] == "BAD_LENGTH"
    assert report.get("tag_ok") is not True


# --- bad input: exit 2, one line ----------------------------------------------------------

BAD_ENCODE = [
    ("key-not-hex", {"key": "zz" * 16}, "--key"),
    ("key-unicode", {"key": "ä" * 32}, "--key"),
    ("key-15-bytes", {"key": KEY_HEX[:-2]}, "--key"),
    ("key-17-bytes", {"key": KEY_HEX + "00"}, "--key"),
    ("key-odd-digits", {"key": KEY_HEX[:-1]}, "--key"),
    ("key-empty", {"key": ""}, "--key"),
    ("cmd-0x100", {"cmd": "0x100"}, "--cmd"),
    ("cmd-abc", {"cmd": "abc"}, "--cmd"),
    ("cmd-negative", {"cmd": "-1"}, "--cmd"),
    ("type-0x100", {"type_": "0x100"}, "--type"),
    ("type-empty", {"type_": ""}, "--type"),
    ("value-8-bytes", {"value": UNLOCK_VALUE[:-2]}, "--value"),
    ("value-10-bytes", {"value": UNLOCK_VALUE + "00"}, "--value"),
    ("value-not-hex", {"value": "xy" * 9}, "--value"),
    ("ts-negative", {"ts": "-1"}, "--ts"),
    ("ts-2**32", {"ts": str(2**32)}, "--ts"),
    ("ts-float", {"ts": "1.5"}, "--ts"),
    ("ts-text", {"ts": "yesterday"}, "--ts"),
    ("profile-unknown", {"profile": "turbo"}, "profile"),
    ("counter-with-base", {"profile": "base", "counter": "1"}, "--counter"),
    ("counter-2**32", {"profile": "secure", "counter": str(2**32)}, "--counter"),
    ("counter-negative", {"counter": "-5"}, "--counter"),
    ("counter-text", {"counter": "many"}, "--counter"),
    ("missing-key", {"key": None}, "Missing option '--key'"),
    ("missing-cmd", {"cmd": None}, "Missing option '--cmd'"),
    ("missing-type", {"type_": None}, "Missing option '--type'"),
    ("missing-value", {"value": None}, "Missing option '--value'"),
    ("missing-ts", {"ts": None}, "Missing option '--ts'"),
]


@pytest.mark.parametrize(
    ("options", "mentions"),
    [pytest.param(options, mentions, id=name) for name, options, mentions in BAD_ENCODE],
)
def test_bad_encode_input_is_one_line_and_exit_2(
    cli: Cli, options: dict[str, str | None], mentions: str
) -> None:
    assert_usage_error(cli(*encode_args(**options)), mentions)


BAD_DECODE = [
    ("length-17", ["--key", KEY_HEX, "00" * 17], "17"),
    ("length-0", ["--key", KEY_HEX, ""], "got 0"),
    ("length-32", ["--key", KEY_HEX, "00" * 32], "32"),
    ("frame-not-hex", ["--key", KEY_HEX, "zz" * 16], "HEX"),
    ("frame-odd-digits", ["--key", KEY_HEX, "0" * 31], "HEX"),
    ("key-not-hex", ["--key", "g" * 32, "00" * 16], "--key"),
    ("key-wrong-length", ["--key", KEY_HEX[:30], "00" * 16], "--key"),
    ("profile-unknown", ["--key", KEY_HEX, "--profile", "turbo", "00" * 16], "profile"),
    ("missing-key", ["00" * 16], "Missing option '--key'"),
    ("missing-frame", ["--key", KEY_HEX], "Missing argument 'HEX'"),
    ("key-without-value", ["00" * 16, "--key"], "--key"),
    ("unknown-option", ["--key", KEY_HEX, "--verbose", "00" * 16], "--verbose"),
    ("two-frames", ["--key", KEY_HEX, "00" * 16, "00" * 16], "unexpected extra argument"),
]


@pytest.mark.parametrize(
    ("argv", "mentions"),
    [pytest.param(argv, mentions, id=name) for name, argv, mentions in BAD_DECODE],
)
def test_bad_decode_input_is_one_line_and_exit_2(cli: Cli, argv: list[str], mentions: str) -> None:
    assert_usage_error(cli("decode", *argv), mentions)


def test_repeated_calls_do_not_accumulate_command_groups(
    capsys: pytest.CaptureFixture[str],
) -> None:
    groups, commands = list(app.registered_groups), list(app.registered_commands)
    try:
        assert main(["frame", *encode_args()]) == EXIT_OK
        after_one = (len(app.registered_groups), len(app.registered_commands))
        assert main(["frame", *encode_args()]) == EXIT_OK
        assert (len(app.registered_groups), len(app.registered_commands)) == after_one
    finally:
        app.registered_groups[:] = groups
        app.registered_commands[:] = commands
        capsys.readouterr()


def test_unknown_subcommand_is_one_line_and_exit_2(cli: Cli) -> None:
    assert_usage_error(cli("verify", "--key", KEY_HEX), "No such command 'verify'")


# --- secrets never echoed ---------------------------------------------------------------


def secret_forms(key_hex: str) -> list[str]:
    """The key and its derived secure-profile keys, as hex in either case."""
    key = bytes.fromhex(key_hex)
    forms = [key, *derive_frame_keys(key)]
    return [f(k.hex()) for k in forms for f in (str.lower, str.upper)]


DECODE_SCENARIOS: dict[str, Callable[[Cli], str]] = {
    "valid-base": lambda cli: encode(cli, profile="base"),
    "valid-secure": lambda cli: encode(cli, profile="secure", counter="9"),
    "bad-tag": lambda cli: encode(cli, profile="secure", counter="9")[:-2] + "00",
    "bad-check": lambda cli: encode(cli, key=OTHER_KEY_HEX, profile="base"),
    "bad-length": lambda cli: "00" * 17,
    "bad-hex": lambda cli: "not-a-frame",
}


@pytest.mark.parametrize("scenario", list(DECODE_SCENARIOS))
def test_decode_never_prints_the_key(cli: Cli, scenario: str) -> None:
    frame_hex = DECODE_SCENARIOS[scenario](cli)
    result = cli("decode", "--key", KEY_HEX, frame_hex)
    assert result.code in {EXIT_OK, EXIT_REFUSED, EXIT_USAGE}
    for secret in secret_forms(KEY_HEX):
        assert secret not in result.out
        assert secret not in result.err


def test_a_mistyped_key_is_not_echoed(cli: Cli) -> None:
    typo = KEY_HEX[:-1] + "g"
    result = cli("decode", "--key", typo, "00" * 16)
    assert_usage_error(result, "--key")
    assert KEY_HEX[:-1] not in result.err


def test_decoded_key_part_does_not_show_the_new_key_bytes(cli: Cli) -> None:
    new_key_half = bytes.fromhex("a1b2c3d4e5f60718")
    wire = encode(cli, cmd="0x01", type_="0x01", value="01" + new_key_half.hex(), profile="secure")
    result = cli("decode", "--key", KEY_HEX, wire)
    assert result.code == EXIT_OK
    assert result.report()["body"]["key_version"] == 1
    assert new_key_half.hex() not in result.out.lower()
    # The check byte is the XOR of the key bytes (and cmd, type, version): 8 bits of them.
    assert result.report()["check"] == "<not shown>"


# --- the installed console script, in a real process --------------------------------------


def console_script() -> Path:
    script = Path(sys.executable).parent / "heslock"
    if not script.exists():
        pytest.fail(f"the heslock console script is not installed next to {sys.executable}")
    return script


def run_script(*argv: str) -> Result:
    done = subprocess.run(
        [str(console_script()), "frame", *argv],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )
    return Result(done.returncode, done.stdout, done.stderr)


def test_console_script_round_trip_and_exit_codes() -> None:
    encoded = run_script(*encode_args(profile="secure", counter="42"))
    assert (encoded.code, encoded.err) == (EXIT_OK, "")
    wire = encoded.out.strip()
    assert len(wire) == 40

    decoded = run_script("decode", "--key", KEY_HEX, wire)
    assert (decoded.code, decoded.err) == (EXIT_OK, "")
    report = decoded.report()
    assert (report["valid"], report["tag_ok"], report["body"]["seq"]) == (True, True, 42)
    assert KEY_HEX not in decoded.out

    refused = run_script("decode", "--key", OTHER_KEY_HEX, wire)
    assert refused.code == EXIT_REFUSED
    assert refused.report()["reason"] == "BAD_TAG"

    assert_usage_error(run_script("decode", "--key", KEY_HEX, "00" * 17), "17")
    assert_usage_error(run_script(*encode_args(cmd="0x100")), "--cmd")
