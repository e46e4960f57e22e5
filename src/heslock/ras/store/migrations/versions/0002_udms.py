"""UDMS: access tokens, login challenges, contact codes, account tombstones.

Users, contacts, credentials, one-time codes, TOTP, sessions and refresh-token
families: the schema changes after the initial revision.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

Adds what login and sessions need beyond the initial tables:

- ``access_tokens``: short-lived opaque bearer tokens (SHA-256 hashes) of a session;
- ``login_challenges``: the step between a correct password and the second factor;
- ``otp_codes.contact_id``: which contact a verification code is for;
- ``users.deleted_at``: an account deleted by its owner stays as a tombstone without
  personal data, so the opaque ``user:<id>`` of the audit log points at nobody.

Column types are plain SQLAlchemy types frozen at this revision (no application
imports). SQLite alters ``otp_codes`` and ``users`` in batch mode (copy and move);
neither table carries triggers, so nothing has to be re-created.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("otp_codes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("contact_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_otp_codes_contact_id_contacts"),
            "contacts",
            ["contact_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_index(batch_op.f("ix_otp_codes_contact_id"), ["contact_id"], unique=False)

    op.create_table(
        "access_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_access_tokens_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_access_tokens_token_hash")),
    )
    with op.batch_alter_table("access_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_access_tokens_session_id"), ["session_id"], unique=False
        )

    op.create_table(
        "login_challenges",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("otp_code_id", sa.Uuid(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("source_ip", sa.String(length=45), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("consumed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_login_challenges_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["otp_code_id"],
            ["otp_codes.id"],
            name=op.f("fk_login_challenges_otp_code_id_otp_codes"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_challenges")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_login_challenges_token_hash")),
    )
    with op.batch_alter_table("login_challenges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_login_challenges_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("login_challenges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_challenges_user_id"))
    op.drop_table("login_challenges")

    with op.batch_alter_table("access_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_tokens_session_id"))
    op.drop_table("access_tokens")

    with op.batch_alter_table("otp_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_otp_codes_contact_id"))
        batch_op.drop_constraint(batch_op.f("fk_otp_codes_contact_id_contacts"), type_="foreignkey")
        batch_op.drop_column("contact_id")

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("deleted_at")
