"""People's XMPP logins (issue 7, "live events ... as XMPP messages to a user's session").

- ``xmpp_logins``: one row per client credential a person created over HTTPS (an "app
  password"): the SASL username (the localpart of ``<username>@<domain>``), a label the
  person chose, and the SCRAM-SHA-256 verifiers (RFC 5802 section 3: salt, StoredKey,
  ServerKey, iteration count), never the password. Revoked rows keep ``revoked_at`` (the
  list shows them, the credential store refuses them); the rows go with the account
  (:mod:`heslock.ras.services.xmppusers.logins`, deletion hook) and, should a user row
  ever be deleted, by cascade.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from heslock.ras.store.base import Base, UTCDateTime, new_id, utcnow

#: ``p-`` and 20 hex digits (80 random bits): unique, and never a gateway's (a UUID).
MAX_USERNAME_LEN = 32
MAX_LABEL_LEN = 64


class XmppLogin(Base):
    """One person's XMPP client credential (module docstring)."""

    __tablename__ = "xmpp_logins"
    __table_args__ = (Index("ix_xmpp_logins_user_id_created_at", "user_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    username: Mapped[str] = mapped_column(String(MAX_USERNAME_LEN), unique=True)
    label: Mapped[str] = mapped_column(String(MAX_LABEL_LEN))
    scram_salt: Mapped[bytes] = mapped_column(LargeBinary(64))
    scram_stored_key: Mapped[bytes] = mapped_column(LargeBinary(64))
    scram_server_key: Mapped[bytes] = mapped_column(LargeBinary(64))
    scram_iterations: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
