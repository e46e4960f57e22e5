"""The RAS services of ISO/IEC 14543-5-104, free of any web framework.

- UDMS (user data management), DDMS (device data management) and SCS (security
  authentication) live here, one module per concern; HTTP routers and XMPP handlers are
  thin adapters over them.
- Foundation modules: :mod:`.errors` (what services raise), :mod:`.access` (the one
  authorisation check), :mod:`.audit` (the append-only audit trail), :mod:`.health`.
"""
