"""UDMS password policy (NIST SP 800-63B, 3.1.1.2 "Memorized Secret Verifiers").

What it checks, and why:

- **Length** in Unicode code points after NFKC normalisation (NIST asks to normalise
  before hashing, so one password typed on two keyboards is one password):
  at least :data:`MIN_LENGTH`, at most :data:`MAX_LENGTH`.
- **Blocklist**: the candidate, case-folded, is not in :mod:`.blocklist`.
- **Repetitive or sequential** values (NIST's own examples: "aaaaaa", "1234abcd"): a
  password that is one short unit repeated, or a run of consecutive characters.
- **Context-specific words**: not the service name, and not containing the user's
  e-mail local part or the digits of their phone number.
- **No composition rules** (no "one upper, one digit, one symbol"): NIST says SHALL NOT,
  because they make passwords harder to remember and barely harder to guess.

Hashing (argon2id) lives in :mod:`heslock.ras.passwords`; this module only decides.
"""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Iterable
from functools import cache
from typing import Final

from heslock.ras.services.udms import blocklist
from heslock.ras.services.udms.errors import PasswordRefused

#: NIST SP 800-63B-4 asks for at least 15 characters when a password is the only factor
#: and allows 8 when it is one of two. heslock always requires a second factor, but a
#: password here guards physical doors and is attacked online from anywhere: 12 gives
#: a margin over 8 (a 12-character passphrase resists guessing far beyond any throttled
#: online attack) without pushing users to the sticky note.
MIN_LENGTH: Final = 12
#: NIST requires accepting at least 64 characters; 256 is generous for passphrases and
#: bounds the work one argon2 call can be made to do with a huge input.
MAX_LENGTH: Final = 256
#: A repeated unit this short makes the password trivially guessable ("abcabcabcabc").
MAX_REPEATED_UNIT: Final = 4
#: Context fragments shorter than this are too common to refuse ("al" in "always").
MIN_CONTEXT_FRAGMENT: Final = 3
#: The trailing digits of a phone number that identify it well enough to refuse.
PHONE_DIGITS_CHECKED: Final = 7
#: Words tied to this service (NIST: "context-specific words").
SERVICE_WORDS: Final = ("heslock",)


def normalise(password: str) -> str:
    """NFKC, as NIST SP 800-63B 5.1.1.2 recommends before hashing."""
    return unicodedata.normalize("NFKC", password)


@cache
def _blocklist() -> frozenset[str]:
    return frozenset(line for line in blocklist.ENTRIES.splitlines() if line)


def is_common(password: str) -> bool:
    return normalise(password).casefold() in _blocklist()


def _is_repetitive(text: str) -> bool:
    for unit in range(1, MAX_REPEATED_UNIT + 1):
        if len(text) % unit == 0 and text[:unit] * (len(text) // unit) == text:
            return True
    return False


def _is_sequential(text: str) -> bool:
    """Every character one step after (or before) the previous one, digits wrapping 9->0."""

    def step(a: str, b: str) -> int | None:
        if a.isdigit() and b.isdigit():
            return (int(b) - int(a)) % 10
        return ord(b) - ord(a)

    steps = {step(a, b) for a, b in itertools.pairwise(text)}
    return steps in ({1}, {-1}, {9})


def problems(password: str, context: Iterable[str] = ()) -> list[str]:
    """Why ``password`` is refused (empty when it is acceptable).

    ``context`` holds the user's contacts (e-mail addresses, E.164 numbers).
    """
    candidate = normalise(password)
    found: list[str] = []
    if len(candidate) < MIN_LENGTH:
        found.append(f"shorter than {MIN_LENGTH} characters")
    if len(candidate) > MAX_LENGTH:
        found.append(f"longer than {MAX_LENGTH} characters")
        return found
    folded = candidate.casefold()
    if folded in _blocklist():
        found.append("a commonly used password")
    if _is_repetitive(folded) or _is_sequential(folded):
        found.append("a repetitive or sequential pattern")
    if any(word in folded for word in SERVICE_WORDS):
        found.append("contains the name of this service")
    for item in context:
        if "@" in item:
            local = item.partition("@")[0].casefold()
            if len(local) >= MIN_CONTEXT_FRAGMENT and local in folded:
                found.append("contains your e-mail address")
        else:
            digits = "".join(ch for ch in item if ch.isdigit())[-PHONE_DIGITS_CHECKED:]
            if len(digits) >= MIN_CONTEXT_FRAGMENT and digits in candidate:
                found.append("contains your phone number")
    return found


def check(password: str, context: Iterable[str] = ()) -> str:
    """The normalised password if acceptable, else :class:`PasswordRefused`."""
    found = problems(password, context)
    if found:
        raise PasswordRefused("password refused: " + "; ".join(found), reasons=found)
    return normalise(password)
