"""Signed webhooks for third-party apps (TPSP, issue 8).

An app with an OAuth 2.0 token of scope ``events:read`` subscribes a URL to feed event
kinds (:mod:`.store`, routes in :mod:`heslock.ras.api.routers.webhooks`). The
:class:`~.dispatcher.WebhookDispatcher`, started with the relay's background tasks,
reads the durable feed (``feed_events``) after each subscription's cursor, keeps what
the app may see under its grant (:mod:`heslock.ras.services.feed.visibility`, the rule
of ``GET /v1/events``) and POSTs it, signed per Standard Webhooks (:mod:`.signing`),
at least once, retrying with exponential back-off and jitter (:mod:`.backoff`).
Destinations are checked against SSRF (:mod:`.urls`).
"""
