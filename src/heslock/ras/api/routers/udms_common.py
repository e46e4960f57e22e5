"""Shared pieces of the UDMS routers: the service dependency, bearer scheme, problem docs."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import Depends, Request, Response
from pydantic import BaseModel, ConfigDict, StringConstraints

from heslock.ras.api.deps import anonymous_context
from heslock.ras.services import audit
from heslock.ras.services.udms import Udms

#: Every UDMS request body refuses unknown members: ``is_admin``, ``id``, ``verified``
#: sent by a client are an error (422), never silently ignored or, worse, applied.
STRICT: Final = ConfigDict(extra="forbid", str_strip_whitespace=False)
#: Far above the policy's 256 characters: the policy gives the precise refusal, this
#: only keeps megabyte strings out of the service.
MAX_PASSWORD_INPUT: Final = 1024
MAX_LOGIN_INPUT: Final = 320
MAX_TOKEN_INPUT: Final = 128

Password = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PASSWORD_INPUT)]
Code = Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]
Token = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TOKEN_INPUT)]


def udms_service(request: Request) -> Udms:
    udms: Udms = request.app.state.udms
    return udms


UdmsDep = Annotated[Udms, Depends(udms_service)]
AnonymousDep = Annotated[audit.AuditContext, Depends(anonymous_context)]


class Problem(BaseModel):
    """An RFC 9457 problem document (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


_DESCRIPTIONS: Final = {
    400: "Malformed request, or a one-time code refused (code-refused)",
    401: "Not authenticated: bad credentials, token or challenge",
    403: "Not allowed",
    404: "Not found (or not yours)",
    409: "Conflict with the current state",
    413: "Request body too large",
    422: "Validation failed, password refused, or unknown fields sent",
    429: "Throttled: too many attempts or codes; see Retry-After",
    503: "A code could not be delivered",
}


def problem_docs(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": Problem, "description": _DESCRIPTIONS[s]} for s in (*statuses, 413, 422)}


def no_store(response: Response) -> None:
    """Token responses must not be cached (RFC 6749 5.1)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
