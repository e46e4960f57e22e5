"""Waking the live streams of this node when a feed event has been committed.

:func:`heslock.ras.services.feed.publish.publish` writes in the caller's transaction and
marks the session; :func:`_after_commit` (a SQLAlchemy ``after_commit`` listener on every
:class:`~sqlalchemy.orm.Session`) pokes the node's :data:`NOTIFIER` once that transaction
has committed, never before (a stream woken early would read nothing and sleep again)
and never after a rollback (the mark is dropped).

A stream does not trust the poke for content: it only means "read the table again after
your cursor". So a lost or spurious poke costs nothing but latency, and each stream also
reads again at every heartbeat (:data:`~heslock.ras.services.feed.stream.HEARTBEAT_S`)
whatever happens. That is what makes a cluster work without this module: events published
on another RAS node reach this node's streams within one heartbeat. **A cluster replaces
the poke with a NATS subject** (``heslock.feed``: each node publishes the new id after its
commit and every node's subscriber calls :meth:`FeedNotifier.poke`), giving cross-node
latency of a NATS hop instead of a heartbeat.

Waiters are futures of whatever event loop they run on (tests run one loop each; the
server one); :meth:`FeedNotifier.poke` resolves them through their own loop, so it may be
called from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

from sqlalchemy import event
from sqlalchemy.orm import Session

#: ``session.info`` key: this transaction published feed events.
PUBLISHED_KEY: Final = "heslock.feed.published"


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class FeedNotifier:
    """A generation counter and the futures waiting for it to move (module docstring)."""

    def __init__(self) -> None:
        self.generation = 0
        self._waiters: set[asyncio.Future[None]] = set()

    def poke(self) -> None:
        """Something was committed: bump the generation and wake every waiter."""
        self.generation += 1
        waiters, self._waiters = self._waiters, set()
        for future in waiters:
            with contextlib.suppress(RuntimeError):  # its loop is closed: nobody waits
                future.get_loop().call_soon_threadsafe(_resolve, future)

    async def wait(self, seen: int, timeout_s: float) -> bool:
        """Until the generation differs from ``seen`` (True) or ``timeout_s`` passed."""
        if self.generation != seen:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(future)
        try:
            await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return self.generation != seen
        finally:
            self._waiters.discard(future)
        return True

    @property
    def waiting(self) -> int:
        return len(self._waiters)


#: The node's notifier (one per process: every stream and publisher of this node).
NOTIFIER: Final = FeedNotifier()


def mark_published(session: Session) -> None:
    session.info[PUBLISHED_KEY] = True


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(PUBLISHED_KEY, False):
        NOTIFIER.poke()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(PUBLISHED_KEY, None)
