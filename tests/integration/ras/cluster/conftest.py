"""The cluster tests: NatsBus between relays, and `heslock ras serve --workers`."""

from tests.integration.ras.relay.conftest import tls  # noqa: F401 - the session TLS fixture
