"""Remote-control tables: commands sent to locks, and events the locks sent by themselves.

ISO/IEC 14543-5-104 "Control flow". A ``commands`` row is written (state ``pending``) and
committed before its frame leaves the RAS, and keeps the sealed frame so a retry of a
command whose outcome is unknown re-sends *the same bytes* (the lock answers a duplicate
from its replay cache instead of acting twice). ``(user_id, idempotency_key)`` is unique:
a repeated request gets the first answer. The sealed frame is ciphertext under the lock
key; its plaintext is never stored or logged.

``path`` says who carries the frame: ``remote`` (the RAS, through a gateway) or
``nearby`` (the client, over its own BLE link: the row is the frame handed out, usable
until ``expires_at``). ``frame_ts`` is the frame's timestamp (the RAS clock when it was
sealed): with the lock's timestamp window it bounds when the lock may have executed it,
which is what the reconciliation of an ``unknown`` command reads the lock's log for
(:mod:`heslock.ras.services.commands.reconcile`; ``reconcile_after`` is its next attempt
and its lease, ``reconciles`` the attempts so far).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
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
             same Idempotency-Key re-sends the same bytes; the reconciler settles it
             from the lock's log (``ok``, or ``failed`` with reason ``not-executed``)
    ======== =====================================================================
    """

    PENDING = "pending"
    OK = "ok"
    REFUSED = "refused"
    FAILED = "failed"
    UNKNOWN = "unknown"


class CommandPath(StrEnum):
    """Who carries the command's frame to the lock."""

    REMOTE = "remote"  #: the RAS, through a gateway (POST /v1/locks/{id}/commands)
    NEARBY = "nearby"  #: the client, over its own BLE link (POST /v1/locks/{id}/frames)


class Command(Base):
    """One command to one lock, remote or nearby (module docstring)."""

    __tablename__ = "commands"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key"),
        # The reconciler's sweep: unknown commands whose next attempt is due.
        Index("ix_commands_state_reconcile_after", "state", "reconcile_after"),
    )

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
    path: Mapped[str] = mapped_column(
        String(8), default=CommandPath.REMOTE.value, server_default=CommandPath.REMOTE.value
    )
    #: Nearby: the frame is handed out again (same key) only until then.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The sealed frame's timestamp (Unix s, uint32); None on rows older than revision 0005.
    frame_ts: Mapped[int | None] = mapped_column(BigInteger)
    #: ``unknown``: no reconciliation attempt before this (backoff, and the lease of the
    #: node that is reconciling it). None: due now.
    reconcile_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reconciles: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


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


__all__ = ["Command", "CommandPath", "CommandState", "LockEventRecord"]
