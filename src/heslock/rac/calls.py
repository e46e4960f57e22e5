"""Every RAS API call, described once: a :class:`Call` (method, path, body, expected
statuses) and the parser of its answer. Pure: no I/O, no client state.

The asynchronous and the synchronous client (:mod:`heslock.rac.client`) execute the same
``Call`` objects, so the request a method sends and the way its answer is read exist in
exactly one place. Arguments are checked here, before anything is sent: a malformed id or
command is an :class:`~heslock.rac.errors.InvalidArgument`, never a request.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final, Generic, Literal, TypeVar

from heslock.protocol.errors import InvalidDeviceId
from heslock.protocol.ids import DeviceId
from heslock.rac.errors import InvalidArgument, RasBadAnswer
from heslock.rac.models import (
    Account,
    ArrivalConfirmation,
    ArrivalSuggestion,
    AuditPage,
    CodeSent,
    CommandResult,
    Contact,
    Device,
    FeedEvent,
    Gateway,
    GatewayCredentials,
    Geofence,
    Home,
    ImportResult,
    Invitation,
    Legitimacy,
    LocationAccepted,
    Lock,
    LockEvent,
    LoginChallenge,
    LoginCodeSent,
    NearbyFrame,
    PasswordChanged,
    Registration,
    Schedule,
    Session,
    Share,
    SharePage,
    Tokens,
    TotpEnrolment,
    decode,
    decode_list,
)

T = TypeVar("T")

Command = Literal["unlock", "lock", "status"]
Via = Literal["relay", "gateway"]
COMMANDS: Final = ("unlock", "lock", "status")
SECOND_FACTORS: Final = ("totp", "sms", "email")
CODE_CHANNELS: Final = ("sms", "email")
#: The RAS's bounds for a page of events (routers/commands.py, routers/feed.py).
MAX_EVENTS_PAGE: Final = 500
#: The RAS's bounds for a page of shares and its cursor (services/sharing/paging.py).
MAX_SHARES_PAGE: Final = 200
MAX_CURSOR_LEN: Final = 128
#: At most this many ``kind`` filters in one feed query (services/feed/query.py).
MAX_KIND_FILTERS: Final = 32
ROLES: Final = ("admin", "member", "guest")
PERMISSIONS: Final = (
    "operate", "lock", "view_status", "view_log", "manage_shares", "manage_settings",
)  # fmt: skip
PATHS: Final = ("remote", "nearby", "integration")
VALIDITIES: Final = ("permanent", "from_until", "one_time")
ARRIVAL_MODES: Final = ("off", "suggest", "auto_unlock")
SHARE_STATES: Final = ("active", "all")
#: Idempotency keys: 1..128 visible ASCII characters (docs/api.md).
_IDEMPOTENCY_KEY: Final = re.compile(r"[\x21-\x7e]{1,128}")
_CODE: Final = re.compile(r"[0-9]{6}")

OK: Final = frozenset({200})
CREATED: Final = frozenset({201})
ACCEPTED: Final = frozenset({202})
NO_CONTENT: Final = frozenset({204})
#: Starting an exchange that is already live answers 200 with it, a new one 201.
OK_OR_CREATED: Final = frozenset({200, 201})


class TokenEffect(Enum):
    """What a successful call does to the client's token store."""

    NONE = "none"
    SAVE = "save"  #: the answer is a new token pair (login)
    CLEAR = "clear"  #: the session ended (logout, account deleted)


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One HTTP exchange with the RAS and how to read its answer."""

    method: str
    path: str
    parse: Callable[[Any], T] = field(repr=False)
    ok: frozenset[int] = OK
    #: A JSON body (``None``: no body). May hold a password: never in ``repr``.
    json: Any = field(default=None, repr=False)
    content: bytes | None = field(default=None, repr=False)
    content_type: str | None = None
    params: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    #: Needs the session's bearer token (and may refresh it).
    auth: bool = True
    effect: TokenEffect = TokenEffect.NONE
    #: On a 401, refresh and send again. Not for a call that carries the password: its
    #: 401 may be a wrong password, and sending it again would spend a second attempt of
    #: the account's lockout budget (the client refreshes such calls ahead instead).
    resend_on_401: bool = True
    #: The answer is a ``text/event-stream`` read as it arrives (``parse`` reads one
    #: message's data), not one JSON document.
    stream: bool = False

    @property
    def carries_password(self) -> bool:
        return not self.resend_on_401


# --------------------------------------------------------------------------- checks


def uuid_arg(value: uuid.UUID | str, what: str) -> str:
    """A UUID argument as the path segment the RAS expects; InvalidArgument if it is not."""
    if isinstance(value, uuid.UUID):
        return str(value)
    try:
        return str(uuid.UUID(str(value).strip()))
    except ValueError:
        raise InvalidArgument(f"{value!r} is not a {what} id (a UUID)") from None


def device_arg(value: DeviceId | str) -> str:
    """A device id (``2AA09AC1BAF5``, ``2A:A0:9A:C1:BA:F5``, ``2a-a0-...``) in its plain form."""
    if isinstance(value, DeviceId):
        return value.hex
    try:
        return DeviceId.parse(str(value).strip()).hex
    except InvalidDeviceId:
        raise InvalidArgument(f"{value!r} is not a device id (12 hex digits)") from None


def code_arg(code: str) -> str:
    code = str(code).strip()
    if not _CODE.fullmatch(code):
        raise InvalidArgument("a one-time code is 6 digits")
    return code


def choice_arg(value: str, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise InvalidArgument(f"{what} is one of {', '.join(choices)}, not {value!r}")
    return value


def idempotency_key_arg(key: str | None) -> str:
    """The caller's key, checked, or a fresh random one (each call is then a new command)."""
    if key is None:
        return uuid.uuid4().hex
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidArgument("an idempotency key is 1..128 visible ASCII characters")
    return key


