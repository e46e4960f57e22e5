"""Scopes, the sharing permissions they map onto, and the routes apps may call (pure).

A scope never *adds* anything: an app's token acts for the user who granted it with the
permissions below **intersected** with whatever the user holds on the lock at the time
of each request (:func:`heslock.ras.services.sharing.policy.decide`, ``scope=``):

===============  ================================  =====================================
scope            permissions                       what the app may do
===============  ================================  =====================================
locks:read       view_status                       list and read locks, ask for status
locks:lock       lock                              lock (never unlock)
locks:operate    operate (implies lock)            unlock and lock
events:read      view_log                          read a lock's event log
shares:manage    manage_shares                     grant, change, revoke shares
===============  ================================  =====================================

**Routes.** An app's token is refused (403) on every route not in :data:`ROUTES`: the
table fails closed, so a route added later stays closed to apps until listed here.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Final

from heslock.ras.services.sharing.policy import (
    LockAction,
    Permission,
    closure,
    required_permission,
)


class Scope(StrEnum):
    LOCKS_READ = "locks:read"
    LOCKS_LOCK = "locks:lock"
    LOCKS_OPERATE = "locks:operate"
    EVENTS_READ = "events:read"
    SHARES_MANAGE = "shares:manage"


ALL_SCOPES: Final = frozenset(Scope)

#: What each scope lets an app do, as sharing permissions (module docstring).
PERMISSIONS: Final[dict[Scope, frozenset[Permission]]] = {
    Scope.LOCKS_READ: frozenset({Permission.VIEW_STATUS}),
    Scope.LOCKS_LOCK: frozenset({Permission.LOCK}),
    Scope.LOCKS_OPERATE: frozenset({Permission.OPERATE, Permission.LOCK}),
    Scope.EVENTS_READ: frozenset({Permission.VIEW_LOG}),
    Scope.SHARES_MANAGE: frozenset({Permission.MANAGE_SHARES}),
}

#: Shown on the consent page, one line per scope.
DESCRIPTIONS: Final[dict[Scope, str]] = {
    Scope.LOCKS_READ: "See your locks and whether they are locked",
    Scope.LOCKS_LOCK: "Lock your locks (never unlock them)",
    Scope.LOCKS_OPERATE: "Unlock and lock your locks",
    Scope.EVENTS_READ: "Read your locks' event logs (who came and went when)",
    Scope.SHARES_MANAGE: "Give, change and take back other people's access to your locks",
}

#: The longest scope string accepted (every scope once, space-separated, fits).
MAX_SCOPE_LEN: Final = 256


class ScopeError(ValueError):
    """A scope string that is not a set of known scopes."""


def parse(text: str | None) -> frozenset[Scope]:
    """The scopes of an RFC 6749 scope string; :class:`ScopeError` for anything unknown."""
    if not text:
        return frozenset()
    if len(text) > MAX_SCOPE_LEN:
        raise ScopeError("the scope is too long")
    found: set[Scope] = set()
    for word in text.split(" "):
        try:
            found.add(Scope(word))
        except ValueError:
            raise ScopeError("unknown scope") from None
    return frozenset(found)


def render(scopes: Iterable[Scope | str]) -> str:
    """The canonical scope string: sorted, space-separated."""
    return " ".join(sorted(str(s) for s in scopes))


def permissions_of(scopes: Iterable[Scope]) -> frozenset[Permission]:
    """The sharing permissions ``scopes`` allow (with their implications)."""
    found: set[Permission] = set()
    for scope in scopes:
        found |= PERMISSIONS[scope]
    return closure(found)


#: Lock commands (``POST /v1/locks/{id}/commands`` body ``command``) -> what they need.
COMMAND_ACTIONS: Final[dict[str, LockAction]] = {
    "unlock": LockAction.UNLOCK,
    "lock": LockAction.LOCK,
    "status": LockAction.STATUS,
}

_LOCK_SCOPES: Final = frozenset({Scope.LOCKS_READ, Scope.LOCKS_LOCK, Scope.LOCKS_OPERATE})
_ANY: Final = ALL_SCOPES
_SHARES: Final = frozenset({Scope.SHARES_MANAGE})
_EVENTS: Final = frozenset({Scope.EVENTS_READ})

#: (method, route template) -> the scopes of which a token needs at least one.
ROUTES: Final[dict[tuple[str, str], frozenset[Scope]]] = {
    ("GET", "/v1/locks"): _ANY,
    ("GET", "/v1/locks/{lock_id}"): _ANY,
    ("POST", "/v1/locks/{lock_id}/commands"): _LOCK_SCOPES,
    ("GET", "/v1/locks/{lock_id}/events"): frozenset({Scope.EVENTS_READ}),
    ("GET", "/v1/locks/{lock_id}/shares"): _SHARES,
    ("POST", "/v1/shares"): _SHARES,
    ("GET", "/v1/shares/{share_id}"): _SHARES,
    ("PATCH", "/v1/shares/{share_id}"): _SHARES,
    ("POST", "/v1/shares/{share_id}/revoke"): _SHARES,
    # The event feed and webhooks (issue 8): the grant's locks' events only.
    ("GET", "/v1/events"): _EVENTS,
    ("GET", "/v1/events/stream"): _EVENTS,
    ("POST", "/v1/webhooks"): _EVENTS,
    ("GET", "/v1/webhooks"): _EVENTS,
    ("GET", "/v1/webhooks/{webhook_id}"): _EVENTS,
    ("DELETE", "/v1/webhooks/{webhook_id}"): _EVENTS,
    ("POST", "/v1/webhooks/{webhook_id}/rotate"): _EVENTS,
    ("POST", "/v1/webhooks/{webhook_id}/enable"): _EVENTS,
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): _EVENTS,
}


def route_allows(method: str, template: str, scopes: Iterable[Scope]) -> bool:
    """Whether a token with ``scopes`` may call ``method template`` at all."""
    needed = ROUTES.get((method.upper(), template))
    return needed is not None and bool(needed & frozenset(scopes))


def command_allowed(command: object, permissions: frozenset[Permission]) -> bool:
    """Whether ``permissions`` cover the lock command named ``command`` (unknown: no)."""
    if not isinstance(command, str) or command not in COMMAND_ACTIONS:
        return False
    return required_permission(COMMAND_ACTIONS[command]) in closure(permissions)
