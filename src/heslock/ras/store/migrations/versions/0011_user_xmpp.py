"""XMPP logins for people, so live events reach their XMPP sessions (issue 7).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24

- ``xmpp_logins``: a person's XMPP client credentials: SASL username (unique), label,
  SCRAM-SHA-256 verifiers (never the password), created and revoked times; indexed per
  user in order of creation (the listing); rows go with the user (cascade).

A new table only: nothing existing is altered, so SQLite needs no batch copy. Column
types are plain SQLAlchemy types, frozen at this revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "xmpp_logins",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("username", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("scram_salt", sa.LargeBinary(length=64), nullable=False),
        sa.Column("scram_stored_key", sa.LargeBinary(length=64), nullable=False),
        sa.Column("scram_server_key", sa.LargeBinary(length=64), nullable=False),
        sa.Column("scram_iterations", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_xmpp_logins_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_xmpp_logins")),
        sa.UniqueConstraint("username", name=op.f("uq_xmpp_logins_username")),
    )
    with op.batch_alter_table("xmpp_logins", schema=None) as batch_op:
        batch_op.create_index(
            "ix_xmpp_logins_user_id_created_at", ["user_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("xmpp_logins", schema=None) as batch_op:
        batch_op.drop_index("ix_xmpp_logins_user_id_created_at")
    op.drop_table("xmpp_logins")
