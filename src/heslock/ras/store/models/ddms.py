"""DDMS tables (ISO/IEC 14543-5-104, device data management service).

A device is known once its maker imported it (MAC id, maker, model, BLE version, frame
profile, factory key). Registration — the two-stage key negotiation — turns a device
into a bound lock with its own lock key; its in-flight state lives in ``registrations``
so any RAS node can continue it. Gateways (BGW) hold SCRAM-SHA-256 verifiers only
(RFC 5802 section 3, RFC 7677): salt, StoredKey, ServerKey, iteration count.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from heslock.ras.store.base import Base, UTCDateTime, new_id, utcnow

#: A device id is the 6-byte MAC as 12 upper-case hex characters (DeviceId.hex).
DEVICE_ID_LEN = 12
#: RFC 7622: a bare JID is at most 1023 + 1 + 1023 bytes; ours are uuid@domain.
MAX_JID_LEN = 320


class DeviceStatus(StrEnum):
    AVAILABLE = "available"  # imported, genuine and free to bind
    BOUND = "bound"  # has a lock key and an owner
    RESET_REQUIRED = "reset_required"  # unbound: usable again only after a factory reset
    REVOKED = "revoked"  # withdrawn by an admin or the maker


class Device(Base):
    __tablename__ = "devices"

    device_id: Mapped[str] = mapped_column(String(DEVICE_ID_LEN), primary_key=True)
    maker: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(64))
    ble_version: Mapped[str] = mapped_column(String(8))
    profile: Mapped[str] = mapped_column(String(8))  # heslock.protocol.Profile value
    factory_key_enc: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default=DeviceStatus.AVAILABLE.value)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Last counter the RAS used in an op-layout frame under the factory key (TIME sync
    #: before registration). A lock keeps its factory key's counter window across a
    #: factory reset (secure profile), so the RAS must never reuse one.
    factory_counter: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Lock(Base):
    """A bound device: its owner, its current lock key (encrypted) and last known state."""

    __tablename__ = "locks"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.device_id"), unique=True)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    key_version: Mapped[int] = mapped_column(Integer)
    lock_key_enc: Mapped[bytes] = mapped_column(LargeBinary)
    #: The first counter free for commands under the current lock key (the commit used
    #: the ones below it: RasNegotiationRecord.next_counter).
    next_counter: Mapped[int] = mapped_column(Integer, default=2, server_default="2")
    bolt_state: Mapped[int | None] = mapped_column(Integer)
    door_state: Mapped[int | None] = mapped_column(Integer)
    battery: Mapped[int | None] = mapped_column(Integer)
    state_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    bound_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Registration(Base):
    """The RAS side of one key negotiation (heslock.protocol RasNegotiationRecord).

    One row per device at a time; keys are keystore envelopes bound to this row.
    """

    __tablename__ = "registrations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    device_id: Mapped[str] = mapped_column(
        ForeignKey("devices.device_id", ondelete="CASCADE"), unique=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    phase: Mapped[str] = mapped_column(String(16))  # RasPhase name
    version: Mapped[int] = mapped_column(Integer)
    profile: Mapped[str] = mapped_column(String(8))
    old_key_enc: Mapped[bytes] = mapped_column(LargeBinary)
    new_key_enc: Mapped[bytes] = mapped_column(LargeBinary)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: ``register`` (under the factory key) or ``rotate`` (under the current lock key).
    kind: Mapped[str] = mapped_column(String(16), default="register", server_default="register")
    #: The name the new lock gets (registration only).
    lock_name: Mapped[str | None] = mapped_column(String(64))
    #: Rotation: the lock whose key is replaced. Registration: the lock created at commit.
    lock_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("locks.id", ondelete="CASCADE"), index=True
    )
    #: Counter of the last COMMIT sent (RasNegotiationRecord.commit_counter).
    commit_counter: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: Sequence of the TIME/GET or TIME/SET in flight (time-sync phases only).
    time_seq: Mapped[int | None] = mapped_column(Integer)
    #: Why the registration failed (a lock ReasonCode name), when phase is ``failed``.
    failure: Mapped[str | None] = mapped_column(String(32))
    #: Idempotency: SHA-256 of the last answer accepted, and the result it produced.
    last_answer_sha256: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    last_result: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Gateway(Base):
    """A BGW account: its XMPP address and SCRAM-SHA-256 verifiers, never the secret."""

    __tablename__ = "gateways"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    jid: Mapped[str] = mapped_column(String(MAX_JID_LEN), unique=True)
    scram_salt: Mapped[bytes] = mapped_column(LargeBinary(64))
    scram_stored_key: Mapped[bytes] = mapped_column(LargeBinary(64))
    scram_server_key: Mapped[bytes] = mapped_column(LargeBinary(64))
    scram_iterations: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    secret_rotated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
