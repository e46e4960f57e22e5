"""RFC 9457 problem details: the one registry of the RAS's HTTP error types.

Every error response is ``application/problem+json`` with a stable ``type`` URI
``https://heslock.dev/problems/<code>``, a ``title`` fixed per type, the ``status``, a
``detail`` for this occurrence and the request path as ``instance``. Clients branch on
``type`` (never on ``title`` or ``detail``); codes are never renamed or reused.
Service errors (:mod:`heslock.ras.services.errors`) carry their code; HTTP-level errors
(404 route, 405, 413, 422) are mapped here too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from heslock.ras.services.errors import ServiceError

log = logging.getLogger(__name__)

PROBLEM_BASE: Final = "https://heslock.dev/problems/"
MEDIA_TYPE: Final = "application/problem+json"


@dataclass(frozen=True)
class ProblemType:
    code: str
    status: int
    title: str

    @property
    def uri(self) -> str:
        return PROBLEM_BASE + self.code


_TYPES: Final = (
    ProblemType("bad-request", 400, "The request is malformed"),
    ProblemType("unauthenticated", 401, "Authentication is required"),
    ProblemType("forbidden", 403, "Not allowed"),
    ProblemType("not-found", 404, "Not found"),
    ProblemType("method-not-allowed", 405, "Method not allowed"),
    ProblemType("not-acceptable", 406, "Not acceptable"),
    ProblemType("conflict", 409, "Conflict with the current state"),
    ProblemType("body-too-large", 413, "Request body too large"),
    ProblemType("unsupported-media-type", 415, "Unsupported media type"),
    ProblemType("validation-failed", 422, "The request failed validation"),
    ProblemType("invalid-input", 422, "A value was refused"),
    ProblemType("rate-limited", 429, "Too many requests"),
    ProblemType("internal", 500, "Internal server error"),
    ProblemType("unavailable", 503, "Service unavailable"),
    # UDMS (issue 4)
    ProblemType("password-refused", 422, "The password does not meet the password policy"),
    ProblemType("code-refused", 400, "The code is wrong, expired or used up"),
    # DDMS (issue 4)
    ProblemType("import-rejected", 422, "Manufacturer records refused; nothing imported"),
    ProblemType("device-unavailable", 409, "The device cannot be registered now"),
    ProblemType("frame-refused", 422, "The answer is not a frame of this lock"),
    # Remote control (issue 5)
    ProblemType("idempotency-key-missing", 400, "An Idempotency-Key header is required"),
    ProblemType("idempotency-key-reused", 422, "The Idempotency-Key was used for another request"),
    ProblemType("command-in-progress", 409, "The first request with this key is still running"),
    ProblemType("gateway-unavailable", 503, "No gateway can reach the lock now"),
    ProblemType("lock-unreachable", 504, "The lock did not answer in time"),
    ProblemType("gateway-failure", 502, "The gateway failed or answered with a bad frame"),
    ProblemType("lock-refused", 409, "The lock refused the command"),
    ProblemType("command-outcome-unknown", 409, "The command's outcome is not known"),
    ProblemType("command-not-executed", 409, "The lock did not execute the command"),
    ProblemType("frame-expired", 409, "The frame for this key expired"),
    # Registration through a gateway (issue 5)
    ProblemType("registration-in-progress", 409, "The registration is being driven right now"),
    # Grouping and sharing (issue 7)
    ProblemType("access-denied", 403, "The grant does not allow this now"),
    ProblemType("share-limit-reached", 409, "The lock has the most active shares allowed"),
    # Geofencing (issue 7)
    ProblemType("geofence-outside", 403, "The caller is not inside the lock's geofence"),
    ProblemType("location-stale", 403, "The latest location report is too old"),
    ProblemType("location-inaccurate", 403, "The latest location report is not accurate enough"),
    ProblemType("location-missing", 403, "No location report to check the geofence against"),
    ProblemType("suggestion-not-confirmable", 409, "The arrival suggestion expired or was used"),
)
#: code -> problem type. The registry: add, never rename or remove.
REGISTRY: Final[dict[str, ProblemType]] = {t.code: t for t in _TYPES}
#: HTTP status -> code, for errors raised as bare HTTP exceptions (routing, parsing).
_BY_STATUS: Final = {
    400: "bad-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "body-too-large",
    415: "unsupported-media-type",
    422: "validation-failed",
    429: "rate-limited",
    503: "unavailable",
}


def problem_response(
    code: str,
    detail: str | None = None,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    problem = REGISTRY[code]
    body: dict[str, Any] = {"type": problem.uri, "title": problem.title, "status": problem.status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extensions)
    return JSONResponse(body, status_code=problem.status, headers=headers, media_type=MEDIA_TYPE)


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.code == "unauthenticated" else None
    retry = exc.extensions.get("retry_after")
    if retry is not None:
        headers = {**(headers or {}), "Retry-After": str(int(retry))}
    return problem_response(
        exc.code, exc.detail, instance=request.url.path, headers=headers, **exc.extensions
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _BY_STATUS.get(exc.status_code, "internal" if exc.status_code >= 500 else "bad-request")
    detail = exc.detail if isinstance(exc.detail, str) else None
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(code, detail, instance=request.url.path, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Never echo the offending input: it may be a password or a key.
    errors = [
        {
            "loc": [str(part) for part in err.get("loc", ())],
            "msg": err.get("msg", ""),
            "type": err.get("type", ""),
        }
        for err in exc.errors()
    ]
    return problem_response(
        "validation-failed",
        f"{len(errors)} field(s) failed validation",
        instance=request.url.path,
        errors=errors,
    )


async def _integrity_error(request: Request, exc: Exception) -> JSONResponse:
    # FIELD-NOTES: a duplicate is a 409, not a 500. The database message may quote
    # values, so it stays in the log (type only) and out of the response.
    log.info(
        "integrity error on %s: %s",
        request.url.path,
        type(exc.orig if isinstance(exc, IntegrityError) else exc).__name__,
    )
    return problem_response(
        "conflict", "the request conflicts with existing data", instance=request.url.path
    )


#: Seconds a client should wait before retrying after a database outage or overload.
DATABASE_RETRY_AFTER_S: Final = 1


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The pool is exhausted (sqlalchemy TimeoutError), the database is unreachable, busy
    # ("database is locked" after SQLite's busy timeout) or chose this transaction as a
    # deadlock victim (OperationalError): transient, so 503 with Retry-After, not 500. The
    # message may quote SQL or values: the log gets the type only.
    orig = getattr(exc, "orig", None)
    log.warning(
        "database unavailable on %s %s: %s",
        request.method,
        request.url.path,
        type(orig if orig is not None else exc).__name__,
    )
    return problem_response(
        "unavailable",
        "the database is busy or unreachable: retry shortly",
        instance=request.url.path,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response("internal", instance=request.url.path)


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(PoolTimeout, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected)
