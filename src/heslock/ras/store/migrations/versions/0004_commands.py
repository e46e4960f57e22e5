"""Remote control: commands sent to locks and the locks' own events.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

- ``commands``: one row per remote command (idempotency key unique per user, state,
  the sealed frame for an identical re-send, the answer given).
- ``lock_events``: verified lock events (kind, detail, counter, lock time, gateway,
  and the state the lock reported with them).

Column types are plain SQLAlchemy types, frozen at this revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "commands",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lock_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("command", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("frame", sa.LargeBinary(length=20), nullable=False),
        sa.Column("gateway", sa.String(length=320), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("answer_code", sa.String(length=64), nullable=True),
        sa.Column("answer", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["lock_id"], ["locks.id"], name=op.f("fk_commands_lock_id_locks"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_commands_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commands")),
        sa.UniqueConstraint(
            "user_id", "idempotency_key", name=op.f("uq_commands_user_id_idempotency_key")
        ),
    )
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_commands_lock_id"), ["lock_id"], unique=False)
    op.create_table(
        "lock_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("lock_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Integer(), nullable=False),
        sa.Column("counter", sa.Integer(), nullable=False),
        sa.Column("lock_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("gateway", sa.String(length=320), nullable=False),
        sa.Column("bolt_state", sa.Integer(), nullable=True),
        sa.Column("door_state", sa.Integer(), nullable=True),
        sa.Column("battery", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["lock_id"],
            ["locks.id"],
            name=op.f("fk_lock_events_lock_id_locks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lock_events")),
    )
    with op.batch_alter_table("lock_events", schema=None) as batch_op:
        batch_op.create_index("ix_lock_events_lock_id_id", ["lock_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("lock_events", schema=None) as batch_op:
        batch_op.drop_index("ix_lock_events_lock_id_id")
    op.drop_table("lock_events")
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_commands_lock_id"))
    op.drop_table("commands")
