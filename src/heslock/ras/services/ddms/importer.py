"""DDMS manufacturer import: makers' factory records (device id + factory key) into ``devices``.

ISO/IEC 14543-5-104: a lock is known to the DDMS before anyone registers it because its
maker imported its MAC id and factory key. The file format is defined once, in
:mod:`heslock.protocol.factory` (the maker tooling writes it with the same code). Every
record is checked on its own and every problem is reported with its line and a stable
reason code (:class:`heslock.protocol.factory.Reason`). The import is one transaction:
with any bad record nothing is imported, unless ``skip_bad`` is asked for, in which case
the good records are imported and the bad ones reported.

Factory keys are sealed by the keystore (slot ``devices.factory_key_enc``, bound to the
device id) and never leave the RAS again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.errors import UsageError
from heslock.protocol import factory
from heslock.protocol.factory import FactoryRecord, Line, Reason

__all__ = ["FactoryRecord", "ImportReport", "Line", "Reason", "import_file", "import_records",
           "parse", "parse_document", "read_file"]  # fmt: skip
from heslock.ras.keystore import FACTORY_KEY, Keystore
from heslock.ras.services import audit
from heslock.ras.services.access import SYSTEM
from heslock.ras.services.ddms.errors import ImportRejected
from heslock.ras.services.errors import InvalidInput
from heslock.ras.store.models import Device, DeviceStatus

log = logging.getLogger(__name__)

#: Ids per ``IN (...)`` query: well under SQLite's and PostgreSQL's parameter limits.
LOOKUP_CHUNK: Final = 500
#: Lines reported in full; beyond this only the count (keeps a response bounded).
MAX_REPORTED_LINES: Final = 1000


@dataclass
class ImportReport:
    total: int
    imported: int
    rejected: list[Line]
    committed: bool
    skip_bad: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "imported": self.imported,
            "rejected_count": len(self.rejected),
            "rejected": [line.report() for line in self.rejected[:MAX_REPORTED_LINES]],
            "committed": self.committed,
            "skip_bad": self.skip_bad,
        }


def parse(data: bytes, fmt: str) -> list[Line]:
    """Check every record of a manufacturer file (``fmt``: ``csv`` or ``json``).

    A file that is not a manufacturer file at all is an :class:`InvalidInput`; bad records
    are reported per line.
    """
    try:
        return factory.parse(data, fmt)
    except factory.FactoryFileError as exc:
        raise InvalidInput(str(exc)) from None


def parse_document(doc: Any) -> list[Line]:
    """Check the records of an already decoded JSON manufacturer document."""
    try:
        return factory.parse_document(doc)
    except factory.FactoryFileError as exc:
        raise InvalidInput(str(exc)) from None


async def _known(session: AsyncSession, ids: Iterable[str]) -> set[str]:
    wanted = sorted(set(ids))
    known: set[str] = set()
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        chunk = wanted[start : start + LOOKUP_CHUNK]
        rows = await session.execute(select(Device.device_id).where(Device.device_id.in_(chunk)))
        known.update(rows.scalars())
    return known


async def import_records(
    session: AsyncSession,
    keystore: Keystore,
    context: audit.AuditContext,
    lines: list[Line],
    *,
    skip_bad: bool = False,
    source: str = "api",
) -> ImportReport:
    """Import the good records in ``session``'s transaction (the caller commits).

    Raises :class:`ImportRejected` (nothing added to the session but its audit record,
    which is committed) if any record is bad and ``skip_bad`` is false.
    """
    known = await _known(session, (line.device_id for line in lines if line.device_id))
    for line in lines:
        if line.device_id in known:
            line.reasons.append(Reason.ALREADY_KNOWN)
            line.record = None
    rejected = [line for line in lines if line.reasons]
    good = [line.record for line in lines if line.record is not None]
    if rejected and not skip_bad:
        report = ImportReport(len(lines), 0, rejected, committed=False, skip_bad=False)
        await audit.record_and_commit(
            session,
            context,
            "device.import",
            audit.AuditResult.DENIED,
            target="device",
            via=source,
            records=len(lines),
            rejected_count=len(rejected),
        )
        raise ImportRejected(
            f"{len(rejected)} of {len(lines)} record(s) refused; nothing was imported",
            **report.as_dict(),
        )
    for record in good:
        session.add(
            Device(
                device_id=record.device_id.hex,
                maker=record.maker,
                model=record.model,
                ble_version=record.ble_version,
                profile=record.profile.value,
                factory_key_enc=keystore.seal(
                    FACTORY_KEY, record.device_id.hex, record.factory_key
                ),
                status=DeviceStatus.AVAILABLE.value,
            )
        )
    await session.flush()
    await audit.record(
        session,
        context,
        "device.import",
        audit.AuditResult.OK,
        target="device",
        via=source,
        records=len(lines),
        imported=len(good),
        rejected_count=len(rejected),
    )
    log.info("DDMS import: %d device(s) imported, %d refused", len(good), len(rejected))
    return ImportReport(len(lines), len(good), rejected, committed=True, skip_bad=skip_bad)


def read_file(path: Path) -> list[Line]:
    """Check a manufacturer file on disk (format from its suffix: ``.csv`` or ``.json``)."""
    fmt = path.suffix.lower().removeprefix(".")
    if fmt not in ("csv", "json"):
        raise UsageError(f"{path}: the file name must end in .csv or .json")
    try:
        with open(path, "rb") as fh:
            data = fh.read(factory.MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > factory.MAX_FILE_BYTES:
        raise UsageError(f"{path}: larger than {factory.MAX_FILE_BYTES} bytes; split it")
    try:
        return parse(data, fmt)
    except InvalidInput as exc:
        raise UsageError(f"{path}: {exc.detail}") from None


async def import_file(
    session: AsyncSession, keystore: Keystore, path: Path, *, skip_bad: bool
) -> ImportReport:
    """``heslock ras devices import FILE``: the same import, as the RAS itself (``system``)."""
    lines = read_file(path)
    context = audit.AuditContext(SYSTEM.audit_actor)
    report = await import_records(
        session, keystore, context, lines, skip_bad=skip_bad, source="cli"
    )
    await session.commit()
    return report
