"""Step 1: the RAS runs its XMPP relay next to HTTPS; gateways created through the API log
in with the credentials it returned; revoking one ends its session for good."""

from __future__ import annotations

import asyncio
import logging

import pytest

from heslock.bgw import ras_client
from heslock.ras.services.scs.credentials import ScsCredentialStore
from heslock.xmpp import Jid
from tests.integration.ras.commands.conftest import WAIT_S, LogWaiter, Rig
from tests.support import auth

pytestmark = pytest.mark.timeout(60)


async def test_gateway_from_the_api_logs_in_and_revoke_ends_its_session(rig: Rig) -> None:
    account = await rig.create_gateway()
    bare = Jid.parse(account.jid).bare
    assert bare == f"{account.id}@localhost"
    gateway = await rig.start_gateway(account)
    assert rig.relay.endpoint.is_online(bare)
    info = rig.relay.endpoint.registry.get(bare)
    assert info is not None
    assert info.session == account.jid  # <id>@<domain>/bgw, as the API said
    assert gateway.ras.sessions == 1
    # The endpoint offers channel binding: the server certificate's DER is configured.
    assert rig.relay.endpoint.config.certificate_der is not None

    refused = LogWaiter("refused the gateway's credentials")
    logging.getLogger(ras_client.__name__).addHandler(refused)
    try:
        response = await rig.client.post(f"/v1/gateways/{account.id}/revoke", headers=auth("a"))
        assert response.status_code == 200, response.text
        offline = await rig.presence.next(lambda p: p.gateway == bare)
        assert not offline.online
        assert offline.session == account.jid
        assert not rig.relay.endpoint.is_online(bare)
        # The BGW tries again and is refused: the relay reads the revocation on each login.
        await asyncio.wait_for(refused.seen.wait(), WAIT_S)
    finally:
        logging.getLogger(ras_client.__name__).removeHandler(refused)
    assert not rig.relay.endpoint.is_online(bare)
    assert gateway.ras.sessions == 1
    store = ScsCredentialStore(rig.maker(), rig.settings.domain)
    assert await store.scram_sha256(account.id) is None


async def test_rotating_the_secret_ends_the_session_and_the_new_secret_logs_in(rig: Rig) -> None:
    account = await rig.create_gateway()
    bare = Jid.parse(account.jid).bare
    old = await rig.start_gateway(account)
    response = await rig.client.post(f"/v1/gateways/{account.id}/secret", headers=auth("a"))
    assert response.status_code == 200, response.text
    offline = await rig.presence.next(lambda p: p.gateway == bare)
    assert not offline.online
    await rig.stop_gateway(old)
    account.secret = response.json()["secret"]
    await rig.start_gateway(account)
    assert rig.relay.endpoint.is_online(bare)


async def test_stop_closes_the_relay_and_https(rig: Rig) -> None:
    account = await rig.create_gateway()
    await rig.start_gateway(account)
    await rig.server.stop()
    offline = await rig.presence.next(lambda p: p.gateway == Jid.parse(account.jid).bare)
    assert not offline.online
    assert not rig.relay.endpoint.running
    assert rig.relay.events._task is None
