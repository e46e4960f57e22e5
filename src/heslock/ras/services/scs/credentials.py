"""The SCS credential store: SCRAM-SHA-256 verifiers for the XMPP endpoint.

Implements :class:`heslock.xmpp.sasl.CredentialStore` over the RAS database, for two
kinds of entity told apart by the SASL username's shape:

- a gateway's username is its id, a UUID (the localpart of ``<gateway-id>@<domain>``),
  looked up in ``gateways`` (kind ``gateway``);
- a person's XMPP login is ``p-<20 hex digits>``
  (:func:`heslock.ras.services.xmppusers.logins.is_login_username`), looked up in
  ``xmpp_logins`` (kind ``person``, with the person's id as owner).

The kind travels with the verifier to the session, and the XMPP server routes by it
(:mod:`heslock.xmpp.server`, "Authorisation"). A revoked gateway or login, a deleted
person, a name of neither shape, or an unknown one all answer ``None``: the XMPP side
then runs the exchange against fake credentials and fails generically, so nothing tells
a guesser which names exist (RFC 5802 section 5.1).
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from heslock.ras.services.xmppusers import logins
from heslock.ras.store.models import Gateway
from heslock.xmpp.sasl import EntityKind, ScramCredentials


class ScsCredentialStore:
    """Looks verifiers up in ``gateways``; one short read-only session per lookup."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], domain: str) -> None:
        self._sessionmaker = sessionmaker
        self._domain = domain

    async def scram_sha256(self, username: str) -> ScramCredentials | None:
        if logins.is_login_username(username):
            async with self._sessionmaker() as session:
                return await logins.credentials(session, username)
        try:
            gateway_id = uuid.UUID(username)
        except ValueError:
            return None
        if str(gateway_id) != username.lower():
            return None  # only the canonical spelling is a gateway's name
        query = select(Gateway).where(
            Gateway.id == gateway_id,
            Gateway.revoked_at.is_(None),
            Gateway.jid == f"{gateway_id}@{self._domain}",
        )
        async with self._sessionmaker() as session:
            gateway = (await session.execute(query)).scalar_one_or_none()
        if gateway is None:
            return None
        return ScramCredentials(
            gateway.scram_salt,
            gateway.scram_stored_key,
            gateway.scram_server_key,
            gateway.scram_iterations,
            kind=EntityKind.GATEWAY,
        )
