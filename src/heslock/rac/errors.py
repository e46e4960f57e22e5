"""Errors of the client SDK (see :mod:`heslock.errors` for the whole tree)::

    HeslockError
    ├── UsageError
    │   └── InvalidArgument     a bad argument to an SDK call (not a device id, a lock id ...)
    └── RasError                the RAS could not do what was asked
        ├── RasProblem          the RAS answered with an RFC 9457 problem document
        ├── RasUnreachable      no answer: connection, TLS or timeout failure
        ├── NotLoggedIn         the call needs a session and the token store holds none
        ├── RasBadAnswer        the RAS answered something that is not the API (PeerError)
        └── RegistrationFailed  a registration ended ``failed`` or ``expired``

Every class carries ``exit_code``: the ``heslock`` command line's documented exit code for
it (``heslock.cli``: 2 usage, 3 refused by the lock, 4 not allowed, 5 unreachable). The
SDK cannot import the command line (it is a party; the CLI is a composition root), so the
numbers are repeated here and a unit test checks they agree.

No message, ``repr`` or attribute of these errors ever holds a token, a password, a code
or a gateway secret: problem documents from the RAS never carry one, and transport errors
are reduced to their reason (the request, whose headers hold the bearer token, is dropped).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from heslock.errors import HeslockError, PeerError, UsageError

EXIT_USAGE: Final = 2
EXIT_REFUSED: Final = 3
EXIT_FORBIDDEN: Final = 4
EXIT_UNREACHABLE: Final = 5

#: Every problem ``type`` of the RAS is this prefix and a code (docs/api.md, "Problem types").
PROBLEM_BASE: Final = "https://heslock.dev/problems/"

#: Problem code -> exit code. Codes not listed fall back on the HTTP status
#: (:func:`exit_code_for`). Kept in step with docs/api.md's problem table.
_EXIT_BY_CODE: Final[Mapping[str, int]] = {
    # the lock itself said no
    "lock-refused": EXIT_REFUSED,
    "command-outcome-unknown": EXIT_REFUSED,
    "frame-refused": EXIT_REFUSED,
    "command-not-executed": EXIT_REFUSED,
    # who you are or what you own does not allow it (or not now)
    "unauthenticated": EXIT_FORBIDDEN,
    "forbidden": EXIT_FORBIDDEN,
    "not-found": EXIT_FORBIDDEN,
    "conflict": EXIT_FORBIDDEN,
    "code-refused": EXIT_FORBIDDEN,
    "rate-limited": EXIT_FORBIDDEN,
    "device-unavailable": EXIT_FORBIDDEN,
    "command-in-progress": EXIT_FORBIDDEN,
    "registration-in-progress": EXIT_FORBIDDEN,
    "frame-expired": EXIT_FORBIDDEN,
    "access-denied": EXIT_FORBIDDEN,
    "share-limit-reached": EXIT_FORBIDDEN,
    # something between here and the lock is down
    "gateway-unavailable": EXIT_UNREACHABLE,
    "lock-unreachable": EXIT_UNREACHABLE,
    "gateway-failure": EXIT_UNREACHABLE,
    "unavailable": EXIT_UNREACHABLE,
    "internal": EXIT_UNREACHABLE,
    # the request itself is wrong
    "bad-request": EXIT_USAGE,
    "validation-failed": EXIT_USAGE,
    "invalid-input": EXIT_USAGE,
    "password-refused": EXIT_USAGE,
    "import-rejected": EXIT_USAGE,
    "body-too-large": EXIT_USAGE,
    "idempotency-key-missing": EXIT_USAGE,
    "idempotency-key-reused": EXIT_USAGE,
}
#: Members of a problem document that are not extensions (RFC 9457 section 3.1).
_STANDARD_MEMBERS: Final = frozenset({"type", "title", "status", "detail", "instance"})


def exit_code_for(code: str | None, status: int) -> int:
    """The command line's exit code for a problem: by code, else by HTTP status."""
    if code is not None and code in _EXIT_BY_CODE:
        return _EXIT_BY_CODE[code]
    if status >= 500:
        return EXIT_UNREACHABLE
    if status in (401, 403, 404, 409, 429):
        return EXIT_FORBIDDEN
    return EXIT_USAGE


class InvalidArgument(UsageError, ValueError):
    """An argument to an SDK call is malformed (caught before any request is sent)."""


class RasError(HeslockError):
    """The RAS could not do what was asked (base of the SDK's runtime errors)."""

    exit_code: int = EXIT_UNREACHABLE


