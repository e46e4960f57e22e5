"""Remote-control tables: commands sent to locks, and events the locks sent by themselves.

ISO/IEC 14543-5-104 "Control flow". A ``commands`` row is written (state ``pending``) and
committed before its frame leaves the RAS, and keeps the sealed frame so a retry of a
command whose outcome is unknown re-sends *the same bytes* (the lock answers a duplicate
from its replay cache instead of acting twice). ``(user_id, idempotency_key)`` is unique:
a repeated request gets the first answer. The sealed frame is ciphertext under the lock
key; its plaintext is never stored or logged.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from heslock.ras.store.base import Base, UTCDateTime, new_id, utcnow

#: An Idempotency-Key is an opaque client string; 255 characters is ample for a UUID or a
#: ULID with a prefix, and bounds the unique index.
MAX_IDEMPOTENCY_KEY_LEN = 255
#: Longest sealed frame: the secure profile's 20 bytes.
MAX_FRAME_LEN = 20


class CommandState(StrEnum):
    """``pending`` -> ``ok`` | ``refused`` | ``failed`` | ``unknown``; ``unknown`` -> any.

    ======== =====================================================================
    pending  written and committed; the frame is on its way (or the node crashed)
    ok       the lock answered and acted (or reported its status)
    refused  the lock answered with an ERROR frame (its reason code is kept)
    failed   the frame provably never reached the lock (no gateway, not in range)
    unknown  the frame may have been executed, no answer came back: a retry with the
             same Idempotency-Key re-sends the same bytes
    ======== =====================================================================
    """

    PENDING = "pending"
    OK = "ok"
    REFUSED = "refused"
    FAILED = "failed"
    UNKNOWN = "unknown"


class Command(Base):
    """One remote command to one lock (module docstring)."""

    __tablename__ = "commands"
    __table_args__ = (UniqueConstraint("user_id", "idempotency_key"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    lock_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("locks.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    idempotency_key: Mapped[str] = mapped_column(String(MAX_IDEMPOTENCY_KEY_LEN))
    command: Mapped[str] = mapped_column(String(16))  # unlock | lock | status
    state: Mapped[str] = mapped_column(String(16), default=CommandState.PENDING.value)
    #: The lock's ReasonCode name (refused) or the relay error code (failed, unknown).
    reason: Mapped[str | None] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(Integer)  #: the frame's sequence (counter)
    key_version: Mapped[int] = mapped_column(Integer)  #: the lock key it is sealed under
    frame: Mapped[bytes] = mapped_column(LargeBinary(MAX_FRAME_LEN))  #: sealed, as sent
    gateway: Mapped[str | None] = mapped_column(String(320))  #: bare JID last used
    attempts: Mapped[int] = mapped_column(Integer, default=0)  #: times the frame was sent
    #: The answer given (problem code or None for success, and the JSON body), replayed
    #: to a repeated request.
    answer_code: Mapped[str | None] = mapped_column(String(64))
    answer: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LockEventRecord(Base):
    """A frame a lock notified by itself (knob turned, door, jam ...), verified and stored."""

    __tablename__ = "lock_events"
    __table_args__ = (Index("ix_lock_events_lock_id_id", "lock_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lock_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("locks.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))  #: EventType name
    detail: Mapped[int] = mapped_column(Integer)  #: value[0]: meaning per kind
    counter: Mapped[int] = mapped_column(Integer)  #: the lock's event counter
    lock_time: Mapped[datetime] = mapped_column(UTCDateTime)  #: the frame's timestamp
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    gateway: Mapped[str] = mapped_column(String(320))  #: bare JID that relayed it
    bolt_state: Mapped[int | None] = mapped_column(Integer)
    door_state: Mapped[int | None] = mapped_column(Integer)
    battery: Mapped[int | None] = mapped_column(Integer)


__all__ = ["Command", "CommandState", "LockEventRecord"]
