"""The user-visible event feed: ``feed_events`` (live events, issue 7).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24

- ``feed_events``: one row per user-visible event; ``id`` is the Server-Sent Events id
  and only grows (SQLite ``AUTOINCREMENT``, PostgreSQL ``BIGSERIAL``), with indexes for
  the per-lock and per-user listings and for the retention sweep by ``created_at``.

A new table only: nothing existing is altered, so SQLite needs no batch copy. Column
types are plain SQLAlchemy types, frozen at this revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feed_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=48), nullable=False),
        sa.Column("lock_id", sa.Uuid(), nullable=True),
        sa.Column("home_id", sa.Uuid(), nullable=True),
        sa.Column("gateway_id", sa.Uuid(), nullable=True),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("path", sa.String(length=8), nullable=False),
        sa.Column("credential", sa.String(length=330), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_events")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("feed_events", schema=None) as batch_op:
        batch_op.create_index("ix_feed_events_lock_id_id", ["lock_id", "id"], unique=False)
        batch_op.create_index("ix_feed_events_user_id_id", ["user_id", "id"], unique=False)
        batch_op.create_index("ix_feed_events_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("feed_events", schema=None) as batch_op:
        batch_op.drop_index("ix_feed_events_created_at")
        batch_op.drop_index("ix_feed_events_user_id_id")
        batch_op.drop_index("ix_feed_events_lock_id_id")
    op.drop_table("feed_events")
