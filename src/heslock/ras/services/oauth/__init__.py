"""OAuth 2.0 authorisation server for third-party services (TPSP, issue 8).

- :mod:`.scopes` (pure): the scopes, what sharing permissions each maps onto, and which
  RAS routes an app may call with which scope (everything else refuses apps).
- :mod:`.secrets`: token, code, ticket and client-secret formats and their hashes.
- :mod:`.store`: clients, grants, codes, token families (rotation, reuse detection),
  consent tickets, and the authenticator that turns an app's access token into a
  :class:`~heslock.ras.services.access.Principal`.
- :mod:`.server`: authlib's ``AuthorizationServer`` with our grants and endpoints and
  the small Starlette adapter authlib needs (it has no Starlette server integration).
- :mod:`.gate`: the per-request check of what an app's token may reach.
"""
