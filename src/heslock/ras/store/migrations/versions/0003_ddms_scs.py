"""DDMS and SCS: devices, registrations, locks and gateways (changes after the initial schema).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

- ``devices.factory_counter``: the last counter used under the factory key (TIME sync
  before a registration; a lock keeps that key's counter window across a factory reset).
- ``locks.next_counter``: the first counter free under the current lock key.
- ``registrations``: kind (register/rotate), the new lock's name, the lock concerned,
  the commit counter, the TIME-sync sequence, the failure reason and the idempotency
  cache (hash of the last answer, and its result) so any RAS node can continue one.

SQLite gets these through batch mode (copy-and-move); PostgreSQL through ALTER TABLE.
Column types are plain SQLAlchemy types, frozen at this revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("factory_counter", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("locks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("next_counter", sa.Integer(), server_default="2", nullable=False)
        )
    with op.batch_alter_table("registrations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), server_default="register", nullable=False)
        )
        batch_op.add_column(sa.Column("lock_name", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("lock_id", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column("commit_counter", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("time_seq", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("failure", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("last_answer_sha256", sa.LargeBinary(length=32), nullable=True)
        )
        batch_op.add_column(sa.Column("last_result", sa.JSON(), nullable=True))
        batch_op.create_index(batch_op.f("ix_registrations_lock_id"), ["lock_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_registrations_lock_id_locks"),
            "locks",
            ["lock_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table("registrations", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_registrations_lock_id_locks"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_registrations_lock_id"))
        for column in (
            "last_result",
            "last_answer_sha256",
            "failure",
            "time_seq",
            "commit_counter",
            "lock_id",
            "lock_name",
            "kind",
        ):
            batch_op.drop_column(column)
    with op.batch_alter_table("locks", schema=None) as batch_op:
        batch_op.drop_column("next_counter")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("factory_counter")
