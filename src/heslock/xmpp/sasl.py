"""SASL SCRAM-SHA-256 and SCRAM-SHA-256-PLUS for the RAS's XMPP endpoint (the SCS's check).

RFC 6120 section 6 carries SASL; RFC 5802 / RFC 7677 define SCRAM-SHA-256; RFC 5929
section 4 defines the ``tls-server-end-point`` channel binding used by the ``-PLUS``
variant. The cryptography is ``scramp``'s; this module adapts it to an asyncio server:

1. ``<auth mechanism='SCRAM-SHA-256[-PLUS]'>`` carries client-first. We read the GS2 header
   and ``n=`` ourselves (:func:`parse_client_first`), because scramp's ``auth_fn`` is
   synchronous while the SCS credential store is asynchronous.
2. The session awaits :meth:`CredentialStore.scram_sha256`, then hands scramp a closure over
   the result (:class:`ScramExchange`). An unknown user gets a *fake* credential derived
   from a per-process secret, so the exchange runs to the end and fails with the same
   generic ``not-authorized`` as a wrong password: nothing tells a guesser which accounts
   exist (RFC 5802 section 5.1 allows this; scramp's ``unknown-user`` would reveal it).
3. Channel binding is attached only to ``-PLUS``. A client that answers ``y`` (it believes
   we do not support binding) while we offered ``-PLUS`` is refused: that is the downgrade
   RFC 5802 section 6 tells the server to detect.

No PLAIN, ever: the only mechanisms are the two above (issue 5).

Each verifier says which kind of entity it authenticates (:class:`EntityKind`): the RAS's
gateways, or people's XMPP logins (issue 7). The server routes by that kind
(:mod:`heslock.xmpp.server`, "Authorisation"), so a person's session can never address
a gateway whatever JID it names.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from scramp import ScramException, ScramMechanism
from scramp.utils import saslprep

from heslock.xmpp.errors import SaslFailure

MECH_SCRAM: Final = "SCRAM-SHA-256"
MECH_SCRAM_PLUS: Final = "SCRAM-SHA-256-PLUS"
CHANNEL_BINDING_TYPE: Final = "tls-server-end-point"
#: RFC 7677 section 4: at least 4096 iterations. Used for fake credentials, so that an
#: unknown user's challenge looks like a real one.
FAKE_ITERATIONS: Final = 4096
#: Longest SASL message accepted (client-first/client-final are ~100-300 bytes).
MAX_SASL_MESSAGE: Final = 4096

_MECHANISMS = {
    MECH_SCRAM: ScramMechanism(MECH_SCRAM),
    MECH_SCRAM_PLUS: ScramMechanism(MECH_SCRAM_PLUS),
}
_FAKE_SECRET = secrets.token_bytes(32)


class EntityKind(StrEnum):
    """Who a verifier authenticates: the server's routing rules depend on it."""

    #: A BGW: talks to the RAS (frames, lock events, scans), never to people.
    GATEWAY = "gateway"
    #: A person's XMPP login (an "app password"): receives their live events, reaches
    #: nothing but the RAS's own services for people.
    PERSON = "person"


class SaslError(Exception):
    """A SASL exchange ends with ``<failure><CONDITION/></failure>``."""

    def __init__(self, condition: SaslFailure) -> None:
        super().__init__(condition.value)
        self.condition = condition


@dataclass(frozen=True, slots=True)
class ScramCredentials:
    """A stored SCRAM-SHA-256 verifier (scramp's ``make_auth_info`` tuple, RFC 5802 3)."""

    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int
    #: What the credential authenticates (the routing rules follow it).
    kind: EntityKind = EntityKind.GATEWAY
    #: An opaque id of the account behind a person's login (the RAS's user id), handed
    #: to the server's :class:`~heslock.xmpp.server.PersonListener`; empty for gateways.
    owner: str = ""

    @classmethod
    def from_auth_info(
        cls,
        info: tuple[bytes, bytes, bytes, int],
        kind: EntityKind = EntityKind.GATEWAY,
        owner: str = "",
    ) -> ScramCredentials:
        """From ``ScramMechanism('SCRAM-SHA-256').make_auth_info(password)``."""
        return cls(*info, kind=kind, owner=owner)

    @classmethod
    def from_password(
        cls,
        password: str,
        iterations: int = FAKE_ITERATIONS,
        kind: EntityKind = EntityKind.GATEWAY,
        owner: str = "",
    ) -> ScramCredentials:
        """Derive a verifier (for provisioning and tests; the store keeps only the result)."""
        salt, stored, server, count = _MECHANISMS[MECH_SCRAM].make_auth_info(
            password, iteration_count=iterations
        )
        return cls(salt, stored, server, count, kind=kind, owner=owner)

    def auth_info(self) -> tuple[bytes, bytes, bytes, int]:
        """The tuple scramp's ``auth_fn`` returns."""
        return (self.salt, self.stored_key, self.server_key, self.iterations)


