"""Commands: nearby mode and the reconciliation of unknown outcomes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25

- ``commands.path``: ``remote`` (the RAS relays the frame through a gateway) or
  ``nearby`` (the client carries it over its own BLE link); existing rows are remote.
- ``commands.expires_at``: until when a nearby frame is handed out again.
- ``commands.frame_ts``: the sealed frame's timestamp (uint32, hence BIGINT: PostgreSQL's
  INTEGER ends in 2038). Existing rows keep NULL; the reconciler opens their frame.
- ``commands.reconcile_after`` / ``reconciles``: the next reconciliation attempt of an
  ``unknown`` command (its backoff and lease) and the attempts made.
- index ``ix_commands_state_reconcile_after`` for the reconciler's sweep.

SQLite gets these through batch mode (copy-and-move); PostgreSQL through ALTER TABLE.
Column types are plain SQLAlchemy types, frozen at this revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("path", sa.String(length=8), server_default="remote", nullable=False)
        )
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("frame_ts", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("reconcile_after", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("reconciles", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.create_index(
            "ix_commands_state_reconcile_after", ["state", "reconcile_after"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.drop_index("ix_commands_state_reconcile_after")
        batch_op.drop_column("reconciles")
        batch_op.drop_column("reconcile_after")
        batch_op.drop_column("frame_ts")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("path")
