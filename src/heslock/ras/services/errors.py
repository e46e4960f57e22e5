"""Errors the RAS services raise; each carries a stable ``code``.

The HTTP layer maps ``code`` to an RFC 9457 problem type in ``ras/api/problems.py`` (a
test checks that every code here is registered there); the XMPP layer will map it to a
stanza error condition. Services never know about status codes::

    HeslockError
    └── ServiceError            code
        ├── InvalidInput        invalid-input      (a value a service refuses)
        ├── Unauthenticated     unauthenticated    (no or bad credentials)
        ├── Forbidden           forbidden          (known principal, not allowed)
        ├── NotFound            not-found          (absent, or not visible to the caller)
        ├── Conflict            conflict           (duplicate, or wrong state)
        ├── TooManyRequests     rate-limited       (throttled or locked out)
        └── Unavailable         unavailable        (a dependency is down or not migrated)
"""

from __future__ import annotations

from typing import Any, ClassVar

from heslock.errors import HeslockError


class ServiceError(HeslockError):
    """Base of every error a service reports to its caller."""

    code: ClassVar[str] = "internal"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        #: Extra, non-secret members for the problem document (e.g. ``retry_after``).
        self.extensions = extensions


class InvalidInput(ServiceError):
    code = "invalid-input"


class Unauthenticated(ServiceError):
    code = "unauthenticated"


class Forbidden(ServiceError):
    code = "forbidden"


class NotFound(ServiceError):
    code = "not-found"


class Conflict(ServiceError):
    code = "conflict"


class TooManyRequests(ServiceError):
    code = "rate-limited"


class Unavailable(ServiceError):
    code = "unavailable"
