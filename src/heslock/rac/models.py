"""What the RAS answers, as frozen dataclasses, and the one decoder that builds them.

Every answer of the API is decoded by :func:`decode` from the dataclass's type hints:
members the dataclass does not name are ignored (a newer RAS may add some), a missing or
mistyped member is a :class:`~heslock.rac.errors.RasBadAnswer`. Times are timezone-aware
``datetime``; identifiers ``uuid.UUID``; frames ``bytes`` (base64 on the wire).

Secrets (tokens, TOTP seeds, gateway secrets, login challenges) are fields with
``repr=False``: printing a result, or logging it, never shows them.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import types
import typing
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any, Final, TypeVar

from heslock.protocol import BoltState, DoorState
from heslock.rac.errors import RasBadAnswer

T = TypeVar("T")

#: RFC 6750 says the type is case-insensitive; the RAS always answers "Bearer".
BEARER: Final = "bearer"


# --------------------------------------------------------------------------- decoder


def decode(cls: type[T], data: object) -> T:
    """Decode a JSON value into dataclass ``cls`` (module docstring); RasBadAnswer if not."""
    try:
        value: T = _decode(cls, data, cls.__name__)
    except _Mismatch as exc:
        raise RasBadAnswer(f"the RAS answered something unexpected: {exc}") from None
    return value


def decode_list(cls: type[T], data: object) -> list[T]:
    if not isinstance(data, list):
        raise RasBadAnswer(f"the RAS answered something unexpected: not a list of {cls.__name__}")
    return [decode(cls, item) for item in data]


class _Mismatch(Exception):
    """A value does not have the type the model says (the message names where)."""


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _decode(kind: Any, value: object, where: str) -> Any:
    if kind is Any:
        return value
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):  # models use only "X | None"
        if value is None and type(None) in typing.get_args(kind):
            return None
        (kind,) = (k for k in typing.get_args(kind) if k is not type(None))
        origin = typing.get_origin(kind)
    if value is None:
        raise _Mismatch(f"{where} is missing")
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        return _object(kind, value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise _Mismatch(f"{where} is not a list")
        item = typing.get_args(kind)[0]
        return tuple(_decode(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise _Mismatch(f"{where} is not an object")
        item = typing.get_args(kind)[1]  # JSON keys are strings: only the values vary
        return {str(k): _decode(item, v, f"{where}[{k!r}]") for k, v in value.items()}
    scalar = _SCALARS.get(kind)
    if scalar is None:
        raise _Mismatch(f"{where}: no decoder for {kind!r}")
    return scalar(value, where)


def _object(kind: type, value: object, where: str) -> Any:
    if not isinstance(value, dict):
        raise _Mismatch(f"{where} is not an object")
    hints = _hints(kind)
    args: dict[str, Any] = {}
    for f in dataclasses.fields(kind):
        if f.name in value:
            args[f.name] = _decode(hints[f.name], value[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _Mismatch(f"{where}.{f.name} is missing")
    return kind(**args)


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise _Mismatch(f"{where} is not a boolean")
    return value


def _int(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Mismatch(f"{where} is not an integer")
    return value


def _float(value: object, where: str) -> float:
    """JSON has one number type: an integral number (``50``) is a float too."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _Mismatch(f"{where} is not a number")
    return float(value)


def _str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _Mismatch(f"{where} is not a string")
    return value


def _uuid(value: object, where: str) -> uuid.UUID:
    try:
        return uuid.UUID(_str(value, where))
    except ValueError:
        raise _Mismatch(f"{where} is not a UUID") from None


