"""Geofencing: ``geofences``, ``location_reports``, ``arrival_suggestions`` (issue 7).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24

- ``geofences``: a fence of one lock or one home (a check constraint: exactly one),
  each unique; centre, radius and the opt-in policies.
- ``location_reports``: people's location fixes (personal data); the id grows with
  each report (the order of arrival), indexed per user by id and by receipt time for
  the retention sweep.
- ``arrival_suggestions``: per user and lock, indexed per user and by creation time.

New tables only: nothing existing is altered, so SQLite needs no batch copy. Column
types are plain SQLAlchemy types, frozen at this revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "geofences",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lock_id", sa.Uuid(), nullable=True),
        sa.Column("home_id", sa.Uuid(), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("radius_m", sa.Float(), nullable=False),
        sa.Column("remote_unlock_inside", sa.Boolean(), nullable=False),
        sa.Column("arrival", sa.String(length=16), nullable=False),
        sa.Column("suppress_after_open_s", sa.Integer(), nullable=False),
        sa.Column("max_age_s", sa.Integer(), nullable=False),
        sa.Column("max_accuracy_m", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(lock_id IS NULL) <> (home_id IS NULL)", name=op.f("ck_geofences_lock_or_home")
        ),
        sa.ForeignKeyConstraint(
            ["lock_id"], ["locks.id"], name=op.f("fk_geofences_lock_id_locks"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["home_id"], ["homes.id"], name=op.f("fk_geofences_home_id_homes"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["updated_by"],
            ["users.id"],
            name=op.f("fk_geofences_updated_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_geofences")),
        sa.UniqueConstraint("lock_id", name=op.f("uq_geofences_lock_id")),
        sa.UniqueConstraint("home_id", name=op.f("uq_geofences_home_id")),
    )

    op.create_table(
        "location_reports",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("accuracy_m", sa.Float(), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_location_reports_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_location_reports")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("location_reports", schema=None) as batch_op:
        batch_op.create_index("ix_location_reports_user_id_id", ["user_id", "id"], unique=False)
        batch_op.create_index("ix_location_reports_received_at", ["received_at"], unique=False)

    op.create_table(
        "arrival_suggestions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("lock_id", sa.Uuid(), nullable=False),
        sa.Column("fence_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_arrival_suggestions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lock_id"],
            ["locks.id"],
            name=op.f("fk_arrival_suggestions_lock_id_locks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["fence_id"],
            ["geofences.id"],
            name=op.f("fk_arrival_suggestions_fence_id_geofences"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_arrival_suggestions")),
    )
    with op.batch_alter_table("arrival_suggestions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_arrival_suggestions_user_id_created_at", ["user_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_arrival_suggestions_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("arrival_suggestions", schema=None) as batch_op:
        batch_op.drop_index("ix_arrival_suggestions_created_at")
        batch_op.drop_index("ix_arrival_suggestions_user_id_created_at")
    op.drop_table("arrival_suggestions")
    with op.batch_alter_table("location_reports", schema=None) as batch_op:
        batch_op.drop_index("ix_location_reports_received_at")
        batch_op.drop_index("ix_location_reports_user_id_id")
    op.drop_table("location_reports")
    op.drop_table("geofences")
