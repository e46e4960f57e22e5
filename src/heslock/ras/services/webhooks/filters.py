"""Which feed kinds a subscription wants (pure): exact kinds, ``family.*``, or ``*``."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

#: Kinds per subscription at most.
MAX_FILTERS: Final = 32
_KIND: Final = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*(\.\*)?$")


class FilterError(ValueError):
    """An event filter that is not a list of kinds, ``family.*`` or ``*``."""


def normalise(events: Sequence[str]) -> list[str]:
    """Validated, de-duplicated, sorted; FilterError otherwise."""
    if not events:
        raise FilterError("name at least one event kind (or *)")
    if len(events) > MAX_FILTERS:
        raise FilterError(f"at most {MAX_FILTERS} event kinds")
    for kind in events:
        if not isinstance(kind, str) or not (
            kind == "*" or (len(kind) <= 48 and _KIND.match(kind))
        ):
            raise FilterError("an event kind is like lock.manual_operation, lock.* or *")
    return sorted(set(events))


def matches(kind: str, events: Iterable[str]) -> bool:
    """Whether ``kind`` is wanted by ``events``."""
    for wanted in events:
        if wanted in ("*", kind):
            return True
        if wanted.endswith(".*") and kind.startswith(wanted[:-1]):
            return True
    return False
