"""SCS audit trail: one append-only record per security-relevant action.

ISO/IEC 14543-5-104 asks the RAS, as the trust anchor, to account for what happens to
locks, users and gateways. Rules (our decisions, docs/security.md):

- A record is written in the *same transaction* as the action it describes, before the
  caller is answered: if the action commits, so does its record, and a crash after an
  acknowledgement cannot lose it (SQLite ``synchronous=FULL``, PostgreSQL commit).
- A refused or failed attempt that must be remembered (a wrong password, a forged
  frame) is recorded and committed on its own before the refusal is returned; see
  :func:`record_and_commit`.
- ``actor`` and ``target`` are opaque ids (``user:<uuid>``, ``lock:<uuid>``); no names,
  phone numbers, e-mail addresses, keys, tokens or passwords in any field, so deleting an
  account pseudonymises its history without rewriting the log (which the database
  refuses anyway).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.store.models import AuditRecord

log = logging.getLogger(__name__)

#: Details are a summary, not a payload: 4 KiB of JSON is plenty and bounds row size.
MAX_DETAILS_BYTES: Final = 4096
#: Keys a caller may never put in ``details``: they would carry secrets or personal data.
FORBIDDEN_DETAIL_KEYS: Final = frozenset(
    {"password", "token", "secret", "key", "code", "phone", "email", "otp", "frame"}
)


class AuditResult(StrEnum):
    OK = "ok"
    DENIED = "denied"  # refused by policy, credentials or throttling
    FAILED = "failed"  # attempted, and failed (e.g. the lock did not answer)
    ERROR = "error"  # an internal error


@dataclass(frozen=True)
class AuditContext:
    """Who is acting and from where; built once per request or XMPP stanza."""

    actor: str
    source_ip: str | None = None
    request_id: str | None = None


async def record(
    session: AsyncSession,
    context: AuditContext,
    action: str,
    result: AuditResult,
    target: str | None = None,
    **details: Any,
) -> AuditRecord:
    """Add an audit record to ``session``'s transaction and flush it (id assigned).

    The caller's unit of work commits it together with the action.
    """
    entry = stage(session, context, action, result, target, **details)
    await session.flush()
    return entry


def stage(
    session: AsyncSession,
    context: AuditContext,
    action: str,
    result: AuditResult,
    target: str | None = None,
    **details: Any,
) -> AuditRecord:
    """:func:`record` without the flush: the record is written by the transaction's next
    flush or its commit (one flush less on a hot path that does not need the id; just as
    durable: the same commit writes it, or nothing is written)."""
    bad = FORBIDDEN_DETAIL_KEYS & {k.lower() for k in details}
    if bad:
        raise ValueError(f"audit details may not carry {sorted(bad)}")
    if context.request_id is not None:
        details.setdefault("request_id", context.request_id)
    encoded = json.dumps(details, default=str, sort_keys=True)
    if len(encoded) > MAX_DETAILS_BYTES:
        raise ValueError(f"audit details are {len(encoded)} bytes, over {MAX_DETAILS_BYTES}")
    entry = AuditRecord(
        actor=context.actor,
        action=action,
        target=target,
        source_ip=context.source_ip,
        result=result.value,
        details=json.loads(encoded),
    )
    session.add(entry)
    log.info("audit %s %s %s -> %s", context.actor, action, target or "-", result.value)
    return entry


async def record_and_commit(
    session: AsyncSession,
    context: AuditContext,
    action: str,
    result: AuditResult,
    target: str | None = None,
    **details: Any,
) -> AuditRecord:
    """Record and commit now: for refusals that are answered with an error afterwards.

    Whatever else the session holds is committed too; call it only where the action
    itself changed nothing (or the change must stick, like a failed-attempt counter).
    """
    entry = await record(session, context, action, result, target, **details)
    await session.commit()
    return entry


#: One page of the audit log; bounded so a reader cannot pull the whole table at once.
MAX_PAGE: Final = 500


async def list_records(session: AsyncSession, after_id: int, limit: int) -> list[AuditRecord]:
    """Records with id > ``after_id``, oldest first (keyset pagination)."""
    query = (
        select(AuditRecord)
        .where(AuditRecord.id > after_id)
        .order_by(AuditRecord.id)
        .limit(min(limit, MAX_PAGE))
    )
    return list((await session.execute(query)).scalars())
