"""People's XMPP logins and the live events pushed to their sessions (issue 7).

- :mod:`.logins` -- create (password shown once, SCRAM verifiers kept), list, revoke,
  look up (for the SCS credential store), forget with the account;
- :mod:`.wire` -- the ``urn:heslock:events:1`` codec: headline messages, resume IQ;
- :mod:`.delivery` -- in the RAS process next to the relay: pushes each feed event to
  every session of each person who may see it, answers resume requests, closes the
  sessions of revoked logins.

Storage: ``xmpp_logins`` (:mod:`heslock.ras.store.models.xmpp`).
"""
