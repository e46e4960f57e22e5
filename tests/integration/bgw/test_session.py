"""The gateway's XMPP session: certificate checks and reconnecting after a RAS restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from heslock.bgw import Gateway, TlsVerificationFailed
from heslock.bgw.config import TlsMode
from heslock.bsld.peripheral import LockPeripheral
from heslock.protocol import BoltState, OperationOp
from heslock.protocol.makers import LUMEN
from heslock.xmpp import ScramCredentials
from heslock.xmpp.lockns import GatewayStatus
from tests.integration.bgw.conftest import (
    GATEWAY_JID,
    WAIT_S,
    Rig,
    bolt_frame,
    gateway_config,
    start_ras,
)
from tests.integration.bgw.test_gateway import bolt_of
from tests.integration.ble.air import Air
from tests.integration.xmpp.pki import Pki

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("tls", list(TlsMode), ids=lambda t: t.value)
async def test_untrusted_certificate_aborts(
    tmp_path: Path, pki: Pki, credentials: dict[str, ScramCredentials], tls: TlsMode
) -> None:
    ras = await start_ras(pki, credentials)
    air = Air(tmp_path)
    port = ras.server.ports["direct_tls" if tls is TlsMode.DIRECT else "starttls"]
    gateway = Gateway(gateway_config(pki.other_ca_pem, port, tls=tls), local=air.vlink)
    try:
        with pytest.raises(TlsVerificationFailed, match="does not verify against"):
            await asyncio.wait_for(gateway.run(), WAIT_S)
        assert gateway.ras.sessions == 0
        assert ras.server.online == frozenset()
        assert ras.presence.events.empty()
    finally:
        await gateway.stop()
        await ras.server.stop()
        await air.close()


async def test_starttls_login_works(rig: Rig) -> None:
    config = gateway_config(rig.pki.ca_pem, rig.ras.server.ports["starttls"], tls=TlsMode.STARTTLS)
    rig.gateway = Gateway(config, local=rig.air.vlink)
    await rig.gateway.start()
    assert await rig.ras.presence.next() == (GATEWAY_JID, True)
    status = await rig.ras.next_payload(GatewayStatus)
    assert status.max_links == 10


async def test_reconnects_after_the_ras_restarts(
    rig: Rig, pki: Pki, credentials: dict[str, ScramCredentials]
) -> None:
    peripheral, ras = await rig.add_lock(LUMEN)
    assert isinstance(peripheral, LockPeripheral)
    gateway = await rig.start_gateway()
    assert await rig.ras.presence.next() == (GATEWAY_JID, True)
    await rig.register(ras)

    port = rig.ras.port
    await rig.ras.server.stop()
    rig.ras = await start_ras(pki, credentials, port=port, starttls_port=0)
    # The gateway comes back by itself (its own back-off) and announces itself again.
    assert await rig.ras.presence.next() == (GATEWAY_JID, True)
    assert gateway.ras.sessions == 2
    answer = await rig.ras.frame(ras.device_id, bolt_frame(ras, OperationOp.UNLOCK))
    assert bolt_of(ras, answer) is BoltState.UNLOCKED
