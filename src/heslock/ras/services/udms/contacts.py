"""UDMS contacts: phone numbers in E.164 and e-mail addresses, parsed and normalised.

ISO/IEC 14543-5-104 has users register "with a mobile phone number or e-mail address".
One canonical spelling per contact makes the ``(kind, address)`` uniqueness meaningful:

- Phone numbers are parsed and validated by ``phonenumbers`` (Google's libphonenumber
  metadata) and stored in E.164 (ITU-T E.164: ``+`` and at most 15 digits). Only the
  international form is accepted: with no region to assume, ``0151...`` is ambiguous.
- E-mail addresses (RFC 5321 lengths: local part 64, domain 255, whole 320) are trimmed
  and lower-cased entirely. RFC 5321 lets the local part be case-sensitive, but no
  mainstream provider treats it so, and two accounts for ``Bob@`` and ``bob@`` would be
  a takeover trap. Internationalised domains are stored in their ASCII (IDNA) form.
"""

from __future__ import annotations

import re
from typing import Final

import phonenumbers

from heslock.ras.services.errors import InvalidInput
from heslock.ras.store.models import ContactKind

MAX_LOCAL_PART: Final = 64  # RFC 5321 4.5.3.1.1
MAX_DOMAIN: Final = 255  # RFC 5321 4.5.3.1.2
MAX_ADDRESS: Final = 320  # local + "@" + domain, the usual bound
#: Longest raw phone input we parse (E.164 is 15 digits; spaces, dashes, "+" around them).
MAX_PHONE_INPUT: Final = 32

_LOCAL_RE: Final = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
_LABEL_RE: Final = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def normalise_email(text: str) -> str:
    """The canonical form of an e-mail address, or :class:`InvalidInput`."""
    address = text.strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or len(address) > MAX_ADDRESS:
        raise InvalidInput("not an e-mail address")
    if len(local) > MAX_LOCAL_PART or not _LOCAL_RE.match(local):
        raise InvalidInput("the part before @ is not a valid mailbox name")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise InvalidInput("the part before @ is not a valid mailbox name")
    try:
        ascii_domain = domain.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise InvalidInput("the domain of the e-mail address is not valid") from None
    labels = ascii_domain.split(".")
    if len(ascii_domain) > MAX_DOMAIN or not all(_LABEL_RE.match(label) for label in labels):
        raise InvalidInput("the domain of the e-mail address is not valid")
    return f"{local.lower()}@{ascii_domain}"


def normalise_phone(text: str) -> str:
    """The E.164 form of an international phone number, or :class:`InvalidInput`."""
    raw = text.strip()
    if len(raw) > MAX_PHONE_INPUT or not raw.startswith("+"):
        raise InvalidInput("a phone number must be in international form, e.g. +44 20 7946 0958")
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        raise InvalidInput("not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput("not a valid phone number for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise(kind: ContactKind, text: str) -> str:
    return normalise_phone(text) if kind is ContactKind.PHONE else normalise_email(text)


def guess_kind(login: str) -> ContactKind:
    """A login is an e-mail address if it has an ``@``, else a phone number."""
    return ContactKind.EMAIL if "@" in login else ContactKind.PHONE


def mask(kind: ContactKind, address: str) -> str:
    """A hint for the user ("which phone?") that does not give the address away."""
    if kind is ContactKind.PHONE:
        return address[:3] + "*" * max(len(address) - 6, 0) + address[-3:]
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"
