"""RAS — the remote access server of ISO/IEC 14543-5-104: the system's trust anchor.

Layers, outermost first (each imports only the ones below it):

- ``heslock.cli.ras``   the ``heslock ras`` commands (typer): init, serve, migrate.
- ``ras.api``           FastAPI adapters: thin routers, problem details, middleware.
- ``ras.services``      the standard's services, knowing nothing of HTTP:
  UDMS (user data management), DDMS (device data management), SCS (security
  authentication: SASL verifiers, access control, audit).
- ``ras.store``         SQLAlchemy models, engine factory and the Alembic migration tree.
- ``ras.keystore``, ``ras.tls``, ``ras.passwords``: secrets at rest, certificates, hashing.
- ``ras.settings``      the one typed settings object, built only at entry points.
"""
