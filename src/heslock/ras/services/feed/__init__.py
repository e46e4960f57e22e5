"""The user-visible event feed (issue 7, "Live events").

- :mod:`.publish` -- :func:`~.publish.publish` writes one event in the caller's
  transaction (lock events, command outcomes, connectivity);
- :mod:`.notifier` -- wakes this node's live streams after the commit (the point where a
  cluster would use NATS);
- :mod:`.visibility` and :mod:`.query` -- who sees what, filtered and paged by id;
- :mod:`.stream` -- Server-Sent Events, resumable with ``Last-Event-ID``;
- :mod:`.monitor` -- gateway and lock online/offline from the relay's notices;
- :mod:`.retention` -- old events deleted after ``feed_retention_days``.

Storage: ``feed_events`` (:mod:`heslock.ras.store.models.feed`).
"""
