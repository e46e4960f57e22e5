"""Remote control through the RAS: commands to locks, and the locks' own events.

ISO/IEC 14543-5-104 "Control flow": a RAC asks the RAS (HTTPS) to operate a lock; the RAS
seals the frame under the lock key, relays it through the BGW that sees the lock (XMPP,
:mod:`heslock.ras.relay`) and verifies the lock's sealed answer. Modules::

    hosting   RelayHost: the relay endpoint, its bus, the event ingest and the reconciler
              of one RAS node
    service   POST /v1/locks/{id}/commands: idempotent, audited, never a blind re-send
    nearby    POST /v1/locks/{id}/frames: the same, the client carrying the frame over BLE
    reconcile unknown outcomes settled from the lock's status and log (read-only frames)
    events    lock events from the bus: opened, verified, stored, the lock's state updated
    errors    the service errors of all of them (codes registered in ras/api/problems.py)

The services depend only on :class:`heslock.ras.relay.LockBus`, so a cluster transport can
replace the in-process :class:`~heslock.ras.relay.LocalBus` without touching them.
"""
