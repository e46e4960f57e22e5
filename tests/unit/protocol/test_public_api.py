"""The curated public API of heslock.protocol is pinned (httpx's practice)."""

from __future__ import annotations

from heslock import protocol

EXPECTED = {
    "COMMAND_TABLE",
    "FRAME_SIZE",
    "NEGOTIATION_TIMEOUT_S",
    "RESPONSE_BIT",
    "TAG_SIZE",
    "Accepted",
    "AcceptorState",
    "BoltState",
    "Cmd",
    "ConfigOp",
    "ConfigType",
    "CounterWindow",
    "DeviceId",
    "Direction",
    "DoorState",
    "Duplicate",
    "EventType",
    "Frame",
    "FrameAcceptor",
    "FrameCodec",
    "FrameRejected",
    "InvalidDeviceId",
    "InvalidKey",
    "KeyAckBody",
    "KeyPartBody",
    "KeyType",
    "Layout",
    "LockKeyNegotiation",
    "LockKeyState",
    "LockPhase",
    "LockRefused",
    "LogCode",
    "LogSource",
    "NegotiationError",
    "OpBody",
    "OperationOp",
    "OperationType",
    "Profile",
    "ProtocolError",
    "QueryOp",
    "QueryType",
    "RasKeyNegotiation",
    "RasNegotiationRecord",
    "RasPhase",
    "ReasonCode",
    "Rejected",
    "StatusArgs",
    "StatusFlag",
    "TimeOp",
    "TimeType",
    "Verdict",
    "decode_body",
    "next_version",
}


def test_public_api_is_pinned() -> None:
    assert set(protocol.__all__) == EXPECTED


def test_every_public_name_exists() -> None:
    missing = [name for name in protocol.__all__ if not hasattr(protocol, name)]
    assert missing == []
