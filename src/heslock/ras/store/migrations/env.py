"""Alembic environment for the RAS: shared connection, batch mode, naming convention.

Run through :mod:`heslock.ras.store.migrate` (``heslock ras migrate``), which hands a
live connection in ``config.attributes["connection"]``. Offline SQL generation is not
supported: the RAS always migrates a live database.
"""

from __future__ import annotations

from alembic import context

import heslock.ras.store.models  # noqa: F401  (registers every table on Base.metadata)
from heslock.ras.store.base import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run RAS migrations with `heslock ras migrate` or heslock.ras.store.migrate")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite: ALTER TABLE through copy-and-move (FIELD-NOTES)
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
