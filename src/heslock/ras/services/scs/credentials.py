"""The SCS credential store: SCRAM-SHA-256 verifiers of gateways, for the XMPP endpoint.

Implements :class:`heslock.xmpp.sasl.CredentialStore` over the RAS database. The SASL
username is the gateway id (the localpart of ``<gateway-id>@<domain>``). A revoked
gateway, a name that is no gateway id, or an unknown id all answer ``None``: the XMPP
side then runs the exchange against fake credentials and fails generically, so nothing
tells a guesser which ids exist (RFC 5802 section 5.1).
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from heslock.ras.store.models import Gateway
from heslock.xmpp.sasl import ScramCredentials


class ScsCredentialStore:
    """Looks verifiers up in ``gateways``; one short read-only session per lookup."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], domain: str) -> None:
        self._sessionmaker = sessionmaker
        self._domain = domain

    async def scram_sha256(self, username: str) -> ScramCredentials | None:
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
        )