def b64(frame: bytes) -> str:
    if not isinstance(frame, bytes | bytearray) or not frame:
        raise InvalidArgument("a frame is non-empty bytes")
    return base64.b64encode(bytes(frame)).decode("ascii")


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware_arg(moment: datetime, what: str) -> str:
    """An instant for the RAS, which refuses one without a time zone (it would be a guess)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidArgument(f"{what} needs a time zone (e.g. datetime.now(UTC))")
    return moment.isoformat()


def choices_arg(values: Sequence[str], choices: tuple[str, ...], what: str) -> list[str]:
    """A list of choices, each checked, duplicates dropped (order kept)."""
    if isinstance(values, str):  # a lone "operate" would be seven letters
        raise InvalidArgument(f"{what} is a list, not the string {values!r}")
    return list(dict.fromkeys(choice_arg(v, choices, what) for v in values))


def page_params(limit: int, cursor: str | None, state: str) -> tuple[tuple[str, str], ...]:
    if not 1 <= limit <= MAX_SHARES_PAGE:
        raise InvalidArgument(f"limit is 1..{MAX_SHARES_PAGE}")
    params: tuple[tuple[str, str], ...] = (
        ("limit", str(limit)),
        ("state", choice_arg(state, SHARE_STATES, "state")),
    )
    if cursor is not None:
        if not 1 <= len(cursor) <= MAX_CURSOR_LEN:
            raise InvalidArgument("a cursor is the next_cursor of a previous page")
        params += (("cursor", cursor),)
    return params


# --------------------------------------------------------------------------- parsers


def nothing(_: Any) -> None:
    return None


def one(cls: type[T]) -> Callable[[Any], T]:
    return lambda data: decode(cls, data)


def many(cls: type[T]) -> Callable[[Any], list[T]]:
    return lambda data: decode_list(cls, data)


def tokens(data: Any) -> Tokens:
    return Tokens.from_answer(data, utcnow())


# --------------------------------------------------------------------------- account


def account_register(
    email: str | None, phone: str | None, password: str, display_name: str | None
) -> Call[Account]:
    if not email and not phone:
        raise InvalidArgument("an account needs an e-mail address or a phone number")
    body: dict[str, Any] = {"password": password}
    if email:
        body["email"] = email
    if phone:
        body["phone"] = phone
    if display_name:
        body["display_name"] = display_name
    return Call("POST", "/v1/account", one(Account), CREATED, json=body, auth=False)


def account_verify(contact_id: uuid.UUID | str, code: str) -> Call[Contact]:
    body = {"contact_id": uuid_arg(contact_id, "contact"), "code": code_arg(code)}
    return Call("POST", "/v1/account/verify", one(Contact), json=body, auth=False)


def account_resend(contact_id: uuid.UUID | str) -> Call[CodeSent]:
    body = {"contact_id": uuid_arg(contact_id, "contact")}
    return Call("POST", "/v1/account/verify/resend", one(CodeSent), ACCEPTED, json=body, auth=False)


def account_get() -> Call[Account]:
    return Call("GET", "/v1/account", one(Account))


def account_delete(password: str) -> Call[None]:
    return Call(
        "DELETE",
        "/v1/account",
        nothing,
        NO_CONTENT,
        json={"password": password},
        effect=TokenEffect.CLEAR,
        resend_on_401=False,
    )


def account_change_password(current: str, new: str) -> Call[PasswordChanged]:
    body = {"current_password": current, "new_password": new}
    return Call(
        "POST", "/v1/account/password", one(PasswordChanged), json=body, resend_on_401=False
    )


def totp_enrol(password: str) -> Call[TotpEnrolment]:
    body = {"password": password}
    return Call(
        "POST", "/v1/account/totp", one(TotpEnrolment), CREATED, json=body, resend_on_401=False
    )


def totp_confirm(code: str) -> Call[None]:
    body = {"code": code_arg(code)}
    return Call("POST", "/v1/account/totp/confirm", nothing, NO_CONTENT, json=body)


# --------------------------------------------------------------------------- sessions


def login(identifier: str, password: str) -> Call[LoginChallenge]:
    body = {"login": identifier.strip(), "password": password}
    return Call("POST", "/v1/session", one(LoginChallenge), json=body, auth=False)


def send_code(challenge: str, channel: str) -> Call[LoginCodeSent]:
    body = {"challenge": challenge, "channel": choice_arg(channel, CODE_CHANNELS, "a channel")}
    return Call("POST", "/v1/session/code", one(LoginCodeSent), ACCEPTED, json=body, auth=False)


def second_factor(challenge: str, method: str, code: str) -> Call[Tokens]:
    body = {
        "challenge": challenge,
        "method": choice_arg(method, SECOND_FACTORS, "a second factor"),
        "code": code_arg(code),
    }
    return Call(
        "POST",
        "/v1/session/second-factor",
        tokens,
        CREATED,
        json=body,
        auth=False,
        effect=TokenEffect.SAVE,
    )


def refresh(refresh_token: str) -> Call[Tokens]:
    """Rotate the pair. Saved by the client's refresh logic, not by an effect: it must
    happen under the refresh lock."""
    body = {"refresh_token": refresh_token}
    return Call("POST", "/v1/session/refresh", tokens, json=body, auth=False)


def logout() -> Call[None]:
    return Call("DELETE", "/v1/session", nothing, NO_CONTENT, effect=TokenEffect.CLEAR)


def sessions_list() -> Call[list[Session]]:
    return Call("GET", "/v1/sessions", many(Session))


def session_revoke(session_id: uuid.UUID | str) -> Call[None]:
    path = f"/v1/sessions/{uuid_arg(session_id, 'session')}"
    return Call("DELETE", path, nothing, NO_CONTENT)


# --------------------------------------------------------------------------- devices


def legitimacy(device_id: DeviceId | str) -> Call[Legitimacy]:
    return Call("GET", f"/v1/devices/{device_arg(device_id)}/legitimacy", one(Legitimacy))


def import_devices(content: bytes, fmt: str, skip_bad: bool) -> Call[ImportResult]:
    kinds = {"json": "application/json", "csv": "text/csv"}
    if fmt not in kinds:
        raise InvalidArgument(f"a manufacturer file is json or csv, not {fmt!r}")
    return Call(
        "POST",
        "/v1/admin/devices/import",
        one(ImportResult),
        content=bytes(content),
        content_type=kinds[fmt],
        params=(("skip_bad", "true" if skip_bad else "false"),),
    )


def device_get(device_id: DeviceId | str) -> Call[Device]:
    return Call("GET", f"/v1/admin/devices/{device_arg(device_id)}", one(Device))


def device_revoke(device_id: DeviceId | str) -> Call[Device]:
    return Call("POST", f"/v1/admin/devices/{device_arg(device_id)}/revoke", one(Device))


def audit(after_id: int, limit: int) -> Call[AuditPage]:
    if after_id < 0 or not 1 <= limit <= 500:
        raise InvalidArgument("after_id >= 0 and 1 <= limit <= 500")
    params = (("after_id", str(after_id)), ("limit", str(limit)))
    return Call("GET", "/v1/audit", one(AuditPage), params=params)


# --------------------------------------------------------------------------- registrations


def registration_start(
    device_id: DeviceId | str,
    name: str,
    via: str,
    gateway_id: uuid.UUID | str | None,
    time_sync: bool,
) -> Call[Registration]:
    body: dict[str, Any] = {"device_id": device_arg(device_id), "name": name}
    if time_sync:
        body["time_sync"] = True
    # "relay" is the RAS's default: left out, so a RAS without C1 accepts the request.
    if choice_arg(via, ("relay", "gateway"), "via") == "gateway":
        body["via"] = "gateway"
    if gateway_id is not None:
        if via != "gateway":
            raise InvalidArgument("a gateway_id goes with via='gateway'")
        body["gateway_id"] = uuid_arg(gateway_id, "gateway")
    return Call("POST", "/v1/registrations", one(Registration), OK_OR_CREATED, json=body)


def _registration_path(registration_id: uuid.UUID | str) -> str:
    return f"/v1/registrations/{uuid_arg(registration_id, 'registration')}"


def registration_get(registration_id: uuid.UUID | str) -> Call[Registration]:
    return Call("GET", _registration_path(registration_id), one(Registration))


def registration_answer(registration_id: uuid.UUID | str, frame: bytes) -> Call[Registration]:
    path = _registration_path(registration_id) + "/answers"
    return Call("POST", path, one(Registration), json={"frame": b64(frame)})


def registration_frames(registration_id: uuid.UUID | str) -> Call[Registration]:
    return Call("POST", _registration_path(registration_id) + "/frames", one(Registration))


def registration_relay(
    registration_id: uuid.UUID | str, gateway_id: uuid.UUID | str | None
) -> Call[Registration]:
    body = {} if gateway_id is None else {"gateway_id": uuid_arg(gateway_id, "gateway")}
    path = _registration_path(registration_id) + "/relay"
    return Call("POST", path, one(Registration), OK_OR_CREATED, json=body)


# --------------------------------------------------------------------------- locks


def _lock_path(lock_id: uuid.UUID | str) -> str:
    return f"/v1/locks/{uuid_arg(lock_id, 'lock')}"


def locks_list() -> Call[list[Lock]]:
    return Call("GET", "/v1/locks", many(Lock))


def lock_get(lock_id: uuid.UUID | str) -> Call[Lock]:
    return Call("GET", _lock_path(lock_id), one(Lock))


def lock_rename(lock_id: uuid.UUID | str, name: str) -> Call[Lock]:
    return Call("PATCH", _lock_path(lock_id), one(Lock), json={"name": name})


def lock_remove(lock_id: uuid.UUID | str) -> Call[None]:
    return Call("DELETE", _lock_path(lock_id), nothing, NO_CONTENT)


def lock_transfer(lock_id: uuid.UUID | str, to: uuid.UUID | str) -> Call[Lock]:
    body = {"to_user": uuid_arg(to, "user")}
    return Call("POST", _lock_path(lock_id) + "/transfer", one(Lock), json=body)


def lock_rotate(lock_id: uuid.UUID | str) -> Call[Registration]:
    return Call("POST", _lock_path(lock_id) + "/rotation", one(Registration), OK_OR_CREATED)


def lock_events(lock_id: uuid.UUID | str, limit: int, before: int | None) -> Call[list[LockEvent]]:
    if not 1 <= limit <= MAX_EVENTS_PAGE:
        raise InvalidArgument(f"limit is 1..{MAX_EVENTS_PAGE}")
    params: tuple[tuple[str, str], ...] = (("limit", str(limit)),)
    if before is not None:
        if before < 1:
            raise InvalidArgument("before is an event id (>= 1)")
        params += (("before", str(before)),)
    return Call("GET", _lock_path(lock_id) + "/events", many(LockEvent), params=params)


def lock_command(
    lock_id: uuid.UUID | str, command: str, idempotency_key: str | None
) -> Call[CommandResult]:
    return Call(
        "POST",
        _lock_path(lock_id) + "/commands",
        one(CommandResult),
        json={"command": choice_arg(command, COMMANDS, "a command")},
        headers=(("Idempotency-Key", idempotency_key_arg(idempotency_key)),),
    )


def nearby_frame(
    lock_id: uuid.UUID | str, command: str, idempotency_key: str | None
) -> Call[NearbyFrame]:
    return Call(
        "POST",
        _lock_path(lock_id) + "/frames",
        one(NearbyFrame),
        CREATED,
        json={"command": choice_arg(command, COMMANDS, "a command")},
        headers=(("Idempotency-Key", idempotency_key_arg(idempotency_key)),),
    )


def nearby_answer(
    lock_id: uuid.UUID | str, command_id: uuid.UUID | str, frame: bytes
) -> Call[CommandResult]:
    path = f"{_lock_path(lock_id)}/frames/{uuid_arg(command_id, 'command')}/answer"
    return Call("POST", path, one(CommandResult), json={"frame": b64(frame)})


# --------------------------------------------------------------------------- gateways


def _gateway_path(gateway_id: uuid.UUID | str) -> str:
    return f"/v1/gateways/{uuid_arg(gateway_id, 'gateway')}"


def gateway_add(name: str) -> Call[GatewayCredentials]:
    return Call("POST", "/v1/gateways", one(GatewayCredentials), CREATED, json={"name": name})


def gateways_list() -> Call[list[Gateway]]:
    return Call("GET", "/v1/gateways", many(Gateway))


def gateway_get(gateway_id: uuid.UUID | str) -> Call[Gateway]:
    return Call("GET", _gateway_path(gateway_id), one(Gateway))


def gateway_rename(gateway_id: uuid.UUID | str, name: str) -> Call[Gateway]:
    return Call("PATCH", _gateway_path(gateway_id), one(Gateway), json={"name": name})


def gateway_remove(gateway_id: uuid.UUID | str) -> Call[Gateway]:
    """Revoke: permanent; the gateway's XMPP session is dropped at once."""
    return Call("POST", _gateway_path(gateway_id) + "/revoke", one(Gateway))


