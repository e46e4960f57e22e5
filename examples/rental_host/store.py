"""The app's state in one SQLite file (or ``:memory:``): the host's tokens, pending
authorisations, the webhook subscription, bookings and the webhook ids already handled.

SQLite through the standard library, one connection, every call short: enough for a
single host's tool. The file is created private (0600): it holds the host's refresh
token and the webhook secret.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS connection (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    token TEXT NOT NULL,            -- the OAuth token response (JSON), the newest only
    connected_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS pending (
    state TEXT PRIMARY KEY,
    code_verifier TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS subscription (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS booking (
    id TEXT PRIMARY KEY,
    lock_id TEXT NOT NULL,
    lock_name TEXT NOT NULL,
    guest TEXT NOT NULL,            -- e-mail address or phone number
    check_in TEXT NOT NULL,         -- ISO 8601 with zone
    check_out TEXT NOT NULL,
    share_id TEXT NOT NULL UNIQUE,
    grantee_id TEXT,                -- the guest's account, once they accepted
    status TEXT NOT NULL,           -- invited, accepted, arrived, cancelled
    arrived_at TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS seen_webhook (
    id TEXT PRIMARY KEY,
    received_at REAL NOT NULL
);
"""

BOOKINGS = (
    "SELECT id, lock_id, lock_name, guest, check_in, check_out, share_id, grantee_id, status, "
    "arrived_at FROM booking"
)
#: A pending authorisation (state -> PKCE verifier) is good for this long.
PENDING_TTL_S = 600
#: Webhook ids are remembered this long: retries of one event span up to three days.
SEEN_TTL_S = 7 * 24 * 3600


@dataclass(frozen=True)
class Booking:
    id: str
    lock_id: str
    lock_name: str
    guest: str
    check_in: str
    check_out: str
    share_id: str
    grantee_id: str | None
    status: str
    arrived_at: str | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Store:
    def __init__(self, path: str) -> None:
        if path != ":memory:" and not Path(path).exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    # ------------------------------------------------------------------ OAuth

    def save_token(self, token: dict[str, Any]) -> None:
        """Keep the newest token response (after a refresh the old refresh token is dead)."""
        self._run(
            "INSERT INTO connection (id, token, connected_at) VALUES (1, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET token = excluded.token",
            (json.dumps(token), time.time()),
        )

    def token(self) -> dict[str, Any] | None:
        row = self._run("SELECT token FROM connection WHERE id = 1").fetchone()
        return None if row is None else dict(json.loads(row["token"]))

    def forget_token(self) -> None:
        self._run("DELETE FROM connection")

    def add_pending(self, state: str, code_verifier: str) -> None:
        self._run("DELETE FROM pending WHERE created_at < ?", (time.time() - PENDING_TTL_S,))
        self._run("INSERT INTO pending VALUES (?, ?, ?)", (state, code_verifier, time.time()))

    def take_pending(self, state: str) -> str | None:
        """The verifier of a pending authorisation, at most once and while fresh."""
        with self._lock:
            row = self._db.execute(
                "DELETE FROM pending WHERE state = ? RETURNING code_verifier, created_at",
                (state,),
            ).fetchone()
        if row is None or row["created_at"] < time.time() - PENDING_TTL_S:
            return None
        return str(row["code_verifier"])

    # ------------------------------------------------------------------ webhooks

    def save_subscription(self, sub_id: str, url: str, secret: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM subscription")
            self._db.execute(
                "INSERT INTO subscription VALUES (?, ?, ?, ?)", (sub_id, url, secret, time.time())
            )

    def subscription(self) -> dict[str, Any] | None:
        row = self._run("SELECT id, url, secret FROM subscription").fetchone()
        return None if row is None else dict(row)

    def first_sighting(self, webhook_id: str) -> bool:
        """Record a webhook id; False if it was handled before (a retry or a replay)."""
        now = time.time()
        self._run("DELETE FROM seen_webhook WHERE received_at < ?", (now - SEEN_TTL_S,))
        cursor = self._run("INSERT OR IGNORE INTO seen_webhook VALUES (?, ?)", (webhook_id, now))
        return cursor.rowcount == 1

    def unsee(self, webhook_id: str) -> None:
        """Handling failed: let the RAS's retry be handled."""
        self._run("DELETE FROM seen_webhook WHERE id = ?", (webhook_id,))

    # ------------------------------------------------------------------ bookings

    def add_booking(
        self, lock_id: str, lock_name: str, guest: str, check_in: str, check_out: str, share_id: str
    ) -> Booking:
        booking_id = str(uuid.uuid4())
        self._run(
            "INSERT INTO booking (id, lock_id, lock_name, guest, check_in, check_out, share_id, "
            "status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'invited', ?)",
            (booking_id, lock_id, lock_name, guest, check_in, check_out, share_id, time.time()),
        )
        found = self.booking(booking_id)
        assert found is not None
        return found

    def booking(self, booking_id: str) -> Booking | None:
        row = self._run(BOOKINGS + " WHERE id = ?", (booking_id,)).fetchone()
        return None if row is None else Booking(**dict(row))

    def bookings(self) -> list[Booking]:
        rows = self._run(BOOKINGS + " ORDER BY check_in, created_at")
        return [Booking(**dict(row)) for row in rows.fetchall()]

    def by_share(self, share_id: str) -> Booking | None:
        row = self._run(BOOKINGS + " WHERE share_id = ?", (share_id,))
        found = row.fetchone()
        return None if found is None else Booking(**dict(found))

    def accepted(self, booking_id: str, grantee_id: str) -> None:
        self._run(
            "UPDATE booking SET grantee_id = ?, "
            "status = CASE status WHEN 'invited' THEN 'accepted' ELSE status END WHERE id = ?",
            (grantee_id, booking_id),
        )

    def arrived(self, booking_id: str, at: str) -> bool:
        """Mark the guest arrived (once: the first unlock counts)."""
        cursor = self._run(
            "UPDATE booking SET status = 'arrived', arrived_at = ? "
            "WHERE id = ? AND status IN ('invited', 'accepted')",
            (at, booking_id),
        )
        return cursor.rowcount == 1

    def cancelled(self, booking_id: str) -> None:
        self._run("UPDATE booking SET status = 'cancelled' WHERE id = ?", (booking_id,))
