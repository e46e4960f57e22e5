"""Grouping and sharing: homes, their locks and gateways, shares and their locks.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25

- ``homes``: owner, name, IANA time zone.
- ``home_locks`` / ``home_gateways``: a lock (gateway) in at most one home.
- ``shares``: one grant to one person or pending invitation (role, permissions, paths,
  validity, schedule, one-time uses, revocation), with keyset-paging indexes per owner,
  grantee and home, and an index for pending invitations by contact.
- ``share_locks``: the locks of a ``locks``-scope share, indexed by lock for the
  per-lock listing.

New tables only: nothing existing is altered, so SQLite needs no batch copy. Column
types are plain SQLAlchemy types, frozen at this revision (the models check JSON values
on the way in; the database stores plain JSON).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "homes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_homes_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_homes")),
    )
    with op.batch_alter_table("homes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_homes_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "home_locks",
        sa.Column("lock_id", sa.Uuid(), nullable=False),
        sa.Column("home_id", sa.Uuid(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["home_id"], ["homes.id"], name=op.f("fk_home_locks_home_id_homes"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["lock_id"], ["locks.id"], name=op.f("fk_home_locks_lock_id_locks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("lock_id", name=op.f("pk_home_locks")),
    )
    with op.batch_alter_table("home_locks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_home_locks_home_id"), ["home_id"], unique=False)

    op.create_table(
        "home_gateways",
        sa.Column("gateway_id", sa.Uuid(), nullable=False),
        sa.Column("home_id", sa.Uuid(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["gateway_id"],
            ["gateways.id"],
            name=op.f("fk_home_gateways_gateway_id_gateways"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["home_id"],
            ["homes.id"],
            name=op.f("fk_home_gateways_home_id_homes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("gateway_id", name=op.f("pk_home_gateways")),
    )
    with op.batch_alter_table("home_gateways", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_home_gateways_home_id"), ["home_id"], unique=False)

    op.create_table(
        "shares",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("home_id", sa.Uuid(), nullable=True),
        sa.Column("grantee_id", sa.Uuid(), nullable=True),
        sa.Column("invite_kind", sa.String(length=8), nullable=True),
        sa.Column("invite_address", sa.String(length=320), nullable=True),
        sa.Column("label", sa.String(length=64), nullable=True),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.Column("paths", sa.JSON(), nullable=False),
        sa.Column("validity", sa.String(length=16), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("schedule", sa.JSON(), nullable=True),
        sa.Column("uses", sa.Integer(), server_default="0", nullable=False),
        sa.Column("spent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.Uuid(), nullable=True),
        sa.Column("revoke_reason", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_shares_owner_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["home_id"], ["homes.id"], name=op.f("fk_shares_home_id_homes"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["grantee_id"],
            ["users.id"],
            name=op.f("fk_shares_grantee_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_shares_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["revoked_by"],
            ["users.id"],
            name=op.f("fk_shares_revoked_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shares")),
    )
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.create_index(
            "ix_shares_owner_id_created_at", ["owner_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_shares_grantee_id_created_at", ["grantee_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_shares_home_id_created_at", ["home_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_shares_invite_kind_invite_address", ["invite_kind", "invite_address"], unique=False
        )

    op.create_table(
        "share_locks",
        sa.Column("share_id", sa.Uuid(), nullable=False),
        sa.Column("lock_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["share_id"],
            ["shares.id"],
            name=op.f("fk_share_locks_share_id_shares"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lock_id"], ["locks.id"], name=op.f("fk_share_locks_lock_id_locks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("share_id", "lock_id", name=op.f("pk_share_locks")),
    )
    with op.batch_alter_table("share_locks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_share_locks_lock_id_share_id", ["lock_id", "share_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("share_locks", schema=None) as batch_op:
        batch_op.drop_index("ix_share_locks_lock_id_share_id")
    op.drop_table("share_locks")
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.drop_index("ix_shares_invite_kind_invite_address")
        batch_op.drop_index("ix_shares_home_id_created_at")
        batch_op.drop_index("ix_shares_grantee_id_created_at")
        batch_op.drop_index("ix_shares_owner_id_created_at")
    op.drop_table("shares")
    with op.batch_alter_table("home_gateways", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_home_gateways_home_id"))
    op.drop_table("home_gateways")
    with op.batch_alter_table("home_locks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_home_locks_home_id"))
    op.drop_table("home_locks")
    with op.batch_alter_table("homes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_homes_owner_id"))
    op.drop_table("homes")