def gateway_rotate_secret(gateway_id: uuid.UUID | str) -> Call[GatewayCredentials]:
    return Call("POST", _gateway_path(gateway_id) + "/secret", one(GatewayCredentials))


# --------------------------------------------------------------------------- homes


def _home_path(home_id: uuid.UUID | str) -> str:
    return f"/v1/homes/{uuid_arg(home_id, 'home')}"


def home_create(name: str, time_zone: str) -> Call[Home]:
    body = {"name": name, "time_zone": time_zone}
    return Call("POST", "/v1/homes", one(Home), CREATED, json=body)


def homes_list() -> Call[list[Home]]:
    return Call("GET", "/v1/homes", many(Home))


def home_get(home_id: uuid.UUID | str) -> Call[Home]:
    return Call("GET", _home_path(home_id), one(Home))


def home_update(home_id: uuid.UUID | str, name: str | None, time_zone: str | None) -> Call[Home]:
    body = {k: v for k, v in (("name", name), ("time_zone", time_zone)) if v is not None}
    if not body:
        raise InvalidArgument("change the name, the time zone or both")
    return Call("PATCH", _home_path(home_id), one(Home), json=body)


def home_delete(home_id: uuid.UUID | str) -> Call[None]:
    """Delete a home: its shares are revoked, its locks and gateways stay the owner's."""
    return Call("DELETE", _home_path(home_id), nothing, NO_CONTENT)


