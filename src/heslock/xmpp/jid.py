"""XMPP addresses (JIDs), RFC 7622: ``[localpart@]domainpart[/resourcepart]``.

The RAS routes on JIDs it issued itself (``<gateway-id>@<domain>/bgw``), so this is a
strict, small subset of RFC 7622 rather than full PRECIS: parts are checked for the length
limit of section 3.1 (1023 octets each) and for the characters section 3.3.1 forbids in a
localpart; the domainpart is lower-cased (section 3.2.1 for ASCII labels) and the localpart is
case-folded the way the RAS's own gateway ids are (lower-case ASCII). A JID that fails is
``jid-malformed`` (RFC 6120 section 8.3.3.8).
"""

from __future__ import annotations

from dataclasses import dataclass

from heslock.errors import PeerError

#: RFC 7622 section 3.1: each part is 1 to 1023 octets once encoded as UTF-8.
MAX_PART_BYTES = 1023
#: RFC 7622 section 3.3.1: characters a localpart must not contain.
_LOCAL_FORBIDDEN = frozenset("\"&'/:<>@ \t\r\n")


class JidMalformed(PeerError, ValueError):
    """A JID a peer sent does not parse (RFC 6120 section 8.3.3.8, ``jid-malformed``)."""


def _check_part(part: str, what: str) -> None:
    if not part:
        raise JidMalformed(f"empty {what}")
    if len(part.encode()) > MAX_PART_BYTES:
        raise JidMalformed(f"{what} longer than {MAX_PART_BYTES} octets")


def valid_localpart(text: str) -> bool:
    """Whether ``text`` can be a localpart (used to vet SASL user names before lookup)."""
    return 0 < len(text.encode()) <= MAX_PART_BYTES and not _LOCAL_FORBIDDEN.intersection(text)


@dataclass(frozen=True, slots=True)
class Jid:
    """A parsed JID; ``str(jid)`` is its canonical form."""

    local: str
    domain: str
    resource: str = ""

    @classmethod
    def parse(cls, text: str) -> Jid:
        """Parse ``text``; raises :class:`JidMalformed`."""
        rest, slash, resource = text.partition("/")
        if slash:
            _check_part(resource, "resourcepart")
        local, at, domain = rest.rpartition("@")
        if at:
            _check_part(local, "localpart")
            if _LOCAL_FORBIDDEN.intersection(local):
                raise JidMalformed("localpart contains a forbidden character")
        domain = domain.rstrip(".").lower()
        _check_part(domain, "domainpart")
        if _LOCAL_FORBIDDEN.intersection(domain):
            raise JidMalformed("domainpart contains a forbidden character")
        return cls(local.lower(), domain, resource)

    @property
    def bare(self) -> str:
        """``local@domain`` (or ``domain``): the account, without resource."""
        return f"{self.local}@{self.domain}" if self.local else self.domain

    @property
    def full(self) -> str:
        """The full JID text (the bare JID when there is no resource)."""
        return f"{self.bare}/{self.resource}" if self.resource else self.bare

    def with_resource(self, resource: str) -> Jid:
        """The same account with another resource."""
        _check_part(resource, "resourcepart")
        return Jid(self.local, self.domain, resource)

    def __str__(self) -> str:
        return self.full