class CredentialStore(Protocol):
    """Where the SCS keeps SCRAM verifiers; the RAS implements it over its database."""

    async def scram_sha256(self, username: str) -> ScramCredentials | None:
        """The verifier of ``username`` (SASLprep'ed localpart), or ``None`` if unknown."""
        ...


def tls_server_end_point(cert_der: bytes) -> bytes:
    """Channel-binding data for ``tls-server-end-point`` (RFC 5929 section 4.1).

    The hash of the server certificate with its signature's hash function, SHA-256 when
    that is MD5 or SHA-1.
    """
    algorithm = x509.load_der_x509_certificate(cert_der).signature_hash_algorithm
    if algorithm is None or isinstance(algorithm, hashes.MD5 | hashes.SHA1):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(cert_der)
    return digest.finalize()


def _unescape_saslname(name: str) -> str:
    if "=" in name.replace("=2C", "").replace("=3D", ""):
        raise SaslError(SaslFailure.MALFORMED_REQUEST)
    return name.replace("=2C", ",").replace("=3D", "=")


def parse_client_first(message: str) -> tuple[str, str]:
    """(GS2 channel-binding flag, SASLprep'ed username) of a SCRAM client-first message."""
    parts = message.split(",", 3)
    if len(parts) < 4 or parts[1] or not parts[2].startswith("n="):
        # parts[1] is the authzid: we accept none (the identity is the authcid)
        raise SaslError(SaslFailure.MALFORMED_REQUEST)
    flag = parts[0]
    if flag not in ("n", "y") and not flag.startswith("p="):
        raise SaslError(SaslFailure.MALFORMED_REQUEST)
    try:
        username = saslprep(_unescape_saslname(parts[2][2:]))
    except ScramException:
        raise SaslError(SaslFailure.MALFORMED_REQUEST) from None
    if not username:
        raise SaslError(SaslFailure.MALFORMED_REQUEST)
    return flag, username


def fake_credentials(username: str) -> ScramCredentials:
    """A stable, unguessable verifier for an account that does not exist."""
    seed = hmac.new(_FAKE_SECRET, username.encode(), hashlib.sha256).digest()
    return ScramCredentials(seed[:16], secrets.token_bytes(32), seed[16:], FAKE_ITERATIONS)


class ScramExchange:
    """One SCRAM exchange after the credentials are known (RFC 5802 section 5)."""

    __slots__ = ("_genuine", "_server", "kind", "owner", "username")

    def __init__(
        self,
        mechanism: str,
        credentials: ScramCredentials | None,
        username: str,
        channel_binding: bytes | None,
        server_nonce: str | None = None,
    ) -> None:
        self._genuine = credentials is not None
        self.username = username
        self.kind = credentials.kind if credentials is not None else EntityKind.GATEWAY
        self.owner = credentials.owner if credentials is not None else ""
        info = (credentials or fake_credentials(username)).auth_info()
        binding = (CHANNEL_BINDING_TYPE, channel_binding) if mechanism == MECH_SCRAM_PLUS else None
        # server_nonce exists for the RFC 7677 test vector; by default scramp draws one
        # from the secrets module
        self._server = _MECHANISMS[mechanism].make_server(
            lambda _name: info, channel_binding=binding, s_nonce=server_nonce
        )

    def first(self, client_first: str) -> str:
        """Server-first for ``client_first``; raises :class:`SaslError`."""
        try:
            self._server.set_client_first(client_first)
            return str(self._server.get_server_first())
        except ScramException:
            raise SaslError(SaslFailure.NOT_AUTHORIZED) from None

    def final(self, client_final: str) -> str:
        """Server-final (the ``<success/>`` payload) if the proof is right."""
        try:
            self._server.set_client_final(client_final)
            server_final = str(self._server.get_server_final())
        except ScramException:
            raise SaslError(SaslFailure.NOT_AUTHORIZED) from None
        if not self._genuine:  # unreachable with random stored keys; kept explicit
            raise SaslError(SaslFailure.NOT_AUTHORIZED)
        return server_final