def home_add_lock(home_id: uuid.UUID | str, lock_id: uuid.UUID | str) -> Call[Home]:
    path = f"{_home_path(home_id)}/locks/{uuid_arg(lock_id, 'lock')}"
    return Call("PUT", path, one(Home))


def home_remove_lock(home_id: uuid.UUID | str, lock_id: uuid.UUID | str) -> Call[None]:
    path = f"{_home_path(home_id)}/locks/{uuid_arg(lock_id, 'lock')}"
    return Call("DELETE", path, nothing, NO_CONTENT)


def home_members(
    home_id: uuid.UUID | str, limit: int, cursor: str | None, state: str
) -> Call[SharePage]:
    params = page_params(limit, cursor, state)
    return Call("GET", _home_path(home_id) + "/members", one(SharePage), params=params)


# --------------------------------------------------------------------------- shares


def _invitee(email: str | None, phone: str | None) -> dict[str, str]:
    if (email is None) == (phone is None):
        raise InvalidArgument("invite one e-mail address or one phone number (not both)")
    return {"email": email} if email is not None else {"phone": str(phone)}


def _validity(kind: str, not_before: datetime | None, not_after: datetime | None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": choice_arg(kind, VALIDITIES, "validity")}
    if not_before is not None:
        body["not_before"] = aware_arg(not_before, "not_before")
    if not_after is not None:
        body["not_after"] = aware_arg(not_after, "not_after")
    return body


def share_create(
    *,
    email: str | None,
    phone: str | None,
    lock_ids: Sequence[uuid.UUID | str] | None,
    home_id: uuid.UUID | str | None,
    role: str,
    permissions: Sequence[str] | None,
    paths: Sequence[str] | None,
    validity: str,
    not_before: datetime | None,
    not_after: datetime | None,
    schedule: Schedule | None,
    label: str | None,
) -> Call[Share]:
    """Share some locks (``lock_ids``) or a whole home (``home_id``): an invitation to the
    contact until they accept it. ``permissions``/``paths`` None: the role's defaults."""
    body: dict[str, Any] = {"invitee": _invitee(email, phone)}
    if (not lock_ids) == (home_id is None):
        raise InvalidArgument("share some locks (lock_ids) or a home (home_id), not both")
    if lock_ids:
        body["lock_ids"] = list(dict.fromkeys(uuid_arg(i, "lock") for i in lock_ids))
    if home_id is not None:
        body["home_id"] = uuid_arg(home_id, "home")
    body["role"] = choice_arg(role, ROLES, "role")
    if permissions is not None:
        body["permissions"] = choices_arg(permissions, PERMISSIONS, "a permission")
    if paths is not None:
        body["paths"] = choices_arg(paths, PATHS, "a path")
    body["validity"] = _validity(validity, not_before, not_after)
    if schedule is not None:
        body["schedule"] = schedule.to_json()
    if label is not None:
        body["label"] = label
    return Call("POST", "/v1/shares", one(Share), CREATED, json=body)


def shares_list(limit: int, cursor: str | None, state: str) -> Call[SharePage]:
    """Shares of the caller's locks and homes (what they gave)."""
    params = page_params(limit, cursor, state)
    return Call("GET", "/v1/shares", one(SharePage), params=params)


def shares_received(limit: int, cursor: str | None, state: str) -> Call[SharePage]:
    """Shares granted to the caller (what they were given and accepted)."""
    params = page_params(limit, cursor, state)
    return Call("GET", "/v1/me/shares", one(SharePage), params=params)


def lock_shares(
    lock_id: uuid.UUID | str, limit: int, cursor: str | None, state: str
) -> Call[SharePage]:
    params = page_params(limit, cursor, state)
    return Call("GET", _lock_path(lock_id) + "/shares", one(SharePage), params=params)


def _share_path(share_id: uuid.UUID | str) -> str:
    return f"/v1/shares/{uuid_arg(share_id, 'share')}"


def share_get(share_id: uuid.UUID | str) -> Call[Share]:
    return Call("GET", _share_path(share_id), one(Share))


def share_update(
    share_id: uuid.UUID | str,
    *,
    role: str | None,
    permissions: Sequence[str] | None,
    paths: Sequence[str] | None,
    validity: str | None,
    not_before: datetime | None,
    not_after: datetime | None,
    schedule: Schedule | None,
    clear_schedule: bool,
    label: str | None,
    clear_label: bool,
) -> Call[Share]:
    """Change a share's terms: only what is given is sent (the RAS keeps the rest). A new
    ``role`` without ``permissions`` takes the role's defaults."""
    body: dict[str, Any] = {}
    if role is not None:
        body["role"] = choice_arg(role, ROLES, "role")
    if permissions is not None:
        body["permissions"] = choices_arg(permissions, PERMISSIONS, "a permission")
    if paths is not None:
        body["paths"] = choices_arg(paths, PATHS, "a path")
    if validity is not None:
        body["validity"] = _validity(validity, not_before, not_after)
    elif not_before is not None or not_after is not None:
        raise InvalidArgument("not_before and not_after go with a validity kind")
    if schedule is not None and clear_schedule:
        raise InvalidArgument("give a schedule or clear it, not both")
    if schedule is not None or clear_schedule:
        body["schedule"] = schedule.to_json() if schedule is not None else None
    if label is not None and clear_label:
        raise InvalidArgument("give a label or clear it, not both")
    if label is not None or clear_label:
        body["label"] = label
    if not body:
        raise InvalidArgument("nothing to change")
    return Call("PATCH", _share_path(share_id), one(Share), json=body)


def share_revoke(share_id: uuid.UUID | str) -> Call[Share]:
    """Revoke at once, on every path; the answer is the share as it now is."""
    return Call("POST", _share_path(share_id) + "/revoke", one(Share))


# --------------------------------------------------------------------------- invitations


def _invitation_path(share_id: uuid.UUID | str) -> str:
    return f"/v1/invitations/{uuid_arg(share_id, 'share')}"


def invitations_list() -> Call[list[Invitation]]:
    return Call("GET", "/v1/invitations", many(Invitation))


def invitation_accept(share_id: uuid.UUID | str) -> Call[Share]:
    return Call("POST", _invitation_path(share_id) + "/accept", one(Share))


def invitation_decline(share_id: uuid.UUID | str) -> Call[None]:
    return Call("POST", _invitation_path(share_id) + "/decline", nothing, NO_CONTENT)


# --------------------------------------------------------------------------- geofencing


def _fence_path(lock_id: uuid.UUID | str | None, home_id: uuid.UUID | str | None) -> str:
    if (lock_id is None) == (home_id is None):
        raise InvalidArgument("a geofence belongs to a lock (lock_id) or a home (home_id)")
    if lock_id is not None:
        return _lock_path(lock_id) + "/geofence"
    assert home_id is not None
    return _home_path(home_id) + "/geofence"


def _coordinates(latitude: float, longitude: float) -> dict[str, float]:
    if not -90.0 <= latitude <= 90.0 or not -180.0 <= longitude <= 180.0:  # NaN fails too
        raise InvalidArgument("latitude is -90..90 and longitude -180..180 degrees")
    return {"latitude": float(latitude), "longitude": float(longitude)}


def geofence_put(
    lock_id: uuid.UUID | str | None,
    home_id: uuid.UUID | str | None,
    *,
    latitude: float,
    longitude: float,
    radius_m: float,
    remote_unlock_inside: bool,
    arrival: str,
    suppress_after_open_s: int | None,
    max_age_s: int | None,
    max_accuracy_m: float | None,
) -> Call[Geofence]:
    """Set (create or replace) a fence. Policies left None take the RAS's defaults; the
    RAS checks their bounds (its problem names the member)."""
    body: dict[str, Any] = {
        **_coordinates(latitude, longitude),
        "radius_m": float(radius_m),
        "remote_unlock_inside": bool(remote_unlock_inside),
        "arrival": choice_arg(arrival, ARRIVAL_MODES, "arrival"),
    }
    optional = (
        ("suppress_after_open_s", suppress_after_open_s),
        ("max_age_s", max_age_s),
        ("max_accuracy_m", max_accuracy_m),
    )
    body.update((k, v) for k, v in optional if v is not None)
    return Call("PUT", _fence_path(lock_id, home_id), one(Geofence), OK_OR_CREATED, json=body)


def geofence_get(
    lock_id: uuid.UUID | str | None, home_id: uuid.UUID | str | None
) -> Call[Geofence]:
    return Call("GET", _fence_path(lock_id, home_id), one(Geofence))


def geofence_delete(lock_id: uuid.UUID | str | None, home_id: uuid.UUID | str | None) -> Call[None]:
    return Call("DELETE", _fence_path(lock_id, home_id), nothing, NO_CONTENT)


def location_report(
    latitude: float, longitude: float, accuracy_m: float, taken_at: datetime
) -> Call[LocationAccepted]:
    """One fix of this device: where, how accurate (metres) and when it was taken."""
    if not accuracy_m > 0.0:
        raise InvalidArgument("accuracy_m is a positive number of metres")
    body = {
        **_coordinates(latitude, longitude),
        "accuracy_m": float(accuracy_m),
        "taken_at": aware_arg(taken_at, "taken_at"),
    }
    return Call("POST", "/v1/location", one(LocationAccepted), CREATED, json=body)


def location_forget() -> Call[None]:
    """Delete the caller's location history on the RAS."""
    return Call("DELETE", "/v1/location", nothing, NO_CONTENT)


def arrivals_list() -> Call[list[ArrivalSuggestion]]:
    return Call("GET", "/v1/arrivals", many(ArrivalSuggestion))


def arrival_confirm(suggestion_id: uuid.UUID | str) -> Call[ArrivalConfirmation]:
    path = f"/v1/arrivals/{uuid_arg(suggestion_id, 'suggestion')}/confirm"
    return Call("POST", path, one(ArrivalConfirmation))


# --------------------------------------------------------------------------- event feed


def _feed_filter(
    lock_id: uuid.UUID | str | None,
    kind: str | Sequence[str] | None,
    since: datetime | None,
    until: datetime | None,
) -> tuple[tuple[str, str], ...]:
    params: tuple[tuple[str, str], ...] = ()
    if lock_id is not None:
        params += (("lock_id", uuid_arg(lock_id, "lock")),)
    kinds = [kind] if isinstance(kind, str) else list(kind or ())
    if len(kinds) > MAX_KIND_FILTERS or not all(kinds):
        raise InvalidArgument(f"1..{MAX_KIND_FILTERS} non-empty kinds")
    params += tuple(("kind", k) for k in dict.fromkeys(kinds))
    if since is not None:
        params += (("since", aware_arg(since, "since")),)
    if until is not None:
        params += (("until", aware_arg(until, "until")),)
    return params


def events_list(
    *,
    lock_id: uuid.UUID | str | None,
    kind: str | Sequence[str] | None,
    before: int | None,
    after: int | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> Call[list[FeedEvent]]:
    """The caller's feed: newest first (``before``: the smallest id of the previous page),
    or oldest first from an id (``after``). ``kind`` keeps those kinds (``share.*``: a
    family)."""
    if not 1 <= limit <= MAX_EVENTS_PAGE:
        raise InvalidArgument(f"limit is 1..{MAX_EVENTS_PAGE}")
    params: tuple[tuple[str, str], ...] = (("limit", str(limit)),)
    if before is not None and after is not None:
        raise InvalidArgument("page with before or after, not both")
    if before is not None:
        if before < 1:
            raise InvalidArgument("before is an event id (>= 1)")
        params += (("before", str(before)),)
    if after is not None:
        if after < 0:
            raise InvalidArgument("after is an event id (>= 0)")
        params += (("after", str(after)),)
    params += _feed_filter(lock_id, kind, since, until)
    return Call("GET", "/v1/events", many(FeedEvent), params=params)


def feed_message(data: str) -> FeedEvent:
    """One message of the live feed: its data is the listing's JSON of one event."""
    try:
        document = json.loads(data)
    except ValueError:
        raise RasBadAnswer("the RAS sent an event whose data is not JSON") from None
    return decode(FeedEvent, document)


def events_stream(
    last_event_id: int | None,
    *,
    lock_id: uuid.UUID | str | None,
    kind: str | Sequence[str] | None,
) -> Call[FeedEvent]:
    """The feed, live (Server-Sent Events): every event after ``last_event_id`` the caller
    may see, oldest first, then new ones as they happen (None: from now on)."""
    headers: tuple[tuple[str, str], ...] = (("Accept", "text/event-stream"),)
    if last_event_id is not None:
        if last_event_id < 0:
            raise InvalidArgument("last_event_id is an event id (>= 0)")
        headers += (("Last-Event-ID", str(last_event_id)),)
    params = _feed_filter(lock_id, kind, None, None)
    return Call(
        "GET", "/v1/events/stream", feed_message, params=params, headers=headers, stream=True
    )