class RasProblem(RasError):
    """An RFC 9457 problem document from the RAS.

    Branch on :attr:`code` (the last segment of ``type``), never on ``title`` or
    ``detail``. :attr:`reason` is the lock's reason code (``JAMMED``, ``STALE`` ...) for a
    refused command, or the reason a device cannot be registered (``already-bound`` ...);
    every other non-standard member is in :attr:`extensions`.
    """

    def __init__(
        self,
        status: int,
        type: str,  # noqa: A002  (RFC 9457's member name)
        title: str | None = None,
        detail: str | None = None,
        instance: str | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.type = type
        self.code: str | None = (
            type.removeprefix(PROBLEM_BASE) if type.startswith(PROBLEM_BASE) else None
        )
        self.title = title
        self.detail = detail
        self.instance = instance
        self.extensions: dict[str, Any] = dict(extensions or {})
        reason = self.extensions.get("reason")
        self.reason: str | None = reason if isinstance(reason, str) else None
        self.exit_code = exit_code_for(self.code, status)
        super().__init__(self._message())

    @classmethod
    def from_document(cls, status: int, document: object) -> RasProblem:
        """Build from a parsed body; anything that is not a problem document still gives one
        (``type`` ``about:blank``, RFC 9457 section 4.2) so callers see a single class."""
        if not isinstance(document, dict):
            return cls(status, "about:blank")
        type_ = document.get("type")
        title = document.get("title")
        detail = document.get("detail")
        instance = document.get("instance")
        extensions = {k: v for k, v in document.items() if k not in _STANDARD_MEMBERS}
        return cls(
            status,
            type_ if isinstance(type_, str) and type_ else "about:blank",
            title if isinstance(title, str) else None,
            detail if isinstance(detail, str) else None,
            instance if isinstance(instance, str) else None,
            extensions,
        )

    @property
    def retry_after(self) -> int | None:
        """Seconds to wait before trying again (``rate-limited``), if the RAS said."""
        value = self.extensions.get("retry_after")
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return int(value)

    def _message(self) -> str:
        text = self.detail or self.title or f"the server answered HTTP {self.status}"
        if self.reason and self.reason not in text:
            text = f"{text} ({self.reason})"
        fields = _field_errors(self.extensions.get("errors"))
        if fields:
            text = f"{text}: {fields}"
        return f"{text} [{self.code or self.status}]"

    def __repr__(self) -> str:
        return f"RasProblem(status={self.status}, code={self.code!r}, reason={self.reason!r})"

    def __reduce__(self) -> tuple[Any, ...]:  # picklable (multiprocessing, test runners)
        args = (self.status, self.type, self.title, self.detail, self.instance, self.extensions)
        return (type(self), args)


class RasUnreachable(RasError):
    """The RAS did not answer: refused connection, DNS, TLS verification, timeout.

    ``maybe_sent`` is true when the request may have reached the RAS before the failure
    (a read timeout, a dropped connection): a command may then have run; repeat it with
    the same idempotency key rather than a new one.
    """

    exit_code = EXIT_UNREACHABLE

    def __init__(self, message: str, *, maybe_sent: bool = False) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent

    def __reduce__(self) -> tuple[Any, ...]:
        return (_unreachable, (str(self), self.maybe_sent))


class NotLoggedIn(RasError):
    """The call needs a session and there is none (or it ended): log in first."""

    exit_code = EXIT_FORBIDDEN


class RasBadAnswer(RasError, PeerError):
    """The RAS answered with something that is not the documented API."""

    exit_code = EXIT_UNREACHABLE


class RegistrationFailed(RasError):
    """A registration ended without a lock: ``failed`` (the lock refused; ``reason`` is its
    reason code, e.g. ``STALE`` for a wrong clock) or ``expired`` (took too long)."""

    def __init__(self, message: str, *, phase: str, reason: str | None) -> None:
        super().__init__(message)
        self.phase = phase
        self.reason = reason
        self.exit_code = EXIT_REFUSED if phase == "failed" else EXIT_UNREACHABLE

    def __reduce__(self) -> tuple[Any, ...]:
        return (_registration_failed, (str(self), self.phase, self.reason))


def _unreachable(message: str, maybe_sent: bool) -> RasUnreachable:
    return RasUnreachable(message, maybe_sent=maybe_sent)


def _registration_failed(message: str, phase: str, reason: str | None) -> RegistrationFailed:
    return RegistrationFailed(message, phase=phase, reason=reason)


def _field_errors(errors: object) -> str:
    """``name: String should have at most 64 characters; ...`` from a validation problem
    (the RAS never echoes the offending value, so neither does this)."""
    if not isinstance(errors, list):
        return ""
    parts = []
    for error in errors[:3]:
        if not isinstance(error, dict):
            continue
        loc = [str(p) for p in error.get("loc", []) if p not in ("body", "query", "path")]
        msg = str(error.get("msg", "invalid"))
        parts.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
    return "; ".join(parts)