def _datetime(value: object, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(_str(value, where))
    except ValueError:
        raise _Mismatch(f"{where} is not an ISO 8601 time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _date(value: object, where: str) -> date:
    try:
        return date.fromisoformat(_str(value, where))
    except ValueError:
        raise _Mismatch(f"{where} is not an ISO 8601 date") from None


def _bytes(value: object, where: str) -> bytes:
    try:
        return base64.b64decode(_str(value, where), validate=True)
    except (binascii.Error, ValueError):
        raise _Mismatch(f"{where} is not base64") from None


_SCALARS: Final[dict[Any, Callable[[object, str], Any]]] = {
    bool: _bool,
    int: _int,
    float: _float,
    str: _str,
    uuid.UUID: _uuid,
    datetime: _datetime,
    date: _date,
    bytes: _bytes,
}


# --------------------------------------------------------------------------- accounts


@dataclasses.dataclass(frozen=True, slots=True)
class Contact:
    """An e-mail address or phone number of an account; only verified ones log in."""

    id: uuid.UUID
    kind: str  #: ``email`` or ``phone``
    address: str
    verified: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Account:
    id: uuid.UUID
    created_at: datetime
    display_name: str | None
    is_admin: bool
    contacts: tuple[Contact, ...]
    totp_active: bool

    def contact(self, address_or_id: str) -> Contact | None:
        """The contact with this address (as the RAS stored it) or id."""
        wanted = address_or_id.strip().lower()
        for contact in self.contacts:
            if wanted in (contact.address.lower(), str(contact.id)):
                return contact
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class CodeSent:
    """A verification code went out; a newer one replaces it."""

    expires_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class PasswordChanged:
    sessions_revoked: int


@dataclasses.dataclass(frozen=True, slots=True)
class TotpEnrolment:
    """A pending TOTP enrolment: give ``otpauth_uri`` (or ``secret``) to an authenticator
    app, then confirm with one code from it."""

    otpauth_uri: str = dataclasses.field(repr=False)
    secret: str = dataclasses.field(repr=False)


# --------------------------------------------------------------------------- sessions


@dataclasses.dataclass(frozen=True, slots=True)
class LoginChallenge:
    """Step 1 of a login passed: answer the challenge with a second factor within 5 minutes."""

    challenge: str = dataclasses.field(repr=False)
    expires_at: datetime
    methods: tuple[str, ...]  #: ``totp``, ``sms``, ``email``: what this account can use


@dataclasses.dataclass(frozen=True, slots=True)
class LoginCodeSent:
    channel: str
    destination: str  #: masked: ``+44*******958``
    expires_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Tokens:
    """A session's token pair. The refresh token is single use: keep only the newest pair.

    The RAS answers lifetimes in seconds; they are turned into instants when the answer
    arrives (``received_at``), which is what a token store keeps.
    """

    access_token: str = dataclasses.field(repr=False)
    refresh_token: str = dataclasses.field(repr=False)
    session_id: uuid.UUID
    access_expires_at: datetime
    refresh_expires_at: datetime

    @classmethod
    def from_answer(cls, data: object, received_at: datetime) -> Tokens:
        answer = decode(_TokensAnswer, data)
        if answer.token_type.lower() != BEARER:
            raise RasBadAnswer(f"unexpected token type {answer.token_type!r}")
        return cls(
            access_token=answer.access_token,
            refresh_token=answer.refresh_token,
            session_id=answer.session_id,
            access_expires_at=received_at + timedelta(seconds=answer.expires_in),
            refresh_expires_at=received_at + timedelta(seconds=answer.refresh_expires_in),
        )

    def access_expired(self, now: datetime, margin: timedelta = timedelta(seconds=10)) -> bool:
        """True when the access token is (about to be) expired by the local clock."""
        return now + margin >= self.access_expires_at

    def to_json(self) -> dict[str, str]:
        """The form a token store writes (it is secret: the store must protect it)."""
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "session_id": str(self.session_id),
            "access_expires_at": self.access_expires_at.isoformat(),
            "refresh_expires_at": self.refresh_expires_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: object) -> Tokens:
        return decode(cls, data)


@dataclasses.dataclass(frozen=True, slots=True)
class _TokensAnswer:
    access_token: str = dataclasses.field(repr=False)
    refresh_token: str = dataclasses.field(repr=False)
    session_id: uuid.UUID
    expires_in: int
    refresh_expires_in: int
    token_type: str = "Bearer"  # noqa: S105  (RFC 6750's token type, not a secret)


@dataclasses.dataclass(frozen=True, slots=True)
class Session:
    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None
    source_ip: str | None
    current: bool


# --------------------------------------------------------------------------- devices


@dataclasses.dataclass(frozen=True, slots=True)
class Legitimacy:
    """The standard's answer to "is this device genuine and free to bind?" (0 yes, 1 no)."""

    device_id: str
    status: int
    reason: str | None = None  #: unknown, revoked, already-bound, registration-in-progress ...
    profile: str | None = None
    factory_reset_required: bool = False

    @property
    def free(self) -> bool:
        return self.status == 0


@dataclasses.dataclass(frozen=True, slots=True)
class RejectedLine:
    line: int
    device_id: str | None
    reasons: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class ImportResult:
    total: int
    imported: int
    rejected_count: int
    rejected: tuple[RejectedLine, ...]
    committed: bool
    skip_bad: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Device:
    """A device as an administrator sees it (never its factory key)."""

    device_id: str
    maker: str
    model: str
    ble_version: str
    profile: str
    status: str


@dataclasses.dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    source_ip: str | None
    result: str
    details: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class AuditPage:
    items: tuple[AuditRecord, ...]
    next_after_id: int | None


# --------------------------------------------------------------------------- registrations


@dataclasses.dataclass(frozen=True, slots=True)
class Registration:
    """One key negotiation (docs/api.md, "Registration"): carry ``frames`` to the lock in
    order, hand each answer back, until ``done``; ``lock_id`` is set once committed."""

    registration_id: uuid.UUID
    kind: str
    device_id: str
    phase: str
    version: int
    lock_id: uuid.UUID | None
    expires_at: datetime | None
    frames: tuple[bytes, ...]
    failure: str | None
    refused: str | None
    done: bool

    @property
    def committed(self) -> bool:
        return self.phase == "committed"


# --------------------------------------------------------------------------- locks


def _state_name(kind: type[BoltState] | type[DoorState], value: int | None) -> str | None:
    if value is None:
        return None
    try:
        return kind(value).name.lower()
    except ValueError:
        return f"unknown ({value})"


@dataclasses.dataclass(frozen=True, slots=True)
class Lock:
    """A bound lock and its last known state (``None`` until the lock reported one)."""

    id: uuid.UUID
    device_id: str
    owner_id: uuid.UUID
    name: str
    profile: str
    key_version: int
    bolt_state: int | None
    door_state: int | None
    battery: int | None
    state_at: datetime | None
    bound_at: datetime
    #: How the caller holds it: ``owner``, ``shared``, ``administrator`` (sees it, operates
    #: nothing) or ``none`` (after a transfer). A RAS before sharing sends none: its owner.
    access: str = "owner"
    #: The caller's strongest sharing role (``owner``, ``admin``, ``member``, ``guest``);
    #: None for a RAS administrator.
    role: str | None = None
    #: What the caller may do now, by path (``remote``, ``nearby``, ``integration``):
    #: validity, schedule and one-time use already applied by the RAS.
    permissions: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    @property
    def bolt(self) -> str | None:
        return _state_name(BoltState, self.bolt_state)

    @property
    def door(self) -> str | None:
        return _state_name(DoorState, self.door_state)

    @property
    def shared(self) -> bool:
        return self.access == "shared"

    def can(self, permission: str, path: str = "remote") -> bool:
        """Whether the RAS said the caller may ``permission`` on ``path`` right now (a
        hint for a user interface: the RAS decides again on every request). The owner
        of a lock from a RAS before sharing may do anything."""
        if not self.permissions:
            return self.access == "owner"
        return permission in self.permissions.get(path, ())


@dataclasses.dataclass(frozen=True, slots=True)
class LockEvent:
    """One of the lock's own events (verified under its key by the RAS)."""

    id: int
    kind: str
    detail: int
    counter: int
    lock_time: datetime
    received_at: datetime
    gateway: str
    bolt_state: int | None
    door_state: int | None
    battery: int | None

    @property
    def bolt(self) -> str | None:
        return _state_name(BoltState, self.bolt_state)

    @property
    def door(self) -> str | None:
        return _state_name(DoorState, self.door_state)


@dataclasses.dataclass(frozen=True, slots=True)
class CommandResult:
    """The lock's answer to a command; ``confirmed`` says how the RAS knows (``answer``:
    the lock answered this time, ``replay``: the lock's cached answer to a repeat)."""

    command_id: uuid.UUID
    lock_id: uuid.UUID
    command: str
    state: str
    confirmed: str | None
    bolt: str | None
    door: str | None
    battery: int | None
    flags: int | None
    finished_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class NearbyFrame:
    """A command frame sealed by the RAS for the client to write to the lock itself."""

    command_id: uuid.UUID
    lock_id: uuid.UUID
    device_id: str
    command: str
    frame: bytes = dataclasses.field(repr=False)
    expires_at: datetime


# --------------------------------------------------------------------------- gateways


@dataclasses.dataclass(frozen=True, slots=True)
class Gateway:
    id: uuid.UUID
    name: str
    jid: str
    username: str
    created_at: datetime
    secret_rotated_at: datetime
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclasses.dataclass(frozen=True, slots=True)
class GatewayCredentials:
    """A gateway and its XMPP secret, shown this once (the RAS keeps only verifiers)."""

    id: uuid.UUID
    jid: str
    secret: str = dataclasses.field(repr=False)
    name: str = ""
    username: str = ""
    created_at: datetime | None = None
    secret_rotated_at: datetime | None = None
    revoked_at: datetime | None = None


# --------------------------------------------------------------------------- sharing


@dataclasses.dataclass(frozen=True, slots=True)
class Home:
    """A group of an owner's locks and gateways, with the time zone its schedules use."""

    id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    time_zone: str
    role: str | None  #: the caller's role here; None for a RAS administrator
    permissions: tuple[str, ...]  #: what the caller may do in this home now
    lock_ids: tuple[uuid.UUID, ...]
    gateway_ids: tuple[uuid.UUID, ...]
    created_at: datetime
    updated_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class LockRef:
    id: uuid.UUID
    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class Invitee:
    kind: str  #: ``email`` or ``phone``
    address: str | None  #: None once erased (the grantee deleted their account)


@dataclasses.dataclass(frozen=True, slots=True)
class Validity:
    """``permanent``; ``from_until`` (``not_before`` <= t < ``not_after``); ``one_time``
    (spent by its first unlock or lock, optionally bounded too)."""

    kind: str
    not_before: datetime | None = None
    not_after: datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Window:
    """Weekdays (``mon``..``sun``) and local times ``HH:MM``; ``end`` <= ``start``
    crosses midnight (equal: 24 hours)."""

    days: tuple[str, ...]
    start: str
    end: str


@dataclasses.dataclass(frozen=True, slots=True)
class DateRange:
    """Local calendar dates, both included."""

    first: date
    last: date


@dataclasses.dataclass(frozen=True, slots=True)
class Schedule:
    """When a share works, in the lock's time zone (its home's); also what a share is
    created or changed with."""

    windows: tuple[Window, ...] = ()
    date_ranges: tuple[DateRange, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "windows": [
                {"days": list(w.days), "start": w.start, "end": w.end} for w in self.windows
            ],
            "date_ranges": [
                {"first": r.first.isoformat(), "last": r.last.isoformat()} for r in self.date_ranges
            ],
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Share:
    """Locks (``scope`` ``locks``) or a whole home (``home``) shared with someone.

    ``status``: ``pending`` (invited), ``invitation-expired``, ``upcoming``, ``active``,
    ``expired``, ``spent`` (one-time, used) or ``revoked`` (also declined or renounced).
    """

    id: uuid.UUID
    owner_id: uuid.UUID
    scope: str
    home_id: uuid.UUID | None
    home_name: str | None
    locks: tuple[LockRef, ...]  #: the locks it covers now (a home share: the home's)
    status: str
    grantee_id: uuid.UUID | None
    invitee: Invitee | None
    label: str | None
    role: str
    permissions: tuple[str, ...]
    paths: tuple[str, ...]
    validity: Validity
    schedule: Schedule | None
    uses: int
    spent_at: datetime | None
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None
    revoked_by: uuid.UUID | None
    revoke_reason: str | None

    @property
    def lock_ids(self) -> tuple[uuid.UUID, ...]:
        return tuple(lock.id for lock in self.locks)


@dataclasses.dataclass(frozen=True, slots=True)
class SharePage:
    """One page of a share listing; pass ``next_cursor`` for the next (None: the last)."""

    items: tuple[Share, ...]
    next_cursor: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Invitation:
    """An invitation to one of the caller's verified contacts: what accepting it gives."""

    id: uuid.UUID
    scope: str
    home_name: str | None
    locks: tuple[LockRef, ...]
    owner_name: str | None  #: the owner's display name, if they set one
    role: str
    permissions: tuple[str, ...]
    paths: tuple[str, ...]
    validity: Validity
    schedule: Schedule | None
    label: str | None
    invited_at: datetime
    expires_at: datetime


# --------------------------------------------------------------------------- geofencing


@dataclasses.dataclass(frozen=True, slots=True)
class Geofence:
    """A lock's or a home's fence and its opt-in policies (docs/security.md)."""

    id: uuid.UUID
    lock_id: uuid.UUID | None
    home_id: uuid.UUID | None
    latitude: float
    longitude: float
    radius_m: float
    remote_unlock_inside: bool
    arrival: str  #: ``off``, ``suggest`` or ``auto_unlock`` (a prompt, never an unlock)
    suppress_after_open_s: int
    max_age_s: int
    max_accuracy_m: float
    accuracy_limit_m: float  #: the worst accuracy accepted: min(max_accuracy_m, radius_m/2)
    created_at: datetime
    updated_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class ArrivalSuggestion:
    """An arrival at a fenced lock ("unlock?"): unlocks nothing until confirmed, then sent."""

    id: uuid.UUID
    lock_id: uuid.UUID
    mode: str  #: ``suggest`` or ``auto_unlock`` (prompt at once)
    created_at: datetime
    expires_at: datetime
    confirmed_at: datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class LocationAccepted:
    received_at: datetime
    suggestions: tuple[ArrivalSuggestion, ...]  #: arrival suggestions this report raised
    suppressed_lock_ids: tuple[uuid.UUID, ...]  #: their door was opened lately


@dataclasses.dataclass(frozen=True, slots=True)
class NextCommand:
    """The request that unlocks after a confirmed arrival (authorised there as usual)."""

    method: str
    path: str
    idempotency_key: str
    body: dict[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class ArrivalConfirmation:
    """A confirmed suggestion. Send the unlock it names with
    ``locks.command(suggestion.lock_id, "unlock", idempotency_key=next.idempotency_key)``:
    the key makes a repeated confirmation the same command, never a second unlock."""

    suggestion: ArrivalSuggestion
    next: NextCommand


# --------------------------------------------------------------------------- event feed


@dataclasses.dataclass(frozen=True, slots=True)
class FeedEvent:
    """One event of the caller's feed (``GET /v1/events``): a lock's own event, a
    command's outcome, a share's change, a lock or gateway online/offline...

    ``path``: ``remote``, ``nearby``, ``manual`` or ``system``; ``credential``:
    ``owner``, ``share`` or ``gateway:<jid>``; ``payload`` depends on ``kind``.
    """

    id: int
    kind: str
    created_at: datetime
    lock_id: uuid.UUID | None
    home_id: uuid.UUID | None
    gateway_id: uuid.UUID | None
    actor_id: uuid.UUID | None
    path: str
    credential: str | None
    payload: dict[str, Any]
