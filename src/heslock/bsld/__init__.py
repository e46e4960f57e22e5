"""heslock.bsld — the BSLD (Bluetooth smart lock device) of ISO/IEC 14543-5-104, simulated.

The pure part (this package minus the BLE peripheral) is a faithful lock: a state machine
over frames, buttons and timers (:class:`SimulatedLock`), its mechanism and clock, its
event log, its flash (one JSON state file) and the maker's factory records.
:mod:`heslock.bsld.peripheral` puts it on a real BLE stack (bumble).
"""

from heslock.bsld.config import LockConfig, LockConfigError, LockIdentity
from heslock.bsld.lock import SimulatedLock
from heslock.bsld.log import EventLog, LogCode, LogEntry, LogSource
from heslock.bsld.manufacturer import FactoryRecord, ManufacturerFileError
from heslock.bsld.mechanism import LockClock, PhysicalError
from heslock.bsld.persist import StateFileError
from heslock.bsld.status import LockStatus

__all__ = [
    "EventLog",
    "FactoryRecord",
    "LockClock",
    "LockConfig",
    "LockConfigError",
    "LockIdentity",
    "LockStatus",
    "LogCode",
    "LogEntry",
    "LogSource",
    "ManufacturerFileError",
    "PhysicalError",
    "SimulatedLock",
    "StateFileError",
]
