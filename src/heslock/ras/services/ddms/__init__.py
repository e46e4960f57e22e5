"""DDMS — device data management service of ISO/IEC 14543-5-104, free of any web framework.

- :mod:`.importer`      the makers' factory records (CSV/JSON) into ``devices``.
- :mod:`.devices`       the legitimacy check (the standard's 0/1 answer) and device admin.
- :mod:`.registration`  the two-stage key negotiation, RAS side, driven by a relay (a RAC
  over BLE or a BGW over XMPP) and kept in the database so any RAS node continues it.
- :mod:`.locks`         bound locks: read, rename, unbind, transfer, key rotation.
- :mod:`.gateways`      BGW accounts and their SCRAM-SHA-256 verifiers (SCS).
- :mod:`.runtime`       what the services need from their host: a clock and session hooks.

HTTP routers (``ras/api/routers``) and the XMPP side call these functions with an
``AsyncSession`` they own; every function adds its audit record to that session.
"""
